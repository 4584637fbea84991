"""`refrig import` of hostile time and number texts: an hour-only UTC offset (``+05``) among
local times, and the ``NaN`` / ``inf`` spellings of numeric exports. Each value means what it
means in a landing file: the local times stay in the mapping's zone, a ``NaN`` is a missing
value, an infinite value is a reading outside its range (named, and flagged by the pipeline)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.ingestion.mapping import convert_frame, load_mapping, out_of_range

MAPPING = """\
layout: wide
device_id: {column: dev}
timestamp: {column: t, timezone: America/New_York}
sensors:
  evap: {to: temperature_evaporator, unit: degC}
  door: {to: door_open}
"""


def _mapping(tmp_path: Path):
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING)
    return load_mapping(path)


def _frame(times: list[str], evap: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dev": ["A1"] * len(times),
            "t": times,
            "evap": evap or ["-18"] * len(times),
            "door": ["0"] * len(times),
        }
    )


@pytest.mark.parametrize(
    "offset_time, offset_utc",
    [
        ("2026-01-01T04:03:00+05", "2025-12-31T23:03:00Z"),
        ("2026-01-01T04:03:00+0500", "2025-12-31T23:03:00Z"),
        ("2026-01-01T04:03:00-03", "2026-01-01T07:03:00Z"),
        ("2026-01-01T04:03:00 +05:00", "2025-12-31T23:03:00Z"),
    ],
)
@pytest.mark.parametrize("offset_first", [True, False])
def test_local_times_stay_in_the_mapping_zone_beside_an_hour_only_offset(
    tmp_path, offset_time, offset_utc, offset_first
):
    # Was: with the offset first every local time was read at +05:00 (ten hours off, nothing
    # said); with a local time first the import died on "Can only use .dt accessor".
    local = ["2026-01-01 04:04:00", "2026-01-01 04:05:00"]
    times = [offset_time, *local] if offset_first else [*local, offset_time]
    out = convert_frame(_frame(times), _mapping(tmp_path), "export.csv")
    got = sorted(out.readings["ts"])
    assert got == sorted(
        [
            pd.Timestamp(offset_utc),
            pd.Timestamp("2026-01-01T09:04:00Z"),  # New York is UTC-5 in January
            pd.Timestamp("2026-01-01T09:05:00Z"),
        ]
    )
    assert out.quarantine.empty


def test_a_date_alone_is_a_local_midnight_not_an_offset(tmp_path):
    out = convert_frame(_frame(["2026-01-02"]), _mapping(tmp_path), "export.csv")
    assert list(out.readings["ts"]) == [pd.Timestamp("2026-01-02T05:00:00Z")]


def test_nan_is_a_missing_value_and_infinity_a_reading_out_of_range(tmp_path):
    # As the landing reader reads the same texts: NaN -> SENSOR_DROPOUT, inf -> OUT_OF_RANGE.
    # Was: a NaN quarantined the whole row (a sensor column of NaN lost every reading of the
    # device), an infinite value became a missing one without a word.
    evap = ["NaN", "nan", "inf", "-Infinity", "-18", "NA"]
    times = [f"2026-01-01 04:0{i}:00" for i in range(len(evap))]
    out = convert_frame(_frame(times, evap), _mapping(tmp_path), "export.csv")
    values = out.readings.sort_values("ts")["temperature_evaporator"].to_numpy()
    assert len(values) == 5
    assert np.isnan(values[:2]).all()
    assert list(values[2:]) == [np.inf, -np.inf, -18.0]
    assert out.quarantine[["row", "rule", "value"]].values.tolist() == [
        [5, "unparsable_value", "NA"]
    ]
    counts = out_of_range(out.readings, load_contract("sensor_readings"))
    assert counts["temperature_evaporator"]["outside"] == 2
