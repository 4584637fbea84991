"""Checking a piece of scores against its contract on the Arrow table that gets written.

A daily partition of a large fleet is millions of score rows. Validating them with pandera
(:meth:`~refrig_assets.core.contracts.Contract.validate`) looks at every string for nulls and
hashes every key, and writing them converts the same frame to Arrow again. :func:`checked_table`
converts once and proves conformance on the Arrow table: types, null counts (Arrow counts them
while converting), each range by its column's minimum and maximum, allowed values by the
column's distinct values, and a unique primary key by the rows being in strictly increasing key
order (as a detector returns them), else by no key repeating. Only when one of these cannot be
shown does pandera run, so the failure table is always pandera's own, exactly as before.

:func:`contract_failures` is the same proof for any contract's frame (the hourly steps' contract
checks): pandera's failure table, pandera run only when conformance is not shown.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from refrig_assets.core.contracts import ColumnSpec, Contract

# pandera's failure table (Contract.validate), empty for a conforming piece.
FAILURE_COLUMNS = ["schema_context", "column", "check", "index", "failure_case"]
ARROW_TYPES = {
    "float": (pa.float64(),),
    "int": (pa.int64(),),
    "bool": (pa.bool_(),),
    "string": (pa.string(), pa.large_string()),
}


def checked_table(contract: Contract, frame: pd.DataFrame) -> tuple[pa.Table | None, pd.DataFrame]:
    """(``frame`` as the Arrow table to write, None when it fails the contract or Arrow cannot
    convert it; its contract failures in pandera's layout, empty when it conforms)."""
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        table = None
    if table is not None and conforms(contract, frame, table):
        return table, pd.DataFrame(columns=FAILURE_COLUMNS)
    failures = contract.validate(frame)
    return (table if failures.empty else None), failures


def contract_failures(contract: Contract, frame: pd.DataFrame) -> pd.DataFrame:
    """``contract.validate(frame)``: the same failure table, found without pandera when ``frame``
    has rows and provably conforms (an empty frame's outcome is remembered per shape)."""
    if frame.empty:
        return contract.validate(frame)
    return checked_table(contract, frame)[1]


def conforms(contract: Contract, frame: pd.DataFrame, table: pa.Table) -> bool:
    """Whether ``frame`` (and ``table``, the same rows in Arrow) provably follows ``contract``;
    False means "not shown", not "broken"."""
    names = list(frame.columns)
    if len(set(names)) != len(names) or set(names) != set(contract.column_names):
        return False
    if not all(
        _column_conforms(spec, frame[spec.name], table[spec.name]) for spec in contract.columns
    ):
        return False
    keys = list(contract.primary_key)
    return _keys_increase(table, keys) or _keys_unique(frame, table, keys)


def _column_conforms(spec: ColumnSpec, series: pd.Series, column: pa.ChunkedArray) -> bool:
    if not spec.nullable and column.null_count:
        return False
    if spec.type == "string" and column.type == pa.null():
        return spec.nullable  # no value at all (pandera checks no type for text)
    if spec.type == "timestamp":
        dtype = series.dtype
        if not (isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"):
            return False
    elif spec.type not in ARROW_TYPES or column.type not in ARROW_TYPES[spec.type]:
        return False
    elif spec.type != "string" and str(series.dtype) != spec.pandas_dtype:
        return False
    if spec.range is not None and len(column) > column.null_count:
        if spec.type not in ("float", "int"):
            return False
        extremes = pc.min_max(column)
        low, high = extremes["min"], extremes["max"]
        if not (spec.range[0] <= low.as_py() and high.as_py() <= spec.range[1]):
            return False
    if spec.allowed is not None:
        present = pc.unique(column.drop_null()).to_pylist()
        if not set(present) <= set(spec.allowed):
            return False
    return True


def _keys_unique(frame: pd.DataFrame, table: pa.Table, keys: list[str]) -> bool:
    """Whether no two rows share a key (rows in any order; a null key is not shown unique)."""
    if any(table[key].null_count for key in keys):
        return False
    return not frame.duplicated(subset=keys).any()


def _keys_increase(table: pa.Table, keys: list[str]) -> bool:
    """Whether rows are in strictly increasing order of ``keys`` (so no key repeats)."""
    if not keys or table.num_rows < 2:
        return True
    if any(table[key].null_count for key in keys):
        return False  # comparisons with a null are null, which pc.all would skip
    n = table.num_rows
    greater = equal = None
    for key in keys:
        later, earlier = table[key].slice(1), table[key].slice(0, n - 1)
        if greater is None:
            greater, equal = pc.greater(later, earlier), pc.equal(later, earlier)
        else:
            greater = pc.or_(greater, pc.and_(equal, pc.greater(later, earlier)))
            equal = pc.and_(equal, pc.equal(later, earlier))
    return bool(pc.all(greater).as_py())
