"""One small fleet through the real graph: Parquet on disk, MLflow registry, alert database."""

import dagster as dg
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore

HOURS = ["2026-01-01-00:00", "2026-01-01-01:00", "2026-01-01-02:00"]
PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]


@pytest.fixture
def graph(small_fleet):
    from refrig_assets.definitions import defs

    return defs


def run(defs, instance, assets, partition=None, run_config=None):
    job = defs.resolve_job_def("hourly_pipeline" if partition else "train_detectors")
    return job.execute_in_process(
        instance=instance,
        partition_key=partition,
        asset_selection=[dg.AssetKey(a) for a in assets],
        run_config=run_config,
        raise_on_error=True,
    )


def test_readings_to_alerts_for_one_partition(graph, small_fleet):
    from refrig_assets.alerts.store import AlertStore
    from refrig_assets.defs.ingestion.assets import device_registry

    store = ParquetStore(small_fleet.data_dir)
    with dg.instance_for_test() as instance:
        assert dg.materialize(
            [device_registry], instance=instance, resources=graph.resources
        ).success
        for hour in HOURS:
            result = run(graph, instance, PREP, hour)
            checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
            assert checks["rows_accounted_for"] and checks["clean_readings_contract"]
            assert checks["device_features_contract"]

        config = {"start_partition": HOURS[0], "end_partition": HOURS[1]}
        models = ["isolation_forest_model", "statistical_baseline_model"]
        run(graph, instance, models, run_config={"ops": {m: {"config": config} for m in models}})

        result = run(
            graph,
            instance,
            ["isolation_forest_scores", "statistical_baseline_scores", "device_alerts"],
            HOURS[2],
        )
        assert all(e.passed for e in result.get_asset_check_evaluations())

    features = store.read("device_features", HOURS[2])
    clean = store.read("clean_readings", HOURS[2])
    windows = clean.groupby(["device_id", clean["ts"].dt.floor("15min")]).ngroups
    assert len(features) == windows and windows > 40 * 4 * 0.9  # four 15-minute windows each
    for model in ("isolation_forest", "statistical_baseline"):
        scores = store.read(f"{model}_scores", HOURS[2])
        assert load_contract("model_scores").validate(scores).empty
        assert scores["anomaly_score"].between(0, 1).all()
        assert set(scores["model_version"]) == {"1"}
        assert (scores["model_id"] == model).all()

    alerts = store.read("device_alerts", HOURS[2])
    stored = AlertStore(small_fleet.alerts_db_url).list(include_suppressed=True)
    assert set(stored["alert_id"]) == set(alerts["alert_id"])
    if len(alerts):
        assert alerts["model_versions"].str.contains("@1").all()


def test_models_are_registered_with_lineage_tags(graph, small_fleet):
    from refrig_assets.defs.ingestion.assets import device_registry
    from refrig_assets.training.registry import ModelRegistry

    with dg.instance_for_test() as instance:
        dg.materialize([device_registry], instance=instance, resources=graph.resources)
        for hour in HOURS[:2]:
            run(graph, instance, PREP, hour)
        run(graph, instance, ["statistical_baseline_model"])
    registry = ModelRegistry(small_fleet.mlflow_tracking_uri, small_fleet.mlflow_artifacts_dir)
    assert registry.production_version("statistical_baseline") == "1"
    tags = registry.version_tags("statistical_baseline", "1")
    for tag in (
        "training_partitions",
        "training_data_hash",
        "config_hash",
        "code_version",
        "run_id",
        "feature_schema",
        "semver",
    ):
        assert tags.get(tag), tag
    assert tags["semver"] == "1.0.0"
    assert tags["training_partitions"] == "2026-01-01T00..2026-01-01T01"


def test_rerunning_a_partition_is_idempotent(graph, small_fleet):
    from refrig_assets.defs.ingestion.assets import device_registry

    store = ParquetStore(small_fleet.data_dir)
    with dg.instance_for_test() as instance:
        dg.materialize([device_registry], instance=instance, resources=graph.resources)
        run(graph, instance, PREP, HOURS[0])
        first = store.read("device_features", HOURS[0])
        run(graph, instance, PREP, HOURS[0])
        again = store.read("device_features", HOURS[0])
    pd.testing.assert_frame_equal(first, again)
