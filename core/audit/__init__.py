"""The append-only, hash-chained audit log: a table in the registry's database.

Every state change writes its entry inside the same transaction as the change
itself (see ``append``), so the log and the state can never disagree: both
commit or neither does. Each entry stores the hash of the one before it and a
hash of its own content, so ``verify`` detects an edited, deleted, inserted or
reordered entry and names the first bad one. A head row records the last
entry, so deleting entries from the end is detected too.

What a plain hash chain cannot stop is someone who can write the database and
rewrites the whole chain from the first bad entry on. Two defences:

- ``AUDIT_KEY``: entries are chained with HMAC-SHA256 under a key that lives in the
  processes' environment, not in the database, so a database-only attacker cannot
  compute a valid entry. Entries written before the key was set keep their plain
  SHA-256 (``hash_scheme`` empty) and keep verifying; after the first keyed entry no
  unkeyed one may follow, and with the key set the newest entry must be keyed (a chain
  rewritten entirely as unkeyed is refused; a log that had no write since the key was
  set is sealed by any keyed entry, e.g. ``audit seal``).
- a witness outside the database: the head (``audit head``), published daily by the
  monitor to the alert channels, and passed back to ``verify`` as an anchor.
"""

from core.audit.chain import (
    GENESIS_HASH,
    KEYED,
    EntryCheck,
    Verification,
    append,
    check_entry,
    entry_hash,
    verify_rows,
)
from core.audit.entries import OUTCOMES, Actor, AuditEntry, export, stamp
from core.audit.log import AuditLog

__all__ = ["GENESIS_HASH", "KEYED", "OUTCOMES", "Actor", "AuditEntry", "AuditLog", "EntryCheck",
           "Verification", "append", "check_entry", "entry_hash", "export", "stamp",
           "verify_rows"]
