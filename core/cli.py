"""Command line: ``python -m core [--registry DIR] COMMAND``.

Every error a user can cause is printed as one line on stderr with exit
status 1; JSON goes to stdout.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from core.app import (
    ALERT_RULES,
    ANONYMOUS,
    ARCHITECTURES,
    CARD_FORMATS,
    DECISIONS,
    EMPTY_HEATMAP,
    JOB_FINISHED,
    NONE_OF_THESE_CLASSES,
    ROLES,
    SCENARIOS,
    SOURCE_KINDS,
    Backends,
    RetrainRequest,
    Thresholds,
    acknowledge_alert,
    add_alert_channel,
    add_user,
    alert_deliveries,
    alert_rules,
    audit_head,
    bootstrap,
    build_backends,
    build_exports,
    cancel_job,
    check_audit_log,
    check_upload_size,
    compare_versions,
    create_key,
    create_reference_profile,
    database_reachable,
    decide_version,
    decision_evidence,
    drift_for_version,
    encode_png,
    explain_image,
    export_audit_log,
    export_table,
    find_comparison,
    gate_advice,
    get_job,
    get_version,
    has_users,
    label_prediction,
    label_queue,
    list_alert_channels,
    list_alert_episodes,
    list_jobs,
    list_keys,
    list_users,
    list_versions,
    live_evidence,
    migrate_registry,
    mlflow_sync,
    model_card,
    monitor_pass,
    parse_duration,
    parse_version,
    predict_image,
    remove_alert_channel,
    reset_password,
    revoke_key,
    seal_audit_log,
    send_test_alert,
    set_alert_rule,
    set_role,
    set_traffic,
    set_user_disabled,
    simulate,
    start_job,
    submit_retrain,
    top_losses,
    traffic_status,
    unfamiliar_warning,
    validate_user_name,
)
from core.config import Config, load_config
from core.errors import CoreError, InvalidInput


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core",
                                     description="Operate an image-classification model.")
    parser.add_argument("--registry", type=Path, help="registry folder "
                        "(default: $MODEL_REGISTRY_DIR or ./model_registry)")
    parser.add_argument("--model-name", help="model name inside the registry "
                        "(default: $MODEL_NAME or 'classifier')")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Every command acts as someone; core checks that person's role.
    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument("--actor", metavar="NAME", help="the user acting (default: "
                        f"'{ANONYMOUS}', whose role is $ANONYMOUS_ROLE, by default viewer)")

    def add(name: str, **options) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[acting], **options)

    boot = add("bootstrap", help="train and register v1 if the registry is empty")
    boot.add_argument("--dataset", help="fashion_mnist | tfds:NAME[:TRAIN|TEST] | folder:PATH")
    boot.add_argument("--model", default="small_cnn", choices=ARCHITECTURES,
                      help="architecture (default: small_cnn)")
    boot.add_argument("--epochs", type=int, help="training epochs (default: 6)")
    boot.add_argument("--limit", type=int, help="train on the first N training images only")
    boot.add_argument("--eval-limit", type=int,
                      help="evaluate on the first N validation and test images only")
    boot.add_argument("--json", action="store_true", help="print the version as JSON")

    versions = add("versions", help="list versions with status and metrics")
    versions.add_argument("--json", action="store_true")

    predict = add("predict", help="classify image files")
    predict.add_argument("files", nargs="+", type=Path, metavar="FILE")
    predict.add_argument("--version", help="version to use (default: the champion)")
    predict.add_argument("--json", action="store_true")

    explain = add("explain", help="write a Grad-CAM overlay PNG")
    explain.add_argument("file", type=Path, metavar="FILE")
    explain.add_argument("--out", type=Path, required=True, metavar="PNG")
    explain.add_argument("--version", help="version to use (default: the champion)")
    explain.add_argument("--class", dest="class_name",
                         help="class to explain (default: the predicted one)")

    card = add("card", help="write a version's model card (Markdown or HTML)")
    card.add_argument("version", metavar="N")
    card.add_argument("--format", choices=CARD_FORMATS, default="md",
                      help="md (default) or html (one self-contained file)")
    card.add_argument("--out", type=Path, metavar="FILE",
                      help="write to FILE instead of printing")

    exports = add("exports", help="a version's exports (Keras, SavedModel, TFLite float, "
                  "dynamic, float16 and int8, ONNX) with size, accuracy and latency; builds "
                  "the missing ones first (operators)")
    exports.add_argument("version", metavar="N")
    exports.add_argument("--json", action="store_true")

    sim = add("simulate", help="stream transformed test images through the "
                              "champion as logged traffic")
    sim.add_argument("--scenario", required=True, metavar="S",
                     help="one of: " + ", ".join(SCENARIOS))
    sim.add_argument("--severity", type=float, help="strength (default: the scenario's)")
    sim.add_argument("--n", type=int, default=500, help="images to send (default: 500)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--json", action="store_true")

    drift = add("drift", help="drift report of a version's recent traffic")
    drift.add_argument("--version", help="version (default: the champion)")
    drift.add_argument("--window", type=int, default=500,
                       help="last N predictions (default: 500)")
    drift.add_argument("--since", help="only predictions at or after this UTC ISO time")
    drift.add_argument("--until", help="only predictions before this UTC ISO time")
    drift.add_argument("--source", action="append", choices=SOURCE_KINDS,
                       help="only predictions from this source (repeatable; default all)")
    drift.add_argument("--threshold", action="append", metavar="NAME=[WARN:]ALERT",
                       help="override a statistic's thresholds (repeatable)")
    drift.add_argument("--json", action="store_true")

    profile = add("profile", help="compute a missing reference profile or OOD detector")
    profile.add_argument("--version", required=True)

    retrain = add("retrain", help="queue a retraining job (fine-tunes the "
                                  "champion; the result is a candidate, never promoted)")
    retrain.add_argument("--include", nargs="+", metavar="SCENARIO",
                         help="drift scenarios to learn from (default: those seen in traffic)")
    retrain.add_argument("--no-feedback", action="store_true",
                         help="leave out the images people labelled (corrections, review queue)")
    retrain.add_argument("--epochs", type=int, default=RetrainRequest.epochs,
                         help=f"default: {RetrainRequest.epochs}")
    retrain.add_argument("--learning-rate", type=float, default=RetrainRequest.learning_rate,
                         help=f"default: {RetrainRequest.learning_rate:g}")
    retrain.add_argument("--wait", action="store_true", help="follow the job until it ends")
    retrain.add_argument("--json", action="store_true")

    jobs = add("jobs", help="list jobs with status and progress")
    jobs.add_argument("--json", action="store_true")

    cancel = add("cancel", help="cancel a queued or running job, or discard a suggested one")
    cancel.add_argument("job", type=int, metavar="JOB")

    start_one = add("start", help="start a retraining job the monitor suggested")
    start_one.add_argument("job", type=int, metavar="JOB")

    compare = add("compare", help="compare two versions on the same holdouts")
    compare.add_argument("baseline", metavar="A")
    compare.add_argument("candidate", metavar="B")
    compare.add_argument("--include", nargs="+", metavar="SCENARIO",
                         help="drifted holdouts (default: scenarios seen in A's traffic)")
    compare.add_argument("--live", action="store_true",
                         help="live evidence instead: B in shadow or canary beside A")
    compare.add_argument("--json", action="store_true")

    for action, (start, end) in DECISIONS.items():
        decision = add(action, help=f"{start} version -> {end} (reviewers; needs a reason)")
        decision.add_argument("version", metavar="N")
        decision.add_argument("--reason", required=True, help="why, in your words")
        if action != "rollback":
            decision.add_argument("--override-gate", action="store_true",
                                  help="acknowledge deciding against the gate's advice")
        decision.add_argument("--json", action="store_true")

    users = commands.add_parser("users", help="manage who may do what (admins)")
    user_commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add_one = user_commands.add_parser("add", parents=[acting],
                                       help="add a user; the password is read from stdin")
    add_one.add_argument("name", metavar="NAME")
    add_one.add_argument("--role", required=True, choices=ROLES)
    add_one.add_argument("--oidc", action="store_true",
                         help="no password: signs in through the dashboard's OIDC provider")
    role = user_commands.add_parser("set-role", parents=[acting], help="change a user's role")
    role.add_argument("name", metavar="NAME")
    role.add_argument("role", choices=ROLES)
    role.add_argument("--reason", required=True)
    for action, text in (("disable", "disable an account: it can do nothing until enabled"),
                         ("enable", "enable a disabled account again"),
                         ("reset-password", "give a user a new password, read from stdin")):
        change = user_commands.add_parser(action, parents=[acting], help=text)
        change.add_argument("name", metavar="NAME")
        change.add_argument("--reason", required=True)
    user_commands.add_parser("setup", help="at first start, ask for the first admin's name "
                             "and password (does nothing once users exist or without a "
                             "terminal)")
    listing = user_commands.add_parser("list", parents=[acting], help="list users and roles")
    listing.add_argument("--json", action="store_true")

    keys = commands.add_parser("keys", help="API keys for programs calling the serving API "
                               "(admins)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", parents=[acting],
                                     help="create a key; its secret is printed once")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--rate-limit", type=float, metavar="RPS",
                        help="requests per second per server process (default: unlimited)")
    create.add_argument("--json", action="store_true")
    key_list = key_commands.add_parser("list", parents=[acting], help="list keys (no secrets)")
    key_list.add_argument("--json", action="store_true")
    revoke = key_commands.add_parser("revoke", parents=[acting], help="revoke a key")
    revoke.add_argument("name", metavar="NAME")
    revoke.add_argument("--reason", help="why (kept in the audit log)")

    traffic = commands.add_parser("traffic", help="which version answers API traffic: "
                                  "shadow or canary a candidate (reviewers)")
    traffic_commands = traffic.add_subparsers(dest="traffic_command", required=True,
                                              metavar="ACTION")
    policy = traffic_commands.add_parser("set", parents=[acting], help="set the policy")
    mode = policy.add_mutually_exclusive_group(required=True)
    mode.add_argument("--shadow", metavar="N", help="every request also runs on version N "
                      "(logged, never answered)")
    mode.add_argument("--canary", metavar="N:PERCENT",
                      help="PERCENT %% of requests are answered by version N")
    mode.add_argument("--off", action="store_true", help="the champion answers everything")
    policy.add_argument("--reason", required=True, help="why, in your words")
    policy.add_argument("--json", action="store_true")
    show = traffic_commands.add_parser("show", parents=[acting], help="show the policy")
    show.add_argument("--json", action="store_true")

    serve = commands.add_parser("serve", help="serve the model over HTTP (TF Serving's REST "
                                "protocol and /v1/predict)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8500, help="default: 8500")
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes (default: 1; about one per CPU core)")

    migrate = commands.add_parser(
        "migrate", help="copy the registry (every table, and with --artifacts every "
        "version's files) to another database, e.g. from SQLite to PostgreSQL")
    migrate.add_argument("--to", required=True, metavar="DATABASE_URL",
                         help="an empty database, e.g. postgresql://USER@HOST:5432/registry")
    migrate.add_argument("--artifacts", metavar="URL",
                         help="where to copy the versions' files, e.g. s3://bucket/prefix "
                              "(default: they stay where they are)")
    migrate.add_argument("--json", action="store_true")

    monitor = commands.add_parser("monitor", help="watch traffic on a schedule: snapshots "
                                  "of closed periods, alert rules, messages")
    monitor_commands = monitor.add_subparsers(dest="monitor_command", required=True,
                                              metavar="ACTION")
    run = monitor_commands.add_parser("run", help="pass after pass (or one with --once)")
    run.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
    run.add_argument("--interval", type=int, metavar="SECONDS",
                     help="seconds between passes (default: $MONITOR_INTERVAL_SECONDS or 60)")

    alerts = commands.add_parser("alerts", help="alert channels, rules and episodes")
    alert_commands = alerts.add_subparsers(dest="alerts_command", required=True,
                                           metavar="ACTION")
    channels = alert_commands.add_parser("channels", parents=[acting],
                                         help="list channels (no secrets)")
    channels.add_argument("--json", action="store_true")
    add_channel = alert_commands.add_parser("add-channel", parents=[acting],
                                            help="add a channel (admins)")
    add_channel.add_argument("name", metavar="NAME")
    kind = add_channel.add_mutually_exclusive_group(required=True)
    kind.add_argument("--webhook", metavar="URL", help="POST JSON signed with --secret")
    kind.add_argument("--slack", metavar="URL", help="a Slack incoming-webhook URL")
    kind.add_argument("--email", metavar="ADDRESS", help="send e-mail through --smtp")
    add_channel.add_argument("--secret", help="the webhook's HMAC-SHA256 key (X-Signature)")
    add_channel.add_argument("--smtp", metavar="HOST:PORT", help="the e-mail channel's server")
    add_channel.add_argument("--smtp-user", metavar="USER",
                             help="SMTP login (password from $SMTP_PASSWORD)")
    remove_channel = alert_commands.add_parser("remove-channel", parents=[acting],
                                               help="remove a channel (admins)")
    remove_channel.add_argument("name", metavar="NAME")
    test = alert_commands.add_parser("test", parents=[acting],
                                     help="send a test message to a channel now")
    test.add_argument("name", metavar="CHANNEL")
    test.add_argument("--json", action="store_true")
    rules = alert_commands.add_parser("rules", parents=[acting],
                                      help="list rules with their settings")
    rules.add_argument("--json", action="store_true")
    set_rule = alert_commands.add_parser("set-rule", parents=[acting],
                                         help="override a rule's settings for this model "
                                              "(admins)")
    set_rule.add_argument("rule", choices=list(ALERT_RULES), metavar="RULE")
    set_rule.add_argument("settings", nargs="+", metavar="KEY=VALUE",
                          help="e.g. max_rate=0.1 reminder_minutes=60 enabled=false")
    set_rule.add_argument("--reason", required=True)
    episodes = alert_commands.add_parser("list", parents=[acting], help="alert episodes")
    episodes.add_argument("--open", action="store_true", help="open episodes only")
    episodes.add_argument("--json", action="store_true")
    ack = alert_commands.add_parser("ack", parents=[acting],
                                    help="acknowledge an open episode (no more reminders)")
    ack.add_argument("episode", type=int, metavar="EPISODE")
    ack.add_argument("--reason", required=True)
    silence = alert_commands.add_parser("silence", parents=[acting],
                                        help="send nothing about an episode for a time")
    silence.add_argument("episode", type=int, metavar="EPISODE")
    silence.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                         help="e.g. 30m, 2h, 1d")
    silence.add_argument("--reason", required=True)
    deliveries = alert_commands.add_parser("deliveries", parents=[acting],
                                           help="recent messages and their attempts")
    deliveries.add_argument("--json", action="store_true")

    review = commands.add_parser("review", help="the review queue: a version's top losses, "
                                 "live images worth a label, and labelling them")
    review_commands = review.add_subparsers(dest="review_command", required=True,
                                            metavar="ACTION")
    losses = review_commands.add_parser("losses", parents=[acting], help="a version's most "
                                        "confident mistakes on the comparison holdout")
    queue = review_commands.add_parser("queue", parents=[acting], help="unlabelled live "
                                       "images: unfamiliar, disagreed on, low confidence")
    for listing, default in ((losses, 12), (queue, 20)):
        listing.add_argument("--version", help="version (default: the champion)")
        listing.add_argument("--n", type=int, default=default,
                             help=f"how many images (default: {default})")
        listing.add_argument("--out", type=Path, metavar="FOLDER",
                             help="also write each image as a PNG into FOLDER"
                             + (" (beside its Grad-CAM)" if listing is losses else ""))
        listing.add_argument("--json", action="store_true")
    label = review_commands.add_parser("label", parents=[acting],
                                       help="say what a logged image is (viewers and up)")
    label.add_argument("prediction", type=int, metavar="ID",
                       help="the prediction's log id (from 'review queue' or the Predict page)")
    answer = label.add_mutually_exclusive_group(required=True)
    answer.add_argument("--class", dest="class_name", metavar="NAME", help="its true class")
    answer.add_argument("--none-of-these", action="store_true",
                        help="it is none of the model's classes (kept out of training)")

    mlflow = commands.add_parser("mlflow", help="mirror versions into an MLflow server")
    mlflow_commands = mlflow.add_subparsers(dest="mlflow_command", required=True,
                                            metavar="ACTION")
    sync = mlflow_commands.add_parser("sync", parents=[acting], help="create missing runs "
                                      "and model versions; keep statuses, decision hashes "
                                      "and the champion alias in step (operators)")
    sync.add_argument("--tracking-uri", required=True, metavar="URI",
                      help="the MLflow server, e.g. http://127.0.0.1:5000")
    sync.add_argument("--registered-model", metavar="NAME",
                      help="MLflow's registered model (default: this model's name)")
    sync.add_argument("--json", action="store_true")

    log = commands.add_parser("audit", help="verify or export the hash-chained audit log")
    log_commands = log.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    check = log_commands.add_parser("verify", parents=[acting],
                                    help="check the chain; exit 1 naming the first bad entry")
    check.add_argument("--anchor", metavar="SEQ:HASH|FILE",
                       help="a head recorded earlier: entry SEQ must still have HASH (or the "
                       "file 'audit head --json' wrote)")
    check.add_argument("--json", action="store_true")
    head = log_commands.add_parser("head", parents=[acting],
                                   help="the newest entry and its hash: keep it outside the "
                                   "database, check the log against it later (--anchor)")
    head.add_argument("--json", action="store_true")
    seal = log_commands.add_parser("seal", parents=[acting],
                                   help="add a keyed entry once AUDIT_KEY is set (admins)")
    seal.add_argument("--reason", required=True)
    dump = log_commands.add_parser("export", parents=[acting], help="print every entry")
    dump.add_argument("--format", choices=("csv", "json"), default="json")
    evidence = log_commands.add_parser("evidence", parents=[acting],
                                       help="what the reviewer saw for a decision, with "
                                       "the entry checked against the chain")
    evidence.add_argument("seq", type=int, metavar="SEQ",
                          help="the decision's audit entry (promote, reject, rollback)")
    evidence.add_argument("--format", choices=CARD_FORMATS, default="html",
                          help="html (default: one self-contained file) or md")
    evidence.add_argument("--out", type=Path, metavar="FILE",
                          help="write to FILE instead of printing")

    return parser


def main(argv: list[str] | None = None, config: Config | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = (config or load_config()).with_overrides(registry_dir=args.registry,
                                                          model_name=args.model_name)
        return COMMANDS[args.command](args, build_backends(config))
    except CoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was registered.", file=sys.stderr)
        return 130


def _now() -> datetime:
    return datetime.now(UTC)


def _version_arg(value: str | None) -> int | None:
    return None if value is None else parse_version(value)


def cmd_bootstrap(args, backends: Backends) -> int:
    from tqdm import tqdm

    bar = None

    def on_progress(progress) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=progress.epochs * progress.steps, unit="step", file=sys.stderr,
                       desc="training", dynamic_ncols=True)
        if progress.epoch_done:
            bar.write(f"epoch {progress.epoch}/{progress.epochs}: "
                      + ", ".join(f"{k}={v:.4f}" for k, v in progress.logs.items()),
                      file=sys.stderr)
        else:
            bar.update(1)
            bar.set_postfix(epoch=progress.epoch, loss=f"{progress.logs.get('loss', 0):.3f}",
                            acc=f"{progress.logs.get('accuracy', 0):.3f}")

    try:
        result = bootstrap(backends, actor=_setup_actor(args), now=_now(),
                           dataset_spec=args.dataset, architecture=args.model,
                           epochs=args.epochs, train_limit=args.limit,
                           eval_limit=args.eval_limit, on_progress=on_progress)
    finally:
        if bar is not None:
            bar.close()
    summary = result.version.summary() | {"created": result.created}
    if args.json:
        print(json.dumps(summary, indent=2))
    elif result.created:
        m = summary["metrics"]
        print(f"registered version {summary['version']} as {summary['status']}: "
              f"test accuracy {m['test_accuracy']:.4f}, validation accuracy "
              f"{m['val_accuracy']:.4f}, trained in "
              f"{result.version.metadata.training_seconds:.0f} s")
    else:
        print(f"registry already has versions; champion is version {summary['version']} "
              "(nothing trained)")
    return 0


def _actor(args) -> str:
    return args.actor or ANONYMOUS


def _setup_actor(args) -> str:
    """Setting up (the first model, the first admin) is done by whoever runs it here."""
    return args.actor or getpass.getuser()


def cmd_versions(args, backends: Backends) -> int:
    summaries = [v.summary() for v in list_versions(backends, actor=_actor(args), now=_now())]
    if args.json:
        print(json.dumps(summaries, indent=2))
        return 0
    if not summaries:
        print("no versions yet. Run 'python -m core bootstrap' to train the first one.")
        return 0
    print(f"{'version':>7}  {'status':<9}  {'created_at':<25}  {'parent':>6}  "
          f"{'val_acc':>7}  {'test_acc':>8}")
    for s in summaries:
        m = s["metrics"]
        print(f"{s['version']:>7}  {s['status']:<9}  {s['created_at']:<25}  "
              f"{str(s['parent'] or '-'):>6}  {_fmt(m['val_accuracy']):>7}  "
              f"{_fmt(m['test_accuracy']):>8}")
    return 0


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _read_upload(path: Path, config: Config) -> bytes:
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file. To fix this, give the path of an image file.")
    # Refuse before reading a huge file into memory.
    check_upload_size(path.stat().st_size, config.max_upload_bytes)
    return path.read_bytes()


def cmd_predict(args, backends: Backends) -> int:
    version = _version_arg(args.version)
    # An unknown version fails once, before any file.
    get_version(backends, version, actor=_actor(args), now=_now())
    results, lines, failed = [], [], False
    for path in args.files:
        try:
            prediction, _ = predict_image(backends, _read_upload(path, backends.config),
                                          actor=_actor(args), source="cli", now=_now(),
                                          version=version)
            results.append({"file": str(path)} | prediction.as_dict())
            lines.append(f"{path}: {prediction.label} ({prediction.confidence:.1%}) "
                         f"version {prediction.version}, {prediction.latency_ms:.1f} ms")
            warning = unfamiliar_warning(prediction)
            if warning:
                lines.append(f"  warning: {warning}")
        except CoreError as error:
            failed = True
            results.append({"file": str(path), "error": str(error)})
            lines.append(f"{path}: error: {error}")
    print(json.dumps(results, indent=2) if args.json else "\n".join(lines))
    return 1 if failed else 0


def _write_atomically(path: Path, data: bytes) -> None:
    """Writes beside the target, then renames: a failure never leaves a half-written file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temporary, path)


def cmd_card(args, backends: Backends) -> int:
    card = model_card(backends, parse_version(args.version), actor=_actor(args), now=_now())
    _print_or_write(card.render(args.format), args.out,
                    f"the model card of version {card.version}")
    return 0


def _print_or_write(text: str, out: Path | None, what: str) -> None:
    """Prints a document, or writes it to ``out`` (whole or not at all)."""
    if out is None:
        print(text)
        return
    if not out.parent.is_dir():
        raise InvalidInput(f"folder {out.parent} does not exist. To fix this, create it "
                           "or choose another --out path.")
    _write_atomically(out, text.encode())
    print(f"wrote {what} to {out}")


def cmd_exports(args, backends: Backends) -> int:
    version, actor = parse_version(args.version), _actor(args)
    table = export_table(backends, version, actor=actor, now=_now())
    if table is None:
        print(f"building the exports of version {version} (about a minute)…", file=sys.stderr)
        table = build_exports(backends, version, actor=actor, now=_now())
    if args.json:
        _print_json(table)
        return 0
    print(f"{'format':<15}{'size':>12}{'accuracy':>10}{'agreement':>11}{'max diff':>10}"
          f"{'latency':>11}")
    for row in table:
        print(f"{row['format']:<15}{row['size_bytes'] / 1e6:>9.2f} MB{row['accuracy']:>10.4f}"
              f"{row['agreement']:>11.4f}{row['max_abs_diff']:>10.2g}"
              f"{row['latency_ms']:>8.3f} ms")
    return 0


def cmd_explain(args, backends: Backends) -> int:
    if args.out.suffix.lower() != ".png":
        raise InvalidInput(f"--out {args.out} must end in .png. To fix this, e.g. --out heat.png.")
    if not args.out.parent.is_dir():
        raise InvalidInput(f"folder {args.out.parent} does not exist. To fix this, create it "
                           "or choose another --out path.")
    explanation = explain_image(backends, _read_upload(args.file, backends.config),
                                actor=_actor(args), source="cli", now=_now(),
                                version=_version_arg(args.version),
                                class_name=args.class_name)
    _write_atomically(args.out, encode_png(explanation.overlay))
    p = explanation.prediction
    print(f"{args.file}: {p.label} ({p.confidence:.1%}) version {p.version}; "
          f"Grad-CAM of '{explanation.explained_class}' written to {args.out}")
    if explanation.heatmap_empty:
        print(EMPTY_HEATMAP.format(name=explanation.explained_class))
    return 0


def cmd_simulate(args, backends: Backends) -> int:
    from tqdm import tqdm

    bar = None

    def on_progress(done: int, total: int) -> None:
        nonlocal bar  # drawn from the first batch on: a refusal prints no empty bar
        if bar is None:
            bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True,
                       desc=f"simulating {args.scenario}")
        bar.update(done - bar.n)

    try:
        result = simulate(backends, actor=_actor(args), scenario=args.scenario,
                          n=args.n, severity=args.severity, seed=args.seed, clock=_now,
                          on_progress=on_progress)
    finally:
        if bar is not None:
            bar.close()
    summary = {"scenario": result.scenario, "severity": result.severity, "n": result.n,
               "version": result.version, "accuracy": result.accuracy}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"logged {result.n} predictions of version {result.version} "
              f"(scenario {result.scenario}, severity {result.severity:g}); "
              f"accuracy on them {result.accuracy:.1%}")
    return 0


def cmd_drift(args, backends: Backends) -> int:
    report = drift_for_version(backends, actor=_actor(args), now=_now(),
                               version=_version_arg(args.version), window=args.window,
                               since=args.since, until=args.until,
                               thresholds=Thresholds.parse(args.threshold),
                               sources=args.source)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    print(f"version {report.version}: {report.n} predictions from {report.window_start} "
          f"to {report.window_end}")
    print(f"{'statistic':<26} {'value':>10} {'threshold':>10}  status")
    for s in report.statistics:
        print(f"{s.name:<26} {s.value:>10.4g} {s.threshold:>10g}  {s.status}")
    realized = ("-" if report.realized_accuracy is None
                else f"{report.realized_accuracy:.1%} ({report.labelled} labelled)")
    print(f"accuracy: reference {report.reference_accuracy:.1%}, estimated "
          f"{report.estimated_accuracy:.1%}, realized {realized}")
    print("ALERT: " + "; ".join(report.reasons) if report.alert else "no alert")
    return 0


def cmd_profile(args, backends: Backends) -> int:
    version = parse_version(args.version)
    written = create_reference_profile(backends, version, actor=_actor(args), now=_now())
    if written:
        print(f"wrote the reference profile of version {version}: {', '.join(written)}")
    else:
        print(f"version {version} already has a complete reference profile "
              "(nothing changed)")
    return 0


def cmd_review(args, backends: Backends) -> int:
    actor, now = _actor(args), _now()
    if args.review_command == "label":
        label = NONE_OF_THESE_CLASSES if args.none_of_these else args.class_name
        kept = label_prediction(backends, args.prediction, label, actor=actor, now=now)
        print(f"prediction {args.prediction} labelled: {label}" if kept.counted else
              f"prediction {args.prediction}: {label} kept as a suggestion; it counts once a "
              "signed-in user gives the same label (--actor NAME)")
        return 0
    if args.out is not None and not args.out.is_dir():
        raise InvalidInput(f"folder {args.out} does not exist. To fix this, create it or "
                           "choose another --out folder.")
    version = _version_arg(args.version)
    if args.review_command == "losses":
        result = top_losses(backends, version, actor=actor, now=now, n=args.n)
        if args.out is not None:
            for rank, loss in enumerate(result.losses, start=1):
                _write_atomically(args.out / f"loss-{rank:02d}-holdout-{loss.index}.png",
                                  encode_png(loss.side_by_side))
        if args.json:
            _print_json({"version": result.version, "holdout": result.holdout,
                         "mistakes": result.mistakes, "losses": [
                             {"index": x.index, "true": x.true_class,
                              "predicted": x.predicted_class,
                              "confidence": round(x.confidence, 4),
                              "true_probability": round(x.true_probability, 6),
                              "loss": round(x.loss, 4), "heatmap_empty": x.heatmap_empty}
                             for x in result.losses]})
            return 0
        print(f"version {result.version}: {result.mistakes} mistakes on {result.holdout} "
              f"holdout images; the {len(result.losses)} with the highest loss:")
        for rank, x in enumerate(result.losses, start=1):
            print(f"{rank:3d}. holdout #{x.index}: true {x.true_class}, predicted "
                  f"{x.predicted_class} ({x.confidence:.1%}), loss {x.loss:.2f}")
        return 0
    queue = label_queue(backends, version, actor=actor, now=now, n=args.n)
    if args.out is not None:
        for item in queue.items:
            _write_atomically(args.out / f"prediction-{item.log_id}.png", encode_png(item.image))
    if args.json:
        _print_json(queue.as_dict())
        return 0
    print(f"version {queue.version}: {queue.scanned} unlabelled live predictions; "
          + ", ".join(f"{count} {reason}" for reason, count in queue.counts.items()))
    for item in queue.items:
        other = (f"; v{item.candidate} said {item.candidate_label}"
                 if item.candidate_label else "")
        print(f"#{item.log_id} {item.at} {item.source}: {item.label} ({item.confidence:.1%})"
              f" [{', '.join(item.reasons)}]{other}")
    if queue.items:
        print("label one with: python -m core review label ID --class NAME "
              "(or --none-of-these)")
    if queue.none_of_these:
        print(f"people said {queue.none_of_these} image(s) fit none of the classes"
              + (f"; the OOD detector had flagged {queue.none_of_these_flagged} of them"
                 if queue.has_detector else ""))
    return 0


def cmd_retrain(args, backends: Backends) -> int:
    request = RetrainRequest(include=None if args.include is None else tuple(args.include),
                             use_feedback=not args.no_feedback, epochs=args.epochs,
                             learning_rate=args.learning_rate)
    job = submit_retrain(backends, request, actor=_actor(args), now=_now())
    if not args.wait:
        print(json.dumps({"job": job.id, "status": job.status}) if args.json
              else f"queued job {job.id}; follow it with 'python -m core jobs'")
        return 0
    job = _follow(backends, job.id, _actor(args))
    summary = {"job": job.id, "status": job.status, "version": job.result_version,
               "error": job.error}
    if job.result_version is not None:
        candidate = get_version(backends, job.result_version, actor=_actor(args), now=_now())
        comparison = None if candidate.parent is None else find_comparison(
            backends, candidate.parent, candidate.version, actor=_actor(args), now=_now())
        summary["recommendation"] = comparison.recommendation if comparison else None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"job {job.id} {job.status}" + (f": candidate version {job.result_version}, "
              f"gate recommends {summary['recommendation']}" if job.result_version else "")
              + (f" ({job.error})" if job.error else ""))
    return 0 if job.status == "succeeded" else 1


def _follow(backends: Backends, job_id: int, actor: str):
    """Polls a job, drawing its progress, until it ends."""
    import time

    from tqdm import tqdm

    with tqdm(total=1, unit="step", file=sys.stderr, desc=f"job {job_id}",
              dynamic_ncols=True) as bar:
        while True:
            job = get_job(backends, job_id, actor=actor, now=_now())
            progress = job.progress
            if progress.get("steps"):
                bar.total = progress["epochs"] * progress["steps"]
                bar.n = (progress["epoch"] - 1) * progress["steps"] + progress["step"]
                bar.set_postfix(epoch=progress["epoch"], loss=progress.get("loss"))
                bar.refresh()
            if job.status in JOB_FINISHED:
                return job
            bar.set_description(f"job {job_id} {job.status}")
            time.sleep(0.5)


def cmd_jobs(args, backends: Backends) -> int:
    jobs = list_jobs(backends, actor=_actor(args), now=_now())
    if args.json:
        print(json.dumps([job.summary() for job in jobs], indent=2))
        return 0
    if not jobs:
        print("no jobs yet. Queue one with 'python -m core retrain'.")
    for job in jobs:
        progress = job.progress
        where = (f"epoch {progress['epoch']}/{progress['epochs']}, step "
                 f"{progress['step']}/{progress['steps']}" if progress.get("steps") else "")
        outcome = (f"-> version {job.result_version}" if job.result_version
                   else job.error or where)
        print(f"{job.id:>4}  {job.status:<10} {job.submitted_at}  {job.submitted_by:<10} "
              f"{outcome}")
    return 0


def cmd_cancel(args, backends: Backends) -> int:
    job = cancel_job(backends, args.job, actor=_actor(args), now=_now())
    print(f"job {job.id} cancelled" if job.status == "cancelled" else
          f"job {job.id} will stop at its next training step")
    return 0


def cmd_start(args, backends: Backends) -> int:
    job = start_job(backends, args.job, actor=_actor(args), now=_now())
    print(f"job {job.id} queued; follow it with 'python -m core jobs'")
    return 0


def _live(args, backends: Backends) -> int:
    baseline, candidate = parse_version(args.baseline), parse_version(args.candidate)
    actor, now = _actor(args), _now()
    stored = find_comparison(backends, baseline, candidate, actor=actor, now=now)
    if stored is not None:
        advice, live = gate_advice(backends, stored, actor=actor, now=now)
    else:
        advice, live = None, live_evidence(backends, baseline, candidate, actor=actor, now=now)
    if args.json:
        print(json.dumps({"live": live.as_dict(), "gate": advice.as_dict() if advice else None},
                         indent=2))
        return 0
    if not live.paired and not live.arms:
        print(f"no live evidence yet: version {candidate} has not shadowed or served traffic "
              f"beside version {baseline}. Start with 'python -m core traffic set --shadow "
              f"{candidate} --reason ...'.")
        return 0
    if live.paired:
        low, high = live.agreement_ci or (0, 1)
        print(f"shadowed requests seen by both: {live.paired}; agreement "
              f"{live.agreement:.1%} (95% CI {low:.1%}-{high:.1%})")
    if live.labelled:
        print(f"labelled: {live.labelled}; accuracy v{baseline} {live.champion_accuracy:.1%}, "
              f"v{candidate} {live.candidate_accuracy:.1%}; McNemar p = {live.mcnemar_p:.3g}")
    for side in live.arms:
        accuracy = f"{side.accuracy:.1%}" if side.accuracy is not None else "no labels"
        print(f"canary arm v{side.version}: {side.requests} requests, labelled accuracy "
              f"{accuracy}")
    if advice:
        print(f"gate with live evidence: {advice.recommendation} ({'; '.join(advice.reasons)})")
    return 0


def cmd_compare(args, backends: Backends) -> int:
    if args.live:
        return _live(args, backends)
    result = compare_versions(backends, parse_version(args.baseline),
                              parse_version(args.candidate), actor=_actor(args), now=_now(),
                              scenarios=args.include)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    a, b = str(result.baseline), str(result.candidate)
    print(f"{'holdout':<22} {'n':>6} {'acc v' + a:>9} {'acc v' + b:>9} {'diff':>7} "
          f"{'95% CI':>17} {'McNemar p':>10}")
    for name, h in result.holdouts.items():
        low, high = h.accuracy_diff_ci
        print(f"{name:<22} {h.n:>6} {h.accuracy[a]:>9.4f} {h.accuracy[b]:>9.4f} "
              f"{h.accuracy_diff * 100:>+6.2f}p [{low * 100:+.2f}, {high * 100:+.2f}] "
              f"{h.mcnemar_p:>10.3g}")
    reasons = "; ".join(result.advice.reasons) if result.advice else ""
    print(f"gate: {result.recommendation} ({reasons})")
    return 0


def cmd_decide(args, backends: Backends) -> int:
    entry = decide_version(backends, args.command, parse_version(args.version),
                           actor=_actor(args), reason=args.reason, now=_now(),
                           override_gate=getattr(args, "override_gate", False))
    if args.json:
        print(json.dumps(entry.as_dict(), indent=2))
        return 0
    start, end = DECISIONS[args.command]
    before = entry.details["champion_before"]
    print(f"version {entry.version}: {start} -> {end} by {entry.actor} (audit entry "
          f"{entry.seq})" + (f"; version {before} archived" if end == "champion" else "")
          + ("; against the gate's advice, acknowledged" if entry.details["gate_overridden"]
             else ""))
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise InvalidInput("the two passwords differ. To fix this, type the same twice.")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def cmd_users(args, backends: Backends) -> int:
    if args.users_command == "add":
        validate_user_name(args.name)  # before asking for a password it would not use
        user = add_user(backends, actor=_setup_actor(args), name=args.name, role=args.role,
                        password=None if args.oidc else _read_password(), now=_now())
        print(f"added {user.name} as {user.role}")
    elif args.users_command == "setup":
        return _first_admin(backends)
    elif args.users_command == "set-role":
        user = set_role(backends, actor=_actor(args), name=args.name, role=args.role,
                        reason=args.reason, now=_now())
        print(f"{user.name} is now {user.role}")
    elif args.users_command in ("disable", "enable"):
        user = set_user_disabled(backends, actor=_actor(args), name=args.name,
                                 disabled=args.users_command == "disable", reason=args.reason,
                                 now=_now())
        print(f"{user.name} is now {'disabled' if user.disabled else 'enabled'}")
    elif args.users_command == "reset-password":
        validate_user_name(args.name)  # before asking for a password it would not use
        user = reset_password(backends, actor=_actor(args), name=args.name,
                              password=_read_password(), reason=args.reason, now=_now())
        print(f"{user.name} has a new password")
    else:
        listed = [user.as_dict() for user in list_users(backends, actor=_actor(args),
                                                         now=_now())]
        if args.json:
            print(json.dumps(listed, indent=2))
        elif not listed:
            print("no users yet. Add the first admin with "
                  "'python -m core users add NAME --role admin'.")
        else:
            for row in listed:
                print(f"{row['name']:<24} {row['role']:<9} "
                      f"{'password' if row['password_login'] else 'oidc':<9} "
                      f"added {row['created_at']} by {row['created_by']}"
                      + ("  DISABLED" if row["disabled"] else ""))
    return 0


def _first_admin(backends: Backends) -> int:
    """``make run`` calls this: no password is shipped, the first start asks for one."""
    if has_users(backends):
        return 0
    if not sys.stdin.isatty():
        print("No users yet: the dashboard serves visitors as viewers only. Add the first "
              "admin with 'python -m core users add NAME --role admin' (password on stdin).")
        return 0
    print("First start: choose the admin who will manage users (no default password "
          "exists).")
    name = input(f"admin user name [{getpass.getuser()}]: ").strip() or getpass.getuser()
    user = add_user(backends, actor=getpass.getuser(), name=name, role="admin",
                    password=_read_password(), now=_now())
    print(f"added {user.name} as admin; sign in on the dashboard's sidebar")
    return 0


def cmd_keys(args, backends: Backends) -> int:
    if args.keys_command == "create":
        key, secret = create_key(backends, actor=_actor(args), name=args.name, role=args.role,
                                 rate_limit=args.rate_limit, now=_now())
        if args.json:
            print(json.dumps(key.as_dict() | {"key": secret}, indent=2))
        else:
            print(f"created key {key.name} ({key.role}). Its secret, shown only now:\n{secret}\n"
                  "Send it as 'Authorization: Bearer <key>'.")
    elif args.keys_command == "revoke":
        key = revoke_key(backends, actor=_actor(args), name=args.name, reason=args.reason,
                         now=_now())
        print(f"revoked key {key.name}; servers refuse it within a few seconds")
    else:
        listed = [key.as_dict() for key in list_keys(backends, actor=_actor(args), now=_now())]
        if args.json:
            print(json.dumps(listed, indent=2))
        elif not listed:
            print("no keys yet. Create one with 'python -m core keys create NAME --role viewer'.")
        else:
            for row in listed:
                limit = f"{row['rate_limit']:g}/s" if row["rate_limit"] else "unlimited"
                state = "active" if row["active"] else f"revoked {row['revoked_at']}"
                print(f"{row['name']:<24} {row['role']:<9} {limit:<10} {state}")
    return 0


def _traffic_args(args) -> tuple[str, int | None, int | None]:
    if args.off:
        return "off", None, None
    if args.shadow is not None:
        return "shadow", parse_version(args.shadow), None
    version, colon, percent = args.canary.partition(":")
    if not colon or not percent.strip().isdigit():
        raise InvalidInput(f"--canary {args.canary!r} is not N:PERCENT. To fix this, give the "
                           "version and a whole percentage, e.g. --canary 4:10.")
    return "canary", parse_version(version), int(percent)


def cmd_traffic(args, backends: Backends) -> int:
    if args.traffic_command == "set":
        mode, candidate, percent = _traffic_args(args)
        status = set_traffic(backends, actor=_actor(args), mode=mode, candidate=candidate,
                             percent=percent, reason=args.reason, now=_now())
    else:
        status = traffic_status(backends, actor=_actor(args), now=_now())
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
        return 0
    policy = status.policy
    what = {"off": "the champion answers every request",
            "shadow": f"the champion answers; version {policy.candidate} shadows every request",
            "canary": f"version {policy.candidate} answers {policy.percent}% of requests"}
    print(f"traffic: {policy.mode} — {what[policy.mode]}"
          + ("" if status.active or policy.mode == "off" else
             f" (inactive: version {policy.candidate} is no longer a candidate)")
          + (f"\nset {policy.set_at} by {policy.set_by}: {policy.reason}" if policy.set_by
             else ""))
    return 0


def cmd_serve(args, backends: Backends) -> int:
    from core.serving.server import serve

    serve(backends.config, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_monitor(args, backends: Backends) -> int:
    import time

    interval = args.interval or backends.config.monitor_interval_seconds
    if interval < 1:
        raise InvalidInput("--interval must be at least 1 second. To fix this, pass e.g. "
                           "--interval 60.")

    def period_done(period: str, start: str, count: int) -> None:
        print(f"{period} {start}: {count} snapshot(s)", file=sys.stderr, flush=True)

    # A pass records what failed in it and goes on; one that fails as a whole is retried
    # next time. Only a database that cannot be reached at all stops the monitor.
    while True:
        started = _now().isoformat(timespec="seconds")
        try:
            result = monitor_pass(backends, _now(), on_period=period_done)
        except Exception as error:  # noqa: BLE001 - see above
            if not database_reachable(backends):
                print(f"{started} the database cannot be reached ({error}); the monitor "
                      "stops. To fix this, start it or correct DATABASE_URL, then run the "
                      "monitor again.", file=sys.stderr, flush=True)
                return 1
            print(f"{started} the pass failed ({type(error).__name__}: {error}); the next "
                  "one retries", file=sys.stderr, flush=True)
        else:
            print(f"{started} {result.line()}", flush=True)
            for item, problem in result.problems.items():
                print(f"  {item} failed: {problem}", file=sys.stderr, flush=True)
        if args.once:
            return 0
        time.sleep(interval)


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def cmd_alerts(args, backends: Backends) -> int:
    actor, now, command = _actor(args), _now(), args.alerts_command
    if command == "channels":
        listed = [c.as_dict() for c in list_alert_channels(backends, actor=actor, now=now)]
        if args.json:
            _print_json(listed)
        elif not listed:
            print("no channels yet. Add one with 'python -m core alerts add-channel'.")
        for row in [] if args.json else listed:
            print(f"{row['name']:<20} {row['kind']:<8} {row['target']}")
    elif command == "add-channel":
        channel = add_alert_channel(backends, actor=actor, name=args.name, now=now,
                                    webhook=args.webhook, secret=args.secret, slack=args.slack,
                                    email=args.email, smtp=args.smtp, smtp_user=args.smtp_user)
        print(f"added {channel.kind} channel {channel.name}; try it with "
              f"'python -m core alerts test {channel.name}'")
    elif command == "remove-channel":
        remove_alert_channel(backends, actor=actor, name=args.name, now=now)
        print(f"removed channel {args.name}")
    elif command == "test":
        delivery, attempts = send_test_alert(backends, actor=actor, name=args.name, now=now)
        last = attempts[-1]
        if args.json:
            _print_json({"delivery": delivery.id, "status": delivery.status,
                         "attempts": [a.__dict__ for a in attempts]})
        else:
            print(f"test message to {args.name}: " + ("delivered" if last.ok else
                  f"failed ({last.error}); the monitor retries it"))
        return 0 if last.ok else 1
    elif command == "rules":
        rules = alert_rules(backends, actor=actor, now=now)
        if args.json:
            _print_json(rules)
        for name, rule in [] if args.json else rules.items():
            settings = ", ".join(f"{k}={v}" for k, v in rule["settings"].items())
            print(f"{name:<22} {settings}")
    elif command == "set-rule":
        effective = set_alert_rule(backends, actor=actor, rule=args.rule,
                                   assignments=args.settings, reason=args.reason, now=now)
        print(f"{args.rule}: " + ", ".join(f"{k}={v}" for k, v in effective.items()))
    elif command == "list":
        episodes = list_alert_episodes(backends, actor=actor, now=now, open_only=args.open)
        if args.json:
            _print_json([e.as_dict() for e in episodes])
        elif not episodes:
            print("no alert episodes" + (" open" if args.open else ""))
        for e in [] if args.json else episodes:
            state = "OPEN" if e.open else f"resolved {e.resolved_at}"
            print(f"{e.id:>5}  {e.rule:<22} {state:<36} {e.summary}")
    elif command in ("ack", "silence"):
        duration = parse_duration(args.duration) if command == "silence" else None
        episode = acknowledge_alert(backends, args.episode, actor=actor, reason=args.reason,
                                    now=now, silence_for=duration)
        print(f"episode {episode.id} " + (f"silenced until {episode.silenced_until}"
                                          if duration else "acknowledged"))
    else:
        rows = alert_deliveries(backends, actor=actor, now=now)
        if args.json:
            _print_json([{**d.__dict__, "attempts": [a.__dict__ for a in attempts]}
                         for d, attempts in rows])
        for d, attempts in [] if args.json else rows:
            error = attempts[-1].error if attempts and not attempts[-1].ok else ""
            print(f"{d.id:>5}  {d.created_at}  {d.channel:<16} {d.state:<9} {d.status:<10} "
                  f"{d.attempts} attempt(s) {error or ''}")
    return 0


def cmd_migrate(args, backends: Backends) -> int:
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


def cmd_mlflow(args, backends: Backends) -> int:
    result = mlflow_sync(backends, tracking_uri=args.tracking_uri,
                         registered_model=args.registered_model, actor=_actor(args),
                         now=_now(), on_version=lambda n: print(f"version {n} in step",
                                                                 file=sys.stderr))
    if args.json:
        _print_json(result.as_dict())
    elif not result.changed:
        print("MLflow was already in step: nothing changed")
    else:
        print(f"runs created for versions {result.runs_created or 'none'}; model versions "
              f"created for {result.model_versions_created or 'none'}; {result.tags_set} "
              "tag(s) set"
              + (f"; alias 'champion' now on version {result.alias_moved_to}"
                 if result.alias_moved_to is not None else ""))
    return 0


def cmd_audit(args, backends: Backends) -> int:
    if args.audit_command == "evidence":
        document = decision_evidence(backends, args.seq, actor=_actor(args), now=_now())
        _print_or_write(document.render(args.format), args.out,
                        f"the evidence of audit entry {args.seq}")
        return 0
    if args.audit_command == "export":
        print(export_audit_log(backends, args.format, actor=_actor(args), now=_now()), end="")
        return 0
    if args.audit_command == "head":
        head = audit_head(backends, actor=_actor(args), now=_now())
        print(json.dumps(head, indent=2) if args.json else f"{head['seq']}:{head['hash']}")
        return 0
    if args.audit_command == "seal":
        entry = seal_audit_log(backends, actor=_actor(args), reason=args.reason, now=_now())
        print(f"sealed: entry {entry.seq} is keyed ({entry.hash})")
        return 0
    result = check_audit_log(backends, actor=_actor(args), now=_now(),
                             anchor=_anchor(args.anchor))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    elif result.ok:
        print(f"audit log verified: {result.entries} entries, head {result.entries}:"
              f"{result.head_hash}")
    else:
        print(f"audit log FAILED verification: {result.problem}")
    return 0 if result.ok else 1


def _anchor(value: str | None) -> tuple[int, str] | None:
    """``SEQ:HASH``, or a file holding what ``audit head --json`` printed."""
    if value is None:
        return None
    if ":" not in value and Path(value).is_file():
        try:
            head = json.loads(Path(value).read_text())
            value = f"{int(head['seq'])}:{head['hash']}"
        except (ValueError, KeyError, TypeError):
            raise InvalidInput(f"--anchor {value} is not a file 'audit head --json' wrote. To "
                               "fix this, give that file or SEQ:HASH.") from None
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise InvalidInput(f"--anchor {value!r} is not SEQ:HASH. To fix this, copy the head "
                           "that 'python -m core audit verify' printed, e.g. 12:3f5a....")
    return int(seq), digest


COMMANDS = {
    "bootstrap": cmd_bootstrap,
    "versions": cmd_versions,
    "predict": cmd_predict,
    "explain": cmd_explain,
    "card": cmd_card,
    "exports": cmd_exports,
    "simulate": cmd_simulate,
    "drift": cmd_drift,
    "profile": cmd_profile,
    "retrain": cmd_retrain,
    "jobs": cmd_jobs,
    "cancel": cmd_cancel,
    "start": cmd_start,
    "monitor": cmd_monitor,
    "alerts": cmd_alerts,
    "compare": cmd_compare,
    "promote": cmd_decide,
    "reject": cmd_decide,
    "rollback": cmd_decide,
    "users": cmd_users,
    "audit": cmd_audit,
    "mlflow": cmd_mlflow,
    "review": cmd_review,
    "keys": cmd_keys,
    "traffic": cmd_traffic,
    "serve": cmd_serve,
    "migrate": cmd_migrate,
}
