"""A second ``refrig pipeline run`` over the same data and code stores what the first one did:
the same alerts (ids, suppressed flags, severities), incidents, notifications and device
status. The daily detectors' scores are written after the hourly alert chain, so an hourly step
that read them would alert on them in a rerun only."""

from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from refrig_assets.cli.runner import run_pipeline

pytestmark = pytest.mark.fault_injection

# Six hours that end at midnight: the day's features are fresh, so its daily scores are written.
START = datetime(2026, 1, 1, 18, tzinfo=UTC)
ALERT_COLUMNS = ["alert_id", "suppressed", "severity", "model_versions", "window_start"]
INCIDENT_COLUMNS = ["incident_id", "status", "severity", "paged_severity", "alert_count"]


def _tables(settings) -> dict[str, pd.DataFrame]:
    from refrig_assets.core.partition_range import hour_keys
    from refrig_assets.core.storage import ParquetStore

    engine = sa.create_engine(settings.alerts_db_url)
    try:
        with engine.connect() as c:
            alerts = pd.read_sql("SELECT * FROM alerts", c)
            incidents = pd.read_sql("SELECT * FROM incidents", c)
            outbox = pd.read_sql("SELECT dedup_key FROM notification_outbox", c)
    finally:
        engine.dispose()
    incident_columns = [col for col in INCIDENT_COLUMNS if col in incidents.columns]
    return {
        "alerts": alerts[ALERT_COLUMNS].sort_values("alert_id", ignore_index=True),
        "incidents": incidents[incident_columns].sort_values("incident_id", ignore_index=True),
        "outbox": outbox.sort_values("dedup_key", ignore_index=True),
        "device_status": ParquetStore(settings.data_dir).read_many(
            "device_status", hour_keys(START, 6)
        ),
    }


def test_a_rerun_stores_the_alerts_incidents_and_pages_of_the_first_run(refrig_home):
    from refrig_assets.core.settings import get_settings
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    s = get_settings()
    config = SimulationConfig(devices=120, hours=6, start=START, seed=42, fault_fraction=0.2)
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)

    run_pipeline(START, 6, 3, log=lambda _line: None)
    first = _tables(s)
    run_pipeline(START, 6, 3, log=lambda _line: None)
    second = _tables(s)

    assert len(first["alerts"]) > 0 and len(first["device_status"]) > 0
    for name in ("alerts", "incidents", "outbox", "device_status"):
        pd.testing.assert_frame_equal(first[name], second[name], obj=name)
    daily = [m for m in second["alerts"]["model_versions"] if "dbscan_cohort" in m]
    assert daily == []  # hourly alerts come from the hourly detectors only
