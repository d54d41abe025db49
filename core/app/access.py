"""Use cases about people and programs: signing in, users and roles, API keys, what
someone may do."""

from __future__ import annotations

from datetime import datetime

from core.app.backends import Backends
from core.audit import Actor, stamp
from core.governance.access import MAX_REASON_LENGTH
from core.governance.keys import ApiKey
from core.governance.users import User


def sign_in(backends: Backends, name: str, password: str, now: datetime,
            client: str = "local") -> Actor:
    """Checks a password (every check audited); repeated failures slow down ``client``
    (the browser's address), never anyone else."""
    return backends.access.sign_in(name, password, now, client)


def current_actor(backends: Backends, name: str) -> Actor:
    """``name`` with the role they hold now (``anonymous``: ANONYMOUS_ROLE)."""
    return backends.access.resolve_actor(name)


def may(backends: Backends, name: str, permission: str) -> bool:
    """Whether to show a control to ``name``: only a hint, every action is checked again."""
    return backends.access.may(name, permission)


def acting_in_setup(backends: Backends, actor: str, permission: str, now: datetime, *,
                    target: str) -> Actor:
    """Who acts on bringing in a model: in a registry without users that is part of
    setting it up (the setup actor); once users exist, someone ``permission`` allows."""
    if not backends.users.has_users():
        return Actor(actor, "setup")
    return backends.access.authorize(actor, permission, now, target=target)


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


def create_key(backends: Backends, *, actor: str, name: str, role: str,
               rate_limit: float | None, now: datetime) -> tuple[ApiKey, str]:
    """Creates an API key (admins); returns it and its secret, shown this once only."""
    acting = backends.access.authorize(actor, "manage_users", now, target=f"key {name}")
    return backends.keys.create(name, role, rate_limit, actor=acting, at=stamp(now))


APP_PATH = "/app/"  # where the API serves the phone app (core.serving.routers.device)


def enrol_url(secret: str) -> str:
    """The link that enrols a phone with a device key, relative to the API's address: the
    key travels in the fragment, which browsers never send to a server or a proxy log."""
    return f"{APP_PATH}#key={secret}"


def list_keys(backends: Backends, *, actor: str, now: datetime) -> list[ApiKey]:
    backends.access.authorize(actor, "manage_users", now, target="keys")
    return backends.keys.list_keys()


def revoke_key(backends: Backends, *, actor: str, name: str, reason: str | None,
               now: datetime) -> ApiKey:
    """Revokes a key (admins); every server refuses it within REFRESH_SECONDS."""
    acting = backends.access.authorize(actor, "manage_users", now, target=f"key {name}")
    return backends.keys.revoke(name, actor=acting, at=stamp(now),
                                reason=(reason or "").strip()[:MAX_REASON_LENGTH])


def set_user_disabled(backends: Backends, *, actor: str, name: str, disabled: bool,
                      reason: str, now: datetime) -> User:
    """Disables an account, or enables it again (admins; audited with the reason)."""
    return backends.access.set_disabled(actor=actor, name=name, disabled=disabled,
                                        reason=reason, now=now)


def reset_password(backends: Backends, *, actor: str, name: str, password: str, reason: str,
                   now: datetime) -> User:
    """Gives a user a new password (admins; audited, the password never kept in clear)."""
    return backends.access.reset_password(actor=actor, name=name, password=password,
                                          reason=reason, now=now)
