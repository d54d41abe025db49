"""Repeated timing with a warm-up, and the result rows ``python -m bench`` reports."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Timing:
    median: float
    low: float
    high: float
    runs: int


def measure(function: Callable[[], object], *, repeats: int, warmup: int = 2) -> Timing:
    """Seconds per call: median, min and max over ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return Timing(statistics.median(samples), min(samples), max(samples), repeats)


@dataclass(frozen=True)
class Row:
    """One line of results: our figure against the obvious alternative, measured together.

    ``ratio`` is written so that above 1 is better for us (speed-up, or throughput gain);
    ``met`` says whether ``target`` holds.
    """

    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float | None
    ratio: float | None
    target: str
    met: bool
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def markdown(rows: list[Row]) -> str:
    lines = ["| what | ours | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        baseline = ("—" if row.baseline_value is None
                    else f"{row.baseline}: {_number(row.baseline_value)} {row.unit}")
        ratio = "—" if row.ratio is None else f"{row.ratio:.1f}×"
        lines.append(f"| {row.name} | {_number(row.value)} {row.unit} | {baseline} | {ratio} | "
                     f"{row.target} | {'yes' if row.met else 'NO'} |")
    return "\n".join(lines)


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
