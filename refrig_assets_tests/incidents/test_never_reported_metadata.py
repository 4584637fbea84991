"""The ``device_incidents`` asset tells the operator which contract sensors no device of the
fleet reports (REFRIG_SENSORS unset): in its metadata, ``sensors_never_reported``, and in one
warning per run, also when a run covers several hours."""

import logging
from datetime import timedelta

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from support.fleet_world import START, simulated_fleet

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import measurement_columns
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.incidents.assets import device_incidents
from refrig_assets.defs.shared.resources import RefrigResource

HOURS = 2
KEYS = [f"{START + timedelta(hours=h):%Y-%m-%d-%H}:00" for h in range(HOURS)]
ABSENT = "vibration_compressor"
MEASUREMENTS = [
    c.name for c in measurement_columns(load_contract("sensor_readings")) if c.name != ABSENT
]  # every measurement but the absent one


@pytest.fixture
def fleet_home(refrig_home, tmp_path, monkeypatch):
    """Write a simulated 4-device, 60 s fleet's feature windows and registry into the home;
    ``keep`` names the measurements its files carry (None: all)."""
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "60")
    monkeypatch.delenv("REFRIG_WINDOW_SECONDS", raising=False)

    def make(keep: list[str] | None) -> None:
        fleet = simulated_fleet(
            tmp_path / "fleet", devices=4, hours=HOURS, cadence_seconds=60, faults=False, keep=keep
        )
        store = ParquetStore(get_settings().data_dir)
        features = fleet.features.drop(columns=["cohort"])
        for key in KEYS:
            hour = features["window_start"].dt.strftime("%Y-%m-%d-%H:00").eq(key)
            store.write("device_features", key, features[hour].reset_index(drop=True))
        store.write("device_registry", None, fleet.registry)

    return make


def metadata_by_hour(result) -> dict[str, dict]:
    return {
        m.partition: {k: v.value for k, v in m.metadata.items()}
        for m in (
            e.event_specific_data.materialization for e in result.get_asset_materialization_events()
        )
    }


def run(partition_key: str | None = None, tags: dict | None = None):
    job = dg.Definitions(
        assets=[device_incidents],
        jobs=[dg.define_asset_job("incidents", partitions_def=device_incidents.partitions_def)],
        resources={"refrig": RefrigResource()},
    ).resolve_job_def("incidents")
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance, partition_key=partition_key, tags=tags)
    assert result.success
    warnings = [
        r.user_message
        for r in instance.all_logs(result.run_id)
        if r.user_message.startswith("No device reported")
    ]
    return metadata_by_hour(result), warnings


def test_a_sensor_no_device_reports_is_named_in_the_metadata_and_warned_once(fleet_home, caplog):
    fleet_home(MEASUREMENTS)

    with caplog.at_level(logging.WARNING):
        meta, warnings = run(KEYS[-1])

    assert meta[KEYS[-1]]["sensors_never_reported"] == ABSENT
    assert len(warnings) == 1 and ABSENT in warnings[0]
    # Python logging too (what `refrig pipeline run` prints): once, from the asset.
    printed = [r for r in caplog.records if r.getMessage().startswith("No device reported")]
    assert [r.name for r in printed] == ["refrig_assets.defs.incidents.assets"]


def test_a_run_over_several_hours_warns_once_and_names_the_sensor_in_each_hour(fleet_home):
    fleet_home(MEASUREMENTS)

    meta, warnings = run(
        tags={ASSET_PARTITION_RANGE_START_TAG: KEYS[0], ASSET_PARTITION_RANGE_END_TAG: KEYS[-1]}
    )

    assert {k: m["sensors_never_reported"] for k, m in meta.items()} == {k: ABSENT for k in KEYS}
    assert len(warnings) == 1


def test_a_fleet_reporting_every_sensor_has_none_never_reported(fleet_home):
    fleet_home(None)

    meta, warnings = run(KEYS[-1])

    assert meta[KEYS[-1]]["sensors_never_reported"] == ""
    assert warnings == []
