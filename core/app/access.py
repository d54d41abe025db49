"""Use cases about people: signing in, users and roles, what someone may do."""

from __future__ import annotations

from datetime import datetime

from core.app.backends import Backends
from core.governance.audit import Actor
from core.governance.users import User


def sign_in(backends: Backends, name: str, password: str, now: datetime) -> Actor:
    """Checks a password (every attempt audited; repeated failures lock the name out)."""
    return backends.access.sign_in(name, password, now)


def current_actor(backends: Backends, name: str) -> Actor:
    """``name`` with the role they hold now (``anonymous``: ANONYMOUS_ROLE)."""
    return backends.access.resolve_actor(name)


def may(backends: Backends, name: str, permission: str) -> bool:
    """Whether to show a control to ``name``: only a hint, every action is checked again."""
    return backends.access.may(name, permission)


def has_users(backends: Backends) -> bool:
    return backends.users.has_users()


def add_user(backends: Backends, *, actor: str, name: str, role: str, password: str | None,
             now: datetime) -> User:
    """Adds a user; until any exists, the first one (an admin) may be added by anyone."""
    return backends.access.add_user(actor=actor, name=name, role=role, password=password,
                                    now=now)


def set_role(backends: Backends, *, actor: str, name: str, role: str, reason: str,
             now: datetime) -> User:
    return backends.access.set_role(actor=actor, name=name, role=role, reason=reason, now=now)


def list_users(backends: Backends, *, actor: str, now: datetime) -> list[User]:
    backends.access.authorize(actor, "view", now, target="users")
    return backends.users.list_users()
