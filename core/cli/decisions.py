"""Comparing versions and deciding on them: compare, promote, reject, rollback."""

from __future__ import annotations

import json
from argparse import Namespace

from core.app import (
    Backends,
    DecisionDetails,
    compare_versions,
    decide_version,
    find_comparison,
    gate_advice,
    live_evidence,
    parse_version,
)
from core.app.vocabulary import DECISIONS
from core.cli.common import Commands, actor, now


def register(commands: Commands) -> None:
    compare = commands.add("compare", cmd_compare, json=True,
                           help="compare two versions on the same holdouts")
    compare.add_argument("baseline", metavar="A")
    compare.add_argument("candidate", metavar="B")
    compare.add_argument("--include", nargs="+", metavar="SCENARIO",
                         help="drifted holdouts (default: scenarios seen in A's traffic)")
    compare.add_argument("--live", action="store_true",
                         help="live evidence instead: B in shadow or canary beside A")

    for action, (start, end) in DECISIONS.items():
        decision = commands.add(action, cmd_decide, json=True,
                                help=f"{start} version -> {end} (reviewers; needs a reason)")
        decision.add_argument("version", metavar="N")
        decision.add_argument("--reason", required=True, help="why, in your words")
        if action != "rollback":
            decision.add_argument("--override-gate", action="store_true",
                                  help="acknowledge deciding against the gate's advice")


def cmd_compare(args: Namespace, backends: Backends) -> int:
    if args.live:
        return _live(args, backends)
    result = compare_versions(backends, parse_version(args.baseline),
                              parse_version(args.candidate), actor=actor(args), now=now(),
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


def _live(args: Namespace, backends: Backends) -> int:
    baseline, candidate = parse_version(args.baseline), parse_version(args.candidate)
    who, at = actor(args), now()
    stored = find_comparison(backends, baseline, candidate, actor=who, now=at)
    if stored is not None:
        advice, live = gate_advice(backends, stored, actor=who, now=at)
    else:
        advice, live = None, live_evidence(backends, baseline, candidate, actor=who, now=at)
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


def cmd_decide(args: Namespace, backends: Backends) -> int:
    entry = decide_version(backends, args.command, parse_version(args.version),
                           actor=actor(args), reason=args.reason, now=now(),
                           override_gate=getattr(args, "override_gate", False))
    if args.json:
        print(json.dumps(entry.as_dict(), indent=2))
        return 0
    start, end = DECISIONS[args.command]
    details = DecisionDetails.from_dict(entry.details)
    before = details.champion_before
    print(f"version {entry.version}: {start} -> {end} by {entry.actor} (audit entry "
          f"{entry.seq})" + (f"; version {before} archived" if end == "champion" else "")
          + ("; against the gate's advice, acknowledged" if details.gate_overridden
             else ""))
    return 0
