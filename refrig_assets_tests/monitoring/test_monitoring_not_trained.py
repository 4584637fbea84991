"""Daily monitoring of a detector recorded as not trained (e.g. DBSCAN on a fleet with no more
devices than its ``min_samples``): it is skipped saying "not trained (reason)", with no warning
telling the operator to train it, while a model that simply has no version is still warned
about."""

import logging

import dagster as dg
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.monitoring.assets import feature_drift, pipeline_health, score_drift
from refrig_assets.defs.shared.lifecycle import model_lifecycle
from refrig_assets.defs.shared.resources import RefrigResource

DAY = "2026-01-01"
REASON = "fleet too small: 8 devices with complete profiles <= hyperparameters.min_samples 10"


def small_fleet_day() -> None:
    """One hour of (empty) feature windows and a registry; DBSCAN's training recorded as
    having fitted nothing; no detector has a version."""
    store = ParquetStore(get_settings().data_dir)
    store.write(
        "device_features", "2026-01-01-00:00", load_contract("device_features").empty_frame()
    )
    store.write(
        "device_registry",
        None,
        pd.DataFrame({"device_id": ["dev-1", "dev-2"], "site_id": "S1", "cohort": "walk_in"}),
    )
    model_lifecycle(RefrigResource()).record_not_trained(
        "dbscan_cohort", "test", REASON, "hyperparameters.min_samples"
    )


def monitor(asset: dg.AssetsDefinition):
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [asset], partition_key=DAY, resources={"refrig": RefrigResource()}, instance=instance
    )
    assert result.success
    logs = [
        (r.level, r.user_message)
        for r in instance.all_logs(result.run_id)
        if r.user_message.startswith(("dbscan_cohort", "isolation_forest"))
    ]
    return result, logs


def test_feature_drift_skips_a_not_trained_detector_saying_why(refrig_home):
    small_fleet_day()

    result, logs = monitor(feature_drift)

    assert (logging.INFO, f"dbscan_cohort: not monitored — not trained ({REASON})") in logs
    assert not [m for level, m in logs if level >= logging.WARNING and "dbscan" in m]
    assert any(
        level == logging.WARNING and "isolation_forest" in m and "no production version" in m
        for level, m in logs
    )
    meta = result.asset_materializations_for_node("feature_drift")[0].metadata
    assert f"dbscan_cohort: not trained ({REASON})" in meta["not_compared"].value


def test_score_drift_and_pipeline_health_do_not_warn_about_a_not_trained_detector(refrig_home):
    small_fleet_day()

    for asset in (score_drift, pipeline_health):
        _, logs = monitor(asset)

        assert not [m for level, m in logs if level >= logging.WARNING and "dbscan" in m]
        assert any("dbscan_cohort" in m and f"not trained ({REASON})" in m for _, m in logs)
