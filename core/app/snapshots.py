"""Use cases of monitoring over real time: computing snapshots of closed periods and
reading them for the pages (with the deployments drawn on their time axes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from core.app.backends import Backends, every_model
from core.app.monitor import load_reference
from core.errors import InvalidInput, RegistryError
from core.monitoring.report import MIN_WINDOW, drift_report
from core.monitoring.snapshots import (
    NO_VERSION,
    PERIODS,
    Snapshot,
    period_start,
    stamp,
)

# The Drift page's MMD test per period: fewer permutations than an on-demand report
# (99: p-values down to 0.01), since a pass may summarize hundreds of periods.
SNAPSHOT_PERMUTATIONS = 99
# Audit actions drawn as vertical markers on time axes.
DEPLOYMENT_ACTIONS = ("promote", "rollback", "traffic")
# The monitor's cursor of its last finished pass (Prometheus alerts when it gets old).
PASS_CURSOR = "monitor.passed"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def compute_snapshots(backends: Backends, now: datetime,
                      on_period: Callable[[str, str, int], None] | None = None,
                      on_error: Callable[[str, Exception], None] | None = None
                      ) -> list[Snapshot]:
    """Summarizes every closed period not summarized yet (hours, then days); returns the
    new snapshots.

    With ``on_error``, a period that cannot be summarized is reported (as "hour periods"
    or "day periods") and that kind stops for this pass, to be retried by the next one,
    while the other kind goes on; without it, the error is raised.

    A period is closed once it ended ``monitor_grace_seconds`` ago. Each period's
    snapshots commit with the cursor that marks it done, so a monitor killed at any
    moment resumes at the first period without snapshots (no gap, no duplicate), and
    a second monitor running at once skips what the first committed. Rows are read up
    to the log id seen when the pass began; any arriving later for a done period are
    counted on its snapshot as late rows by the next pass.
    """
    cutoff = now - timedelta(seconds=backends.config.monitor_grace_seconds)
    high = backends.prediction_log.last_id()
    _count_late_rows(backends, high, now)
    versions = [v.version for v in backends.registry.list_versions()]
    computed: list[Snapshot] = []
    for period, length in PERIODS.items():
        try:
            computed += _summarize(backends, period, length, cutoff, high, versions, now,
                                   on_period)
        except Exception as error:  # noqa: BLE001 - the other period kind goes on
            if on_error is None:
                raise
            on_error(f"{period} periods", error)
    return computed


def _summarize(backends: Backends, period: str, length: timedelta, cutoff: datetime,
               high: int, versions: list[int], now: datetime,
               on_period: Callable[[str, str, int], None] | None) -> list[Snapshot]:
    """Snapshots of every closed period of one kind, oldest first, each committed with
    the cursor that marks it done."""
    store, log = backends.snapshots, backends.prediction_log
    computed: list[Snapshot] = []
    name = f"{period}.done_until"
    done = store.cursor(name)
    while True:
        first = log.first_at(backends.model, done)
        if first is None:
            break
        start = period_start(_parse(first), period)
        if start + length > cutoff:
            break
        snapshots = [_snapshot(backends, period, start, version, high, now)
                     for version in log.versions_between(
                         backends.model, stamp(start), stamp(start + length), versions)]
        with backends.database.write() as conn:
            if store.cursor(name, conn) != done:
                break  # another monitor got here first
            store.save(conn, snapshots)
            done = stamp(start + length)
            store.set_cursor(conn, name, done, now)
        computed += snapshots
        if on_period:
            on_period(period, stamp(start), len(snapshots))
    return computed


def _count_late_rows(backends: Backends, high: int, now: datetime) -> None:
    store = backends.snapshots
    with backends.database.write() as conn:
        seen = store.cursor("predictions.seen", conn)
        if seen is not None and int(seen) < high:
            for period in PERIODS:
                done = store.cursor(f"{period}.done_until", conn)
                if done is None:
                    continue
                counts: dict[tuple[str, int], int] = {}
                for version, at in backends.prediction_log.arrived(backends.model, int(seen),
                                                                  high, done):
                    key = (stamp(period_start(_parse(at), period)), version)
                    counts[key] = counts.get(key, 0) + 1
                store.add_late_rows(conn, period, counts)
        store.set_cursor(conn, "predictions.seen", str(high), now)


def _snapshot(backends: Backends, period: str, start: datetime, version: int, high: int,
              now: datetime) -> Snapshot:
    since, until = stamp(start), stamp(start + PERIODS[period])
    requests = backends.prediction_log.api_requests(backends.model, since, until,
                                                    version=version)
    report, n, labelled, realized = None, 0, 0, None
    if version != NO_VERSION:
        window = backends.prediction_log.window(backends.model, version, since=since,
                                                until=until, max_id=high)
        n = len(window)
        known = window.true_labels >= 0
        labelled = int(known.sum())
        if labelled:
            realized = float(np.mean(window.predicted[known] == window.true_labels[known]))
        if n >= MIN_WINDOW:
            try:
                reference = load_reference(backends, backends.registry.get_version(version))
                report = drift_report(reference, window, version,
                                      permutations=SNAPSHOT_PERMUTATIONS)
            except RegistryError:
                pass  # a version without a reference profile: traffic and accuracy only
    return Snapshot.of(model=backends.model, period=period, start=start, version=version,
                       computed_at=stamp(now), report=report, n=n, labelled=labelled,
                       realized_accuracy=realized, requests=requests)


# --- reading snapshots -------------------------------------------------------------------

RANGES = {"24h": ("hour", timedelta(hours=24)), "30d": ("day", timedelta(days=30))}


@dataclass(frozen=True)
class Deployment:
    """A change to what serves traffic, drawn as a vertical marker."""

    at: str
    action: str  # promote / rollback / traffic
    version: int | None
    actor: str
    summary: str


@dataclass(frozen=True)
class Timeline:
    """Snapshots of a time range with the deployments inside it."""

    period: str
    since: str
    until: str
    snapshots: list[Snapshot]
    deployments: list[Deployment]
    pending_since: str | None  # the first period without a snapshot yet (None: all done)


def timeline(backends: Backends, *, actor: str, now: datetime, range_: str = "24h",
             since: datetime | None = None, until: datetime | None = None,
             period: str | None = None) -> Timeline:
    """Snapshots of the last 24 hours by hour (``24h``), the last 30 days by day
    (``30d``), or a custom range (``custom`` with ``since``, ``until`` and ``period``)."""
    backends.access.authorize(actor, "view", now, target="monitoring")
    return read_timeline(backends, now=now, range_=range_, since=since, until=until,
                         period=period)


def read_timeline(backends: Backends, *, now: datetime, range_: str = "24h",
                  since: datetime | None = None, until: datetime | None = None,
                  period: str | None = None) -> Timeline:
    """``timeline`` for system use cases with no person acting (the drift report drawn
    for an alert's e-mail)."""
    if range_ in RANGES:
        period, span = RANGES[range_]
        until = now
        since = period_start(now - span, period)
    elif range_ == "custom":
        if since is None or until is None or since >= until:
            raise InvalidInput("a custom range needs a start before its end. To fix this, "
                               "give both, e.g. 2026-11-01 and 2026-11-08.")
        period = period or ("hour" if until - since <= timedelta(days=3) else "day")
        if period not in PERIODS:
            raise InvalidInput(f"unknown period {period!r}. To fix this, use one of: "
                               f"{', '.join(PERIODS)}.")
    else:
        raise InvalidInput(f"unknown range {range_!r}. To fix this, use one of: "
                           f"{', '.join(RANGES)}, custom.")
    assert since is not None and until is not None and period is not None
    snapshots = backends.snapshots.read(period, stamp(since), stamp(until))
    done = backends.snapshots.cursor(f"{period}.done_until")
    return Timeline(period, stamp(since), stamp(until), snapshots,
                    deployments(backends, stamp(since), stamp(until)),
                    done if done is None or done < stamp(until) else None)


def deployments(backends: Backends, since: str, until: str) -> list[Deployment]:
    """Promotions, rollbacks and traffic-policy changes in [since, until)."""
    found = []
    for entry in backends.audit_log.read_entries(backends.model):
        if (entry.outcome != "done" or entry.action not in DEPLOYMENT_ACTIONS
                or not since <= entry.at < until):
            continue
        if entry.action == "traffic":
            new = entry.details.get("to", {})
            summary = (f"traffic: {new.get('mode', '?')}"
                       + (f" v{new['candidate']}" if new.get("candidate") else "")
                       + (f" {new['percent']}%" if new.get("percent") else ""))
        else:
            summary = f"{entry.action} v{entry.version}"
        found.append(Deployment(entry.at, entry.action, entry.version, entry.actor, summary))
    return found


def mark_pass(backends: Backends, now: datetime) -> None:
    """Records that the monitor finished a pass over ``backends``' model at ``now``."""
    with backends.database.write() as conn:
        backends.snapshots.set_cursor(conn, PASS_CURSOR, stamp(now), now)


@dataclass(frozen=True)
class ModelHealth:
    """What the monitor last found for one model (the API's /metrics shows it)."""

    model: str
    monitor_passed_at: str | None  # None: no pass yet
    snapshots: list[Snapshot]  # the latest hour's that has any, one per version


def model_health(backends: Backends) -> list[ModelHealth]:
    """Every model's last monitor pass and latest hourly snapshots."""
    return [ModelHealth(each.model, each.snapshots.cursor(PASS_CURSOR),
                        each.snapshots.latest("hour")) for each in every_model(backends)]
