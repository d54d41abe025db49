"""Who may do what, human decisions on versions, and the audit trail of both.

Every action goes through ``authorize`` here, whoever calls it (CLI, dashboard,
worker): hiding a button is not access control. Refusals are written to the
audit log before ``ActionRefused`` is raised. Decisions (promote, reject,
rollback) check the version's state inside the catalog's write transaction, so
two reviewers deciding at once cannot both win, and the loser is told why.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import NoReturn

from core import audit, sqlite
from core.audit import Actor, AuditEntry, Verification
from core.config import Config
from core.errors import ActionRefused, InvalidInput
from core.registry import Registry
from core.users import (ANONYMOUS, ROLE_PERMISSIONS, ROLES, User, UserStore,
                        validate_user_name)

# Decision -> (the status it starts from, the status it sets).
DECISIONS = {
    "promote": ("candidate", "champion"),
    "reject": ("candidate", "rejected"),
    "rollback": ("archived", "champion"),
}
MAX_FAILED_SIGN_INS = 5  # in a row, within SIGN_IN_LOCKOUT: further attempts are refused
SIGN_IN_LOCKOUT = timedelta(minutes=15)
MAX_REASON_LENGTH = 2000


def stamp(now: datetime) -> str:
    return now.isoformat(timespec="seconds")


def user_store(config: Config) -> UserStore:
    return UserStore(config.database, config.model_name)


def resolve_actor(config: Config, name: str) -> Actor:
    """The actor with the role they hold now; role ``unknown`` for a name not in the store."""
    if name == ANONYMOUS:
        if config.anonymous_role not in ROLES + ("none",):
            raise InvalidInput(f"ANONYMOUS_ROLE is {config.anonymous_role!r}. To fix this, "
                               f"set it to one of: {', '.join(ROLES)}, none.")
        return Actor(ANONYMOUS, config.anonymous_role)
    user = user_store(config).find_user(name)
    return Actor(name, user.role if user else "unknown")


def roles_allowed(permission: str) -> list[str]:
    return [role for role in ROLES if permission in ROLE_PERMISSIONS[role]]


def authorize(config: Config, name: str, permission: str, now: datetime, *,
              target: str = "", version: int | None = None) -> Actor:
    """The actor if their role allows ``permission``; otherwise logs the refusal and raises."""
    actor = resolve_actor(config, name[:128])
    if permission in ROLE_PERMISSIONS.get(actor.role, ()):
        return actor
    needed = " or ".join(roles_allowed(permission))
    if actor.role == "unknown":
        message = (f"there is no user {actor.name!r}. To fix this, an admin adds them with "
                   f"'python -m core users add {actor.name} --role {roles_allowed(permission)[0]}'"
                   ", or act as an existing user (--actor NAME).")
    elif actor.name == ANONYMOUS:
        message = (f"signing in is required to {permission}. To fix this, sign in (dashboard "
                   f"sidebar) or pass --actor NAME as a user with the role {needed}.")
    else:
        message = (f"{actor.name} is {_article(actor.role)} {actor.role}; {permission} needs "
                   f"the role {needed}. "
                   "To fix this, ask an admin to change your role or ask someone who has it.")
    refuse(config, actor, permission, message, now, target=target or permission,
           version=version)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def refuse(config: Config, actor: Actor, action: str, message: str, now: datetime, *,
           target: str, version: int | None = None, details: dict | None = None) -> NoReturn:
    """Writes a refused entry to the audit log, then raises ActionRefused(message)."""
    audit.append_alone(config.database, AuditEntry(
        at=stamp(now), actor=actor.name, role=actor.role, action=action, outcome="refused",
        model=config.model_name, target=target, version=version, reason=message,
        details=details or {}))
    raise ActionRefused(message)


# --- identities -----------------------------------------------------------------------

def sign_in(config: Config, name: str, password: str, now: datetime) -> Actor:
    """Checks a password; every attempt is logged, failures without saying which part was wrong.

    After MAX_FAILED_SIGN_INS failures in a row within SIGN_IN_LOCKOUT, attempts for
    that name are refused without checking the password.
    """
    name = name.strip()[:128]
    store = user_store(config)
    user = store.find_user(name)
    actor = Actor(name, user.role if user else "unknown")
    target = f"user {name}"
    if _locked_out(config, name, now):
        refuse(config, actor, "login", f"too many failed sign-ins for {name!r}. To fix this, "
               f"wait {SIGN_IN_LOCKOUT.seconds // 60} minutes, then try again.", now,
               target=target)
    if store.check_password(name, password) is None:
        refuse(config, actor, "login", "wrong user name or password. To fix this, check both "
               "and try again (an admin can reset a password).", now, target=target)
    audit.append_alone(config.database, AuditEntry(
        at=stamp(now), actor=name, role=actor.role, action="login", outcome="done",
        model=config.model_name, target=target))
    return actor


def _locked_out(config: Config, name: str, now: datetime) -> bool:
    recent = sqlite.read(config.database, "SELECT outcome, at FROM audit_log WHERE action = "
                         "'login' AND actor = ? ORDER BY seq DESC LIMIT ?",
                         (name, MAX_FAILED_SIGN_INS))
    return (len(recent) == MAX_FAILED_SIGN_INS
            and all(outcome == "refused" for outcome, _ in recent)
            and now - datetime.fromisoformat(recent[-1][1]) < SIGN_IN_LOCKOUT)


def add_user(config: Config, *, actor: str, name: str, role: str, password: str | None,
             now: datetime) -> User:
    """Adds a user. Until any user exists, anyone may add the first one, an admin (setup)."""
    store = user_store(config)
    if store.has_users():
        acting = authorize(config, actor, "manage_users", now, target=f"user {name}")
    else:
        acting = Actor(actor, "setup")
    return store.add_user(validate_user_name(name), role, password, actor=acting,
                          at=stamp(now))


def set_role(config: Config, *, actor: str, name: str, role: str, reason: str,
             now: datetime) -> User:
    acting = authorize(config, actor, "manage_users", now, target=f"user {name}")
    return user_store(config).set_role(name, role, actor=acting, at=stamp(now),
                                       reason=check_reason(reason))


# --- decisions --------------------------------------------------------------------------

def check_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a decision needs a written reason. To fix this, say why, e.g. "
                           "--reason \"fixes the brightness drift; clean accuracy held\".")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"the reason is {len(reason)} characters long. To fix this, keep it "
                           f"under {MAX_REASON_LENGTH} and link to longer notes.")
    return reason


def decide(config: Config, action: str, version: int, *, actor: str, reason: str,
           now: datetime, override_gate: bool = False, expected_champion: int | None = None,
           drift: dict | None = None) -> AuditEntry:
    """Promotes, rejects or rolls back a version on behalf of a person; returns the entry.

    Args:
        action: ``promote`` (candidate -> champion), ``reject`` (candidate -> rejected)
            or ``rollback`` (archived -> champion). The previous champion is archived.
        reason: why, in the decider's words (required).
        override_gate: acknowledges deciding against the gate's recommendation.
        expected_champion: the champion the decider looked at; if another version is
            champion by the time the decision commits, it is refused (default: the
            champion when this is called).
        drift: the champion's drift status at this moment, kept as evidence.

    Raises:
        ActionRefused: the role, the version's state, separation of duties or a
            missing gate acknowledgement forbids it (the refusal is logged first).
    """
    if action not in DECISIONS:
        raise InvalidInput(f"unknown decision {action!r}. To fix this, use one of: "
                           f"{', '.join(DECISIONS)}.")
    target = f"version {version}"
    acting = authorize(config, actor, action, now, target=target, version=version)
    reason = check_reason(reason)
    registry = Registry(config.registry_dir, config.model_name)
    chosen = registry.get_version(version)
    champion = registry.get_champion()
    from_status, to_status = DECISIONS[action]
    comparison = (registry.catalog.find_comparison(registry.model, champion.version, version)
                  if action != "rollback" else None)
    evidence = {"champion_before": champion.version, "comparison": comparison,
                "gate": comparison and {k: comparison[k] for k in
                                        ("recommendation", "reasons", "checks")},
                "gate_overridden": False, "drift": drift}

    def refuse_decision(message: str) -> NoReturn:
        refuse(config, acting, action, message, now, target=target, version=version,
               details={"reason_given": reason} | evidence)

    if chosen.status != from_status:
        refuse_decision(f"version {version} is {chosen.status}; only a {from_status} version "
                        f"can be {_past(action)}. To fix this, pick a {from_status} version "
                        "(see 'python -m core versions').")
    if expected_champion is not None and expected_champion != champion.version:
        refuse_decision(f"the champion is now version {champion.version}, not version "
                        f"{expected_champion} as when you looked. To fix this, look at the "
                        "current state and decide again.")
    if action == "promote" and comparison is None:
        refuse_decision(f"version {version} has not been compared with the champion (version "
                        f"{champion.version}), so there is no evidence to decide on. To fix "
                        f"this, run 'python -m core compare {champion.version} {version}'.")
    advice = comparison and comparison["recommendation"]
    against_gate = ((action == "promote" and advice != "promote")
                    or (action == "reject" and advice == "promote"))
    if against_gate and not override_gate:
        refuse_decision(f"the gate recommends {advice} for version {version} ("
                        + "; ".join(comparison["reasons"]) + f"), and you chose to {action}. "
                        "To fix this, if you decide against the gate, acknowledge it "
                        "explicitly (--override-gate, or the checkbox on the Governance page).")
    evidence["gate_overridden"] = bool(against_gate)
    if (action == "promote" and config.separation_of_duties
            and chosen.created_by == acting.name):
        refuse_decision(f"{acting.name} submitted the retraining that produced version "
                        f"{version}, so cannot approve it (separation of duties). To fix "
                        "this, ask another reviewer to decide.")
    entry = AuditEntry(at=stamp(now), actor=acting.name, role=acting.role, action=action,
                       outcome="done", model=config.model_name, target=target,
                       version=version, reason=reason,
                       details={"from_status": from_status, "to_status": to_status}
                       | evidence)
    expected = {version: from_status, champion.version: "champion"}
    try:
        return registry.catalog.change_status(registry.model, version, to_status,
                                              expected=expected, entry=entry)
    except ActionRefused as error:  # lost a race to another decision: logged, then raised
        refuse_decision(str(error))


def _past(action: str) -> str:
    return {"promote": "promoted", "reject": "rejected", "rollback": "rolled back to"}[action]


# --- reading the log --------------------------------------------------------------------

def verify_audit(config: Config, anchor: tuple[int, str] | None = None) -> Verification:
    """Checks the hash chain, then that the catalog's statuses are the ones the log recorded.

    A status changed in the database without going through a decision has no
    matching entry, so it is reported like an edited entry.
    """
    result = audit.verify(config.database, anchor)
    if not result.ok:
        return result
    registry = Registry(config.registry_dir, config.model_name)
    recorded = {}
    for change in registry.status_history():
        recorded[change["version"]] = change["to_status"]
    for version in registry.list_versions():
        if recorded.get(version.version) != version.status:
            return replace(result, ok=False, problem=(
                f"version {version.version} is {version.status} in the catalog, but the audit "
                f"log records it as {recorded.get(version.version) or 'never registered'}: "
                "its status was changed outside a decision"))
    return result
