"""Quality rules: turn the readings of one hour into clean readings plus a quarantine.

Nothing is dropped silently. A row is either clean (possibly carrying quality flags) or in the
quarantine with its file, row, column, rule, value and a message. Rules and ranges come from the
contracts; the SQL runs on DuckDB (and is plain enough for other SQL engines).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd
import pyarrow as pa

from refrig_assets.contracts import Contract, quality_flag_names
from refrig_assets.landing import FileRejection


def flag_bit(name: str) -> int:
    """Bit value of a quality flag in ``quality_mask``."""
    return 1 << quality_flag_names().index(name)


def flags_from_mask_sql(mask_expr: str) -> str:
    """SQL turning a quality mask into the comma-separated flag names."""
    parts = [
        f"CASE WHEN ({mask_expr}) & {1 << i} <> 0 THEN '{name}' END"
        for i, name in enumerate(quality_flag_names())
    ]
    return f"concat_ws(',', {', '.join(parts)})"


def decode_mask(mask: int) -> list[str]:
    """Flag names set in a quality mask."""
    return [n for i, n in enumerate(quality_flag_names()) if mask & (1 << i)]


@dataclass
class QualityResult:
    """Counts that must add up: rows_read == rows_clean + rows_quarantined."""

    rows_read: int
    rows_clean: int
    rows_quarantined: int
    quarantine: pd.DataFrame
    files: list[str]
    rejected_files: list[FileRejection]


def quarantine_frame(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Quarantine rows in the quarantined_readings column order."""
    cols = ["source_file", "row", "column", "rule", "value", "message", "device_id", "ts"]
    df = pd.DataFrame(rows, columns=cols) if isinstance(rows, list) else rows[cols]
    df["row"] = df["row"].astype("int64")
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    for c in ["source_file", "column", "rule", "value", "message", "device_id"]:
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def _out_of_range_sql(contract: Contract) -> str:
    terms = [
        f"({c.name} IS NOT NULL AND ({c.name} < {c.range[0]} OR {c.name} > {c.range[1]}))"
        for c in contract.columns_with_role("sensor")
        if c.range
    ]
    return " OR ".join(terms) or "FALSE"


def _dropout_sql(contract: Contract) -> str:
    return " OR ".join(f"{c} IS NULL" for c in contract.sensor_columns) or "FALSE"


def clean_hour(
    con: duckdb.DuckDBPyConnection,
    readings: pa.Table,
    contract: Contract,
    registered_devices: pa.Table,
    rejected_files: list[FileRejection],
) -> tuple[str, QualityResult]:
    """Apply the quality rules to the readings of one hour (see :func:`landing.read_hour`).

    Returns the SQL of the clean rows (sorted by device_id, ts; the caller streams it to
    Parquet with the same connection) and the quarantine with the counts.
    """
    con.register("readings_in", readings)
    con.register("registered_devices", registered_devices)
    value_cols = ", ".join(contract.column_names)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE hour_rows AS
        SELECT {value_cols}, source_file, source_row, parse_errors,
               row_number() OVER (PARTITION BY device_id, ts ORDER BY source_file, source_row) AS dup_rank
        FROM readings_in
        """
    )
    key_missing = " OR ".join(f"{c.name} IS NULL" for c in contract.columns if not c.nullable)
    quarantine = con.execute(
        f"""
        SELECT source_file, source_row AS row,
          CASE WHEN parse_errors <> '' THEN split_part(split_part(parse_errors, ';', 1), '=', 1)
               WHEN device_id IS NULL THEN 'device_id'
               WHEN ts IS NULL THEN 'ts'
               ELSE NULL END AS "column",
          CASE WHEN parse_errors <> '' THEN 'unparsable_value'
               WHEN {key_missing} THEN 'missing_value'
               ELSE 'duplicate_reading' END AS rule,
          CASE WHEN parse_errors <> '' THEN
                 substr(split_part(parse_errors, ';', 1), strpos(split_part(parse_errors, ';', 1), '=') + 1)
               WHEN {key_missing} THEN NULL
               ELSE CAST(ts AS VARCHAR) END AS value,
          device_id, ts
        FROM hour_rows
        WHERE parse_errors <> '' OR {key_missing} OR dup_rank > 1
        ORDER BY source_file, source_row
        """
    ).df()
    if len(quarantine):
        quarantine["message"] = quarantine.apply(_row_message, axis=1)
    else:
        quarantine["message"] = pd.Series(dtype=object)
    file_rows = [
        {
            "source_file": r.source_file,
            "row": -1,
            "column": r.column,
            "rule": r.rule,
            "value": None,
            "message": r.message,
            "device_id": None,
            "ts": None,
        }
        for r in rejected_files
    ]
    quarantine = quarantine_frame(
        pd.concat([quarantine_frame(file_rows), quarantine_frame(quarantine)], ignore_index=True)
        if file_rows
        else quarantine
    )
    out_of_range, dropout = _out_of_range_sql(contract), _dropout_sql(contract)
    mask = (
        f"(CASE WHEN {dropout} THEN {flag_bit('SENSOR_DROPOUT')} ELSE 0 END)"
        f" | (CASE WHEN {out_of_range} THEN {flag_bit('OUT_OF_RANGE')} ELSE 0 END)"
        f" | (CASE WHEN r.device_id IS NULL THEN {flag_bit('UNREGISTERED_DEVICE')} ELSE 0 END)"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE clean_rows AS
        SELECT h.*, CAST({mask} AS BIGINT) AS quality_mask
        FROM hour_rows h LEFT JOIN registered_devices r USING (device_id)
        WHERE h.parse_errors = '' AND NOT ({key_missing.replace("device_id", "h.device_id")}) AND h.dup_rank = 1
        """
    )
    rows_read = con.execute("SELECT count(*) FROM hour_rows").fetchone()[0]
    rows_clean = con.execute("SELECT count(*) FROM clean_rows").fetchone()[0]
    clean_sql = (
        f"SELECT {value_cols}, quality_mask, {flags_from_mask_sql('quality_mask')} AS quality_flags,"
        f" source_file FROM clean_rows ORDER BY device_id, ts"
    )
    files = sorted(set(readings.column("source_file").to_pylist())) if readings.num_rows else []
    result = QualityResult(
        rows_read=rows_read + 0,
        rows_clean=rows_clean,
        rows_quarantined=int((quarantine["row"] >= 0).sum()),
        quarantine=quarantine,
        files=files,
        rejected_files=rejected_files,
    )
    return clean_sql, result


def _row_message(r: pd.Series) -> str:
    where = f"{r.source_file} row {r.row}"
    if r.rule == "unparsable_value":
        return (
            f"{where}: column {r.column!r} value {r.value!r} cannot be parsed as its contract type"
        )
    if r.rule == "missing_value":
        return f"{where}: required column {r.column!r} is empty"
    return f"{where}: duplicate reading for device {r.device_id} at {r.ts} (first copy kept)"
