"""What the application role may do to the tables of the operational database (PostgreSQL).

The schema is created by its owner (``refrig db migrate``); the services connect as an
application role that reads and writes rows but owns nothing, so it cannot drop, truncate or
alter a table, nor disable the triggers that keep the audit trails append-only. Each table gets
exactly:

- append-only tables (:func:`~refrig_assets.core.append_only.make_append_only`): SELECT, INSERT;
- tables whose store deletes rows (``info={DELETES_ROWS: True}`` on the ``sa.Table``):
  SELECT, INSERT, UPDATE, DELETE;
- every other table: SELECT, INSERT, UPDATE;

and USAGE on the sequences its serial columns draw from.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from refrig_assets.core.append_only import append_only_tables

# ``sa.Table(..., info={DELETES_ROWS: True})``: the table's store deletes rows.
DELETES_ROWS = "refrig_deletes_rows"

APPEND_ONLY_PRIVILEGES = ("SELECT", "INSERT")
WRITE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE")
DELETE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


def table_privileges(table: sa.Table, append_only: set[str]) -> tuple[str, ...]:
    """The privileges of the application role on ``table``."""
    if table.name in append_only:
        return APPEND_ONLY_PRIVILEGES
    if table.info.get(DELETES_ROWS):
        return DELETE_PRIVILEGES
    return WRITE_PRIVILEGES


def grant_application_role(
    conn: sa.Connection, tables: Iterable[sa.Table], role: str
) -> dict[str, tuple[str, ...]]:
    """Give ``role`` exactly its privileges on ``tables`` (whatever it held before is revoked)
    and USAGE on their sequences; returns table → privileges. PostgreSQL only."""
    if conn.dialect.name != "postgresql":
        raise ValueError(f"roles and grants need PostgreSQL (got {conn.dialect.name})")
    if not conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
        raise ValueError(f"role {role!r} does not exist (deploy/postgres/ creates refrig_app)")
    quote = conn.dialect.identifier_preparer.quote
    grantee = quote(role)
    append_only = append_only_tables(conn)
    granted: dict[str, tuple[str, ...]] = {}
    for table in tables:
        privileges = table_privileges(table, append_only)
        name = quote(table.name)
        conn.exec_driver_sql(f"REVOKE ALL ON TABLE {name} FROM {grantee}")
        conn.exec_driver_sql(f"GRANT {', '.join(privileges)} ON TABLE {name} TO {grantee}")
        sequences = conn.execute(
            sa.text(
                "SELECT s.relname FROM pg_class s JOIN pg_depend d ON d.objid = s.oid "
                "WHERE s.relkind = 'S' AND d.refobjid = to_regclass(:t)"
            ),
            {"t": table.name},
        )
        for (sequence,) in sequences:
            conn.exec_driver_sql(f"REVOKE ALL ON SEQUENCE {quote(sequence)} FROM {grantee}")
            conn.exec_driver_sql(f"GRANT USAGE ON SEQUENCE {quote(sequence)} TO {grantee}")
        granted[table.name] = privileges
    return granted
