"""The project's DuckDB SQL, run on Spark: a dialect translation and a DuckDB-shaped connection.

The ingestion and quality rules are SQL generated from the contracts (``refrig_assets.quality.rules``,
``refrig_assets.ingestion.landing.readers``). Rather than a second copy of every rule in Spark SQL,
the Spark engine runs the *same generated text*, translated by :func:`to_spark`:

* string literals: DuckDB doubles a quote (``'it''s'``), Spark escapes it (``'it\\'s'``);
  ``"name"`` identifiers become ```name```;
* types: ``VARCHAR`` → ``STRING``, ``TIMESTAMPTZ`` → ``TIMESTAMP`` (sessions compute in UTC);
  a timestamp cast to text keeps DuckDB's ``+00`` suffix so messages and values read the same;
* functions: ``error`` → ``raise_error``, ``arg_min_null``/``arg_max_null`` → ``min_by``/``max_by``, ``regexp_matches`` →
  ``regexp_like``, ``strftime`` → ``date_format``, ``INTERVAL (x) SECOND`` →
  ``make_dt_interval(0, 0, 0, x)``, ``FILTER (cond)`` → ``FILTER (WHERE cond)``,
  ``read_parquet('uri')`` → ``parquet.`uri```;
* decimal literals (``0.5``) are DOUBLE, as DuckDB computes them with the double columns;
* ``OVER ()`` (DuckDB: the relation's stored order) becomes the window order the caller names,
  since a Spark relation has no stored order.

:class:`SparkConnection` accepts the calls the rules make on a DuckDB connection (``execute`` of
queries and ``CREATE OR REPLACE TEMP TABLE/VIEW``, ``register``, ``fetchall``, ``df``), so the rules
run unchanged; a temp table is a checkpointed Spark DataFrame registered as a temp view.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# DuckDB strftime directives → Java DateTimeFormatter letters (the ones the rules use).
_STRFTIME = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss"}
_WORDS = [
    (re.compile(r"\bTIMESTAMPTZ\b", re.I), "TIMESTAMP"),
    (re.compile(r"\bVARCHAR\b", re.I), "STRING"),
    (re.compile(r"\barg_min_null\s*\(", re.I), "min_by("),
    (re.compile(r"\barg_max_null\s*\(", re.I), "max_by("),
    (re.compile(r"\bregexp_matches\s*\(", re.I), "regexp_like("),
    (re.compile(r"\barg_min\s*\(", re.I), "min_by("),
    (re.compile(r"\*\s*EXCLUDE\s*\(", re.I), "* EXCEPT ("),
    (re.compile(r"\berror\s*\(", re.I), "raise_error("),
]
_DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+)(?![\w.])")
_TS_CAST = re.compile(r"\bCAST\s*\(", re.I)


class TranslationError(ValueError):
    """SQL the translation does not know how to carry to Spark."""


def _split_literals(sql: str) -> list[tuple[str, str]]:
    """The SQL as ('code' | 'str' | 'ident', text) pieces; 'str' holds the literal's value."""
    out: list[tuple[str, str]] = []
    i, start, n = 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            out.append(("code", sql[start:i]))
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise TranslationError(f"unterminated {ch} in SQL: {sql[i : i + 60]!r}")
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # doubled quote: one quote character
                        buf.append(ch)
                        j += 2
                        continue
                    break
                buf.append(sql[j])
                j += 1
            out.append(("str" if ch == "'" else "ident", "".join(buf)))
            i = start = j + 1
            continue
        i += 1
    out.append(("code", sql[start:]))
    return out


def spark_literal(value: str) -> str:
    """A Spark SQL string literal holding ``value``."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _closing(text: str, open_at: int) -> int:
    """Index of the parenthesis closing the one at ``open_at`` (placeholders keep literals out)."""
    depth = 0
    for k in range(open_at, len(text)):
        if text[k] == "(":
            depth += 1
        elif text[k] == ")":
            depth -= 1
            if depth == 0:
                return k
    raise TranslationError(f"unbalanced parentheses in SQL near {text[open_at : open_at + 60]!r}")


def _java_pattern(fmt: str) -> str:
    parts, literal = [], ""
    k = 0
    while k < len(fmt):
        code = fmt[k : k + 2]
        if code in _STRFTIME:
            if literal:
                parts.append("'" + literal + "'")
                literal = ""
            parts.append(_STRFTIME[code])
            k += 2
        elif fmt[k] == "%":
            raise TranslationError(f"strftime directive {code!r} has no Spark translation")
        else:
            literal += fmt[k]
            k += 1
    if literal:
        parts.append("'" + literal + "'")
    return "".join(parts)


def parquet_relation(uri: str, row_numbers: bool = False) -> str:
    """Spark SQL relation of a Parquet file (``read_parquet`` in DuckDB), with its 0-based row
    number as ``file_row_number`` when asked."""
    rows = ", _metadata.row_index AS file_row_number" if row_numbers else ""
    return f"(SELECT *{rows} FROM parquet.`{uri}`)" if rows else f"parquet.`{uri}`"


def to_spark(
    sql: str,
    *,
    window_order: str | None = None,
    read_parquet: Callable[[str, bool], str] = parquet_relation,
) -> str:
    """``sql`` (DuckDB dialect, as the project's SQL builders write it) in Spark SQL.

    ``window_order`` replaces an empty ``OVER ()``: the window (e.g. ``PARTITION BY device_id
    ORDER BY ts``) that gives the rows in the order the DuckDB query read them; without it an
    empty window is an error, since Spark would number rows in no particular order.
    """
    pieces = _split_literals(sql)
    strings: list[str] = []
    code = []
    for kind, text in pieces:
        if kind == "code":
            code.append(text)
        elif kind == "ident":
            code.append(f"`{text}`")
        else:
            code.append(f"\x00{len(strings)}\x00")
            strings.append(text)
    text = "".join(code)
    for pattern, repl in _WORDS:
        text = pattern.sub(repl, text)
    text = _DECIMAL.sub(r"\1D", text)
    text = _rewrite_calls(text, strings, window_order, read_parquet)
    return re.sub(r"\x00(\d+)\x00", lambda m: spark_literal(strings[int(m.group(1))]), text)


def _string_at(token: str, strings: list[str]) -> str | None:
    m = re.fullmatch(r"\s*\x00(\d+)\x00\s*", token)
    return strings[int(m.group(1))] if m else None


def _literal(token: str, strings: list[str], what: str) -> str:
    value = _string_at(token, strings)
    if value is None:
        raise TranslationError(f"{what} must be a string literal on Spark")
    return value


def _rewrite_calls(
    text: str,
    strings: list[str],
    window_order: str | None,
    read_parquet: Callable[[str, bool], str] = parquet_relation,
) -> str:
    """Rewrite the constructs that need their arguments (run on text with literals held out)."""
    out, i = [], 0
    call = re.compile(
        r"\bINTERVAL\s*\(|\bFILTER\s*\(|\bstrftime\s*\(|\bread_parquet\s*\(|\bOVER\s*\(\s*\)"
        r"|\bCAST\s*\(|\bstring_split\s*\(",
        re.I,
    )
    while True:
        m = call.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i : m.start()])
        word = m.group(0).split("(")[0].strip().upper()
        if word == "OVER":
            if window_order is None:
                raise TranslationError("OVER () needs a window order on Spark (window_order=)")
            out.append(f"OVER ({window_order})")
            i = m.end()
            continue
        open_at = m.end() - 1
        close = _closing(text, open_at)
        inner = text[open_at + 1 : close]
        rest = _rewrite_calls(inner, strings, window_order, read_parquet)
        i = close + 1
        if word == "INTERVAL":
            unit = re.match(r"\s*SECONDS?\b", text[i:], re.I)
            if not unit:
                raise TranslationError(f"INTERVAL (...) {text[i : i + 20]!r}: only SECOND is known")
            i += unit.end()
            out.append(f"make_dt_interval(0, 0, 0, {rest})")
        elif word == "FILTER":
            cond = rest if re.match(r"\s*WHERE\b", rest, re.I) else f"WHERE {rest}"
            out.append(f"FILTER ({cond})")
        elif word == "STRFTIME":
            value, _, fmt = rest.rpartition(",")
            strings.append(_java_pattern(_literal(fmt, strings, "strftime's format")))
            out.append(f"date_format({value}, \x00{len(strings) - 1}\x00)")
        elif word == "READ_PARQUET":
            path, _, option = rest.partition(",")
            uri = _literal(path, strings, "read_parquet's path")
            if not option.strip():
                out.append(read_parquet(uri, False))
            elif re.fullmatch(r"\s*file_row_number\s*=\s*true\s*", option, re.I):
                out.append(read_parquet(uri, True))
            else:
                raise TranslationError(f"read_parquet option {option.strip()!r} on Spark")
        elif word == "STRING_SPLIT":  # string_split(s, 'd')[k]: a 1-based element
            value, _, sep = rest.rpartition(",")
            delim = _literal(sep, strings, "string_split's delimiter")
            index = re.match(r"\s*\[([^\]]+)\]", text[i:])
            if index is None:
                raise TranslationError("string_split needs an index ([k]) on Spark")
            strings.append("\\Q" + delim + "\\E")  # Spark splits on a regular expression
            out.append(f"element_at(split({value}, \x00{len(strings) - 1}\x00), {index.group(1)})")
            i += index.end()
        else:  # CAST: a timestamp as text keeps DuckDB's rendering of the UTC offset
            expr, _, target = rest.rpartition(" AS ")
            if target.strip().upper() == "STRING" and _is_timestamp(expr):
                out.append(f"concat(CAST({expr} AS STRING), '+00')")
            else:
                out.append(f"{m.group(0)}{rest})")


# Columns the contracts type as timestamps (the rules cast these to text in messages/values).
_TIMESTAMP_NAMES: set[str] = set()


def _is_timestamp(expr: str) -> bool:
    expr = expr.strip()
    if re.search(r"\bAS\s+TIMESTAMP\s*\)\s*$", expr, re.I):  # a cast to timestamp
        return True
    name = expr.split(".")[-1].strip("`")
    return re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)?", expr) is not None and (
        name in timestamp_columns()
    )


def timestamp_columns() -> set[str]:
    """Names of timestamp columns in the readings contracts and the typed readings' own."""
    if not _TIMESTAMP_NAMES:
        from refrig_assets.core.contracts import load_contract
        from refrig_assets.ingestion.landing.readers import SOURCE_COLUMNS

        for name in ("sensor_readings", "clean_readings", "quarantined_readings"):
            _TIMESTAMP_NAMES.update(
                c.name for c in load_contract(name).columns if c.type == "timestamp"
            )
        _TIMESTAMP_NAMES.update(n for n, t in SOURCE_COLUMNS.items() if t == "TIMESTAMPTZ")
        _TIMESTAMP_NAMES.update({"run_start", "run_end", "first_ts", "last_ts", "prev_ts"})
    return _TIMESTAMP_NAMES


_DDL = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?TEMP(?:ORARY)?\s+(TABLE|VIEW)\s+(\w+)\s+AS\s+(.*)$",
    re.I | re.S,
)
_DROP = re.compile(r"^\s*DROP\s+(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?(\w+)\s*$", re.I)


class SparkResult:
    """The result of :meth:`SparkConnection.execute` (a DuckDB result's ``fetchall``/``df``)."""

    def __init__(self, frame: DataFrame | None):
        self.frame = frame

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Rows as tuples (collected to the driver: for small results)."""
        return [tuple(r) for r in self.frame.collect()] if self.frame is not None else []

    def df(self) -> pd.DataFrame:
        """The result as pandas, timestamps UTC-aware as DuckDB returns them."""
        frame = self.frame.toPandas() if self.frame is not None else pd.DataFrame()
        for name in frame.columns:
            if pd.api.types.is_datetime64_dtype(frame[name]) and frame[name].dt.tz is None:
                frame[name] = frame[name].dt.tz_localize("UTC")
        return frame


class SparkConnection:
    """Runs the project's DuckDB-dialect SQL on a Spark session (see the module docstring).

    ``window_order`` is the order an empty ``OVER ()`` means (see :func:`to_spark`). Temp tables
    are checkpointed (computed once, lineage cut) and released by :meth:`close`.
    """

    def __init__(self, spark: SparkSession, *, window_order: str | None = None):
        self.spark = spark
        self.window_order = window_order
        self._tables: dict[str, DataFrame] = {}
        self._views: set[str] = set()

    def sql(self, sql: str) -> DataFrame:
        """A query in the DuckDB dialect as a Spark DataFrame."""
        return self.spark.sql(
            to_spark(sql, window_order=self.window_order, read_parquet=self.parquet_relation)
        )

    def parquet_relation(self, uri: str, row_numbers: bool = False) -> str:
        """:func:`parquet_relation`, with nanosecond timestamps (pandas' default in landing
        files) read as Spark timestamps: Spark reads them only as integers of nanoseconds
        (``spark.sql.legacy.parquet.nanosAsLong``, set by the project's session)."""
        relation = parquet_relation(uri, row_numbers)
        local = Path(uri.removeprefix("file://"))
        if "://" in uri and not uri.startswith("file://") or not local.is_file():
            return relation
        import pyarrow as pa
        import pyarrow.parquet as pq

        nanos = [
            f.name
            for f in pq.read_schema(local)
            if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
        ]
        if not nanos:
            return relation
        quoted = ", ".join(f"`{n}`" for n in nanos)
        as_ts = ", ".join(f"timestamp_micros(`{n}` div 1000) AS `{n}`" for n in nanos)
        return f"(SELECT * EXCEPT ({quoted}), {as_ts} FROM {relation})"

    def execute(self, sql: str, params: Iterable[Any] | None = None) -> SparkResult:
        """Run one statement: a query, ``CREATE OR REPLACE TEMP TABLE|VIEW name AS query`` or
        ``DROP TABLE name``."""
        if params:
            raise TranslationError("parameters are not supported on the Spark connection")
        ddl = _DDL.match(sql)
        if ddl:
            kind, name, query = ddl.groups()
            self.view(name, self.sql(query), table=kind.upper() == "TABLE")
            return SparkResult(None)
        drop = _DROP.match(sql)
        if drop:
            self.drop(drop.group(1))
            return SparkResult(None)
        return SparkResult(self.sql(sql))

    def view(self, name: str, frame: DataFrame, *, table: bool = False) -> None:
        """Register ``frame`` as ``name``; a table is computed once (checkpointed)."""
        self.drop(name)
        if table:
            frame = frame.localCheckpoint(eager=True)
            self._tables[name] = frame
        frame.createOrReplaceTempView(name)
        self._views.add(name)

    def register(self, name: str, data: Any) -> None:
        """Register a Spark DataFrame, an Arrow table or a pandas frame as ``name``."""
        from pyspark.sql import DataFrame as SparkFrame

        if not isinstance(data, SparkFrame):
            frame = data.to_pandas() if hasattr(data, "to_pandas") else data
            data = self.spark.createDataFrame(frame)
        self.view(name, data)

    def drop(self, name: str) -> None:
        """Forget a temp table or view of this connection."""
        if name in self._views:
            self.spark.catalog.dropTempView(name)
            self._views.discard(name)
        frame = self._tables.pop(name, None)
        if frame is not None:
            frame.unpersist()

    def close(self) -> None:
        """Drop every temp view and table this connection made."""
        for name in list(self._views):
            self.drop(name)
