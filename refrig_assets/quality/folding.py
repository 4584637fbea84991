"""Folding the per-sensor copies of a reading: one reading delivered in parts.

A gateway or an export that sends a device's sensors in separate files (or messages) delivers
several rows of one ``(device_id, ts)``, each holding some of the measurements. When no
measured column holds two different values among them, they are one reading: the copy that
landed first (:data:`~refrig_assets.quality.rules.ARRIVAL_ORDER`) is kept with every value the
copies hold, and each later copy that added a value is quarantined as ``merged_reading``,
naming the kept file and row. Copies whose values conflict stay ``duplicate_reading``, and so
does a later copy that adds nothing (a resend): the first copy is kept as delivered.

The SQL runs on DuckDB and, translated, on Spark (no ``OVER ()``, no ``* REPLACE``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

MERGED_RULE = "merged_reading"
# Relations this module creates on the hour's connection.
COPY_ROWS = "fold_copy_rows"
FOLD_KEPT = "fold_kept"
FOLD_MERGED = "fold_merged"
FOLDED_HOUR = "folded_hour"


def fold_copies(con: Any, keyed_rows: str, copied: str, measured: list[str], order: str) -> int:
    """Find the readings of ``copied`` (a relation of ``device_id, ts``: the readings delivered
    more than once) whose copies in ``keyed_rows``, taken in ``order`` (columns of
    ``keyed_rows``), fold into one: no column of ``measured``
    holds two different values among them, and a later copy holds a value the first one lacks.

    Creates :data:`FOLD_KEPT` (the first copy of each folded reading, by ``source_file`` and
    ``source_row``, with each measured column's value among the copies) and
    :data:`FOLD_MERGED` (the later copies that added a value, with the columns they added, the
    kept copy's file and row); returns how many copies were merged (0: nothing to fold)."""
    window = "PARTITION BY device_id, ts"
    earlier = f"OVER ({window} ORDER BY copy_no ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {COPY_ROWS} AS "
        "SELECT r.*, row_number() OVER "
        f"(PARTITION BY r.device_id, r.ts ORDER BY {_prefixed(order, 'r.')}) AS copy_no "
        f"FROM ({keyed_rows}) r JOIN (SELECT DISTINCT device_id, ts FROM {copied}) c "
        "ON c.device_id = r.device_id AND c.ts = r.ts"
    )
    # at most one distinct value among the copies: the least and the greatest are the same
    # (a count of distinct values holds a set per reading and column)
    agree = " AND ".join(f"coalesce(min({m}) = max({m}), TRUE)" for m in measured) or "FALSE"
    fills = " OR ".join(
        f"(count({m}) > 0 AND count(CASE WHEN copy_no = 1 THEN {m} END) = 0)" for m in measured
    )
    values = "".join(f", max({m}) AS {m}" for m in measured)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {FOLD_KEPT} AS "
        "SELECT device_id, ts, "
        "max(CASE WHEN copy_no = 1 THEN source_file END) AS source_file, "
        f"max(CASE WHEN copy_no = 1 THEN source_row END) AS source_row{values} "
        f"FROM {COPY_ROWS} GROUP BY device_id, ts HAVING {agree} AND ({fills or 'FALSE'})"
    )
    added = [f"({m} IS NOT NULL AND count({m}) {earlier} = 0)" for m in measured]
    names = ", ".join(f"CASE WHEN add_{i} THEN '{m}' END" for i, m in enumerate(measured))
    flags = "".join(f", {a} AS add_{i}" for i, a in enumerate(added))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {FOLD_MERGED} AS "
        "SELECT c.source_file, c.source_row, c.device_id, c.ts, "
        f"concat_ws(', ', {names}) AS added, k.source_file AS kept_file, "
        "k.source_row AS kept_row "
        f"FROM (SELECT device_id, ts, source_file, source_row, copy_no{flags} FROM {COPY_ROWS}) c "
        f"JOIN {FOLD_KEPT} k ON k.device_id = c.device_id AND k.ts = c.ts "
        f"WHERE c.copy_no > 1 AND ({' OR '.join(f'add_{i}' for i in range(len(measured)))})"
    )
    con.execute(f"DROP TABLE {COPY_ROWS}")
    return int(con.execute(f"SELECT count(*) FROM {FOLD_MERGED}").fetchall()[0][0])


def create_folded_hour(con: Any, rows: str, columns: list[str], measured: list[str]) -> None:
    """:data:`FOLDED_HOUR`: ``rows`` (with ``columns``) without the merged copies, each kept
    copy holding the values of its reading's copies (after :func:`fold_copies`)."""
    picked = ", ".join(
        f"coalesce(k.{c}, s.{c}) AS {c}" if c in measured else f"s.{c}" for c in columns
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {FOLDED_HOUR} AS SELECT {picked} FROM ({rows}) s "
        f"LEFT JOIN {FOLD_KEPT} k ON k.source_file = s.source_file "
        "AND k.source_row = s.source_row AND k.device_id = s.device_id AND k.ts = s.ts "
        f"WHERE NOT EXISTS (SELECT 1 FROM {FOLD_MERGED} m "
        "WHERE m.source_file = s.source_file AND m.source_row = s.source_row)"
    )


def merged_quarantine_sql() -> str:
    """The quarantine entries of the merged copies (after :func:`fold_copies`), in the
    quarantine's column order."""
    where = "source_file || ' row ' || CAST(source_row AS VARCHAR)"
    return (
        f'SELECT source_file, source_row AS "row", CAST(NULL AS VARCHAR) AS "column", '
        f"'{MERGED_RULE}' AS rule, CAST(ts AS VARCHAR) AS value, "
        f"{where} || ': values of ' || added || ' merged into the reading of device ' "
        "|| device_id || ' at ' || strftime(ts, '%Y-%m-%dT%H:%M:%SZ') || ' (kept: ' "
        "|| kept_file || ' row ' || CAST(kept_row AS VARCHAR) || ')' AS message, device_id, ts "
        f"FROM {FOLD_MERGED}"
    )


def source_columns(con: Any, relation: str) -> list[str]:
    """The column names of ``relation`` (no row read), on a DuckDB connection or the Spark
    engine's stand-in for one, which has no cursor description (so not
    :func:`~refrig_assets.core.contract_sql.relation_columns`)."""
    frame: pd.DataFrame = con.execute(f"SELECT * FROM {relation} LIMIT 0").df()
    return [str(c) for c in frame.columns]


def _prefixed(order: str, alias: str) -> str:
    return ", ".join(alias + part.strip() for part in order.split(","))
