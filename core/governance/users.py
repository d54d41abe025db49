"""Identities and roles: the local user store (argon2 password hashes) and what each role may do.

Users live in the registry's database next to the audit log, so adding a
user or changing a role commits together with its audit entry. A user whose
``password_hash`` is empty signs in only through the dashboard's OpenID
Connect provider (``st.login``), never with a password.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, text

from core.audit import Actor, AuditEntry, append
from core.errors import ActionRefused, InvalidInput
from core.storage.database import Database

ROLES = ("viewer", "operator", "reviewer", "admin")  # people's (and keys')
# A key may also be a phone's: role device (docs/phone.md), never a person's.
KEY_ROLES = (*ROLES, "device")
_VIEWER = frozenset({"view", "predict", "feedback"})
# alerts: acknowledging or silencing an alert episode; manage_alerts: its channels and rules.
# export: building a version's portable exports and downloading its files (audited).
# register: bringing in a model trained elsewhere (a version, like a retraining's).
_OPERATOR = _VIEWER | {"simulate", "retrain", "cancel", "compare", "profile", "alerts",
                       "export", "register"}
# traffic: choosing which version serves which requests (shadow, canary) is a
# decision about production, like promoting: reviewers make it.
_REVIEWER = _VIEWER | {"compare", "promote", "reject", "rollback", "traffic", "alerts"}
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": _VIEWER,
    "operator": _OPERATOR,
    "reviewer": _REVIEWER,
    "admin": _OPERATOR | _REVIEWER | {"manage_users", "manage_alerts"},
    # A phone's key (core.serving's app): it predicts, and syncs what it answered offline;
    # it sees nothing else. sync: storing predictions a device made as logged traffic.
    "device": frozenset({"predict", "sync"}),
}
# The name of whoever has not signed in; its role is Config.anonymous_role.
ANONYMOUS = "anonymous"
MIN_PASSWORD_LENGTH = 10
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")
_HASHER = PasswordHasher()
# Each check takes 64 MiB for ~0.1 s: a process runs at most this many at once, so a
# flood of sign-ins queues instead of taking the memory of hundreds.
_CHECKS_AT_ONCE = threading.BoundedSemaphore(2)
# The role an account an admin disabled acts with: it may do nothing.
DISABLED = "disabled"


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user is unknown, so that a wrong name takes as long as
    a wrong password and response times do not reveal which names exist. Made on the
    first sign-in, not at import: hashing takes ~0.15 s that every command would pay."""
    return _HASHER.hash("not a password of anyone")


def validate_user_name(name: str) -> str:
    if (not isinstance(name, str) or not _NAME_PATTERN.match(name) or ".." in name
            or name == ANONYMOUS):
        raise InvalidInput(
            f"invalid user name {name!r}. To fix this, use 1-128 letters, digits, '_', '.', "
            f"'@', '+' or '-', starting with a letter or digit ('{ANONYMOUS}' is reserved).")
    return name


def check_role(role: str, roles: tuple[str, ...] = ROLES) -> str:
    if role not in roles:
        raise InvalidInput(f"unknown role {role!r}. To fix this, use one of: "
                           f"{', '.join(roles)}.")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password is too short ({len(password)} characters). To fix "
                           f"this, use at least {MIN_PASSWORD_LENGTH} characters.")
    return password


@dataclass(frozen=True)
class User:
    """A user as listed: never carries the password hash."""

    name: str
    role: str
    created_at: str
    created_by: str
    password_login: bool  # False: signs in only through the OIDC provider
    disabled: bool = False

    def as_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "created_at": self.created_at,
                "created_by": self.created_by, "password_login": self.password_login,
                "disabled": self.disabled}


class UserStore:
    """Users and their roles in the registry's database."""

    def __init__(self, database: Database, model: str):
        # ``model`` only labels the audit entries; users are shared by the registry.
        self.database, self.model = database, model

    _COLUMNS = "name, role, created_at, created_by, password_hash != '', disabled_at"

    @staticmethod
    def _user(row: Any) -> User:
        name, role, created_at, created_by, password_login, disabled_at = row
        return User(name, role, created_at, created_by, bool(password_login),
                    disabled_at is not None)

    def list_users(self) -> list[User]:
        rows = self.database.read(f"SELECT {self._COLUMNS} FROM users ORDER BY name")
        return [self._user(row) for row in rows]

    def find_user(self, name: str) -> User | None:
        # One indexed row: this runs for every action (each prediction included).
        rows = self.database.read(f"SELECT {self._COLUMNS} FROM users WHERE name = :name",
                                  {"name": name})
        return self._user(rows[0]) if rows else None

    def get_user(self, name: str) -> User:
        """The user, or InvalidInput naming where to look."""
        user = self.find_user(name)
        if user is None:
            raise InvalidInput(f"there is no user {name!r}. To fix this, see "
                               "'python -m core users list'.")
        return user

    def has_users(self) -> bool:
        return bool(self.database.read("SELECT 1 FROM users LIMIT 1"))

    def add_user(self, name: str, role: str, password: str | None, *, actor: Actor,
                 at: str) -> User:
        """Adds a user (``password`` None: OIDC sign-in only), audited in one transaction.

        ``actor`` must already be authorized; the very first user may only be an admin
        (checked here, inside the transaction, so two first starts cannot both win).
        """
        validate_user_name(name)
        check_role(role)
        password_hash = "" if password is None else _HASHER.hash(check_password(password))
        with self.database.write() as db:
            first = db.execute(text("SELECT 1 FROM users LIMIT 1")).first() is None
            if first and role != "admin":
                raise InvalidInput("the first user must be an admin (someone has to manage "
                                   f"users). To fix this, add {name} with --role admin.")
            if not first and actor.role != "admin":
                raise ActionRefused(f"{actor.name} may not add users: users already exist, so "
                                    "an admin has to. To fix this, ask an admin.")
            if db.execute(text("SELECT 1 FROM users WHERE name = :name"), {"name": name}).first():
                raise InvalidInput(f"user {name!r} already exists. To fix this, choose another "
                                   "name, or change their role with 'users set-role'.")
            db.execute(text("INSERT INTO users (name, role, password_hash, created_at, "
                            "created_by) VALUES (:name, :role, :hash, :at, :by)"),
                       {"name": name, "role": role, "hash": password_hash, "at": at,
                        "by": actor.name})
            append(db, AuditEntry(
                at=at, actor=actor.name, role=actor.role, action="add_user", outcome="done",
                model=self.model, target=f"user {name}",
                details={"user": name, "new_role": role,
                         "sign_in": "password" if password else "oidc"}))
        return self.get_user(name)

    def set_role(self, name: str, role: str, *, actor: Actor, at: str, reason: str) -> User:
        check_role(role)
        with self.database.write() as db:
            row = db.execute(text("SELECT role FROM users WHERE name = :name"),
                             {"name": name}).first()
            if row is None:
                raise InvalidInput(f"there is no user {name!r}. To fix this, see "
                                   "'python -m core users list'.")
            if row[0] == "admin" and role != "admin" and db.execute(
                    text("SELECT COUNT(*) FROM users WHERE role = 'admin'")).scalar() == 1:
                raise ActionRefused(f"{name} is the last admin; without one nobody can manage "
                                    "users. To fix this, make someone else admin first.")
            db.execute(text("UPDATE users SET role = :role WHERE name = :name"),
                       {"role": role, "name": name})
            append(db, AuditEntry(
                at=at, actor=actor.name, role=actor.role, action="set_role", outcome="done",
                model=self.model, target=f"user {name}", reason=reason,
                details={"user": name, "old_role": row[0], "new_role": role}))
        return self.get_user(name)

    def check_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs; None otherwise (in constant-ish time)."""
        rows = self.database.read("SELECT password_hash FROM users WHERE name = :name",
                                  {"name": name})
        stored = rows[0][0] if rows and rows[0][0] else _dummy_hash()
        try:
            with _CHECKS_AT_ONCE:
                _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return self.find_user(name) if stored is not _dummy_hash() else None

    def _change(self, name: str, action: str, sql: str, values: dict, *, actor: Actor,
                at: str, reason: str, details: dict) -> User:
        """One change to an existing user and its audit entry, in one transaction."""
        with self.database.write() as db:
            if db.execute(text("SELECT 1 FROM users WHERE name = :name"),
                          {"name": name}).first() is None:
                raise InvalidInput(f"there is no user {name!r}. To fix this, see "
                                   "'python -m core users list'.")
            self._keep_an_admin(db, name, action)
            db.execute(text(sql), values | {"name": name})
            append(db, AuditEntry(
                at=at, actor=actor.name, role=actor.role, action=action, outcome="done",
                model=self.model, target=f"user {name}", reason=reason,
                details={"user": name} | details))
        return self.get_user(name)

    @staticmethod
    def _keep_an_admin(db: Connection, name: str, action: str) -> None:
        if action != "disable_user":
            return
        admins = db.execute(text("SELECT name FROM users WHERE role = 'admin' AND "
                                 "disabled_at IS NULL")).scalars().all()
        if admins == [name]:
            raise ActionRefused(f"{name} is the last enabled admin; without one nobody can "
                                "manage users. To fix this, make someone else admin first.")

    def set_disabled(self, name: str, disabled: bool, *, actor: Actor, at: str,
                     reason: str) -> User:
        """Disables an account (it keeps its history and can do nothing) or enables it."""
        if disabled:
            return self._change(name, "disable_user", "UPDATE users SET disabled_at = :at, "
                                "disabled_by = :by WHERE name = :name",
                                {"at": at, "by": actor.name}, actor=actor, at=at,
                                reason=reason, details={})
        return self._change(name, "enable_user", "UPDATE users SET disabled_at = NULL, "
                            "disabled_by = NULL WHERE name = :name", {}, actor=actor, at=at,
                            reason=reason, details={})

    def set_password(self, name: str, password: str, *, actor: Actor, at: str,
                     reason: str) -> User:
        """Sets a new password (an admin's reset); the audit entry never holds it."""
        hashed = _HASHER.hash(check_password(password))
        return self._change(name, "reset_password", "UPDATE users SET password_hash = :hash "
                            "WHERE name = :name", {"hash": hashed}, actor=actor, at=at,
                            reason=reason, details={})
