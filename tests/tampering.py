"""What someone holding the database file (or its owner's password) could do to it."""

from __future__ import annotations

from tests.conftest import backends_of


def run_sql(config, *statements):
    """Statements straight on the database, as anyone holding its file or password could."""
    with backends_of(config).database.connect() as conn, conn.begin():
        for statement in statements:
            conn.exec_driver_sql(statement)


GUARDS = {"sqlite": ["DROP TRIGGER audit_log_is_append_only_update",
                     "DROP TRIGGER audit_log_is_append_only_delete"],
          "postgresql": ["DROP TRIGGER audit_log_is_append_only ON audit_log"]}


def tamper(config, *statements):
    """What someone with the database file (or its owner's password) could do: drop the
    guards, then edit."""
    run_sql(config, *GUARDS[backends_of(config).database.dialect], *statements)
