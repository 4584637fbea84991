"""The quality step in the graph: checks, metadata for the UI, contract versions, freshness and
the ``refrig quality report`` command."""

import json
import os
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from support.quality_helpers import arrived_in_hour
from typer.testing import CliRunner

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.ingestion.assets import device_registry, sensor_readings
from refrig_assets.defs.quality.assets import clean_readings
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.quality.freshness import (
    feature_staleness,
    partition_freshness,
    stale_feature_partitions,
)

H0 = "2026-01-01-00:00"
ASSETS = [device_registry, sensor_readings, clean_readings]


def materialize(instance, partition=H0):
    """Registry, readings and quality of one hour, in one run."""
    return dg.materialize(
        ASSETS, partition_key=partition, instance=instance, resources={"refrig": RefrigResource()}
    )


@pytest.fixture
def fleet_with_a_bad_file(small_fleet):
    bad = small_fleet.landing_dir / "bad" / "broken.csv"
    bad.parent.mkdir()
    bad.write_text("device_id,ts\ndev-1,2026-01-01T00:00:00Z\n")
    arrived_in_hour(bad)  # rejected as a whole: reported in the hour it arrived
    return small_fleet


def test_the_quality_step_records_checks_and_plottable_metrics(fleet_with_a_bad_file):
    with dg.instance_for_test() as instance:
        result = materialize(instance)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["rows_accounted_for"].passed
    assert checks["clean_readings_contract"].passed
    assert checks["quarantined_readings_contract"].passed
    assert not checks["landing_files_readable"].passed  # the broken file, named in metadata
    assert "bad/broken.csv" in checks["landing_files_readable"].metadata["rejected"].value
    [meta] = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("clean_readings")
    ]
    sensors = load_contract("sensor_readings").sensor_columns
    for sensor in sensors:
        for flag in ("sensor_dropout", "out_of_range", "stuck_sensor", "unit_suspect"):
            assert 0.0 <= meta[f"{flag}_rate__{sensor}"].value <= 1.0
    assert meta["rows_read"].value == meta["rows_clean"].value + meta["rows_quarantined"].value
    assert 0.9 < meta["completeness"].value <= 1.0
    assert meta["schema_fingerprint"].value == load_contract("clean_readings").schema_fingerprint


def test_a_change_of_the_contract_columns_is_reported(small_fleet):
    with dg.instance_for_test() as instance:
        old = {c.name: c.type for c in load_contract("clean_readings").columns}
        old.pop("quality_flags")
        old["humidity"] = "float"
        old["quality_mask"] = "string"
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "clean_readings", metadata={"contract_columns": dg.MetadataValue.json(old)}
            )
        )
        result = materialize(instance)
        again = materialize(instance)
    change = {e.check_name: e for e in result.get_asset_check_evaluations()}[
        "clean_readings_schema_unchanged"
    ]
    assert not change.passed
    assert change.metadata["added"].value == "quality_flags"
    assert change.metadata["removed"].value == "humidity"
    assert change.metadata["retyped"].value == "quality_mask: string -> int"
    unchanged = {e.check_name: e for e in again.get_asset_check_evaluations()}
    assert unchanged["clean_readings_schema_unchanged"].passed


def test_quality_report_lists_counts_rules_files_flag_rates_and_freshness(fleet_with_a_bad_file):
    with dg.instance_for_test() as instance:
        materialize(instance)
    from refrig_assets.cli import app

    out = CliRunner().invoke(app, ["quality", "report", "--partition", H0, "--format", "json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["rows_read"] == report["rows_clean"] + report["rows_quarantined"]
    assert report["quarantined_by_rule"] == {"missing_column": 1}
    assert report["quarantined_by_file"] == [
        {"source_file": "bad/broken.csv", "rule": "missing_column", "entries": 1}
    ]
    sensors = set(load_contract("sensor_readings").sensor_columns)
    assert set(report["flag_rates_by_sensor"]["SENSOR_DROPOUT"]) == sensors
    assert report["freshness"]["clean_readings"]["state"] == "fresh"
    assert report["freshness"]["device_features"]["state"] == "missing"

    text = CliRunner().invoke(app, ["quality", "report", "--partition", "2026-01-01T00"])
    assert text.exit_code == 0 and "quarantined by rule:" in text.output
    assert "bad/broken.csv" in text.output
    missing = CliRunner().invoke(app, ["quality", "report", "--partition", "2026-01-02-00:00"])
    assert missing.exit_code == 1 and "no quality summary for partition" in missing.output


def test_features_older_than_their_clean_readings_are_stale(tmp_path):
    store = ParquetStore(tmp_path)
    now = datetime(2026, 1, 1, 3, tzinfo=UTC)
    assert feature_staleness(None, now, H0).stale
    assert not feature_staleness(now, now - timedelta(minutes=1), H0).stale
    verdict = feature_staleness(now - timedelta(minutes=5), now, H0)
    assert verdict.stale and "older than their clean_readings" in verdict.reason

    for dataset in ("sensor_readings", "clean_readings", "device_features"):
        path = store.path(dataset, H0)
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    os.utime(store.path("device_features", H0), (now.timestamp() - 600, now.timestamp() - 600))
    os.utime(store.path("clean_readings", H0), (now.timestamp() - 60, now.timestamp() - 60))
    os.utime(store.path("sensor_readings", H0), (now.timestamp() - 120, now.timestamp() - 120))
    assert list(stale_feature_partitions(store, [H0, "2026-01-01-01:00"])) == [H0]  # 01 missing
    states = {d: f["state"] for d, f in partition_freshness(store, H0, now).items()}
    assert states == {
        "sensor_readings": "fresh",
        "clean_readings": "fresh",
        "quarantined_readings": "missing",
        "device_features": "out_of_date",
    }
    later = {
        d: f["state"] for d, f in partition_freshness(store, H0, now + timedelta(hours=2)).items()
    }
    assert later["clean_readings"] == "stale"  # not updated within its 90-minute SLA
