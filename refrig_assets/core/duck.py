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


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"
