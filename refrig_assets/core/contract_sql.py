"""Contract validation in SQL, for datasets too large to hand to pandera row by row.

Checks the same rules as :meth:`Contract.pandera_schema` (required columns, nulls, ranges,
allowed values, primary key) on a DuckDB relation and returns one row per failing check.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core.contracts import Contract
from refrig_assets.core.device_ranges import device_cuts, in_range_sql, threads


def relation_columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    """Column names of a relation (the probe's result is consumed, so the connection is free)."""
    cursor = con.execute(f"SELECT * FROM {relation} LIMIT 0")
    names = [d[0] for d in cursor.description]
    cursor.fetchall()
    return names


def sql_violations(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    contract: Contract,
    range_exempt_sql: str | None = None,
) -> pd.DataFrame:
    """Failing checks of ``relation`` against ``contract`` (column, check, failures, example).

    ``range_exempt_sql`` is a predicate for rows whose out-of-range values are allowed because
    they are flagged (clean readings keep such values, marked OUT_OF_RANGE).
    """
    present = set(relation_columns(con, relation))
    rows = []
    for c in contract.columns:
        if c.name not in present:
            rows.append((c.name, "column_present", 1, None))
    probes = []
    for c in contract.columns:
        if c.name not in present:
            continue
        if not c.nullable:
            probes.append((c.name, "not_nullable", f"{c.name} IS NULL", "NULL"))
        if c.range:
            cond = f"{c.name} IS NOT NULL AND ({c.name} < {c.range[0]} OR {c.name} > {c.range[1]})"
            if range_exempt_sql:
                cond = f"({cond}) AND NOT ({range_exempt_sql})"
            probes.append(
                (
                    c.name,
                    f"in_range({c.range[0]}, {c.range[1]})",
                    cond,
                    c.name,
                )
            )
        if c.allowed:
            allowed = ", ".join("'" + a.replace("'", "''") + "'" for a in c.allowed)
            cond = f"{c.name} IS NOT NULL AND {c.name} NOT IN ({allowed})"
            probes.append((c.name, "isin", cond, c.name))
    # Probes the file's footer statistics prove to find nothing are left out of the scan.
    proven = proven_by_statistics(con, relation, contract)
    probes = [p for p in probes if (p[0], p[1]) not in proven]
    if probes:
        # count_if over every probe in one scan (FILTER aggregates are ~2x slower in DuckDB);
        # examples only for the probes that failed, in a second scan that clean data never needs.
        counts = con.execute(
            f"SELECT {', '.join(f'count_if({cond})' for _, _, cond, _ in probes)} FROM {relation}"
        ).fetchall()[0]
        failed = [(p, int(n)) for p, n in zip(probes, counts, strict=True) if n]
        if failed:
            examples = con.execute(
                "SELECT "
                + ", ".join(
                    f"CAST(any_value({example}) FILTER (WHERE {cond}) AS VARCHAR)"
                    for (_, _, cond, example), _ in failed
                )
                + f" FROM {relation}"
            ).fetchall()[0]
            for ((col, check, _, _), n), example in zip(failed, examples, strict=True):
                rows.append((col, check, n, example))
    key = [k for k in contract.primary_key if k in present]
    if key:
        dupes = repeated_keys(con, relation, key)
        if dupes:
            rows.append((",".join(key), "unique_key", int(dupes), None))
    return pd.DataFrame(rows, columns=["column", "check", "failures", "example"])


def parquet_file_of(con: duckdb.DuckDBPyConnection, relation: str) -> Path | None:
    """The Parquet file ``relation`` is a plain view of (``SELECT * FROM read_parquet('<file>')``,
    perhaps with a WHERE clause: every row of the view is a row of the file), else None."""
    found = con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = ? AND NOT internal", [relation]
    ).fetchall()
    if len(found) != 1:
        return None
    head, sep, select = found[0][0].partition(" AS ")
    if not sep or not head.startswith("CREATE VIEW "):
        return None
    tree = json.loads(
        con.execute("SELECT json_serialize_sql(?)", [select.rstrip().rstrip(";")]).fetchall()[0][0]
    )
    try:
        (statement,) = tree["statements"]
        node = statement["node"]
        (star,) = node["select_list"]
        source = node["from_table"]
        (argument,) = source["function"]["arguments"]
        literal = argument["expression"]["literal"]
        plain = (
            not tree["error"]
            and node["type"] == "SELECT_NODE"
            and not node["modifiers"]
            and not node["cte_map"]["map"]
            and not node["group_expressions"]
            and not node["group_sets"]
            and node["having"] is None
            and node["qualify"] is None
            and node["sample"] is None
            and star["type"] == "STAR"
            and not star["relation_name"]
            and not star["columns"]
            and star["expr"] is None
            and not star["exclude_list"]
            and not star["qualified_exclude_list"]
            and not star["replace_list"]
            and not star["rename_list"]
            and source["type"] == "TABLE_FUNCTION"
            and source["sample"] is None
            and source["function"]["function_name"] == "read_parquet"
            and not source["function"]["schema"]
            and not argument["name"]
            and argument["expression"]["class"] == "CONSTANT"
            and literal["kind"] == "STRING"
        )
    except (KeyError, TypeError, ValueError):
        return None
    path = literal["text"]
    # read_parquet takes a glob: a name with glob characters may stand for several files.
    if not plain or any(ch in path for ch in "*?[{") or not Path(path).is_file():
        return None
    return Path(path)


def proven_by_statistics(
    con: duckdb.DuckDBPyConnection, relation: str, contract: Contract
) -> set[tuple[str, str]]:
    """(column, check) probes of ``sql_violations`` that cannot fail on ``relation``, proven
    from the footer statistics of the Parquet file it views (empty when it views none).

    Only exact proofs: ``not_nullable`` when every row group records a null count of 0; a
    range when every row group records min and max within it, for integers, and for doubles
    only in a file this DuckDB version wrote. Other writers (pyarrow) leave NaN out of min/max
    while SQL counts NaN as above every bound; this DuckDB writes no min/max for a chunk with
    a NaN (a test holds it to that). A row group without the statistic leaves the probe to the
    scan."""
    path = parquet_file_of(con, relation)
    if path is None:
        return set()
    meta = pq.read_metadata(path)
    nan_free = meta.created_by.startswith(f"DuckDB version v{duckdb.__version__} ")
    stats: dict[str, list[pq.Statistics | None]] = {}
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for j in range(group.num_columns):
            chunk = group.column(j)
            stats.setdefault(chunk.path_in_schema, []).append(chunk.statistics)
    proven: set[tuple[str, str]] = set()
    for c in contract.columns:
        chunks = stats.get(c.name)
        if chunks is None or len(chunks) != meta.num_row_groups:
            continue
        if not c.nullable and all(
            s is not None and s.has_null_count and s.null_count == 0 for s in chunks
        ):
            proven.add((c.name, "not_nullable"))
        if c.range and all(_within(s, c.range, nan_free) for s in chunks):
            proven.add((c.name, f"in_range({c.range[0]}, {c.range[1]})"))
    return proven


def _within(stats: pq.Statistics | None, bounds: tuple[float, float], nan_free: bool) -> bool:
    """Whether a row group's statistics prove its values lie within ``bounds``: signed
    integers, or doubles where min/max are known to be NaN-free (``nan_free``)."""
    if stats is None or not stats.has_min_max:
        return False
    if stats.physical_type == "DOUBLE":
        if not nan_free:
            return False
    elif stats.physical_type in ("INT32", "INT64"):
        logical = json.loads(stats.logical_type.to_json())
        if logical.get("Type") not in ("None", "Int") or logical.get("isSigned") is False:
            return False
    else:
        return False
    return bool(bounds[0] <= stats.min and stats.max <= bounds[1])


def repeated_keys(con: duckdb.DuckDBPyConnection, relation: str, key: list[str]) -> int:
    """How many key values occur more than once in ``relation``.

    Datasets written sorted by their key (clean readings, features) are checked in one ordered
    pass: rows in key order with no two neighbours equal hold every key once. Anything else —
    rows out of order, equal neighbours, a NULL in the key — is counted by grouping.

    A key led by ``device_id`` over a Parquet file sorted by device is passed in device-id
    ranges side by side (one per DuckDB thread, cut at row groups; an ordered pass runs on one
    thread): the ranges hold different devices, so each in key order without equal neighbours
    means every key once, as the whole pass would find."""
    prev = [f"lag({k}) OVER () AS _prev_{i}" for i, k in enumerate(key)]
    before = "FALSE"
    for i in reversed(range(len(key))):
        before = f"({key[i]} < _prev_{i} OR ({key[i]} = _prev_{i} AND {before}))"
    same = " AND ".join(f"{k} = _prev_{i}" for i, k in enumerate(key))
    has_null = " OR ".join(f"{k} IS NULL" for k in key)
    path = parquet_file_of(con, relation) if key[0] == "device_id" else None
    cuts = device_cuts(path, threads(con), nulls=True) if path is not None else []
    ranges = [in_range_sql(cuts, k) for k in range(len(cuts) + 1)] if cuts else ["TRUE"]
    found = con.execute(
        " UNION ALL ".join(
            f"SELECT count_if({before}), count_if({same}), count_if({has_null}) "
            f"FROM (SELECT {', '.join(key)}, {', '.join(prev)} FROM {relation} WHERE {where})"
            for where in ranges
        )
    ).fetchall()
    if not any(any(counts) for counts in found):
        return 0
    return con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {relation} GROUP BY {', '.join(key)} "
        "HAVING count(*) > 1)"
    ).fetchall()[0][0]


def sql_violation_samples(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    contract: Contract,
    limit: int = 10,
    range_exempt_sql: str | None = None,
) -> pd.DataFrame:
    """Up to ``limit`` failing rows of ``relation`` (key columns, failing column, check, value)."""
    present = set(relation_columns(con, relation))
    key = [k for k in contract.primary_key if k in present]
    probes = []
    for c in contract.columns:
        if c.name not in present:
            continue
        if not c.nullable:
            probes.append((c.name, "not_nullable", f"{c.name} IS NULL"))
        if c.range:
            cond = f"{c.name} IS NOT NULL AND ({c.name} < {c.range[0]} OR {c.name} > {c.range[1]})"
            if range_exempt_sql:
                cond = f"({cond}) AND NOT ({range_exempt_sql})"
            probes.append((c.name, f"in_range({c.range[0]}, {c.range[1]})", cond))
        if c.allowed:
            allowed = ", ".join("'" + a.replace("'", "''") + "'" for a in c.allowed)
            probes.append((c.name, "isin", f"{c.name} IS NOT NULL AND {c.name} NOT IN ({allowed})"))
    if not probes:
        return pd.DataFrame(columns=[*key, "column", "check", "value"])
    keys = "".join(f"CAST({k} AS VARCHAR) AS {k}, " for k in key)
    parts = [
        f"(SELECT {keys}'{col}' AS \"column\", '{check}' AS \"check\", "
        f"CAST({col} AS VARCHAR) AS value FROM {relation} WHERE {cond} LIMIT {int(limit)})"
        for col, check, cond in probes
    ]
    return con.execute(f"SELECT * FROM ({' UNION ALL '.join(parts)}) LIMIT {int(limit)}").df()


def column_changes(previous: dict[str, str] | None, contract: Contract) -> dict[str, list[str]]:
    """Columns added, removed or retyped in ``contract`` since ``previous`` (name → type).

    Empty lists when nothing changed or there is no previous version to compare with.
    """
    now = {c.name: c.type for c in contract.columns}
    if not previous:
        return {"added": [], "removed": [], "retyped": []}
    return {
        "added": sorted(set(now) - set(previous)),
        "removed": sorted(set(previous) - set(now)),
        "retyped": sorted(
            f"{n}: {previous[n]} -> {now[n]}"
            for n in set(now) & set(previous)
            if now[n] != previous[n]
        ),
    }
