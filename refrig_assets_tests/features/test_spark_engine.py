"""The Spark engine gives the embedded engine's features and scores on the same input.

One local Spark session serves the whole module (starting one takes ~10 s). The input is a
small simulated fleet in the clean_readings shape, with dropouts, out-of-range values and
quality flags, written to the project's Parquet layout.
"""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from refrig_assets.core.contracts import load_contract, quality_flag_names
from refrig_assets.core.model_config import all_model_ids
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines import configured_engine, embedded, spark_master

HOURS = ["2026-01-01-00:00", "2026-01-01-01:00", "2026-01-01-02:00"]
SCORED_AT = datetime(2026, 1, 1, 3, tzinfo=UTC)


def _bit(flag: str) -> int:
    return 1 << quality_flag_names().index(flag)


def clean_readings_frame(readings: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Simulated readings in the clean_readings shape, with the flags a real hour carries."""
    sensors = load_contract("sensor_readings").sensor_columns
    frame = readings.copy()
    mask = np.where(frame[sensors].isna().any(axis=1), _bit("SENSOR_DROPOUT"), 0)
    wild = rng.random(len(frame)) < 0.003  # out-of-range values are kept, flagged, not used
    frame.loc[wild, "vibration_compressor"] = 1e6
    mask = mask | np.where(wild, _bit("OUT_OF_RANGE"), 0)
    frame["quality_mask"] = mask.astype("int64")
    frame["quality_flags"] = np.where(mask != 0, "FLAGGED", "")
    frame["source_file"] = "landing/readings.parquet"
    frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")  # as the quality step stores it
    return frame.sort_values(["device_id", "ts"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Clean readings of 60 devices × 3 hours and their registry, on disk."""
    from refrig_assets.simulator import FleetSimulator, SimulationConfig

    sim = FleetSimulator(
        SimulationConfig(
            devices=60, hours=3, seed=11, fault_fraction=0.2, sensor_fault_fraction=0.1
        )
    )
    store = ParquetStore(tmp_path_factory.mktemp("spark_parity") / "data")
    rng = np.random.default_rng(3)
    for i, key in enumerate(HOURS):
        store.write("clean_readings", key, clean_readings_frame(sim.hour(i), rng))
    return store, sim.registry()


@pytest.fixture(scope="module")
def spark():
    from refrig_assets.engines.spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


def embedded_features(store: ParquetStore, key: str) -> pd.DataFrame:
    path = embedded.write_features(store.path("clean_readings", key), store, key)
    return pd.read_parquet(path)


def spark_features(spark, store: ParquetStore, key: str) -> pd.DataFrame:
    from refrig_assets.engines.spark import write_features

    path = write_features(
        spark, store.path("clean_readings", key), store, key, dataset="device_features_spark"
    )
    return pd.read_parquet(path)


def assert_same_frames(left: pd.DataFrame, right: pd.DataFrame, keys: list[str]) -> None:
    """Same rows and values (floats within 1e-9); timestamps compared as instants."""

    def normalised(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values(keys).reset_index(drop=True)
        for name in frame.columns:
            if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
                frame[name] = frame[name].dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        return frame

    left, right = normalised(left), normalised(right)
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-9, atol=1e-9)


def test_spark_computes_the_same_feature_windows_into_the_same_layout(spark, fleet):
    store, _ = fleet
    expected = embedded_features(store, HOURS[0])
    actual = spark_features(spark, store, HOURS[0])
    assert list(actual.columns) == load_contract("device_features").column_names
    assert len(actual) > 60 * 4 * 0.9
    assert_same_frames(expected, actual, ["device_id", "window_start"])
    # Same Parquet layout: one file per partition, same column types.
    spark_file = store.path("device_features_spark", HOURS[0])
    assert spark_file.name == store.path("device_features", HOURS[0]).name
    assert not [p for p in spark_file.parent.iterdir() if p.name.startswith(".")]
    embedded_types = pq.read_schema(store.path("device_features", HOURS[0])).types
    assert pq.read_schema(spark_file).types == embedded_types


def test_a_window_whose_compressor_state_no_reading_tells_is_the_same_on_both_engines(
    spark, fleet, tmp_path
):
    """Starts, run and defrost counts of a window whose current is missing in every reading:
    unknown (NULL) on both engines, not 0 on one of them."""
    source, _ = fleet
    readings = pd.read_parquet(source.path("clean_readings", HOURS[0]))
    device = readings["device_id"].iloc[0]
    first_window = readings["ts"] < readings["ts"].min().floor("h") + pd.Timedelta(minutes=15)
    readings.loc[(readings["device_id"] == device) & first_window, "current_compressor"] = None
    store = ParquetStore(tmp_path / "data")
    store.write("clean_readings", HOURS[0], readings)
    expected = embedded_features(store, HOURS[0])
    unknown = expected[expected["device_id"] == device].iloc[0]
    assert pd.isna(unknown["compressor_starts_per_hour"]) and pd.isna(unknown["duty_cycle"])
    assert_same_frames(
        expected, spark_features(spark, store, HOURS[0]), ["device_id", "window_start"]
    )


def test_spark_feature_file_passes_the_device_features_contract(spark, fleet):
    store, _ = fleet
    spark_features(spark, store, HOURS[1])
    path = store.path("device_features_spark", HOURS[1])
    assert embedded.file_violations(path, load_contract("device_features")).empty


@pytest.mark.parametrize("model_id", all_model_ids())
def test_spark_scores_equal_the_embedded_scores(spark, fleet, model_id):
    from refrig_assets.core.model_config import load_model_config
    from refrig_assets.detectors import build_detector
    from refrig_assets.engines.spark import score_paths_on_spark
    from refrig_assets.scoring.score import score_windows, with_cohort

    store, registry = fleet
    for key in HOURS:
        embedded_features(store, key)
    if not store.exists("device_features_spark", HOURS[2]):
        spark_features(spark, store, HOURS[2])
    training = with_cohort(store.read_many("device_features", HOURS[:2]), registry)
    detector = build_detector(load_model_config(model_id)).fit(training)

    # The last hour scored with the earlier ones as context (persistence looks back).
    since = pd.Timestamp(HOURS[2][:13] + ":00Z")
    paths = [store.path("device_features", h) for h in HOURS]
    features = with_cohort(store.read_many("device_features", HOURS), registry)
    expected = score_windows(detector, "1", features, SCORED_AT, since=since)
    actual = score_paths_on_spark(spark, detector, "1", paths, registry, SCORED_AT, since=since)
    assert load_contract("model_scores").validate(actual).empty
    assert len(actual) == len(expected) > 0
    assert_same_frames(expected, actual, ["device_id", "window_start"])

    # Spark's own features of the hour give the scores of the embedded features of the hour.
    hour = with_cohort(store.read("device_features", HOURS[2]), registry)
    expected = score_windows(detector, "1", hour, SCORED_AT)
    paths = [store.path("device_features_spark", HOURS[2])]
    actual = score_paths_on_spark(spark, detector, "1", paths, registry, SCORED_AT)
    assert_same_frames(expected, actual, ["device_id", "window_start"])


def test_the_engine_is_chosen_by_configuration(monkeypatch):
    monkeypatch.delenv("REFRIG_ENGINE", raising=False)
    monkeypatch.delenv("REFRIG_SPARK_MASTER", raising=False)
    assert configured_engine() == "duckdb"
    assert spark_master() == "local[*]"
    monkeypatch.setenv("REFRIG_ENGINE", "Spark")
    monkeypatch.setenv("REFRIG_SPARK_MASTER", "spark://cluster:7077")
    assert configured_engine() == "spark"
    assert spark_master() == "spark://cluster:7077"
    monkeypatch.setenv("REFRIG_ENGINE", "postgres")
    with pytest.raises(ValueError, match="REFRIG_ENGINE='postgres'.*duckdb.*spark"):
        configured_engine()


def test_a_failed_spark_write_leaves_the_previous_partition(spark, tmp_path):
    from refrig_assets.engines.spark import write_parquet_file

    final = tmp_path / "device_features" / "2026-01-01T00.parquet"
    final.parent.mkdir()
    pd.DataFrame({"v": [1, 2]}).to_parquet(final)
    failing = spark.sql("SELECT CAST(concat('not a number ', id) AS INT) AS v FROM range(3)")
    with pytest.raises(Exception, match="(?i)cast"):
        write_parquet_file(failing, final)
    assert pd.read_parquet(final)["v"].tolist() == [1, 2]
    assert [p.name for p in final.parent.iterdir()] == [final.name]


def test_device_features_asset_runs_on_spark_when_configured(
    spark, fleet, refrig_home, monkeypatch
):
    import dagster as dg

    from refrig_assets.core.settings import get_settings
    from refrig_assets.defs.features.assets import device_features
    from refrig_assets.defs.shared.resources import RefrigResource

    source, _ = fleet
    home = ParquetStore(get_settings().data_dir)
    home.write("clean_readings", HOURS[0], source.read("clean_readings", HOURS[0]))
    monkeypatch.setenv("REFRIG_ENGINE", "spark")
    result = dg.materialize(
        [device_features], partition_key=HOURS[0], resources={"refrig": RefrigResource()}
    )
    assert result.success
    materialization = result.asset_materializations_for_node("device_features")[0]
    assert materialization.metadata["engine"].value == "spark"
    assert all(c.passed for c in result.get_asset_check_evaluations())
    expected = embedded_features(source, HOURS[0])
    assert_same_frames(
        expected, home.read("device_features", HOURS[0]), ["device_id", "window_start"]
    )
