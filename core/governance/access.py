"""Who may do what: identities, roles, sign-in, and the refusals the audit log keeps.

Every action, reads included, goes through ``AccessControl.authorize``, whoever
calls it (CLI, dashboard, worker, API): hiding a button is not access control.
Refusals are written to the audit log before ``ActionRefused`` is raised.
"""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

from core.audit import Actor, AuditEntry, AuditLog, append, stamp
from core.errors import ActionRefused, InvalidInput
from core.governance.keys import KEY_ACTOR_PREFIX, KeyStore
from core.governance.throttle import SignInThrottle
from core.governance.users import (
    ANONYMOUS,
    DISABLED,
    ROLE_PERMISSIONS,
    ROLES,
    User,
    UserStore,
    validate_user_name,
)

MAX_REASON_LENGTH = 2000


def roles_allowed(permission: str) -> list[str]:
    return [role for role, allowed in ROLE_PERMISSIONS.items() if permission in allowed]


def check_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a decision needs a written reason. To fix this, say why, e.g. "
                           "--reason \"fixes the brightness drift; clean accuracy held\".")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"the reason is {len(reason)} characters long. To fix this, keep it "
                           f"under {MAX_REASON_LENGTH} and link to longer notes.")
    return reason


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class AccessControl:
    """Roles checked on every action, against the user store; refusals audited.

    Args:
        model: labels the audit entries of refusals and sign-ins.
        anonymous_role: the role of whoever has not signed in (``none``: no access).
    """

    def __init__(self, users: UserStore, keys: KeyStore, audit_log: AuditLog, model: str,
                 anonymous_role: str, throttle: SignInThrottle):
        self.users, self.keys, self.audit_log = users, keys, audit_log
        self.model, self.anonymous_role = model, anonymous_role
        self.throttle = throttle

    def anonymous(self) -> Actor:
        if self.anonymous_role not in ROLES + ("none",):
            raise InvalidInput(f"ANONYMOUS_ROLE is {self.anonymous_role!r}. To fix this, "
                               f"set it to one of: {', '.join(ROLES)}, none.")
        return Actor(ANONYMOUS, self.anonymous_role)

    def resolve_actor(self, name: str) -> Actor:
        """The actor with the role they hold now; role ``unknown`` for a name not in the
        store (or a revoked key: ``key:<name>``), ``disabled`` for a disabled account."""
        if name == ANONYMOUS:
            return self.anonymous()
        if name.startswith(KEY_ACTOR_PREFIX):
            key = self.keys.find_active(name.removeprefix(KEY_ACTOR_PREFIX))
            return Actor(name, key.role if key else "unknown")
        user = self.users.find_user(name)
        if user is not None and user.disabled:
            return Actor(name, DISABLED)
        return Actor(name, user.role if user else "unknown")

    def may(self, name: str, permission: str) -> bool:
        """Whether ``name`` holds ``permission`` now (for showing controls; no audit entry)."""
        return permission in ROLE_PERMISSIONS.get(self.resolve_actor(name).role, ())

    def authorize(self, name: str, permission: str, now: datetime, *, target: str = "",
                  version: int | None = None) -> Actor:
        """The actor if their role allows ``permission``; otherwise logs the refusal and raises."""
        return self.authorize_actor(self.resolve_actor(name[:128]), permission, now,
                                    target=target, version=version)

    def authorize_signed_in(self, name: str, permission: str, now: datetime, *,
                            target: str) -> Actor:
        """``authorize``, and the actor must have signed in: a visitor may not, whatever
        ANONYMOUS_ROLE allows (for people's uploaded images)."""
        actor = self.authorize(name, permission, now, target=target)
        if actor.name == ANONYMOUS:
            self.refuse(actor, permission, f"signing in is required to see {target}. To fix "
                        "this, sign in (dashboard sidebar) or pass --actor NAME.", now,
                        target=target)
        return actor

    def authorize_actor(self, actor: Actor, permission: str, now: datetime, *,
                        target: str = "", version: int | None = None) -> Actor:
        """``authorize`` for an actor already resolved (the API resolves keys from a
        per-process cache instead of a database read per request)."""
        if permission in ROLE_PERMISSIONS.get(actor.role, ()):
            return actor
        needed = " or ".join(roles_allowed(permission))
        if actor.role == "unknown" and actor.name.startswith(KEY_ACTOR_PREFIX):
            message = (f"the API key {actor.name.removeprefix(KEY_ACTOR_PREFIX)!r} is revoked. "
                       "To fix this, ask an admin for a new key ('python -m core keys create').")
        elif actor.role == DISABLED:
            message = (f"the account {actor.name!r} is disabled. To fix this, ask an admin "
                       f"to enable it ('python -m core users enable {actor.name}').")
        elif actor.role == "unknown":
            message = (f"there is no user {actor.name!r}. To fix this, an admin adds them with "
                       f"'python -m core users add {actor.name} --role "
                       f"{roles_allowed(permission)[0]}', or act as an existing user "
                       "(--actor NAME).")
        elif actor.name == ANONYMOUS:
            message = (f"signing in is required to {permission}. To fix this, sign in "
                       f"(dashboard sidebar) or pass --actor NAME as a user with the role "
                       f"{needed}.")
        else:
            message = (f"{actor.name} is {_article(actor.role)} {actor.role}; {permission} "
                       f"needs the role {needed}. To fix this, ask an admin to change your "
                       "role or ask someone who has it.")
        self.refuse(actor, permission, message, now, target=target or permission,
                    version=version)

    def refuse(self, actor: Actor, action: str, message: str, now: datetime, *, target: str,
               version: int | None = None, details: dict | None = None) -> NoReturn:
        """Writes a refused entry to the audit log, then raises ActionRefused(message)."""
        self.audit_log.append_alone(AuditEntry(
            at=stamp(now), actor=actor.name, role=actor.role, action=action,
            outcome="refused", model=self.model, target=target, version=version,
            reason=message, details=details or {}))
        raise ActionRefused(message)

    def sign_in(self, name: str, password: str, now: datetime, client: str = "local") -> Actor:
        """Checks a password; every check is audited, failures without saying which part
        was wrong. Failures slow down the client that makes them (``core.governance.
        throttle``): while it waits, it is refused without a check, and nobody else is.

        Args:
            client: who is trying, e.g. the browser's address (the dashboard passes it).
        """
        name = name.strip()
        validate_user_name(name)  # before any lookup, check or audit row
        target = f"user {name}"
        until = self.throttle.blocked_until(client, name, now)
        if until is not None:
            wait = max(1, int((until - now).total_seconds()))
            raise ActionRefused(f"too many failed sign-ins for {name!r} from this address. To "
                                f"fix this, wait {wait} s and try again (an admin can reset "
                                "a forgotten password).")
        user = self.users.check_password(name, password)
        if user is None:
            with self.audit_log.database.write() as conn:
                self.throttle.record_failure(conn, client, name, now)
                append(conn, AuditEntry(
                    at=stamp(now), actor=name, role="unknown", action="login",
                    outcome="refused", model=self.model, target=target,
                    reason="wrong user name or password", details={"client": client}))
            raise ActionRefused("wrong user name or password. To fix this, check both and try "
                                "again (an admin can reset a password).")
        if user.disabled:
            self.refuse(Actor(name, DISABLED), "login", f"the account {name!r} is disabled. To "
                        "fix this, ask an admin to enable it.", now, target=target)
        with self.audit_log.database.write() as conn:
            self.throttle.clear(conn, client, name)
            append(conn, AuditEntry(
                at=stamp(now), actor=name, role=user.role, action="login", outcome="done",
                model=self.model, target=target, details={"client": client}))
        return Actor(name, user.role)

    def add_user(self, *, actor: str, name: str, role: str, password: str | None,
                 now: datetime) -> User:
        """Adds a user. Until any user exists, anyone may add the first one, an admin (setup)."""
        if self.users.has_users():
            acting = self.authorize(actor, "manage_users", now, target=f"user {name}")
        else:
            acting = Actor(actor, "setup")
        return self.users.add_user(validate_user_name(name), role, password, actor=acting,
                                   at=stamp(now))

    def set_role(self, *, actor: str, name: str, role: str, reason: str,
                 now: datetime) -> User:
        acting = self.authorize(actor, "manage_users", now, target=f"user {name}")
        return self.users.set_role(name, role, actor=acting, at=stamp(now),
                                   reason=check_reason(reason))

    def set_disabled(self, *, actor: str, name: str, disabled: bool, reason: str,
                     now: datetime) -> User:
        """Disables an account (admins; audited): it can do nothing, sign in included,
        until enabled again. Its history stays."""
        acting = self.authorize(actor, "manage_users", now, target=f"user {name}")
        return self.users.set_disabled(name, disabled, actor=acting, at=stamp(now),
                                       reason=check_reason(reason))

    def reset_password(self, *, actor: str, name: str, password: str, reason: str,
                       now: datetime) -> User:
        """Sets a user's new password (admins; audited without the password)."""
        acting = self.authorize(actor, "manage_users", now, target=f"user {name}")
        return self.users.set_password(name, password, actor=acting, at=stamp(now),
                                       reason=check_reason(reason))
