"""Cause features of device_features, checked against hand-counted readings: compressor starts
and runs, the longest door-open, idle and defrost streaks, defrost count and minutes, the idle
maxima and the differences to ambient."""

import re

import duckdb
import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines import embedded
from refrig_assets.features.windows import ORDER_ERROR, feature_sql

READINGS = load_contract("sensor_readings")
RUNNING_ABOVE = READINGS.column("current_compressor").extra["running_above"]
DEFROST_ABOVE = READINGS.column("temperature_evaporator").extra["defrost_above"]


def clean(minutes=60, **columns):
    """One device, one reading a minute; ``columns`` are per-minute lists or scalars."""
    ts = pd.Timestamp("2026-01-01T00:00Z") + pd.to_timedelta(range(minutes), unit="m")
    frame = pd.DataFrame({"device_id": "dev-1", "ts": ts})
    for s in READINGS.sensor_columns:
        frame[s] = 1.0
    frame["temperature_evaporator"] = -8.0
    frame["ambient_temperature"] = 20.0
    frame["door_open"] = False
    for name, values in columns.items():
        frame[name] = values
    frame["quality_mask"] = 0
    frame["quality_flags"] = ""
    frame["source_file"] = "f.parquet"
    return frame


FORM = {"ordered": False}


@pytest.fixture(autouse=True, params=[False, True], ids=["partitioned", "in_order"])
def sql_form(request):
    """Every hand count holds for both forms of the feature SQL: the device-partitioned window
    (any row order) and the in-order pass over rows sorted by (device_id, ts)."""
    FORM["ordered"] = request.param
    yield request.param
    FORM["ordered"] = False


def features(frame, **kwargs):
    con = duckdb.connect()
    con.register("clean", frame)
    return con.execute(feature_sql("clean", ordered=FORM["ordered"], **kwargs)).df()


def fleet(devices=5, seed=3):
    """Several devices, one reading a minute, in (device_id, ts) order; states change at random
    (runs, door openings and defrosts that start before, inside and across windows), with
    some missing current readings."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(devices):
        run = np.repeat(rng.random(12) < 0.5, 5)
        current = np.where(run, 8.0, 0.05)
        current[rng.random(60) < 0.05] = np.nan
        frame = clean(
            current_compressor=current,
            temperature_evaporator=np.where(~run & (rng.random(60) < 0.4), 9.0, -8.0),
            door_open=np.repeat(rng.random(20) < 0.3, 3),
        )
        frames.append(frame.assign(device_id=f"dev-{i}"))
    return pd.concat(frames, ignore_index=True)


def test_the_in_order_pass_gives_the_partitioned_results_for_a_fleet(sql_form):
    frame = fleet()
    con = duckdb.connect()
    con.register("clean", frame)
    partitioned = con.execute(feature_sql("clean")).df()
    in_order = con.execute(feature_sql("clean", ordered=True)).df()
    pd.testing.assert_frame_equal(in_order, partitioned, rtol=1e-12)


def test_rows_out_of_order_stop_the_in_order_pass_and_the_file_falls_back(sql_form, tmp_path):
    frame = fleet()
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    con = duckdb.connect()
    con.register("clean", shuffled)
    with pytest.raises(duckdb.Error, match=re.escape(ORDER_ERROR)):
        con.execute(feature_sql("clean", ordered=True)).df()
    store = ParquetStore(tmp_path)
    paths = {}
    for name, rows in {"sorted": frame, "shuffled": shuffled}.items():
        source = tmp_path / f"{name}.parquet"
        rows.to_parquet(source)
        paths[name] = embedded.write_features(source, store, "2026-01-01T00", dataset=name)
    pd.testing.assert_frame_equal(
        pd.read_parquet(paths["shuffled"]), pd.read_parquet(paths["sorted"]), rtol=1e-12
    )


def test_starts_and_run_lengths_follow_the_compressor():
    # Window 0 (minutes 0-14): runs at 2-4 and 8-13 -> 2 starts, 9 running minutes, 2 runs.
    running = [m in (2, 3, 4, 8, 9, 10, 11, 12, 13) for m in range(60)]
    out = features(clean(current_compressor=[8.0 if r else 0.05 for r in running]))
    first = out.iloc[0]
    assert first["compressor_starts_per_hour"] == pytest.approx(2 * 4)
    assert first["compressor_run_minutes_mean"] == pytest.approx(9 / 2)
    assert first["compressor_idle_longest_minutes"] == pytest.approx(3.0)  # minutes 5-7
    # Never running afterwards: no starts, no run length, idle since minute 14.
    last = out.iloc[3]
    assert last["compressor_starts_per_hour"] == 0
    assert np.isnan(last["compressor_run_minutes_mean"])
    assert last["compressor_idle_longest_minutes"] == pytest.approx(59 - 13)


def test_a_run_carried_into_a_window_counts_as_one_run_there():
    running = [10 <= m < 25 for m in range(60)]
    out = features(clean(current_compressor=[8.0 if r else 0.05 for r in running]))
    second = out.iloc[1]  # minutes 15-29: runs 15-24, started in window 0
    assert second["compressor_starts_per_hour"] == 0
    assert second["compressor_run_minutes_mean"] == pytest.approx(10.0)


def test_the_longest_door_open_streak_spans_windows():
    door = [20 <= m < 50 for m in range(60)]
    out = features(clean(door_open=door))
    # Open for 30 readings from minute 20: the streak reaches 5 min in window 1, 20 in window 2
    # (minutes 30-44), 30 in window 3.
    assert out["door_open_longest_minutes"].tolist() == [0.0, 10.0, 25.0, 30.0]


def test_defrost_is_an_idle_coil_above_the_defrost_temperature():
    coil = [DEFROST_ABOVE + 3 if 5 <= m < 25 else -8.0 for m in range(60)]
    out = features(clean(temperature_evaporator=coil, current_compressor=0.05))
    assert out["defrost_count"].tolist() == [1, 0, 0, 0]
    assert out["defrost_minutes"].tolist() == [10.0, 10.0, 0.0, 0.0]
    assert out["defrost_longest_minutes"].tolist() == [10.0, 20.0, 0.0, 0.0]
    # The same warm coil with the compressor running is no defrost.
    running = features(clean(temperature_evaporator=coil, current_compressor=8.0))
    assert running["defrost_minutes"].sum() == 0


def test_idle_maxima_and_differences_to_ambient():
    current = [8.0 if m % 2 else 0.07 for m in range(60)]
    condenser = [40.0 if m % 2 else 22.0 for m in range(60)]
    out = features(clean(current_compressor=current, temperature_condenser=condenser)).iloc[0]
    assert out["current_compressor_idle_max"] == pytest.approx(0.07)
    assert out["evaporator_ambient_difference"] == pytest.approx(-28.0)
    # Condensing temperature above ambient while running only.
    assert out["condenser_ambient_difference"] == pytest.approx(20.0)


def test_without_a_door_column_the_door_streak_is_null():
    frame = clean().drop(columns=["door_open"])
    readings = READINGS
    no_door = type(readings)(
        **{**readings.__dict__, "columns": [c for c in readings.columns if c.name != "door_open"]}
    )
    con = duckdb.connect()
    con.register("clean", frame)
    out = con.execute(feature_sql("clean", readings=no_door)).df()
    assert out["door_open_longest_minutes"].isna().all()
    assert out["compressor_starts_per_hour"].notna().all()


def pull_down_after_defrost():
    """A defrost (idle, coil warm) until minute 14, then the compressor pulls the coil down
    until its first stop (minutes 40-42: the thermostat satisfied) and runs again."""
    running = [m >= 15 and not 40 <= m < 43 for m in range(60)]
    coil = [6.0 if m < 15 else -20.0 + 26.0 * 0.7 ** (m - 15) for m in range(60)]
    frame = clean(
        current_compressor=[8.0 if r else 0.05 for r in running],
        temperature_evaporator=coil,
    )
    return frame, running, coil


def test_running_statistics_leave_out_the_pull_down_after_a_defrost_in_short_windows():
    # 5-minute windows: the running means keep only readings at least after_defrost_seconds
    # after the last defrost reading and after the compressor's first stop since (the
    # pull-down fills whole windows).
    after_defrost = load_contract("device_features").settings["running_settle"][
        "after_defrost_seconds"
    ]
    assert 300 <= after_defrost < 45 * 60  # applies to 5-minute windows; the hour has the rest
    frame, running, coil = pull_down_after_defrost()
    out = features(frame, window_min=5)
    settled = [m for m in range(60) if running[m] and (m - 14) * 60 >= after_defrost and m > 42]
    for w in range(12):
        values = [coil[m] for m in settled if m // 5 == w]
        got = out.iloc[w]["temperature_evaporator_running_mean"]
        if values:
            assert got == pytest.approx(np.mean(values))
        else:
            assert np.isnan(got)
    # The whole-window mean still holds every reading.
    assert out.iloc[3]["temperature_evaporator_mean"] == pytest.approx(np.mean(coil[15:20]))


def test_a_window_longer_than_the_settle_time_keeps_every_running_reading():
    frame, running, coil = pull_down_after_defrost()
    out = features(frame)  # 15-minute windows at 60 s
    assert out.iloc[1]["temperature_evaporator_running_mean"] == pytest.approx(np.mean(coil[15:30]))


def test_running_statistics_leave_out_the_first_minute_of_a_run_at_one_second():
    ts = pd.Timestamp("2026-01-01T00:00Z") + pd.to_timedelta(range(180), unit="s")
    frame = pd.concat([clean(minutes=1)] * 180, ignore_index=True).assign(ts=ts)
    start = load_contract("device_features").settings["running_settle"]["after_start_seconds"]
    assert 0 < start < 120
    # Idle until second 29, then running; the pressure is off for the start transient only
    # (until after_start_seconds after the last idle reading).
    frame["current_compressor"] = [0.05 if s < 30 else 8.0 for s in range(180)]
    frame["pressure_low_side"] = [300.0 if 30 <= s < 29 + start else 100.0 for s in range(180)]
    con = duckdb.connect()
    con.register("clean", frame)
    sql = feature_sql("clean", ordered=FORM["ordered"], cadence_seconds=1, window_min=1)
    out = con.execute(sql).df()
    # Minute 0 runs only within the settle time: no running statistic; the others, settled.
    assert np.isnan(out["pressure_low_side_running_mean"].iloc[0])
    assert out["pressure_low_side_running_mean"].iloc[1:].tolist() == pytest.approx([100.0] * 2)
    assert out["pressure_low_side_mean"].iloc[0] > 100.0  # the window's own mean keeps them
