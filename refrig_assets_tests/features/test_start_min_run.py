"""A compressor start is a run of at least the contract's ``min_seconds``: one or two readings
of a noisy idle current over ``running_above`` (a 1-10 s fleet) are no start, on both forms
of the feature SQL, the serving mirror and Spark; at a minute cadence nothing changes."""

import dataclasses

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.features.windows import feature_sql
from refrig_assets.serving.window_features import window_features

READINGS = load_contract("sensor_readings")
FEATURES = load_contract("device_features")
RUNNING_ABOVE = READINGS.column("current_compressor").extra["running_above"]
MIN_SECONDS = FEATURES.column("compressor_starts_per_hour").extra["derived"]["min_seconds"]
START = pd.Timestamp("2026-01-01T00:00Z")


def without_min_run(features=FEATURES):
    """The contract with every start counted (no ``min_seconds``)."""
    columns = []
    for col in features.columns:
        spec = col.extra.get("derived")
        if spec and "min_seconds" in spec:
            spec = {k: v for k, v in spec.items() if k != "min_seconds"}
            col = dataclasses.replace(col, extra={**col.extra, "derived": spec})
        columns.append(col)
    return dataclasses.replace(features, columns=tuple(columns))


def readings(current, cadence_seconds, device="dev-1", jitter=None):
    """One device's clean readings at ``cadence_seconds``; ``current`` per reading."""
    n = len(current)
    offsets = np.arange(n) * float(cadence_seconds) + (0.0 if jitter is None else jitter)
    frame = pd.DataFrame(
        {
            "device_id": device,
            "ts": (START + pd.to_timedelta(offsets, unit="s")).astype("datetime64[us, UTC]"),
        }
    )
    for s in READINGS.sensor_columns:
        frame[s] = 1.0
    frame["temperature_evaporator"] = -8.0
    frame["ambient_temperature"] = 20.0
    frame["current_compressor"] = np.asarray(current, float)
    frame["door_open"] = False
    frame["quality_mask"] = 0
    frame["quality_flags"] = ""
    frame["source_file"] = "f.parquet"
    return frame


def blips_and_runs(cadence_seconds=10):
    """An hour at 10 s: an idle current of ~1 A with lone readings and a pair of readings just
    over running_above (noise), and two real runs of 5 minutes."""
    n = 3600 // cadence_seconds
    current = np.full(n, RUNNING_ABOVE / 2)
    for i in (30, 95, 200, 201):  # blips at 00:05 and 00:15:50, a pair at 00:33:20
        current[i] = RUNNING_ABOVE + 0.05
    current[120:150] = 20.0  # a run of 5 minutes from 00:20
    current[300:330] = 20.0  # and from 00:50
    current[350] = RUNNING_ABOVE + 0.1  # a blip at the end of the hour... then idle
    return readings(current, cadence_seconds)


def sql(frame, features=FEATURES, ordered=False, cadence_seconds=10, window_min=15):
    con = duckdb.connect()
    con.register("clean", frame)
    text = feature_sql(
        "clean",
        features=features,
        ordered=ordered,
        cadence_seconds=cadence_seconds,
        window_min=window_min,
    )
    return con.execute(text).df()


@pytest.mark.parametrize("ordered", [False, True], ids=["partitioned", "in_order"])
def test_blips_of_an_idle_current_are_no_starts(ordered):
    assert 20 < MIN_SECONDS <= 60
    frame = blips_and_runs()
    out = sql(frame, ordered=ordered)
    # Windows of 15 minutes: the runs start in windows 1 (00:20) and 3 (00:50).
    assert out["compressor_starts_per_hour"].tolist() == [0.0, 4.0, 0.0, 4.0]
    # Counting every reading over running_above, the blips read as starts (short cycling).
    every = sql(frame, features=without_min_run(), ordered=ordered)
    assert every["compressor_starts_per_hour"].tolist() == [4.0, 8.0, 4.0, 8.0]
    # Nothing else changes.
    others = [c for c in out.columns if c != "compressor_starts_per_hour"]
    pd.testing.assert_frame_equal(out[others], every[others])


@pytest.mark.parametrize("ordered", [False, True], ids=["partitioned", "in_order"])
def test_a_run_still_going_at_the_end_of_the_readings_is_a_start(ordered):
    current = np.full(360, RUNNING_ABOVE / 2)
    current[357:] = 20.0  # starts 30 s before the hour's end: its length is not known
    out = sql(readings(current, 10), ordered=ordered)
    assert out["compressor_starts_per_hour"].tolist() == [0.0, 0.0, 0.0, 4.0]


@pytest.mark.parametrize("ordered", [False, True], ids=["partitioned", "in_order"])
def test_a_run_of_exactly_min_seconds_is_a_start_on_jittered_times(ordered):
    steps = int(MIN_SECONDS // 10)
    current = np.full(360, RUNNING_ABOVE / 2)
    current[100 : 100 + steps] = 20.0  # its next idle reading MIN_SECONDS after its first
    jitter = np.random.default_rng(1).uniform(0, 0.0004, 360)  # sub-millisecond times
    out = sql(readings(current, 10, jitter=jitter), ordered=ordered)
    assert out["compressor_starts_per_hour"].sum() == 4.0


@pytest.mark.parametrize("ordered", [False, True], ids=["partitioned", "in_order"])
def test_at_a_cadence_of_min_seconds_one_reading_is_a_start(ordered):
    cadence = int(MIN_SECONDS)
    current = np.full(3600 // cadence, RUNNING_ABOVE / 2)
    current[5] = 20.0  # one reading: the run spans at least a reading interval
    jitter = np.r_[np.zeros(6), np.full(len(current) - 6, -1.0)]  # its next reading 1 s early
    out = sql(readings(current, cadence, jitter=jitter), ordered=ordered, cadence_seconds=cadence)
    assert out["compressor_starts_per_hour"].tolist() == [4.0, 0.0, 0.0, 0.0]


def minute_fleet():
    from refrig_assets.simulator import FleetSimulator, SimulationConfig

    sim = FleetSimulator(
        SimulationConfig(devices=30, hours=3, seed=5, fault_fraction=0.3, start=START)
    )
    hours = []
    for i in range(3):
        hour = sim.hour(i).sort_values(["device_id", "ts"]).reset_index(drop=True)
        hour["quality_mask"] = 0
        hour["quality_flags"] = ""
        hour["source_file"] = "f.parquet"
        hours.append(hour)
    return hours


@pytest.mark.parametrize("ordered", [False, True], ids=["partitioned", "in_order"])
def test_the_simulator_at_a_minute_gives_the_same_features_as_counting_every_start(ordered):
    for hour in minute_fleet():
        out = sql(hour, ordered=ordered, cadence_seconds=60)
        every = sql(hour, features=without_min_run(), ordered=ordered, cadence_seconds=60)
        assert out["compressor_starts_per_hour"].sum() > 0
        pd.testing.assert_frame_equal(out, every)


def test_the_serving_windows_count_the_same_starts_as_the_feature_sql():
    rng = np.random.default_rng(4)
    frames = [blips_and_runs().assign(device_id="dev-0")]
    for d in range(1, 4):  # noisy idle currents around running_above, random runs, gaps
        current = RUNNING_ABOVE + rng.normal(-0.3, 0.3, 360)
        for at in rng.choice(340, 3, replace=False):
            current[at : at + int(rng.integers(1, 20))] = 20.0
        current[rng.random(360) < 0.05] = np.nan
        frame = readings(current, 10, device=f"dev-{d}", jitter=rng.uniform(0, 3, 360))
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    expected = sql(frame, ordered=True)
    assert expected["compressor_starts_per_hour"].sum() > 0
    table = pa.Table.from_pandas(frame, preserve_index=False)
    found = window_features(table, cadence_seconds=10, features=FEATURES)
    np.testing.assert_allclose(
        np.asarray(found["compressor_starts_per_hour"], float),
        expected["compressor_starts_per_hour"].to_numpy(float),
    )
    every = sql(frame, features=without_min_run(), ordered=True)
    assert (every["compressor_starts_per_hour"] > expected["compressor_starts_per_hour"]).any()


def test_spark_counts_the_same_starts_as_duckdb():
    from refrig_assets.engines.spark import spark_session

    frame = pd.concat(
        [blips_and_runs(), blips_and_runs().assign(device_id="dev-2")], ignore_index=True
    )
    expected = sql(frame)
    spark = spark_session("local[1]")
    try:
        spark.createDataFrame(frame).createOrReplaceTempView("clean")
        text = feature_sql("clean", cadence_seconds=10, window_min=15, dialect="spark")
        found = spark.sql(text).toPandas()
    finally:
        spark.stop()
    assert found["compressor_starts_per_hour"].tolist() == [0.0, 4.0, 0.0, 4.0] * 2
    np.testing.assert_array_equal(
        found["compressor_starts_per_hour"].to_numpy(float),
        expected["compressor_starts_per_hour"].to_numpy(float),
    )
