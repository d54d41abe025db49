"""API keys: how programs identify themselves to the serving API.

A key acts as the actor ``key:<name>`` with the role it was given, through the
same access checks as a person. The secret is shown once, at creation; only its
SHA-256 is stored. A key is 32 random bytes, so a fast hash is enough (there is
nothing to guess from a dictionary, unlike a password) and lets the server find a
key by its hash on every request. Creation and revocation are audited in the
same transaction as the change.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import text

from core.audit import Actor, AuditEntry, append
from core.errors import InvalidInput
from core.governance.users import KEY_ROLES, check_role, validate_user_name
from core.storage.database import Database

KEY_ACTOR_PREFIX = "key:"
_SECRET_PREFIX = "cmk_"  # recognisable in a leaked config file or a secret scanner
MAX_RATE_LIMIT = 100_000.0


def key_actor(name: str) -> str:
    """The actor name a key acts as in checks and the audit log."""
    return KEY_ACTOR_PREFIX + name


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never carries the secret or its hash."""

    name: str
    role: str
    rate_limit: float | None  # requests per second per server process; None: unlimited
    created_at: str
    created_by: str
    revoked_at: str | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "rate_limit": self.rate_limit,
                "created_at": self.created_at, "created_by": self.created_by,
                "revoked_at": self.revoked_at, "revoked_by": self.revoked_by,
                "active": self.active}


def check_rate_limit(rate_limit: float | None) -> float | None:
    if rate_limit is not None and not 0 < rate_limit <= MAX_RATE_LIMIT:
        raise InvalidInput(f"rate limit {rate_limit} is out of range. To fix this, give "
                           f"requests per second between 0 and {MAX_RATE_LIMIT:g}, or none "
                           "for unlimited.")
    return rate_limit


class KeyStore:
    """API keys in the registry's database (shared by every model, like users)."""

    _COLUMNS = "name, role, rate_limit, created_at, created_by, revoked_at, revoked_by"

    def __init__(self, database: Database, model: str):
        # ``model`` only labels the audit entries.
        self.database, self.model = database, model

    def list_keys(self) -> list[ApiKey]:
        rows = self.database.read(f"SELECT {self._COLUMNS} FROM api_keys ORDER BY name")
        return [ApiKey(*row) for row in rows]

    def active_keys(self) -> dict[str, ApiKey]:
        """Every active key by the hash of its secret (what a server caches)."""
        rows = self.database.read(f"SELECT key_hash, {self._COLUMNS} FROM api_keys "
                                  "WHERE revoked_at IS NULL")
        return {row[0]: ApiKey(*row[1:]) for row in rows}

    def find_active(self, name: str) -> ApiKey | None:
        rows = self.database.read(f"SELECT {self._COLUMNS} FROM api_keys WHERE name = :name "
                                  "AND revoked_at IS NULL", {"name": name})
        return ApiKey(*rows[0]) if rows else None

    def create(self, name: str, role: str, rate_limit: float | None, *, actor: Actor,
               at: str) -> tuple[ApiKey, str]:
        """Creates a key; returns it and its secret (the only time the secret exists)."""
        validate_user_name(name)
        check_role(role, KEY_ROLES)
        check_rate_limit(rate_limit)
        secret = _SECRET_PREFIX + secrets.token_urlsafe(32)
        with self.database.write() as db:
            if db.execute(text("SELECT 1 FROM api_keys WHERE name = :name"),
                          {"name": name}).first():
                raise InvalidInput(f"a key named {name!r} already exists (names are never "
                                   "reused, so the audit log stays unambiguous). To fix this, "
                                   "choose another name.")
            db.execute(text("INSERT INTO api_keys (name, role, key_hash, rate_limit, "
                            "created_at, created_by) VALUES (:name, :role, :hash, :rate, :at, "
                            ":by)"), {"name": name, "role": role, "hash": hash_secret(secret),
                                      "rate": rate_limit, "at": at, "by": actor.name})
            append(db, AuditEntry(
                at=at, actor=actor.name, role=actor.role, action="create_key", outcome="done",
                model=self.model, target=f"key {name}",
                details={"key": name, "new_role": role, "rate_limit": rate_limit}))
        return ApiKey(name, role, rate_limit, at, actor.name), secret

    def revoke(self, name: str, *, actor: Actor, at: str, reason: str) -> ApiKey:
        with self.database.write() as db:
            updated = db.execute(text(
                "UPDATE api_keys SET revoked_at = :at, revoked_by = :by WHERE name = :name "
                "AND revoked_at IS NULL"), {"at": at, "by": actor.name, "name": name}).rowcount
            if updated != 1:
                raise InvalidInput(f"there is no active key {name!r}. To fix this, see "
                                   "'python -m core keys list'.")
            append(db, AuditEntry(
                at=at, actor=actor.name, role=actor.role, action="revoke_key", outcome="done",
                model=self.model, target=f"key {name}", reason=reason, details={"key": name}))
        return next(key for key in self.list_keys() if key.name == name)
