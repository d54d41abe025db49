"""Running the platform: serve, monitor run, migrate, mlflow sync."""

from __future__ import annotations

import json
import sys
import time
from argparse import Namespace

from core.app import (
    Backends,
    database_reachable,
    every_model,
    migrate_registry,
    mlflow_sync,
    monitor_pass,
    tracing,
)
from core.cli.common import Commands, actor, now, print_json
from core.errors import InvalidInput


def register(commands: Commands) -> None:
    serve = commands.add("serve", cmd_serve, acting=False, help=(
        "serve the model over HTTP (TF Serving's REST protocol and /v1/predict)"))
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8500, help="default: 8500")
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes (default: 1; about one per CPU core)")
    # Phones run the app (/app/, its service worker and camera) only over HTTPS.
    serve.add_argument("--certfile", metavar="PEM",
                       help="serve HTTPS with this certificate (e.g. make https's)")
    serve.add_argument("--keyfile", metavar="PEM", help="the certificate's private key")

    migrate = commands.add("migrate", cmd_migrate, acting=False, json=True, help=(
        "copy the registry (every table, and with --artifacts every version's files) to "
        "another database, e.g. from SQLite to PostgreSQL"))
    migrate.add_argument("--to", required=True, metavar="DATABASE_URL",
                         help="an empty database, e.g. postgresql://USER@HOST:5432/registry")
    migrate.add_argument("--artifacts", metavar="URL",
                         help="where to copy the versions' files, e.g. s3://bucket/prefix "
                              "(default: they stay where they are)")

    monitor = commands.group("monitor", help="watch traffic on a schedule: snapshots of "
                             "closed periods, alert rules, messages")
    run = monitor.add("run", cmd_monitor, acting=False,
                      help="pass after pass (or one with --once)")
    run.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
    run.add_argument("--interval", type=int, metavar="SECONDS",
                     help="seconds between passes (default: $MONITOR_INTERVAL_SECONDS or 60)")

    mlflow = commands.group("mlflow", help="mirror versions into an MLflow server")
    sync = mlflow.add("sync", cmd_mlflow_sync, json=True, help=(
        "create missing runs and model versions; keep statuses, decision hashes and the "
        "champion alias in step (operators)"))
    sync.add_argument("--tracking-uri", required=True, metavar="URI",
                      help="the MLflow server, e.g. http://127.0.0.1:5000")
    sync.add_argument("--registered-model", metavar="NAME",
                      help="MLflow's registered model (default: this model's name)")


def cmd_serve(args: Namespace, backends: Backends) -> int:
    from core.serving.server import serve

    if bool(args.certfile) != bool(args.keyfile):
        raise InvalidInput("--certfile and --keyfile go together. To fix this, give both "
                           "(make https makes a pair in .streamlit/certs/).")
    serve(backends.config, host=args.host, port=args.port, workers=args.workers,
          certfile=args.certfile, keyfile=args.keyfile)
    return 0


def cmd_monitor(args: Namespace, backends: Backends) -> int:
    tracing.start_tracing(backends.config, "vision-monitor")
    interval = args.interval or backends.config.monitor_interval_seconds
    if interval < 1:
        raise InvalidInput("--interval must be at least 1 second. To fix this, pass e.g. "
                           "--interval 60.")

    # Each pass covers every model of the registry (one model's failing pass does not
    # stop the others'); a pass records what failed in it and goes on; one that fails as a
    # whole is retried next time. Only a database that cannot be reached stops the monitor.
    while True:
        try:
            models = every_model(backends)
        except Exception as error:  # noqa: BLE001 - as a failed pass
            if _without_database(backends, error):
                return 1
            models = [backends]  # the configured model's pass goes on
        for model in models:
            if not _monitor_pass(model):
                return 1
        if args.once:
            return 0
        time.sleep(interval)


def _without_database(backends: Backends, error: Exception) -> bool:
    """Whether ``error`` came with a database that cannot be reached (said on stderr)."""
    if database_reachable(backends):
        return False
    print(f"{now().isoformat(timespec='seconds')} the database cannot be reached ({error}); "
          "the monitor stops. To fix this, start it or correct DATABASE_URL, then run the "
          "monitor again.", file=sys.stderr, flush=True)
    return True


def _monitor_pass(backends: Backends) -> bool:
    """One model's pass, reported on stdout (problems on stderr); False: the database
    cannot be reached."""
    def period_done(period: str, start: str, count: int) -> None:
        print(f"{period} {start}: {count} snapshot(s) of {backends.model}", file=sys.stderr,
              flush=True)

    started = now().isoformat(timespec="seconds")
    try:
        result = monitor_pass(backends, now(), on_period=period_done)
    except Exception as error:  # noqa: BLE001 - see cmd_monitor
        if _without_database(backends, error):
            return False
        print(f"{started} {backends.model}: the pass failed ({type(error).__name__}: "
              f"{error}); the next one retries", file=sys.stderr, flush=True)
        return True
    print(f"{started} {backends.model}: {result.line()}", flush=True)
    for item, problem in result.problems.items():
        print(f"  {item} failed: {problem}", file=sys.stderr, flush=True)
    return True


def cmd_migrate(args: Namespace, backends: Backends) -> int:
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def on_progress(what: str, done: int, total: int) -> None:
        if what not in bars:
            bars[what] = tqdm(total=total, unit="row" if what != "artifacts" else "version",
                              file=sys.stderr, dynamic_ncols=True, desc=what, leave=False)
        bars[what].update(done - bars[what].n)

    try:
        result = migrate_registry(backends, to_url=args.to, artifacts_url=args.artifacts,
                                  on_progress=on_progress)
    finally:
        for bar in bars.values():
            bar.close()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0 if result.audit.ok else 1
    print(f"copied {sum(result.rows.values()):,} rows in {len(result.rows)} tables to "
          f"{result.database}" + (f", and {result.versions_copied} version(s)' files to "
                                  f"{result.artifacts}" if result.artifacts else ""))
    for table, rows in result.rows.items():
        if rows:
            print(f"  {table:<20} {rows:>12,}")
    verdict = ("verified" if result.audit.ok else f"FAILED verification: {result.audit.problem}")
    print(f"audit log on the target {verdict} ({result.audit.entries} entries). To use it, "
          f"set DATABASE_URL={args.to}"
          + (f" ARTIFACTS_URL={args.artifacts}" if args.artifacts else ""))
    return 0 if result.audit.ok else 1


def cmd_mlflow_sync(args: Namespace, backends: Backends) -> int:
    result = mlflow_sync(backends, tracking_uri=args.tracking_uri,
                         registered_model=args.registered_model, actor=actor(args),
                         now=now(), on_version=lambda n: print(f"version {n} in step",
                                                                file=sys.stderr))
    if args.json:
        print_json(result.as_dict())
    elif not result.changed:
        print("MLflow was already in step: nothing changed")
    else:
        print(f"runs created for versions {result.runs_created or 'none'}; model versions "
              f"created for {result.model_versions_created or 'none'}; {result.tags_set} "
              "tag(s) set"
              + (f"; alias 'champion' now on version {result.alias_moved_to}"
                 if result.alias_moved_to is not None else ""))
    return 0
