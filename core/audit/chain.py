"""The chain: each entry's hash (SHA-256, or HMAC-SHA256 under AUDIT_KEY), appending an
entry inside a write transaction, and verifying a chain (see ``core.audit``)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, replace

from sqlalchemy import Connection, text

from core.audit.entries import COLUMNS, OUTCOMES, AuditEntry
from core.errors import InvalidInput

GENESIS_HASH = "0" * 64
KEYED = "hmac-sha256"  # hash_scheme of entries chained under AUDIT_KEY; empty: SHA-256


class AuditKeyMissing(ValueError):
    """A keyed entry was checked without AUDIT_KEY."""


def entry_hash(row: dict, key: str = "") -> str:
    """The hash of an entry's content (every column but ``hash``), canonical JSON: plain
    SHA-256, or HMAC-SHA256 under ``key`` for an entry whose ``hash_scheme`` is KEYED.

    ``details`` is hashed as the exact text stored, so reading it back can never
    change the hash (no float round-trips). An entry from before schemes existed (no
    ``hash_scheme``) is hashed exactly as it was then.
    """
    content = {name: row[name] for name in COLUMNS if name not in ("hash", "hash_scheme")}
    scheme = row.get("hash_scheme") or None
    if scheme is not None:
        content["hash_scheme"] = scheme
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode("utf-8")
    if scheme is None:
        return hashlib.sha256(canonical).hexdigest()
    if scheme != KEYED:
        raise ValueError(f"unknown hash scheme {scheme!r}")
    if not key:
        raise AuditKeyMissing(row.get("seq"))
    return hmac.new(key.encode("utf-8"), canonical, hashlib.sha256).hexdigest()


_INSERT = text(f"INSERT INTO audit_log ({', '.join(COLUMNS)}) "
               f"VALUES ({', '.join(':' + c for c in COLUMNS)})")


def append(conn: Connection, entry: AuditEntry) -> AuditEntry:
    """Appends ``entry`` inside the caller's open write transaction; returns it chained.

    The caller's connection comes from ``Database.write()``, which holds the write
    lock, so no other writer can append between reading the last entry and this insert.
    It also carries the database's AUDIT_KEY: a keyed chain is never extended by a
    process without the key, or with another one (the action fails, nothing is written).
    """
    if entry.outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {entry.outcome!r}")
    key = conn.get_execution_options().get("audit_key") or ""
    last = conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM audit_log ORDER BY seq "
                             "DESC LIMIT 1")).first()
    if last is None:
        seq, prev_hash = 1, GENESIS_HASH
    else:
        previous = dict(zip(COLUMNS, last))
        seq, prev_hash = previous["seq"] + 1, previous["hash"]
        _check_key(previous, key)
    row = entry.as_dict() | {"seq": seq, "prev_hash": prev_hash,
                             "details": json.dumps(entry.details, sort_keys=True),
                             "hash_scheme": KEYED if key else None}
    row["hash"] = entry_hash(row, key)
    conn.execute(_INSERT, row)
    conn.execute(text("DELETE FROM audit_head WHERE id = 1"))
    conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :seq, :hash)"),
                 {"seq": seq, "hash": row["hash"]})
    return replace(entry, seq=seq, prev_hash=prev_hash, hash=row["hash"],
                   hash_scheme=row["hash_scheme"])


def _check_key(last: dict, key: str) -> None:
    """Refuses to extend a keyed chain without its key, or with another key."""
    if last.get("hash_scheme") != KEYED:
        return
    if not key:
        raise InvalidInput("the audit log is keyed (AUDIT_KEY) and this process has no "
                           "AUDIT_KEY, so it may not add to it. To fix this, set AUDIT_KEY "
                           "as on the other processes.")
    if not hmac.compare_digest(entry_hash(last, key), last["hash"]):
        raise InvalidInput("this process's AUDIT_KEY is not the key the audit log is kept "
                           "with, so it may not add to it. To fix this, set the same "
                           "AUDIT_KEY as on the other processes.")


@dataclass(frozen=True)
class Verification:
    """The result of checking the chain."""

    ok: bool
    entries: int
    head_hash: str
    first_bad: int | None = None  # seq of the first bad entry
    problem: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def verify_rows(rows: list[dict], head: tuple | None,
                anchor: tuple[int, str] | None = None, key: str = "") -> Verification:
    """Checks the chain of ``rows`` (oldest first) against the recorded ``head``, keyed
    entries with ``key`` (AUDIT_KEY; see the module)."""

    def bad(seq: int, problem: str) -> Verification:
        return Verification(False, len(rows), rows[-1]["hash"] if rows else GENESIS_HASH,
                            seq, problem)

    expected_prev = GENESIS_HASH
    keyed_from: int | None = None  # the first keyed entry
    for position, row in enumerate(rows, start=1):
        seq = row["seq"]
        if seq != position:
            missing = position if seq > position else seq
            return bad(missing, f"entry {missing} is missing or out of place: the log jumps "
                                f"from entry {position - 1} to entry {seq} (deleted or "
                                "inserted entries)")
        if keyed_from is not None and not row.get("hash_scheme"):
            return bad(seq, f"entry {seq} is not keyed though entry {keyed_from} before it "
                            "is: it was written without AUDIT_KEY, or the chain was rewritten "
                            "from there by someone without the key")
        try:
            recomputed = entry_hash(row, key)
        except AuditKeyMissing:
            return bad(seq, f"entries from {seq} on are keyed with AUDIT_KEY, which is not "
                            "set here. To fix this, verify with AUDIT_KEY set.")
        if not hmac.compare_digest(recomputed, row["hash"]):
            return bad(seq, f"entry {seq} was edited: its content no longer matches its hash")
        if row.get("hash_scheme") and keyed_from is None:
            keyed_from = seq
        if row["prev_hash"] != expected_prev:
            return bad(seq, f"entry {seq} does not follow entry {seq - 1}: its link to the "
                            "previous entry is broken (an entry before it was deleted, "
                            "inserted, replaced or moved)")
        expected_prev = row["hash"]
    last_seq, last_hash = (rows[-1]["seq"], rows[-1]["hash"]) if rows else (0, GENESIS_HASH)
    head_seq, head_hash = tuple(head) if head else (0, GENESIS_HASH)
    if (head_seq, head_hash) != (last_seq, last_hash):
        first = min(head_seq, last_seq) + 1 if head_seq != last_seq else last_seq
        return bad(first, f"the log ends at entry {last_seq} but its head records entry "
                          f"{head_seq}: entries were deleted from or added to the end")
    if anchor is not None:
        seq, expected = anchor
        if seq > len(rows) or rows[seq - 1]["hash"] != expected:
            return bad(seq, f"entry {seq} no longer has the anchored hash {expected[:12]}…: "
                            "the chain was rewritten from there on")
    if key and rows and not rows[-1].get("hash_scheme"):
        # Else a chain rewritten wholly without the key would pass as one never keyed.
        return bad(last_seq, f"the newest entry ({last_seq}) is not keyed although "
                             "AUDIT_KEY is set: the chain was rewritten by someone without "
                             "the key, or nothing was written since the key was set. In the "
                             "second case, seal it: python -m core audit seal --actor ADMIN.")
    return Verification(True, len(rows), last_hash)


@dataclass(frozen=True)
class EntryCheck:
    """Whether one entry is still what was written: its content hashes to its stored hash,
    it links to the entry before it, and the entry after it (or the head) links to it."""

    seq: int
    stored_hash: str
    recomputed_hash: str
    links_to_previous: bool
    linked_from_next: bool

    @property
    def content_matches(self) -> bool:
        return self.stored_hash == self.recomputed_hash

    @property
    def matches_chain(self) -> bool:
        return self.content_matches and self.links_to_previous and self.linked_from_next


def check_entry(rows: list[dict], head: tuple | None, seq: int, key: str = "") -> EntryCheck:
    """Checks entry ``seq`` of ``rows`` (every entry as stored, oldest first)."""
    position = next(i for i, row in enumerate(rows) if row["seq"] == seq)
    row = rows[position]
    previous = rows[position - 1]["hash"] if position else GENESIS_HASH
    if position + 1 < len(rows):
        linked = rows[position + 1]["prev_hash"] == row["hash"]
    else:
        linked = head is not None and tuple(head) == (seq, row["hash"])
    try:
        recomputed = entry_hash(row, key)
    except AuditKeyMissing:
        recomputed = "unknown: the entry is keyed and AUDIT_KEY is not set here"
    return EntryCheck(seq, row["hash"], recomputed, row["prev_hash"] == previous, linked)
