"""Append-only tables: the database itself refuses to change or remove a row.

The audit trails (model lifecycle, feedback decisions, retraining requests) keep their promise
through triggers, on SQLite and PostgreSQL alike, so no code path, CLI or hand-written SQL can
rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa


def make_append_only(conn: sa.Connection, table: str, message: str) -> None:
    """Create, once, the triggers that refuse UPDATE and DELETE on ``table`` (and TRUNCATE on
    PostgreSQL) with ``message``. Safe to call on every start; other databases are refused,
    since they could not keep the records append-only."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        for op in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
    elif dialect == "postgresql":
        conn.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{message}'; END; $$ LANGUAGE plpgsql"
        )
        triggers = {
            f"{table}_no_change": f"BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW",
            f"{table}_no_truncate": f"BEFORE TRUNCATE ON {table} FOR EACH STATEMENT",
        }
        for name, when in triggers.items():
            found = conn.execute(
                sa.text("SELECT 1 FROM pg_trigger WHERE tgname = :n"), {"n": name}
            ).first()
            if not found:
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION {table}_append_only()"
                )
    else:
        raise ValueError(f"{table} needs SQLite or PostgreSQL to stay append-only (got {dialect})")
