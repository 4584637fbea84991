"""Small DuckDB helpers: a UTC connection and SQL string literals.

Named ``duck`` rather than ``duckdb`` so importing it never shadows the ``duckdb`` library.
"""

from __future__ import annotations

import duckdb


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that reads naive timestamps as UTC."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def utc_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A new connection to ``con``'s database that reads naive timestamps as UTC: its own
    temporary tables and settings of the session (close it to drop them), without the cost of
    a new database (~17 ms of CPU against ~0.2 ms)."""
    cursor = con.cursor()
    cursor.execute("SET TimeZone = 'UTC'")
    return cursor


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"
