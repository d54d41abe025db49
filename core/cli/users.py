"""Who may do what: users add, set-role, disable, enable, reset-password, setup, list."""

from __future__ import annotations

import getpass
import json
import sys
from argparse import Namespace

from core.app import (
    Backends,
    add_user,
    has_users,
    list_users,
    reset_password,
    set_role,
    set_user_disabled,
    validate_user_name,
)
from core.app.vocabulary import ROLES
from core.cli.common import Commands, actor, now, read_password, setup_actor


def register(commands: Commands) -> None:
    users = commands.group("users", help="manage who may do what (admins)")
    add_one = users.add("add", cmd_add_user,
                        help="add a user; the password is read from stdin")
    add_one.add_argument("name", metavar="NAME")
    add_one.add_argument("--role", required=True, choices=ROLES)
    add_one.add_argument("--oidc", action="store_true",
                         help="no password: signs in through the dashboard's OIDC provider")
    role = users.add("set-role", cmd_set_role, help="change a user's role")
    role.add_argument("name", metavar="NAME")
    role.add_argument("role", choices=ROLES)
    role.add_argument("--reason", required=True)
    for action, handler, text in (
            ("disable", cmd_disable, "disable an account: it can do nothing until enabled"),
            ("enable", cmd_enable, "enable a disabled account again"),
            ("reset-password", cmd_reset_password,
             "give a user a new password, read from stdin")):
        change = users.add(action, handler, help=text)
        change.add_argument("name", metavar="NAME")
        change.add_argument("--reason", required=True)
    users.add("setup", cmd_setup, acting=False, help=(
        "at first start, ask for the first admin's name and password (does nothing once "
        "users exist or without a terminal)"))
    users.add("list", cmd_list_users, json=True, help="list users and roles")


def cmd_add_user(args: Namespace, backends: Backends) -> int:
    validate_user_name(args.name)  # before asking for a password it would not use
    user = add_user(backends, actor=setup_actor(args), name=args.name, role=args.role,
                    password=None if args.oidc else read_password(), now=now())
    print(f"added {user.name} as {user.role}")
    return 0


def cmd_set_role(args: Namespace, backends: Backends) -> int:
    user = set_role(backends, actor=actor(args), name=args.name, role=args.role,
                    reason=args.reason, now=now())
    print(f"{user.name} is now {user.role}")
    return 0


def _set_disabled(args: Namespace, backends: Backends, disabled: bool) -> int:
    user = set_user_disabled(backends, actor=actor(args), name=args.name, disabled=disabled,
                             reason=args.reason, now=now())
    print(f"{user.name} is now {'disabled' if user.disabled else 'enabled'}")
    return 0


def cmd_disable(args: Namespace, backends: Backends) -> int:
    return _set_disabled(args, backends, True)


def cmd_enable(args: Namespace, backends: Backends) -> int:
    return _set_disabled(args, backends, False)


def cmd_reset_password(args: Namespace, backends: Backends) -> int:
    validate_user_name(args.name)  # before asking for a password it would not use
    user = reset_password(backends, actor=actor(args), name=args.name,
                          password=read_password(), reason=args.reason, now=now())
    print(f"{user.name} has a new password")
    return 0


def cmd_list_users(args: Namespace, backends: Backends) -> int:
    listed = [user.as_dict() for user in list_users(backends, actor=actor(args), now=now())]
    if args.json:
        print(json.dumps(listed, indent=2))
    elif not listed:
        print("no users yet. Add the first admin with "
              "'python -m core users add NAME --role admin'.")
    for row in [] if args.json else listed:
        print(f"{row['name']:<24} {row['role']:<9} "
              f"{'password' if row['password_login'] else 'oidc':<9} "
              f"added {row['created_at']} by {row['created_by']}"
              + ("  DISABLED" if row["disabled"] else ""))
    return 0


def cmd_setup(args: Namespace, backends: Backends) -> int:
    """``make run`` calls this: no password is shipped, the first start asks for one."""
    if has_users(backends):
        return 0
    if not sys.stdin.isatty():
        print("No users yet: the dashboard serves visitors as viewers only. Add the first "
              "admin with 'python -m core users add NAME --role admin' (password on stdin).")
        return 0
    print("First start: choose the admin who will manage users (no default password "
          "exists).")
    name = input(f"admin user name [{getpass.getuser()}]: ").strip() or getpass.getuser()
    user = add_user(backends, actor=getpass.getuser(), name=name, role="admin",
                    password=read_password(), now=now())
    print(f"added {user.name} as admin; sign in on the dashboard's sidebar")
    return 0
