"""Drift detection quality: scenario x statistic x how often it fired, on a private copy
of a registry (the real one's log is untouched). For each scenario and seed it simulates
n predictions through the champion and computes the drift report over exactly those n.
The suite checks the documented bars with it (tests/monitoring/test_drift_quality.py);
``python -m bench.drift_detection`` prints the table for docs/drift-detection.md.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.app import add_user, build_backends, drift_for_version, simulate  # noqa: E402
from core.app.vocabulary import SCENARIOS, STATISTICS
from core.config import load_config  # noqa: E402

# Scenarios the quality bar requires to alert in every run (issue 3).
MUST_ALERT = ("brightness", "blur", "noise", "invert", "class_shift")


BENCH_ACTOR = "bench"


def private_copy(registry: Path, model: str) -> Path:
    """Copies the champion's files and catalog to a temp folder the bench acts in as admin.

    The copy starts with an empty prediction log and only the user ``bench`` (an admin
    added in setup mode), so that benchmarks never need anyone's password.
    """
    target = Path(tempfile.mkdtemp(prefix="drift-detection-")) / "registry"
    shutil.copytree(registry / model, target / model)
    import sqlite3
    # SQLite's backup API: a database in use keeps recent pages in its -wal file,
    # which a plain file copy of registry.db would miss.
    with closing(sqlite3.connect(registry / "registry.db")) as source, \
            closing(sqlite3.connect(target / "registry.db")) as copy:
        source.backup(copy)
    with sqlite3.connect(target / "registry.db") as db:
        db.execute("DELETE FROM predictions")
        db.execute("DELETE FROM users")
    add_user(build_backends(load_config().with_overrides(registry_dir=target)), actor=BENCH_ACTOR,
             name=BENCH_ACTOR, role="admin", password=None, now=datetime.now(UTC))
    return target


def run(registry: Path, runs: int, n: int, scenarios=tuple(SCENARIOS),
        actor: str = BENCH_ACTOR) -> dict:
    """Returns {scenario: {"fired": {stat: count}, "alerts": count, "runs": runs,
    "max_cbpe_gap": float, "mean_accuracy": float}}."""
    backends = build_backends(load_config().with_overrides(registry_dir=registry))
    clock_start = datetime(2026, 1, 1, tzinfo=UTC)
    ticks = iter(range(10**9))

    def clock():
        return clock_start + timedelta(seconds=next(ticks))

    results = {}
    for scenario in scenarios:
        fired = {name: 0 for name in STATISTICS}
        alerts, gaps, accuracies = 0, [], []
        for seed in range(runs):
            simulated = simulate(backends, actor=actor, scenario=scenario, n=n, seed=seed,
                                 clock=clock)
            report = drift_for_version(backends, actor=actor, now=clock(), window=n)
            alerts += report.alert
            for statistic in report.statistics:
                fired[statistic.name] += statistic.status == "alert"
            # Simulated traffic carries its true labels: the realized accuracy is known.
            assert report.realized_accuracy is not None
            gaps.append(abs(report.estimated_accuracy - report.realized_accuracy))
            accuracies.append(simulated.accuracy)
        results[scenario] = {"fired": fired, "alerts": alerts, "runs": runs,
                             "max_cbpe_gap": max(gaps),
                             "mean_accuracy": sum(accuracies) / len(accuracies)}
    return results


def markdown(results: dict) -> str:
    names = list(STATISTICS)
    header = ("| scenario (default severity) | accuracy | alert runs | max CBPE gap | "
              + " | ".join(names) + " |")
    lines = [header, "|" + "---|" * (4 + len(names))]
    for scenario, r in results.items():
        severity = SCENARIOS[scenario].default_severity
        lines.append(f"| {scenario} ({severity:g}) | {r['mean_accuracy']:.1%} | "
                     f"{r['alerts']}/{r['runs']} | {r['max_cbpe_gap'] * 100:.1f} pts | "
                     + " | ".join(str(r["fired"][name]) for name in names) + " |")
    return "\n".join(lines)
