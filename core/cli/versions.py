"""Versions and what they answer: bootstrap, versions, predict, explain, card, exports,
profile, simulate, drift."""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path

from core.app import (
    Backends,
    Progress,
    Thresholds,
    bootstrap,
    build_exports,
    create_reference_profile,
    drift_for_version,
    drift_report_html,
    encode_png,
    explain_image,
    export_table,
    get_version,
    list_versions,
    model_card,
    parse_version,
    predict_image,
    simulate,
    unfamiliar_warning,
)
from core.app.vocabulary import ARCHITECTURES, CARD_FORMATS, EMPTY_HEATMAP, SCENARIOS, SOURCE_KINDS
from core.cli.common import (
    Commands,
    actor,
    add_document_output,
    fmt,
    now,
    print_json,
    print_or_write,
    read_upload,
    require_folder,
    setup_actor,
    version_arg,
    write_atomically,
)
from core.errors import CoreError, InvalidInput


def register(commands: Commands) -> None:
    boot = commands.add("bootstrap", cmd_bootstrap, json=True,
                        help="train and register v1 if the registry is empty")
    boot.add_argument("--dataset", help="fashion_mnist | tfds:NAME[:TRAIN|TEST] | folder:PATH")
    boot.add_argument("--model", default="small_cnn", choices=ARCHITECTURES,
                      help="architecture (default: small_cnn)")
    boot.add_argument("--epochs", type=int, help="training epochs (default: 6)")
    boot.add_argument("--limit", type=int, help="train on the first N training images only")
    boot.add_argument("--eval-limit", type=int,
                      help="evaluate on the first N validation and test images only")

    versions = commands.add("versions", cmd_versions, json=True,
                            help="list versions with status and metrics")
    versions.add_argument("--all-models", action="store_true",
                          help="every model of the registry, not only --model-name's")

    predict = commands.add("predict", cmd_predict, json=True, help="classify image files")
    predict.add_argument("files", nargs="+", type=Path, metavar="FILE")
    predict.add_argument("--version", help="version to use (default: the champion)")

    explain = commands.add("explain", cmd_explain, help="write a Grad-CAM overlay PNG")
    explain.add_argument("file", type=Path, metavar="FILE")
    explain.add_argument("--out", type=Path, required=True, metavar="PNG")
    explain.add_argument("--version", help="version to use (default: the champion)")
    explain.add_argument("--class", dest="class_name",
                         help="class to explain (default: the predicted one)")

    card = commands.add("card", cmd_card,
                        help="write a version's model card (Markdown or HTML)")
    card.add_argument("version", metavar="N")
    card.add_argument("--format", choices=CARD_FORMATS, default="md",
                      help="md (default) or html (one self-contained file)")
    add_document_output(card)

    exports = commands.add("exports", cmd_exports, json=True, help=(
        "a version's exports (Keras, SavedModel, TFLite float, dynamic, float16 and int8, "
        "ONNX) with size, accuracy and latency; builds the missing ones first (operators)"))
    exports.add_argument("version", metavar="N")

    profile = commands.add("profile", cmd_profile,
                           help="compute a missing reference profile or OOD detector")
    profile.add_argument("--version", required=True)
    _register_traffic_commands(commands)


def _register_traffic_commands(commands: Commands) -> None:
    """The commands about a version's traffic: simulated, and its drift."""
    sim = commands.add("simulate", cmd_simulate, json=True, help="stream transformed test "
                       "images through the champion as logged traffic")
    sim.add_argument("--scenario", required=True, metavar="S",
                     help="one of: " + ", ".join(SCENARIOS))
    sim.add_argument("--severity", type=float, help="strength (default: the scenario's)")
    sim.add_argument("--n", type=int, default=500, help="images to send (default: 500)")
    sim.add_argument("--seed", type=int, default=0)

    drift = commands.add("drift", cmd_drift, json=True,
                         help="drift report of a version's recent traffic")
    drift.add_argument("--version", help="version (default: the champion)")
    drift.add_argument("--window", type=int, default=500,
                       help="last N predictions (default: 500)")
    drift.add_argument("--since", help="only predictions at or after this UTC ISO time")
    drift.add_argument("--until", help="only predictions before this UTC ISO time")
    drift.add_argument("--source", action="append", choices=SOURCE_KINDS,
                       help="only predictions from this source (repeatable; default all)")
    drift.add_argument("--threshold", action="append", metavar="NAME=[WARN:]ALERT",
                       help="override a statistic's thresholds (repeatable)")
    drift.add_argument("--format", choices=("text", "json", "html"), default="text",
                       help="text (default), json (as --json), or html: one self-contained "
                            "file with charts and the window's images, to share")
    add_document_output(drift)


def cmd_bootstrap(args: Namespace, backends: Backends) -> int:
    from tqdm import tqdm

    bar = None

    def on_progress(progress: Progress) -> None:
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
        result = bootstrap(backends, actor=setup_actor(args), now=now(),
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


def cmd_versions(args: Namespace, backends: Backends) -> int:
    summaries = [v.summary() for v in list_versions(backends, actor=actor(args), now=now(),
                                                    every_model=args.all_models)]
    if args.json:
        print(json.dumps(summaries, indent=2))
        return 0
    if not summaries:
        print("no versions yet. Run 'python -m core bootstrap' to train the first one "
              "(or 'register' to bring in a model trained elsewhere).")
        return 0
    print(f"{'model':<16}  {'version':>7}  {'status':<9}  {'created_at':<25}  {'parent':>6}  "
          f"{'val_acc':>7}  {'test_acc':>8}")
    for s in summaries:
        m = s["metrics"]
        print(f"{s['model']:<16}  {s['version']:>7}  {s['status']:<9}  {s['created_at']:<25}  "
              f"{str(s['parent'] or '-'):>6}  {fmt(m['val_accuracy']):>7}  "
              f"{fmt(m['test_accuracy']):>8}")
    return 0


def cmd_predict(args: Namespace, backends: Backends) -> int:
    version = version_arg(args.version)
    # An unknown version fails once, before any file.
    get_version(backends, version, actor=actor(args), now=now())
    results, lines, failed = [], [], False
    for path in args.files:
        try:
            prediction, _ = predict_image(backends, read_upload(path, backends.config),
                                          actor=actor(args), source="cli", now=now(),
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


def cmd_explain(args: Namespace, backends: Backends) -> int:
    if args.out.suffix.lower() != ".png":
        raise InvalidInput(f"--out {args.out} must end in .png. To fix this, e.g. --out heat.png.")
    require_folder(args.out.parent, "--out path")
    explanation = explain_image(backends, read_upload(args.file, backends.config),
                                actor=actor(args), source="cli", now=now(),
                                version=version_arg(args.version),
                                class_name=args.class_name, heatmap_required=True)
    write_atomically(args.out, encode_png(explanation.overlay))
    p = explanation.prediction
    print(f"{args.file}: {p.label} ({p.confidence:.1%}) version {p.version}; "
          f"Grad-CAM of '{explanation.explained_class}' written to {args.out}")
    if explanation.heatmap_empty:
        print(EMPTY_HEATMAP.format(name=explanation.explained_class))
    return 0


def cmd_card(args: Namespace, backends: Backends) -> int:
    card = model_card(backends, parse_version(args.version), actor=actor(args), now=now())
    print_or_write(card.render(args.format), args.out,
                   f"the model card of version {card.version}")
    return 0


def cmd_exports(args: Namespace, backends: Backends) -> int:
    version, who = parse_version(args.version), actor(args)
    table = export_table(backends, version, actor=who, now=now())
    if table is None:
        print(f"building the exports of version {version} (about a minute)…", file=sys.stderr)
        table = build_exports(backends, version, actor=who, now=now())
    if args.json:
        print_json(table)
        return 0
    print(f"{'format':<15}{'size':>12}{'accuracy':>10}{'agreement':>11}{'max diff':>10}"
          f"{'latency':>11}")
    for row in table:
        print(f"{row['format']:<15}{row['size_bytes'] / 1e6:>9.2f} MB{row['accuracy']:>10.4f}"
              f"{row['agreement']:>11.4f}{row['max_abs_diff']:>10.2g}"
              f"{row['latency_ms']:>8.3f} ms")
    return 0


def cmd_profile(args: Namespace, backends: Backends) -> int:
    version = parse_version(args.version)
    written = create_reference_profile(backends, version, actor=actor(args), now=now())
    if written:
        print(f"wrote the reference profile of version {version}: {', '.join(written)}")
    else:
        print(f"version {version} already has a complete reference profile "
              "(nothing changed)")
    return 0


def cmd_simulate(args: Namespace, backends: Backends) -> int:
    from tqdm import tqdm

    bar = None

    def on_progress(done: int, total: int) -> None:
        nonlocal bar  # drawn from the first batch on: a refusal prints no empty bar
        if bar is None:
            bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True,
                       desc=f"simulating {args.scenario}")
        bar.update(done - bar.n)

    try:
        result = simulate(backends, actor=actor(args), scenario=args.scenario,
                          n=args.n, severity=args.severity, seed=args.seed, clock=now,
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


def cmd_drift(args: Namespace, backends: Backends) -> int:
    if args.format == "html":
        html = drift_report_html(backends, actor=actor(args), now=now(),
                                 version=version_arg(args.version), window=args.window,
                                 since=args.since, until=args.until,
                                 thresholds=Thresholds.parse(args.threshold),
                                 sources=args.source)
        print_or_write(html, args.out, "the drift report")
        return 0
    if args.out is not None:
        raise InvalidInput("--out writes the HTML report. To fix this, add --format html.")
    report = drift_for_version(backends, actor=actor(args), now=now(),
                               version=version_arg(args.version), window=args.window,
                               since=args.since, until=args.until,
                               thresholds=Thresholds.parse(args.threshold),
                               sources=args.source)
    if args.json or args.format == "json":
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
