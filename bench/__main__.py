"""``python -m bench [--quick] [--registry DIR] [--only ROW...]``: every speed claim, measured.

Works on a private copy of the registry (training a champion first if it has
none), prints the machine, a markdown table and writes ``bench/results.json``.
Nothing here is a test; no test is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from datetime import UTC

from bench import (  # noqa: E402
    dashboard,
    folder_training,
    heatmaps,
    ood,
    own_model,
    peers,
    phone,
    scale,
    suite,
)
from bench.timing import markdown  # noqa: E402
from core.app import build_backends  # noqa: E402
from core.config import load_config  # noqa: E402

ROWS = {
    "serving": suite.serving_rows,
    "gradcam": suite.gradcam_rows,
    "heatmaps": heatmaps.heatmap_rows,
    "ood": ood.ood_rows,
    "drift": suite.drift_rows,
    "log": suite.log_rows,
    "training": suite.training_rows,
    "retraining": suite.retraining_rows,
    "scale": scale.scale_rows,
    "own_model": own_model.own_model_rows,
    "peers": peers.peers_rows,
    "phone": phone.phone_rows,
    "folder_training": folder_training.folder_training_rows,
    "dashboard": None,  # needs a browser; see below
    "load": None,  # needs a running dashboard; see below
    "monitoring": None,  # fills a registry with millions of rows; see below
}
# Minutes each (folder_training: about ten): left out of --quick.
SLOW = ("training", "retraining", "own_model", "folder_training", "peers", "phone")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def private_registry(source: Path, model: str) -> Path:
    """A copy of the champion and catalog, with an empty prediction log."""
    from tests.drift_detection import private_copy

    return private_copy(source, model)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; skips "
                        + " and ".join(SLOW))
    parser.add_argument("--registry", type=Path, default=load_config().registry_dir)
    parser.add_argument("--only", nargs="+", choices=list(ROWS))
    args = parser.parse_args()
    config = load_config().with_overrides(registry_dir=args.registry)

    from core.app import bootstrap

    if build_backends(config).registry.find_champion() is None:
        print(f"{args.registry} has no champion: training one first (python -m core bootstrap)")
        from datetime import datetime
        bootstrap(build_backends(config), actor="bench", now=datetime.now(UTC))

    print(f"machine: {machine()}")
    names = args.only or [n for n in ROWS if not (args.quick and n in SLOW)]
    rows, failures = [], []
    for name in names:
        # Every row gets a fresh private registry so that rows cannot disturb each other.
        copy = private_registry(args.registry, config.model_name)
        context = suite.Context(config.with_overrides(registry_dir=copy), args.quick)
        print(f"running {name} ...", flush=True)
        try:
            if name == "dashboard":
                rows += _dashboard(context)
            elif name == "load":
                rows += _load(context)
            elif name == "monitoring":
                from bench.monitoring import MONITORING_ROWS, monitoring_rows

                rows += monitoring_rows(context.config, MONITORING_ROWS // (10 if args.quick
                                                                            else 1), args.quick)
            else:
                measured = ROWS[name]
                assert measured is not None  # the three above need more than a context
                rows += measured(context)
        except Exception:  # report and go on: one broken baseline must not hide the rest
            failures.append(name)
            traceback.print_exc()
        finally:
            shutil.rmtree(copy.parent, ignore_errors=True)
    table = markdown(rows)
    print(table)
    for row in rows:
        if row.detail:
            print(f"- {row.name}: {row.detail}")
    results = Path(__file__).resolve().parent / "results.json"
    # Each row keeps the machine and mode it was measured on: --only updates some rows.
    fresh = [row.as_dict() | {"quick": args.quick, "machine": machine()} for row in rows]
    results.write_text(json.dumps({"rows": merged_rows(results, fresh)}, indent=2))
    print(f"wrote {results}")
    if failures:
        print(f"rows that could not run: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


def merged_rows(results: Path, fresh: list[dict]) -> list[dict]:
    """The rows of ``results`` with the freshly measured ones replacing (or joining) them,
    so that ``--only ROW`` updates its rows without dropping the others."""
    kept = json.loads(results.read_text())["rows"] if results.is_file() else []
    by_name = {row["name"]: row for row in fresh}
    known = {row["name"] for row in kept}
    return ([by_name.get(row["name"], row) for row in kept]
            + [row for row in fresh if row["name"] not in known])


def _dashboard(context: suite.Context):
    from core.ml.images import encode_png

    images, _ = suite._test_images(context, 50)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, image in enumerate(images):
            path = Path(folder) / f"test{index}.png"
            path.write_bytes(encode_png(image))
            paths.append(path)
        return dashboard.dashboard_rows(context.config, paths, context.quick)


def _load(context: suite.Context):
    from bench.load import load_rows

    images, _ = suite._test_images(context, 2000)
    with dashboard.running_dashboard(context.config) as (url, _):
        return load_rows(url, context.config, images, context.quick)


if __name__ == "__main__":
    sys.exit(main())
