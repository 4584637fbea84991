"""Feature windows match a hand-computed example."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.features.windows import feature_sql, window_minutes

SENSORS = load_contract("sensor_readings").sensor_columns


def _clean(minutes, values, device="dev-1", **sensor_values):
    """Clean readings of one device: every sensor = ``values`` unless given."""
    ts = pd.Timestamp("2026-01-01T00:00Z") + pd.to_timedelta(minutes, unit="m")
    df = pd.DataFrame({"device_id": device, "ts": ts})
    for s in SENSORS:
        df[s] = sensor_values.get(s, values)
    df["door_open"] = [m % 5 == 0 for m in minutes]
    df["quality_mask"] = 0
    df["quality_flags"] = ""
    df["source_file"] = "f.parquet"
    return df


def _features(clean, **kw):
    con = duckdb.connect()
    con.register("clean", clean)
    return con.execute(feature_sql("clean", **kw)).df()


def test_one_window_statistics_by_hand():
    # Four readings at minutes 0..3 of the first window: 1, 2, 3, 6.
    values = [1.0, 2.0, 3.0, 6.0]
    out = _features(_clean([0, 1, 2, 3], values, current_compressor=[0.0, 5.0, 5.0, 5.0]))
    row = out.iloc[0]
    assert len(out) == 1
    assert row["window_start"] == pd.Timestamp("2026-01-01T00:00Z")
    assert row["window_end"] == pd.Timestamp("2026-01-01T00:15Z")
    assert row["temperature_evaporator_mean"] == pytest.approx(3.0)
    assert row["temperature_evaporator_std"] == pytest.approx(np.std(values, ddof=1))
    assert row["temperature_evaporator_min"] == 1.0
    assert row["temperature_evaporator_max"] == 6.0
    assert row["temperature_evaporator_last"] == 6.0
    # least squares slope of (0,1),(1,2),(2,3),(3,6) per minute = 1.6
    assert row["temperature_evaporator_slope"] == pytest.approx(1.6)
    # current above 2 A in 3 of 4 readings
    assert row["duty_cycle"] == pytest.approx(0.75)
    # the "running" mean only uses readings while the compressor runs: (2 + 3 + 6) / 3
    assert row["temperature_evaporator_running_mean"] == pytest.approx(11 / 3)
    assert row["door_open_fraction"] == pytest.approx(0.25)
    # 4 of the 15 expected 1-minute readings, for every sensor
    assert row["sensor_completeness"] == pytest.approx(4 / 15)


def test_an_hour_has_four_windows_and_completeness_follows_the_cadence():
    clean = _clean(list(range(60)), 1.0)
    out = _features(clean)
    assert len(out) == 4
    assert out["sensor_completeness"].tolist() == [1.0] * 4
    # The same readings from a fleet that should report every 30 s are half complete.
    assert _features(clean, cadence_seconds=30)["sensor_completeness"].tolist() == [0.5] * 4


def test_missing_and_out_of_range_values_lower_completeness_and_are_ignored():
    clean = _clean(list(range(15)), 1.0)
    clean.loc[0:6, "pressure_low_side"] = None
    clean.loc[7, "temperature_evaporator"] = 999.0  # outside the contract's physical range
    row = _features(clean).iloc[0]
    # 7 missing values plus 1 unusable one
    assert row["sensor_completeness"] == pytest.approx(
        (15 * len(SENSORS) - 8) / (15 * len(SENSORS))
    )
    assert row["temperature_evaporator_max"] == 1.0


def test_window_length_is_a_setting_that_must_divide_the_hour():
    assert len(_features(_clean(list(range(60)), 1.0), window_min=30)) == 2
    assert window_minutes(20) == 20
    with pytest.raises(ValueError):
        window_minutes(25)


def test_feature_output_follows_the_contract():
    out = _features(_clean(list(range(60)), 1.0))
    assert list(out.columns) == load_contract("device_features").column_names
