"""Append-only tables: the database itself refuses to change or remove a row.

The audit trails (model lifecycle, feedback decisions, retraining requests) keep their promise
through triggers, on SQLite and PostgreSQL alike, so no code path, CLI or hand-written SQL can
rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa


def make_append_only(conn: sa.Connection, table: str, message: str) -> None:
    """Create, once, the triggers that refuse UPDATE and DELETE on ``table`` (and TRUNCATE on
    PostgreSQL) with ``message``. Safe to call on every start, also by a role that may not
    create anything once the triggers exist; other databases are refused, since they could not
    keep the records append-only."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        for op in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
    elif dialect == "postgresql":
        triggers = {
            f"{table}_no_change": f"BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW",
            f"{table}_no_truncate": f"BEFORE TRUNCATE ON {table} FOR EACH STATEMENT",
        }
        present = {
            row[0]
            for row in conn.execute(
                sa.text("SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(:t)"),
                {"t": table},
            )
        }
        missing = [name for name in triggers if name not in present]
        if not missing:
            # Nothing to create: a role that may not CREATE (the application role) passes.
            return
        conn.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{message}'; END; $$ LANGUAGE plpgsql"
        )
        for name in missing:
            conn.exec_driver_sql(
                f"CREATE TRIGGER {name} {triggers[name]} EXECUTE FUNCTION {table}_append_only()"
            )
    else:
        raise ValueError(f"{table} needs SQLite or PostgreSQL to stay append-only (got {dialect})")


def append_only_tables(conn: sa.Connection) -> set[str]:
    """Tables of the connected PostgreSQL database that :func:`make_append_only` protects."""
    rows = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname = c.relname || '_no_change'"
        )
    )
    return {row[0] for row in rows}
