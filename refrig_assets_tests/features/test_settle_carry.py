"""The running state's settle after a defrost or a start carries into the next hour: a defrost
ending minutes before the hour leaves the pull-down of the hour's first minutes out of the
running statistics, as it does within one hour, and the one-pass range of hours gives the same
features as the hourly step."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines import embedded
from refrig_assets.features.ranged import write_feature_range
from refrig_assets.features.windows import feature_sql, settle_carry_sql

READINGS = load_contract("sensor_readings")
RUNNING_ABOVE = READINGS.column("current_compressor").extra["running_above"]
DEFROST_ABOVE = READINGS.column("temperature_evaporator").extra["defrost_above"]
SETTLE = load_contract("device_features").settings["running_settle"]
START = pd.Timestamp("2026-01-01T00:00Z")


def two_hours(defrost_end_s: int = 3420, devices=("dev-1", "dev-2")) -> pd.DataFrame:
    """Readings every 5 s for two hours: a defrost (idle, coil above defrost_above) until
    ``defrost_end_s``, then the compressor pulls the coil down from +6 to -20 degC over
    minutes; a second device runs settled throughout."""
    t = np.arange(0, 7200, 5)
    frames = []
    for i, dev in enumerate(devices):
        if i == 0:
            running = t >= defrost_end_s
            since = np.clip((t - defrost_end_s) / 60.0, 0, None)
            coil = np.where(running, -20.0 + 26.0 * 0.7**since, DEFROST_ABOVE + 1.0)
        else:
            running = np.ones_like(t, dtype=bool)
            coil = np.full(len(t), -20.0)
        frame = pd.DataFrame({"device_id": dev, "ts": START + pd.to_timedelta(t, unit="s")})
        for s in READINGS.sensor_columns:
            frame[s] = 1.0
        frame["current_compressor"] = np.where(running, RUNNING_ABOVE + 5.0, RUNNING_ABOVE / 10)
        frame["temperature_evaporator"] = coil
        frame["ambient_temperature"] = 20.0
        frame["door_open"] = False
        frame["quality_mask"] = 0
        frame["quality_flags"] = ""
        frame["source_file"] = "f.parquet"
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def hour(frame: pd.DataFrame, h: int) -> pd.DataFrame:
    inside = (frame["ts"] >= START + pd.Timedelta(hours=h)) & (
        frame["ts"] < START + pd.Timedelta(hours=h + 1)
    )
    return frame[inside].reset_index(drop=True)


@pytest.mark.parametrize("ordered", [False, True], ids=["partitioned", "in_order"])
def test_a_defrost_ending_before_the_hour_settles_the_next_hours_running_state(ordered):
    assert SETTLE["after_defrost_seconds"] >= 60 * 2  # reaches past 00:57 into the next hour
    frame = two_hours(defrost_end_s=3420)  # the defrost ends at 00:57
    con = duckdb.connect()
    con.register("two_hours", frame)
    con.register("prev", hour(frame, 0))
    con.register("this", hour(frame, 1))
    carry = settle_carry_sql("prev", cadence_seconds=5)
    assert carry is not None
    con.execute(f"CREATE TABLE carry AS {carry}")
    sql = dict(cadence_seconds=5, ordered=ordered)
    alone = con.execute(feature_sql("this", **sql)).df()
    carried = con.execute(feature_sql("this", carry="carry", **sql)).df()
    whole = con.execute(feature_sql("two_hours", **sql)).df()
    whole = whole[whole["window_start"] >= START + pd.Timedelta(hours=1)].reset_index(drop=True)

    col = "temperature_evaporator_running_mean"
    first = (alone["device_id"] == "dev-1") & (alone["window_start"].dt.minute == 0)
    # Without the carry the hour's first minute holds the warm pull-down (the defect) ...
    assert alone.loc[first, col].iloc[0] > -15.0
    # ... with it, the running statistics are those of the two hours as one partition.
    pd.testing.assert_series_equal(carried[col], whole[col])
    assert carried.loc[first, col].isna().all()
    # The device that ran settled all along keeps every window.
    assert carried.loc[carried["device_id"] == "dev-2", col].tolist() == [-20.0] * 60
    # Nothing else changes: the carry only moves the settle.
    others = [
        c for c in alone.columns if "running" not in c and c != "condenser_ambient_difference"
    ]
    pd.testing.assert_frame_equal(carried[others], alone[others])


def test_nothing_is_carried_where_no_settle_time_applies():
    # 15-minute windows at 60 s: the settle times are shorter than the window.
    assert settle_carry_sql("prev", cadence_seconds=60) is None


def test_the_range_of_hours_equals_the_hourly_step_with_the_carry(tmp_path):
    frame = two_hours(defrost_end_s=3420)
    keys = ["2026-01-01-00:00", "2026-01-01-01:00"]
    sources = {}
    for h, key in enumerate(keys):
        sources[key] = tmp_path / f"clean-{h}.parquet"
        hour(frame, h).to_parquet(sources[key])
    contract = load_contract("device_features")

    ranged = list(
        write_feature_range(
            sources, ParquetStore(tmp_path / "range"), contract, 0.0, cadence_seconds=5
        )
    )
    hourly = [
        embedded.write_features(
            sources[key],
            ParquetStore(tmp_path / "hourly"),
            key,
            cadence_seconds=5,
            previous=sources[keys[0]] if key == keys[1] else None,
        )
        for key in keys
    ]
    for r, h in zip(ranged, hourly, strict=True):
        pd.testing.assert_frame_equal(pd.read_parquet(r.path), pd.read_parquet(h))
    second = pd.read_parquet(ranged[1].path)
    first_minute = (second["device_id"] == "dev-1") & (second["window_start"].dt.minute == 0)
    assert second.loc[first_minute, "temperature_evaporator_running_mean"].isna().all()
