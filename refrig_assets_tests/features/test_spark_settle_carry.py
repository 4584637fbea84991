"""The Spark engine carries the running state's settle into the next hour as the embedded engine
does: a defrost or a compressor start a few minutes before the hour keeps the pull-down of the
hour's first minutes out of the running statistics on both engines, at every cadence.

One local Spark session serves the module. The fleets are hand-made, read every 1 s or 5 s
(1-minute windows, where the settle times apply) and every 60 s (15-minute windows: nothing to
carry).
"""

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines import embedded
from refrig_assets.features.windows import settle_carry_sql

READINGS = load_contract("sensor_readings")
FEATURES = load_contract("device_features")
RUNNING_ABOVE = READINGS.column("current_compressor").extra["running_above"]
DEFROST_ABOVE = READINGS.column("temperature_evaporator").extra["defrost_above"]
SETTLE = FEATURES.settings["running_settle"]
START = pd.Timestamp("2026-01-01T00:00Z")
KEYS = ["2026-01-01-00:00", "2026-01-01-01:00"]
DEFROST_END_S = 3420  # 00:57
START_AT_S = 3580  # 00:59:40
RUNNING_MEAN = "temperature_evaporator_running_mean"


def two_hours(cadence: int) -> pd.DataFrame:
    """Clean readings of two hours every ``cadence`` seconds: ``defrost`` ends a defrost at
    00:57 and pulls its coil down from +6 degC; ``start`` idles cold and starts its compressor
    at 00:59:40, its coil falling from -14 degC; ``steady`` runs settled throughout."""
    t = np.arange(0, 7200, cadence)
    frames = []
    for dev, since_s, warm in (("defrost", DEFROST_END_S, 26.0), ("start", START_AT_S, 6.0)):
        running = t >= since_s
        since = np.clip((t - since_s) / 60.0, 0, None)
        idle = DEFROST_ABOVE + 1.0 if dev == "defrost" else -20.0 + warm
        frames.append(_device(dev, t, running, np.where(running, -20.0 + warm * 0.7**since, idle)))
    frames.append(_device("steady", t, np.ones(len(t), dtype=bool), np.full(len(t), -20.0)))
    return pd.concat(frames, ignore_index=True)


def _device(dev: str, t: np.ndarray, running: np.ndarray, coil: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"device_id": dev, "ts": START + pd.to_timedelta(t, unit="s")})
    for s in READINGS.sensor_columns:
        frame[s] = 1.0
    frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")  # as the quality step stores it
    frame["current_compressor"] = np.where(running, RUNNING_ABOVE + 5.0, RUNNING_ABOVE / 10)
    frame["temperature_evaporator"] = coil
    frame["ambient_temperature"] = 20.0
    frame["door_open"] = False
    frame["quality_mask"] = 0
    frame["quality_flags"] = ""
    frame["source_file"] = "f.parquet"
    return frame


@pytest.fixture(scope="module")
def spark():
    from refrig_assets.engines.spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


def clean_store(tmp_path, cadence: int) -> ParquetStore:
    store = ParquetStore(tmp_path / "data")
    frame = two_hours(cadence)
    for h, key in enumerate(KEYS):
        inside = (frame["ts"] >= START + pd.Timedelta(hours=h)) & (
            frame["ts"] < START + pd.Timedelta(hours=h + 1)
        )
        hour = frame[inside].sort_values(["device_id", "ts"]).reset_index(drop=True)
        store.write("clean_readings", key, hour)
    return store


def spark_hour(spark, store: ParquetStore, key: str, cadence: int, previous) -> pd.DataFrame:
    from refrig_assets.engines.spark import write_features

    path = write_features(
        spark,
        store.path("clean_readings", key),
        store,
        key,
        cadence_seconds=cadence,
        dataset="device_features_spark",
        previous=previous,
    )
    return pd.read_parquet(path)


def same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Same rows and values (floats within 1e-9), timestamps as instants. Slopes within 1e-6:
    the engines sum a least-squares slope over minutes since the epoch in different orders, and
    a window of one minute read every second leaves them ~1e-8 apart with or without a carry."""

    def normalised(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values(["device_id", "window_start"]).reset_index(drop=True)
        for name in frame.columns:
            if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
                frame[name] = frame[name].dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        return frame

    left, right = normalised(left), normalised(right)
    slopes = [c for c in left.columns if c.endswith("_slope")]
    pd.testing.assert_frame_equal(
        left.drop(columns=slopes),
        right.drop(columns=slopes),
        check_exact=False,
        rtol=1e-9,
        atol=1e-9,
    )
    pd.testing.assert_frame_equal(left[slopes], right[slopes], check_exact=False, rtol=1e-6)


@pytest.mark.parametrize("cadence", [1, 5])
def test_spark_settles_the_hour_after_a_defrost_or_start_before_it_as_the_embedded_engine(
    spark, tmp_path, cadence
):
    assert SETTLE["after_defrost_seconds"] > 3600 - DEFROST_END_S  # reaches into the next hour
    assert SETTLE["after_start_seconds"] > 3600 - START_AT_S
    store = clean_store(tmp_path, cadence)
    first, second = (store.path("clean_readings", k) for k in KEYS)
    expected = pd.read_parquet(
        embedded.write_features(second, store, KEYS[1], cadence_seconds=cadence, previous=first)
    )
    actual = spark_hour(spark, store, KEYS[1], cadence, previous=first)
    same(expected, actual)

    # The carry is what makes them equal: the hour alone counts the pull-down as running ...
    alone = spark_hour(spark, store, KEYS[1], cadence, previous=None)
    opening = alone["window_start"] == START + pd.Timedelta(hours=1)
    for dev in ("defrost", "start"):
        row = (alone["device_id"] == dev) & opening
        assert alone.loc[row, RUNNING_MEAN].iloc[0] > -19.0
        assert (
            actual.loc[(actual["device_id"] == dev) & opening, RUNNING_MEAN].iloc[0]
            != (alone.loc[row, RUNNING_MEAN].iloc[0])
        )
    # ... the defrost's settle (10 minutes from 00:57) keeps 01:00-01:05 out entirely,
    settling = (actual["device_id"] == "defrost") & (
        actual["window_start"] < START + pd.Timedelta(hours=1, minutes=6)
    )
    assert actual.loc[settling, RUNNING_MEAN].isna().all()
    # and the device that ran settled all along keeps every window.
    steady = actual.loc[actual["device_id"] == "steady", RUNNING_MEAN]
    assert steady.tolist() == [-20.0] * len(steady) and len(steady) == 60


def test_the_first_hour_without_a_previous_one_is_the_same_on_both_engines(spark, tmp_path):
    store = clean_store(tmp_path, 5)
    source = store.path("clean_readings", KEYS[0])
    expected = embedded.write_features(source, store, KEYS[0], cadence_seconds=5)
    same(pd.read_parquet(expected), spark_hour(spark, store, KEYS[0], 5, previous=None))


def test_nothing_is_carried_at_a_cadence_whose_windows_hold_the_settle(spark, tmp_path):
    # 15-minute windows at 60 s: the hour's features are those of the hour alone.
    assert settle_carry_sql("prev", cadence_seconds=60) is None
    store = clean_store(tmp_path, 60)
    first, second = (store.path("clean_readings", k) for k in KEYS)
    expected = pd.read_parquet(embedded.write_features(second, store, KEYS[1], cadence_seconds=60))
    same(expected, spark_hour(spark, store, KEYS[1], 60, previous=first))


def test_a_spark_submitted_hour_settles_after_the_hour_before(spark, tmp_path, monkeypatch):
    # run_hour (spark-submit) reads the previous hour's clean readings where they are.
    from refrig_assets.engines.spark_hourly import run_hour
    from refrig_assets.simulator.writer import readings_path, write_frame

    monkeypatch.setenv("REFRIG_DATA_DIR", str(tmp_path / "driver"))
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "5")
    landing = tmp_path / "landing"
    frame = two_hours(5)[READINGS.column_names]
    rng = np.random.default_rng(5)
    for s in READINGS.sensor_columns:  # no sensor reads the same value all along
        if s != "temperature_evaporator":
            frame[s] = frame[s] + rng.normal(0, 0.05, len(frame))
    for h in range(2):
        at = START + pd.Timedelta(hours=h)
        inside = (frame["ts"] >= at) & (frame["ts"] < at + pd.Timedelta(hours=1))
        write_frame(frame[inside], readings_path(landing, at, "parquet"))
    data = ParquetStore(tmp_path / "data")
    data.write("device_registry", None, pd.DataFrame({"device_id": ["defrost", "start", "steady"]}))
    for key in KEYS:
        run_hour(
            spark, landing, tmp_path / "index.json", data.root.as_uri(), key, cadence_seconds=5
        )

    first, second = (data.path("clean_readings", k) for k in KEYS)
    expected = embedded.write_features(
        second, ParquetStore(tmp_path / "embedded"), KEYS[1], cadence_seconds=5, previous=first
    )
    actual = data.read("device_features", KEYS[1])
    same(pd.read_parquet(expected), actual)
    opening = (actual["device_id"] == "defrost") & (
        actual["window_start"] == START + pd.Timedelta(hours=1)
    )
    assert actual.loc[opening, RUNNING_MEAN].isna().all() and opening.sum() == 1


def test_the_spark_asset_settles_after_the_hour_before(spark, refrig_home, tmp_path, monkeypatch):
    # The device_features asset on Spark passes the previous hour's clean readings.
    import dagster as dg

    from refrig_assets.core.settings import get_settings
    from refrig_assets.defs.features.assets import device_features
    from refrig_assets.defs.shared.resources import RefrigResource

    monkeypatch.setenv("REFRIG_ENGINE", "spark")
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "5")
    source = clean_store(tmp_path, 5)
    home = ParquetStore(get_settings().data_dir)
    for key in KEYS:
        home.write("clean_readings", key, source.read("clean_readings", key))
    result = dg.materialize(
        [device_features], partition_key=KEYS[1], resources={"refrig": RefrigResource()}
    )
    assert result.success
    first, second = (source.path("clean_readings", k) for k in KEYS)
    expected = embedded.write_features(second, source, KEYS[1], cadence_seconds=5, previous=first)
    actual = home.read("device_features", KEYS[1])
    same(pd.read_parquet(expected), actual)
    opening = (actual["device_id"] == "defrost") & (
        actual["window_start"] == START + pd.Timedelta(hours=1)
    )
    assert actual.loc[opening, RUNNING_MEAN].isna().all() and opening.sum() == 1
