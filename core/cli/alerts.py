"""Alert channels, rules and episodes: alerts channels, add-channel, remove-channel, test,
rules, set-rule, list, ack, silence, deliveries."""

from __future__ import annotations

from argparse import Namespace

from core.app import (
    Backends,
    acknowledge_alert,
    add_alert_channel,
    alert_deliveries,
    alert_rules,
    list_alert_channels,
    list_alert_episodes,
    parse_duration,
    remove_alert_channel,
    send_test_alert,
    set_alert_rule,
)
from core.app.vocabulary import ALERT_RULES
from core.cli.common import Commands, actor, now, print_json


def register(commands: Commands) -> None:
    alerts = commands.group("alerts", help="alert channels, rules and episodes")
    alerts.add("channels", cmd_channels, json=True, help="list channels (no secrets)")
    add_channel = alerts.add("add-channel", cmd_add_channel, help="add a channel (admins)")
    add_channel.add_argument("name", metavar="NAME")
    kind = add_channel.add_mutually_exclusive_group(required=True)
    kind.add_argument("--webhook", metavar="URL", help="POST JSON signed with --secret")
    kind.add_argument("--slack", metavar="URL", help="a Slack incoming-webhook URL")
    kind.add_argument("--email", metavar="ADDRESS", help="send e-mail through --smtp")
    add_channel.add_argument("--secret", help="the webhook's HMAC-SHA256 key (X-Signature)")
    add_channel.add_argument("--smtp", metavar="HOST:PORT", help="the e-mail channel's server")
    add_channel.add_argument("--smtp-user", metavar="USER",
                             help="SMTP login (password from $SMTP_PASSWORD)")
    remove = alerts.add("remove-channel", cmd_remove_channel, help="remove a channel (admins)")
    remove.add_argument("name", metavar="NAME")
    test = alerts.add("test", cmd_test, json=True, help="send a test message to a channel now")
    test.add_argument("name", metavar="CHANNEL")
    alerts.add("rules", cmd_rules, json=True, help="list rules with their settings")
    set_rule = alerts.add("set-rule", cmd_set_rule,
                          help="override a rule's settings for this model (admins)")
    set_rule.add_argument("rule", choices=list(ALERT_RULES), metavar="RULE")
    set_rule.add_argument("settings", nargs="+", metavar="KEY=VALUE",
                          help="e.g. max_rate=0.1 reminder_minutes=60 enabled=false")
    set_rule.add_argument("--reason", required=True)
    episodes = alerts.add("list", cmd_list, json=True, help="alert episodes")
    episodes.add_argument("--open", action="store_true", help="open episodes only")
    ack = alerts.add("ack", cmd_ack, help="acknowledge an open episode (no more reminders)")
    ack.add_argument("episode", type=int, metavar="EPISODE")
    ack.add_argument("--reason", required=True)
    silence = alerts.add("silence", cmd_silence,
                         help="send nothing about an episode for a time")
    silence.add_argument("episode", type=int, metavar="EPISODE")
    silence.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                         help="e.g. 30m, 2h, 1d")
    silence.add_argument("--reason", required=True)
    alerts.add("deliveries", cmd_deliveries, json=True,
               help="recent messages and their attempts")


def cmd_channels(args: Namespace, backends: Backends) -> int:
    listed = [c.as_dict() for c in list_alert_channels(backends, actor=actor(args), now=now())]
    if args.json:
        print_json(listed)
    elif not listed:
        print("no channels yet. Add one with 'python -m core alerts add-channel'.")
    for row in [] if args.json else listed:
        print(f"{row['name']:<20} {row['kind']:<8} {row['target']}")
    return 0


def cmd_add_channel(args: Namespace, backends: Backends) -> int:
    channel = add_alert_channel(backends, actor=actor(args), name=args.name, now=now(),
                                webhook=args.webhook, secret=args.secret, slack=args.slack,
                                email=args.email, smtp=args.smtp, smtp_user=args.smtp_user)
    print(f"added {channel.kind} channel {channel.name}; try it with "
          f"'python -m core alerts test {channel.name}'")
    return 0


def cmd_remove_channel(args: Namespace, backends: Backends) -> int:
    remove_alert_channel(backends, actor=actor(args), name=args.name, now=now())
    print(f"removed channel {args.name}")
    return 0


def cmd_test(args: Namespace, backends: Backends) -> int:
    delivery, attempts = send_test_alert(backends, actor=actor(args), name=args.name, now=now())
    last = attempts[-1]
    if args.json:
        print_json({"delivery": delivery.id, "status": delivery.status,
                    "attempts": [a.__dict__ for a in attempts]})
    else:
        print(f"test message to {args.name}: " + ("delivered" if last.ok else
              f"failed ({last.error}); the monitor retries it"))
    return 0 if last.ok else 1


def cmd_rules(args: Namespace, backends: Backends) -> int:
    rules = alert_rules(backends, actor=actor(args), now=now())
    if args.json:
        print_json(rules)
    for name, rule in [] if args.json else rules.items():
        settings = ", ".join(f"{k}={v}" for k, v in rule["settings"].items())
        print(f"{name:<22} {settings}")
    return 0


def cmd_set_rule(args: Namespace, backends: Backends) -> int:
    effective = set_alert_rule(backends, actor=actor(args), rule=args.rule,
                               assignments=args.settings, reason=args.reason, now=now())
    print(f"{args.rule}: " + ", ".join(f"{k}={v}" for k, v in effective.items()))
    return 0


def cmd_list(args: Namespace, backends: Backends) -> int:
    episodes = list_alert_episodes(backends, actor=actor(args), now=now(), open_only=args.open)
    if args.json:
        print_json([e.as_dict() for e in episodes])
    elif not episodes:
        print("no alert episodes" + (" open" if args.open else ""))
    for e in [] if args.json else episodes:
        state = "OPEN" if e.open else f"resolved {e.resolved_at}"
        print(f"{e.id:>5}  {e.rule:<22} {state:<36} {e.summary}")
    return 0


def cmd_ack(args: Namespace, backends: Backends) -> int:
    episode = acknowledge_alert(backends, args.episode, actor=actor(args), reason=args.reason,
                                now=now())
    print(f"episode {episode.id} acknowledged")
    return 0


def cmd_silence(args: Namespace, backends: Backends) -> int:
    duration = parse_duration(args.duration)
    episode = acknowledge_alert(backends, args.episode, actor=actor(args), reason=args.reason,
                                now=now(), silence_for=duration)
    print(f"episode {episode.id} silenced until {episode.silenced_until}")
    return 0


def cmd_deliveries(args: Namespace, backends: Backends) -> int:
    rows = alert_deliveries(backends, actor=actor(args), now=now())
    if args.json:
        print_json([{**d.__dict__, "attempts": [a.__dict__ for a in attempts]}
                    for d, attempts in rows])
    for d, attempts in [] if args.json else rows:
        error = attempts[-1].error if attempts and not attempts[-1].ok else ""
        print(f"{d.id:>5}  {d.created_at}  {d.channel:<16} {d.state:<9} {d.status:<10} "
              f"{d.attempts} attempt(s) {error or ''}")
    return 0
