"""A small score partition kept in memory is filtered with a boolean mask instead of the
expression engine: the same rows in the same order for every term the hourly steps use (nulls
are not kept), and the expression filter for terms the mask does not evaluate."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refrig_assets.scoring.reads import _mask

START = pd.Timestamp("2026-01-01 05:00", tz="UTC")


def _table(unit: str) -> pa.Table:
    starts = pd.date_range("2026-01-01 04:00", periods=12, freq="15min", tz="UTC")
    rows = [(f"dev-{d:06d}", s) for d in range(5) for s in starts]
    frame = pd.DataFrame(rows, columns=["device_id", "window_start"])
    frame["anomaly_score"] = np.linspace(0, 1, len(frame))
    frame["anomaly_flag"] = pd.array(frame["anomaly_score"] > 0.6, dtype="boolean")
    frame.loc[7, "anomaly_flag"] = pd.NA
    frame.loc[9, "device_id"] = None
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.set_column(
        1, "window_start", table["window_start"].cast(pa.timestamp(unit, tz="UTC"))
    )


HOUR = [("window_start", ">=", START), ("window_start", "<", START + pd.Timedelta("1h"))]
FILTERS = [
    HOUR,
    [*HOUR, ("anomaly_flag", "==", True)],
    [*HOUR, ("device_id", ">=", "dev-000001"), ("device_id", "<", "dev-000003")],
    [*HOUR, ("device_id", "in", ["dev-000004", "dev-000000", "unknown"])],
    [("anomaly_flag", "==", True), ("device_id", ">=", "dev-000004")],
]


@pytest.mark.parametrize("unit", ["us", "ns"])
@pytest.mark.parametrize("filters", FILTERS)
def test_the_mask_keeps_the_rows_the_expression_keeps(unit, filters):
    table = _table(unit)
    mask = _mask(table, filters)
    assert mask is not None
    expected = table.filter(pq.filters_to_expression(filters))
    assert table.filter(mask).equals(expected)
    assert expected.num_rows > 0


def test_terms_the_mask_does_not_evaluate_are_left_to_the_expression():
    table = _table("us")
    assert _mask(table, [("device_id", "not in", ["dev-000001"])]) is None
    assert _mask(table, [("no_such_column", "==", 1)]) is None


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_a_time_finer_than_the_column_is_compared_as_the_expression_compares_it(unit):
    table = _table(unit)
    for odd in (START + pd.Timedelta(nanoseconds=1), START - pd.Timedelta(nanoseconds=1)):
        filters = [("window_start", ">=", odd)]
        expected = table.filter(pq.filters_to_expression(filters))
        assert table.filter(_mask(table, filters)).equals(expected)
