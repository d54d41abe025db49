"""Drift detection quality: scenario x statistic x how often it fired.

    python -m bench.drift_detection [--registry DIR] [--runs 20] [--n 500]

Works on a private copy of the registry (the real one's log is untouched):
for each scenario and seed, simulates n predictions through the champion and
computes the drift report over exactly those n. Prints a markdown table of how
many runs each statistic alerted in, the overall alert rate, and the gap
between estimated (CBPE) and realized accuracy.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.app import build_backends  # noqa: E402
from core.app.vocabulary import SCENARIOS
from core.config import load_config  # noqa: E402
from tests.drift_detection import BENCH_ACTOR, markdown, private_copy, run  # noqa: E402

__all__ = ["BENCH_ACTOR", "main"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_detection")
    parser.add_argument("--registry", type=Path, default=load_config().registry_dir)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--scenario", action="append", help="limit to these scenarios")
    args = parser.parse_args()
    config = load_config().with_overrides(registry_dir=args.registry)
    copy = private_copy(args.registry, build_backends(config).registry.model)
    try:
        results = run(copy, args.runs, args.n, tuple(args.scenario or SCENARIOS))
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)
    print(markdown(results))


if __name__ == "__main__":
    main()
