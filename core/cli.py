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
from datetime import datetime, timezone
from pathlib import Path

from core.config import Config, load_config
from core.errors import CoreError, InvalidInput
from core.images import encode_png
from core.drift import Thresholds
from core.lifecycle import (bootstrap, create_reference_profile, drift_for_version,
                            explain_image, open_registry, predict_image, simulate)
from core.training_types import ARCHITECTURES
from core.registry import parse_version
from core.scenarios import SCENARIOS, get_scenario
from core.serving import ModelCache


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core",
                                     description="Operate an image-classification model.")
    parser.add_argument("--registry", type=Path, help="registry folder "
                        "(default: $MODEL_REGISTRY_DIR or ./model_registry)")
    parser.add_argument("--model-name", help="model name inside the registry "
                        "(default: $MODEL_NAME or 'classifier')")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    boot = commands.add_parser("bootstrap", help="train and register v1 if the registry is empty")
    boot.add_argument("--dataset", help="fashion_mnist | tfds:NAME[:TRAIN|TEST] | folder:PATH")
    boot.add_argument("--model", default="small_cnn", choices=ARCHITECTURES,
                      help="architecture (default: small_cnn)")
    boot.add_argument("--epochs", type=int, help="training epochs (default: 6)")
    boot.add_argument("--limit", type=int, help="train on the first N training images only")
    boot.add_argument("--eval-limit", type=int,
                      help="evaluate on the first N validation and test images only")
    boot.add_argument("--json", action="store_true", help="print the version as JSON")

    versions = commands.add_parser("versions", help="list versions with status and metrics")
    versions.add_argument("--json", action="store_true")

    predict = commands.add_parser("predict", help="classify image files")
    predict.add_argument("files", nargs="+", type=Path, metavar="FILE")
    predict.add_argument("--version", help="version to use (default: the champion)")
    predict.add_argument("--json", action="store_true")

    explain = commands.add_parser("explain", help="write a Grad-CAM overlay PNG")
    explain.add_argument("file", type=Path, metavar="FILE")
    explain.add_argument("--out", type=Path, required=True, metavar="PNG")
    explain.add_argument("--version", help="version to use (default: the champion)")
    explain.add_argument("--class", dest="class_name",
                         help="class to explain (default: the predicted one)")

    sim = commands.add_parser("simulate", help="stream transformed test images through the "
                              "champion as logged traffic")
    sim.add_argument("--scenario", required=True, metavar="S",
                     help="one of: " + ", ".join(SCENARIOS))
    sim.add_argument("--severity", type=float, help="strength (default: the scenario's)")
    sim.add_argument("--n", type=int, default=500, help="images to send (default: 500)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--json", action="store_true")

    drift = commands.add_parser("drift", help="drift report of a version's recent traffic")
    drift.add_argument("--version", help="version (default: the champion)")
    drift.add_argument("--window", type=int, default=500,
                       help="last N predictions (default: 500)")
    drift.add_argument("--since", help="only predictions at or after this UTC ISO time")
    drift.add_argument("--until", help="only predictions before this UTC ISO time")
    drift.add_argument("--threshold", action="append", metavar="NAME=[WARN:]ALERT",
                       help="override a statistic's thresholds (repeatable)")
    drift.add_argument("--json", action="store_true")

    profile = commands.add_parser("profile", help="compute a missing reference profile")
    profile.add_argument("--version", required=True)
    return parser


def main(argv: list[str] | None = None, config: Config | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = (config or load_config()).with_overrides(registry_dir=args.registry,
                                                      model_name=args.model_name)
    try:
        return COMMANDS[args.command](args, config)
    except CoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was registered.", file=sys.stderr)
        return 130


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _version_arg(value: str | None) -> int | None:
    return None if value is None else parse_version(value)


def cmd_bootstrap(args, config: Config) -> int:
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
        result = bootstrap(config, actor=getpass.getuser(), now=_now(),
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
              f"{result.version.metadata['training_seconds']:.0f} s")
    else:
        print(f"registry already has versions; champion is version {summary['version']} "
              "(nothing trained)")
    return 0


def cmd_versions(args, config: Config) -> int:
    summaries = [v.summary() for v in open_registry(config).list_versions()]
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
    if path.stat().st_size > config.max_upload_bytes:
        # Refuse before reading a huge file into memory.
        raise InvalidInput(f"{path} is {path.stat().st_size / 1e6:.1f} MB, over the "
                           f"{config.max_upload_bytes / 1e6:.0f} MB limit. To fix this, "
                           "resize the image (or raise MAX_UPLOAD_BYTES).")
    return path.read_bytes()


def cmd_predict(args, config: Config) -> int:
    version = _version_arg(args.version)
    open_registry(config).resolve(version)  # an unknown version fails once, before any file
    cache = ModelCache()
    results, failed = [], False
    for path in args.files:
        try:
            prediction, _ = predict_image(config, cache, _read_upload(path, config),
                                          source="cli", now=_now(), version=version)
            results.append({"file": str(path)} | prediction.as_dict())
        except CoreError as error:
            failed = True
            results.append({"file": str(path), "error": str(error)})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['file']}: error: {r['error']}")
            else:
                print(f"{r['file']}: {r['label']} ({r['confidence']:.1%}) "
                      f"version {r['version']}, {r['latency_ms']:.1f} ms")
    return 1 if failed else 0


def cmd_explain(args, config: Config) -> int:
    if args.out.suffix.lower() != ".png":
        raise InvalidInput(f"--out {args.out} must end in .png. To fix this, e.g. --out heat.png.")
    if not args.out.parent.is_dir():
        raise InvalidInput(f"folder {args.out.parent} does not exist. To fix this, create it "
                           "or choose another --out path.")
    explanation = explain_image(config, ModelCache(), _read_upload(args.file, config),
                                source="cli", now=_now(), version=_version_arg(args.version),
                                class_name=args.class_name)
    # Write beside the target, then rename: a failure never leaves a half-written PNG.
    handle, temporary = tempfile.mkstemp(dir=args.out.parent, suffix=".png.tmp")
    with os.fdopen(handle, "wb") as out:
        out.write(encode_png(explanation.overlay))
    os.replace(temporary, args.out)
    p = explanation.prediction
    print(f"{args.file}: {p.label} ({p.confidence:.1%}) version {p.version}; "
          f"Grad-CAM of '{explanation.explained_class}' written to {args.out}")
    return 0


def cmd_simulate(args, config: Config) -> int:
    from tqdm import tqdm

    get_scenario(args.scenario)  # fail on a bad name before loading anything
    with tqdm(total=args.n, unit="img", file=sys.stderr, desc=f"simulating {args.scenario}",
              dynamic_ncols=True) as bar:
        result = simulate(config, ModelCache(), scenario=args.scenario, n=args.n,
                          severity=args.severity, seed=args.seed, clock=_now,
                          on_progress=lambda done, total: bar.update(done - bar.n))
    summary = {"scenario": result.scenario, "severity": result.severity, "n": result.n,
               "version": result.version, "accuracy": result.accuracy}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"logged {result.n} predictions of version {result.version} "
              f"(scenario {result.scenario}, severity {result.severity:g}); "
              f"accuracy on them {result.accuracy:.1%}")
    return 0


def cmd_drift(args, config: Config) -> int:
    report = drift_for_version(config, version=_version_arg(args.version), window=args.window,
                               since=args.since, until=args.until,
                               thresholds=Thresholds.parse(args.threshold))
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


def cmd_profile(args, config: Config) -> int:
    version = parse_version(args.version)
    if create_reference_profile(config, version):
        print(f"wrote the reference profile of version {version}")
    else:
        print(f"version {version} already has a reference profile (nothing changed)")
    return 0


COMMANDS = {
    "bootstrap": cmd_bootstrap,
    "versions": cmd_versions,
    "predict": cmd_predict,
    "explain": cmd_explain,
    "simulate": cmd_simulate,
    "drift": cmd_drift,
    "profile": cmd_profile,
}
