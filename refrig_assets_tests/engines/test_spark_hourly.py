"""The whole hourly path on Spark gives the embedded engine's partitions on the same landing zone.

Two hours of a small simulated fleet with sensor faults, plus hand-made trouble, go through
ingestion, quality, features, scoring and alerts once on the embedded engine (DuckDB/pandas) and
once on Spark (``local[2]``, one session for the module, every location a ``file://`` URI):
typed readings, clean rows, quarantine rows and reasons, flags, stuck-run tails, counts,
features, scores and alerts must be the same.

The trouble: a device delivered twice (duplicates), a device missing from the registry whose
sensor is stuck across the hour boundary, an out-of-range value, a missing value, an id that
breaks the contract's pattern, and a CSV with a row without a device and an unparsable value.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from support.quality_helpers import CONTRACT, arrived_in_hour, good_rows

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.duck import connect
from refrig_assets.core.storage import ParquetStore
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex
from refrig_assets.quality.shards import clean_hour_in_shards
from refrig_assets.simulator import FleetSimulator, SimulationConfig
from refrig_assets.simulator.writer import readings_path, write_frame

pytestmark = pytest.mark.slow  # one Spark session and two hours through every step: ~1-2 min

START = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = ["2026-01-01-00:00", "2026-01-01-01:00"]
SCORED_AT = START + timedelta(hours=2)
MODEL = "statistical_baseline"


@pytest.fixture(scope="module")
def spark():
    from refrig_assets.engines.spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A landing zone of two hours with trouble in it, the registry and an empty store."""
    root = tmp_path_factory.mktemp("spark_hourly")
    landing = root / "landing"
    config = SimulationConfig(
        devices=16, hours=2, seed=5, fault_fraction=0.25, sensor_fault_fraction=0.3
    )
    sim = FleetSimulator(config)
    sensor = CONTRACT.sensor_columns[0]
    for h in range(2):
        frame = sim.hour(h)
        if h == 0:  # delivered twice: duplicates quarantined, DUPLICATE on the kept copy
            frame = pd.concat([frame, frame[frame["device_id"] == frame["device_id"].iloc[0]]])
            frame.loc[frame.index[3], sensor] = 1e6  # OUT_OF_RANGE, kept and flagged
            frame.loc[frame.index[4], sensor] = np.nan  # SENSOR_DROPOUT
        write_frame(frame, readings_path(landing, config.start + timedelta(hours=h), "parquet"))
    # an unregistered device whose evaporator is stuck from 00:05 to 01:50, and a broken id
    stuck = good_rows(n=110, device="zz-unregistered", start_minute=0)
    stuck.loc[5:, "temperature_evaporator"] = 4.25
    stuck.loc[7, "device_id"] = "bad id/with slash"
    for h in range(2):
        part = stuck[(stuck["ts"] >= START + timedelta(hours=h))]
        part = part[part["ts"] < START + timedelta(hours=h + 1)]
        part.to_parquet(landing / f"extra-{h}.parquet", index=False)
    # a CSV with a row without a device, a value that is not a number and a quoted id
    broken = good_rows(n=4, device=sim.registry()["device_id"].iloc[1], start_minute=10)
    broken["ts"] = broken["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    broken = broken.astype(str)
    broken.loc[0, "device_id"] = ""
    broken.loc[1, "temperature_evaporator"] = "not-a-number"
    broken.loc[2, "device_id"] = "it's-bad"
    bad = landing / "broken.csv"
    broken.to_csv(bad, index=False)
    arrived_in_hour(bad)
    return root, landing, sim.registry()


def _hour(key: str) -> tuple[datetime, datetime]:
    start = START + timedelta(hours=KEYS.index(key))
    return start, start + timedelta(hours=1)


def _registered(registry: pd.DataFrame) -> pa.Table:
    return pa.table({"device_id": pa.array(registry["device_id"].tolist(), pa.string())})


@pytest.fixture(scope="module")
def embedded_run(world):
    """Every hour through the embedded engine, as the assets run it."""
    from refrig_assets.engines import embedded

    root, landing, registry = world
    store = ParquetStore(root / "embedded")
    index = LandingIndex(root / "embedded-index.json")
    results = {}
    for i, key in enumerate(KEYS):
        start, end = _hour(key)
        con = connect()
        try:
            hour = hour_readings(con, landing, start, end, key, CONTRACT, index)
            store.write_from_duckdb("sensor_readings", key, con, hour.sql)
        finally:
            con.close()
        index.record_hour(key, hour.considered, datetime.now(UTC))
        index.save()
        tails = store.path("stuck_sensor_tails", KEYS[i - 1]) if i else None
        _, results[key] = clean_hour_in_shards(
            connect(),
            store,
            key,
            store.path("sensor_readings", key),
            CONTRACT,
            _registered(registry),
            previous_tails=tails,
            shards=1,
        )
        embedded.write_features(store.path("clean_readings", key), store, key)
    return store, results


@pytest.fixture(scope="module")
def spark_run(world, spark):
    """Every hour through the Spark engine, every location given as a file:// URI."""
    from refrig_assets.engines import spark as spark_engine
    from refrig_assets.engines.spark_hourly import write_hour_readings, write_quality_hour

    root, landing, registry = world
    store = ParquetStore(root / "spark")
    index = LandingIndex(root / "spark-index.json")
    registered = spark.createDataFrame(registry[["device_id"]])
    results = {}
    for i, key in enumerate(KEYS):
        start, end = _hour(key)
        readings = store.path("sensor_readings", key).as_uri()
        hour = write_hour_readings(
            spark, landing, start, end, key, CONTRACT, index, target=readings
        )
        index.record_hour(key, hour.considered, datetime.now(UTC))
        index.save()
        tails = store.path("stuck_sensor_tails", KEYS[i - 1]).as_uri() if i else None
        results[key] = write_quality_hour(
            spark,
            readings,
            CONTRACT,
            registered,
            clean_target=store.path("clean_readings", key).as_uri(),
            tails_target=store.path("stuck_sensor_tails", key).as_uri(),
            quarantine_target=store.path("quarantined_readings", key).as_uri(),
            previous_tails=tails,
        )
        spark_engine.write_features(spark, store.path("clean_readings", key), store, key)
    return store, results


def _same(left: pd.DataFrame, right: pd.DataFrame, keys: list[str] | None = None) -> None:
    """Same rows, columns and values (floats to 1e-9); timestamps compared as UTC instants."""

    def normalised(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values(keys, kind="stable") if keys else frame
        frame = frame.reset_index(drop=True)
        for name in frame.columns:
            if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
                frame[name] = frame[name].dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        return frame

    pd.testing.assert_frame_equal(
        normalised(left), normalised(right), check_exact=False, rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("key", KEYS)
def test_ingestion_on_spark_types_the_same_rows_with_the_same_read_errors(
    embedded_run, spark_run, key
):
    expected = embedded_run[0].read("sensor_readings", key)
    actual = spark_run[0].read("sensor_readings", key)
    assert list(actual.columns) == list(expected.columns)
    _same(expected, actual, ["source_file", "source_row", "read_error"])
    errors = set(expected["read_error"].dropna())
    if key == KEYS[0]:
        assert {"unparsable_value", "invalid_device_id"} <= errors


@pytest.mark.parametrize("key", KEYS)
def test_quality_on_spark_keeps_the_same_clean_rows_in_the_same_order(embedded_run, spark_run, key):
    expected = embedded_run[0].read("clean_readings", key)
    actual = spark_run[0].read("clean_readings", key)
    _same(expected, actual)  # file order too: (device_id, ts)
    flags = set(",".join(expected["quality_flags"]).split(","))
    assert {"SENSOR_DROPOUT", "STUCK_SENSOR", "UNREGISTERED_DEVICE"} <= flags
    if key == KEYS[0]:
        assert {"OUT_OF_RANGE", "DUPLICATE"} <= flags


@pytest.mark.parametrize("key", KEYS)
def test_quality_on_spark_quarantines_the_same_rows_for_the_same_reasons(
    embedded_run, spark_run, key
):
    expected, actual = embedded_run[1][key], spark_run[1][key]
    _same(expected.quarantine, actual.quarantine)  # messages included, word for word
    written = spark_run[0].read("quarantined_readings", key)
    _same(expected.quarantine, written, ["source_file", "row", "rule"])
    if key == KEYS[0]:
        rules = set(expected.quarantine["rule"])
        assert {"missing_value", "unparsable_value", "invalid_device_id"} <= rules
        assert "duplicate_reading" in rules


@pytest.mark.parametrize("key", KEYS)
def test_quality_on_spark_counts_the_same_flags_and_carries_the_same_stuck_runs(
    embedded_run, spark_run, key
):
    expected, actual = embedded_run[1][key], spark_run[1][key]
    for name in ("rows_read", "rows_clean", "rows_quarantined", "sensor_values_present"):
        assert getattr(actual, name) == getattr(expected, name), name
    assert actual.flag_counts == expected.flag_counts
    assert actual.sensor_flag_counts == expected.sensor_flag_counts
    assert actual.nan_storm_files == expected.nan_storm_files
    assert actual.balanced
    _same(
        embedded_run[0].read("stuck_sensor_tails", key),
        spark_run[0].read("stuck_sensor_tails", key),
        ["device_id", "sensor"],
    )


@pytest.mark.parametrize("key", KEYS)
def test_features_of_the_spark_clean_rows_equal_the_embedded_features(embedded_run, spark_run, key):
    _same(
        embedded_run[0].read("device_features", key),
        spark_run[0].read("device_features", key),
        ["device_id", "window_start"],
    )


def test_scores_and_alerts_on_spark_equal_the_embedded_ones(world, embedded_run, spark_run, spark):
    from refrig_assets.alerts.generation import generate_alerts
    from refrig_assets.core.model_config import load_model_config
    from refrig_assets.detectors import build_detector
    from refrig_assets.engines.spark import score_paths_on_spark
    from refrig_assets.engines.spark_hourly import alerts_of_paths_on_spark
    from refrig_assets.scoring.score import score_windows, with_cohort

    _, _, registry = world
    store, spark_store = embedded_run[0], spark_run[0]
    training = with_cohort(store.read("device_features", KEYS[0]), registry)
    detector = build_detector(load_model_config(MODEL)).fit(training)
    hour = with_cohort(store.read("device_features", KEYS[1]), registry)
    expected_scores = score_windows(detector, "1", hour, SCORED_AT)
    paths = [spark_store.path("device_features", KEYS[1]).as_uri()]
    scores = score_paths_on_spark(spark, detector, "1", paths, registry, SCORED_AT)
    _same(expected_scores, scores, ["device_id", "window_start"])

    spark_store.write("model_scores", KEYS[1], scores)
    # an earlier alert of a flagged device: suppression must see it on Spark as well
    flagged = expected_scores[expected_scores["anomaly_flag"].astype(bool)]
    assert len(flagged) > 0
    earlier = generate_alerts(flagged.head(1), registry, pd.DataFrame(), KEYS[0], "run-0")
    earlier["alert_created_at"] -= pd.Timedelta(minutes=30)
    expected = generate_alerts(expected_scores, registry, earlier, KEYS[1], "run-1")
    actual = alerts_of_paths_on_spark(
        spark,
        [spark_store.path("model_scores", KEYS[1]).as_uri()],
        registry,
        earlier,
        KEYS[1],
        "run-1",
    )
    assert len(actual) == len(expected) > 0
    assert expected["suppressed"].any()
    _same(expected, actual, ["device_id", "window_start"])

    # the device_alerts asset's hour: every detector's score partition that exists
    from refrig_assets.alerts.hourly import alerts_in_shards
    from refrig_assets.engines.spark_hourly import hour_alerts_on_spark

    spark_store.write(f"{MODEL}_scores", KEYS[1], scores)
    start, end = (pd.Timestamp(t) for t in _hour(KEYS[1]))
    hour_args = (KEYS[1], start, end, registry, earlier, "run-1")
    embedded_hour = alerts_in_shards(spark_store, *hour_args)
    spark_hour = hour_alerts_on_spark(spark, spark_store, *hour_args)
    assert spark_hour.models_present == embedded_hour.models_present == [MODEL]
    _same(embedded_hour.alerts, spark_hour.alerts, ["device_id", "window_start"])


def test_a_spark_write_to_a_uri_replaces_the_partition_in_one_file(spark, tmp_path: Path):
    from refrig_assets.engines.spark import write_parquet_file

    final = tmp_path / "clean_readings" / "2026-01-01T00.parquet"
    final.parent.mkdir()
    pd.DataFrame({"v": [1, 2]}).to_parquet(final)
    write_parquet_file(spark.sql("SELECT id AS v FROM range(3)"), final.as_uri())
    assert pd.read_parquet(final)["v"].tolist() == [0, 1, 2]
    assert [p.name for p in final.parent.iterdir()] == [final.name]


def test_run_hour_writes_the_hour_under_a_data_uri_as_spark_submit_runs_it(
    world, embedded_run, spark, tmp_path, monkeypatch
):
    from refrig_assets.engines.spark_hourly import partition_location, run_hour

    root, landing, registry = world
    monkeypatch.setenv("REFRIG_DATA_DIR", str(tmp_path / "driver"))  # the driver's own store
    data = ParquetStore(root / "submitted")
    data.write("device_registry", None, registry)
    counts = run_hour(spark, landing, root / "submitted-index.json", data.root.as_uri(), KEYS[0])
    expected = embedded_run[1][KEYS[0]]
    assert counts["rows_clean"] == expected.rows_clean
    assert counts["rows_quarantined"] == expected.rows_quarantined
    assert partition_location(data.root.as_uri(), "clean_readings", KEYS[0]).endswith(
        data.path("clean_readings", KEYS[0]).relative_to(data.root).as_posix()
    )
    for dataset in ("clean_readings", "device_features"):
        _same(embedded_run[0].read(dataset, KEYS[0]), data.read(dataset, KEYS[0]))
    written = data.read("quarantined_readings", KEYS[0])
    _same(expected.quarantine, written, ["source_file", "row", "rule"])


def test_a_spark_submitted_hour_records_the_sensors_its_readings_report(
    world, spark, tmp_path, monkeypatch
):
    # The driver's quality reads the fleet's sensors from its store: the hour records them.
    from refrig_assets.core.fleet_sensors import measurement_columns
    from refrig_assets.core.reported_measurements import recorded_measurements
    from refrig_assets.engines.spark_hourly import run_hour

    root, landing, registry = world
    monkeypatch.setenv("REFRIG_DATA_DIR", str(tmp_path / "driver"))
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    data = ParquetStore(root / "submitted-record")
    data.write("device_registry", None, registry)

    run_hour(spark, landing, root / "record-index.json", data.root.as_uri(), KEYS[0])

    readings = data.read("sensor_readings", KEYS[0])
    names = [c.name for c in measurement_columns(load_contract("sensor_readings"))]
    reported = {n for n in names if n in readings and readings[n].notna().any()}
    assert reported
    assert set(recorded_measurements(tmp_path / "driver") or {}) == reported


def test_a_spark_submitted_hour_records_each_device_s_sensor_kit_as_ingestion_does(
    world, spark, tmp_path, monkeypatch
):
    # A data logger without a discharge transmitter among the fleet: its kit lacks the sensor
    # (no SENSOR_DROPOUT of it in quality), recorded from Spark's pass as from DuckDB's.
    import shutil

    from refrig_assets.core.fleet_sensors import record_hour_measurements
    from refrig_assets.core.reported_measurements import recorded_device_kits
    from refrig_assets.engines.spark_hourly import run_hour

    root, landing, registry = world
    kit_landing = tmp_path / "landing"
    shutil.copytree(landing, kit_landing)
    logger = good_rows(n=30, device="kit-logger", start_minute=0)
    logger["pressure_high_side"] = np.nan
    logger.to_parquet(kit_landing / "logger-0.parquet", index=False)
    monkeypatch.setenv("REFRIG_DATA_DIR", str(tmp_path / "driver"))
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    data = ParquetStore(tmp_path / "submitted")
    data.write("device_registry", None, registry)

    run_hour(spark, kit_landing, tmp_path / "index.json", data.root.as_uri(), KEYS[0])

    kits = recorded_device_kits(tmp_path / "driver")
    assert "pressure_high_side" not in kits["kit-logger"]
    embedded = tmp_path / "embedded"
    record_hour_measurements(
        embedded, data.path("sensor_readings", KEYS[0]), KEYS[0], load_contract("sensor_readings")
    )
    assert kits == recorded_device_kits(embedded)


def test_the_ingestion_and_quality_assets_run_on_spark_when_configured(
    world, spark, refrig_home, monkeypatch
):
    import shutil

    import dagster as dg
    from support.landing_world import LandingWorld, checks, metadata
    from support.quality_helpers import run_hour as embedded_hour

    _, landing, registry = world
    monkeypatch.setenv("REFRIG_ENGINE", "spark")
    assets_world = LandingWorld(devices=tuple(registry["device_id"]))
    shutil.copytree(landing, assets_world.landing, dirs_exist_ok=True)
    result = assets_world.run_hour(
        dg.DagsterInstance.ephemeral(),
        KEYS[0],
        assets=["sensor_readings", "clean_readings", "quarantined_readings"],
    )
    # (the landing's trouble fails the sensor_readings contract check, a warning, on any engine)
    done = checks(result)
    for name in ("rows_accounted_for", "clean_readings_contract", "quarantined_readings_contract"):
        assert done[name].passed, name
    clean, expected = embedded_hour(
        assets_world.landing,
        registered=tuple(registry["device_id"]),
        index_path=refrig_home / "embedded-index.json",
    )
    assert metadata(result, "clean_readings")["rows_clean"] == expected.rows_clean == len(clean)
    _same(clean, assets_world.rows("clean_readings", KEYS[0]))
    _same(expected.quarantine, assets_world.rows("quarantined_readings", KEYS[0]))
