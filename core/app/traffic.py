"""Use cases about API traffic: the traffic policy (shadow, canary) and traffic over time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from core.app.backends import Backends
from core.audit import stamp
from core.errors import InvalidInput
from core.governance.access import check_reason
from core.governance.traffic import TrafficPolicy, active_candidate
from core.monitoring.log_records import RequestRow
from core.monitoring.snapshots import NO_VERSION, Snapshot, VariantTraffic, period_start
from core.registry.records import find_champion_in

BUCKETS = {"hour": (13, 3600), "day": (10, 86400)}  # ISO prefix length, seconds


@dataclass(frozen=True)
class TrafficStatus:
    policy: TrafficPolicy
    champion: int | None
    active: bool  # False when off, or when the candidate became champion or was rejected

    def as_dict(self) -> dict:
        return self.policy.as_dict() | {"champion": self.champion, "active": self.active}


def traffic_status(backends: Backends, *, actor: str, now: datetime) -> TrafficStatus:
    backends.access.authorize(actor, "view", now, target="traffic")
    return policy_status(backends, backends.traffic.get())


def policy_status(backends: Backends, policy: TrafficPolicy) -> TrafficStatus:
    """Whether ``policy`` is in force given the versions' statuses now (no authorization:
    for callers that have checked it, or system processes such as the monitor)."""
    versions = backends.registry.list_versions()
    found = find_champion_in(versions)
    champion = None if found is None else found.version
    statuses = {v.version: v.status for v in versions}
    active = champion is not None and active_candidate(policy, champion, statuses) is not None
    return TrafficStatus(policy, champion, active)


def set_traffic(backends: Backends, *, actor: str, mode: str, candidate: int | None,
                percent: int | None, reason: str, now: datetime) -> TrafficStatus:
    """Sets the traffic policy (reviewers and admins; audited with its reason).

    Every running server follows it within REFRESH_SECONDS, without a restart.
    """
    acting = backends.access.authorize(actor, "traffic", now, target="traffic",
                                       version=candidate)
    policy = TrafficPolicy(mode, candidate, percent, stamp(now), acting.name,
                           check_reason(reason))
    if candidate is not None:
        version = backends.registry.get_version(candidate)
        if version.status != "candidate":
            raise InvalidInput(f"version {candidate} is {version.status}, not a candidate; "
                               f"{mode} tries out candidates. To fix this, choose a candidate "
                               "(see 'python -m core versions').")
    return policy_status(backends, backends.traffic.set(policy, actor=acting))


@dataclass(frozen=True)
class TrafficBucket:
    """Requests of one version and variant in one hour or day."""

    start: str  # ISO prefix: 2026-11-25T14 (hour) or 2026-11-25 (day)
    version: int | None
    variant: str
    requests: int
    errors: int
    requests_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def traffic_over_time(backends: Backends, *, actor: str, now: datetime, bucket: str = "hour",
                      span: timedelta = timedelta(days=1)) -> list[TrafficBucket]:
    """API traffic in the last ``span``, per ``bucket`` (hour or day), version and variant.

    Periods the monitor has summarized come from its snapshots; the rest (the open
    period, and any the monitor has not reached) from the request records. Requests
    per second divide by the bucket's length (by the time elapsed so far for the
    current one). Latency percentiles are of answered requests; a failed request
    counts in ``errors`` and, if it failed before a version was chosen, under
    version None.
    """
    backends.access.authorize(actor, "view", now, target="traffic")
    if bucket not in BUCKETS:
        raise InvalidInput(f"unknown bucket {bucket!r}. To fix this, use one of: "
                           f"{', '.join(BUCKETS)}.")
    since = stamp(period_start(now - span, bucket))
    done = backends.snapshots.cursor(f"{bucket}.done_until") or since
    summarized = [] if done <= since else [
        _from_snapshot(snapshot, variant, traffic, bucket)
        for snapshot in backends.snapshots.read(bucket, since, done)
        for variant, traffic in snapshot.traffic.items()]
    rows = backends.prediction_log.api_requests(backends.model, max(since, done))
    return summarized + summarize(rows, bucket, now)


def _from_snapshot(snapshot: Snapshot, variant: str, traffic: VariantTraffic,
                   bucket: str) -> TrafficBucket:
    prefix, seconds = BUCKETS[bucket]
    nan = float("nan")
    return TrafficBucket(snapshot.start[:prefix],
                         None if snapshot.version == NO_VERSION else snapshot.version, variant,
                         traffic.requests, traffic.errors, traffic.requests / seconds,
                         nan if traffic.p50_ms is None else traffic.p50_ms,
                         nan if traffic.p95_ms is None else traffic.p95_ms,
                         nan if traffic.p99_ms is None else traffic.p99_ms)


def summarize(rows: list[RequestRow], bucket: str, now: datetime) -> list[TrafficBucket]:
    prefix, seconds = BUCKETS[bucket]
    groups: dict[tuple, list[RequestRow]] = {}
    for row in rows:
        groups.setdefault((row.at[:prefix], row.version, row.variant or "none"), []).append(row)
    current = stamp(now)[:prefix]
    elapsed = _seconds_into_bucket(now, bucket)
    result = []
    for (start, version, variant), members in sorted(
            groups.items(), key=lambda item: (item[0][0], item[0][1] or 0, item[0][2])):
        latencies = np.asarray([r.latency_ms for r in members if r.status == 200], np.float64)
        p50, p95, p99 = (np.percentile(latencies, [50, 95, 99]) if len(latencies)
                         else (np.nan, np.nan, np.nan))
        length = max(elapsed, 1.0) if start == current else seconds
        result.append(TrafficBucket(start, version, variant, len(members),
                                    sum(r.status != 200 for r in members),
                                    len(members) / length, float(p50), float(p95), float(p99)))
    return result


@dataclass(frozen=True)
class DeviceTraffic:
    """Predictions phones made on the device in a span, synced since (per version)."""

    version: int
    predictions: int
    last_at: str  # the newest one's time, as the device recorded it


def device_traffic(backends: Backends, *, actor: str, now: datetime,
                   span: timedelta = timedelta(days=1)) -> list[DeviceTraffic]:
    """What phones answered offline in the last ``span`` and have synced, per version (the
    API's own traffic is ``traffic_over_time``: device answers are not API requests)."""
    backends.access.authorize(actor, "view", now, target="traffic")
    since = stamp(now - span)
    found = []
    for version in backends.registry.list_versions():
        window = backends.prediction_log.window(backends.model, version.version,
                                                since=since, sources=["device"])
        if len(window):
            found.append(DeviceTraffic(version.version, len(window), max(window.at)))
    return found


def _seconds_into_bucket(now: datetime, bucket: str) -> float:
    start = now.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        start = start.replace(hour=0)
    return (now - start).total_seconds()
