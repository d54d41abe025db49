"""Which version answers API traffic: traffic set (shadow, canary, off) and show."""

from __future__ import annotations

import json
from argparse import Namespace

from core.app import Backends, TrafficStatus, parse_version, set_traffic, traffic_status
from core.cli.common import Commands, actor, now
from core.errors import InvalidInput


def register(commands: Commands) -> None:
    traffic = commands.group("traffic", help="which version answers API traffic: shadow or "
                             "canary a candidate (reviewers)")
    policy = traffic.add("set", cmd_set, json=True, help="set the policy")
    mode = policy.add_mutually_exclusive_group(required=True)
    mode.add_argument("--shadow", metavar="N", help="every request also runs on version N "
                      "(logged, never answered)")
    mode.add_argument("--canary", metavar="N:PERCENT",
                      help="PERCENT %% of requests are answered by version N")
    mode.add_argument("--off", action="store_true", help="the champion answers everything")
    policy.add_argument("--reason", required=True, help="why, in your words")
    traffic.add("show", cmd_show, json=True, help="show the policy")


def _policy_args(args: Namespace) -> tuple[str, int | None, int | None]:
    if args.off:
        return "off", None, None
    if args.shadow is not None:
        return "shadow", parse_version(args.shadow), None
    version, colon, percent = args.canary.partition(":")
    if not colon or not percent.strip().isdigit():
        raise InvalidInput(f"--canary {args.canary!r} is not N:PERCENT. To fix this, give the "
                           "version and a whole percentage, e.g. --canary 4:10.")
    return "canary", parse_version(version), int(percent)


def cmd_set(args: Namespace, backends: Backends) -> int:
    mode, candidate, percent = _policy_args(args)
    return _show(args, set_traffic(backends, actor=actor(args), mode=mode, candidate=candidate,
                                   percent=percent, reason=args.reason, now=now()))


def cmd_show(args: Namespace, backends: Backends) -> int:
    return _show(args, traffic_status(backends, actor=actor(args), now=now()))


def _show(args: Namespace, status: TrafficStatus) -> int:
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
