"""An hour that quarantines nothing gets its empty quarantine frame shaped once per kind of
input: the same frame (columns, types, index) as shaping that input gives, and a frame of its
own each time."""

from __future__ import annotations

import pandas as pd
import pandas.testing as pdt
import pytest

from refrig_assets.core.duck import connect
from refrig_assets.quality.rules import QUARANTINE_COLUMNS, _shaped, quarantine_frame


def duckdb_rows(where: str) -> pd.DataFrame:
    """Quarantine rows as the quality step's SQL returns them (``.df()`` of DuckDB)."""
    with connect() as con:
        return con.execute(
            "SELECT 'f.csv' AS source_file, CAST(7 AS BIGINT) AS row, NULL AS \"column\", "
            "'missing_value' AS rule, NULL AS value, 'f.csv row 7: empty' AS message, "
            "'dev-1' AS device_id, TIMESTAMPTZ '2026-01-01 00:05:00+00' AS ts "
            f"WHERE {where}"
        ).df()


@pytest.mark.parametrize(
    "make",
    [
        lambda: [],
        lambda: duckdb_rows("FALSE"),
        lambda: duckdb_rows("TRUE").iloc[0:0],
        lambda: pd.DataFrame(columns=[*QUARANTINE_COLUMNS, "extra"]),
    ],
)
def test_an_empty_input_gives_the_frame_shaping_it_gives(make):
    for _ in range(2):  # made, then taken from what was kept
        got = quarantine_frame(make())
        pdt.assert_frame_equal(got, _shaped(make()))
        assert list(got.columns) == QUARANTINE_COLUMNS


def test_each_empty_frame_is_its_own():
    first = quarantine_frame(duckdb_rows("FALSE"))
    first["rule"] = first["rule"].astype("category")
    first.attrs["touched"] = True
    again = quarantine_frame(duckdb_rows("FALSE"))
    pdt.assert_frame_equal(again, _shaped(duckdb_rows("FALSE")))
    assert "touched" not in again.attrs


def test_rows_are_shaped_as_before():
    rows = duckdb_rows("TRUE")
    pdt.assert_frame_equal(quarantine_frame(rows), _shaped(rows))
    assert quarantine_frame(rows)["column"].tolist() == [None]
