"""API keys for programs calling the serving API: keys create, list, revoke."""

from __future__ import annotations

import json
from argparse import Namespace

from core.app import Backends, create_key, enrol_url, list_keys, revoke_key
from core.app.vocabulary import KEY_ROLES
from core.cli.common import Commands, actor, now


def register(commands: Commands) -> None:
    keys = commands.group("keys", help="API keys for programs calling the serving API "
                          "(admins)")
    create = keys.add("create", cmd_create_key, json=True,
                      help="create a key; its secret is printed once")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--role", required=True, choices=KEY_ROLES)
    create.add_argument("--rate-limit", type=float, metavar="RPS",
                        help="requests per second per server process (default: unlimited)")
    keys.add("list", cmd_list_keys, json=True, help="list keys (no secrets)")
    revoke = keys.add("revoke", cmd_revoke_key, help="revoke a key")
    revoke.add_argument("name", metavar="NAME")
    revoke.add_argument("--reason", help="why (kept in the audit log)")


def cmd_create_key(args: Namespace, backends: Backends) -> int:
    key, secret = create_key(backends, actor=actor(args), name=args.name, role=args.role,
                             rate_limit=args.rate_limit, now=now())
    # A device key enrols a phone: opening this link (after the API's address) in the
    # phone's browser installs the app with the key (docs/phone.md).
    enrol = {"enrol_url": enrol_url(secret)} if key.role == "device" else {}
    if args.json:
        print(json.dumps(key.as_dict() | {"key": secret} | enrol, indent=2))
    else:
        print(f"created key {key.name} ({key.role}). Its secret, shown only now:\n{secret}\n"
              "Send it as 'Authorization: Bearer <key>'.")
        if enrol:
            print(f"To enrol a phone, open the API's address followed by {enrol['enrol_url']} "
                  "on it (or show the QR code on the dashboard's Keys page).")
    return 0


def cmd_revoke_key(args: Namespace, backends: Backends) -> int:
    key = revoke_key(backends, actor=actor(args), name=args.name, reason=args.reason,
                     now=now())
    print(f"revoked key {key.name}; servers refuse it within a few seconds")
    return 0


def cmd_list_keys(args: Namespace, backends: Backends) -> int:
    listed = [key.as_dict() for key in list_keys(backends, actor=actor(args), now=now())]
    if args.json:
        print(json.dumps(listed, indent=2))
    elif not listed:
        print("no keys yet. Create one with 'python -m core keys create NAME --role viewer'.")
    for row in [] if args.json else listed:
        limit = f"{row['rate_limit']:g}/s" if row["rate_limit"] else "unlimited"
        state = "active" if row["active"] else f"revoked {row['revoked_at']}"
        print(f"{row['name']:<24} {row['role']:<9} {limit:<10} {state}")
    return 0
