"""The dagster.yaml the project writes ($DAGSTER_HOME, for make run / make dev and the runs the
daemon launches) names the batched SQLite event log over Dagster's own files: a run started
from that instance in another process records every materialization and check evaluation, and
Dagster's default storage reads them back."""

import os
import subprocess
import sys
import textwrap

import dagster as dg
import pytest
import yaml
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from refrig_assets.defs.shared.event_log import (
    EVENT_BATCH_SIZE,
    BatchedSqliteEventLogStorage,
    pipeline_instance,
)
from refrig_assets.defs.shared.instance import (
    HomeSqliteEventLogStorage,
    instance_settings,
    write_instance_settings,
)

# A small code location: two hourly assets, two checks on the first (one fails), like the
# project's partitioned assets with their contract checks.
DEFINITIONS = textwrap.dedent(
    """
    import dagster as dg

    hours = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00")

    @dg.asset(
        partitions_def=hours,
        check_specs=[
            dg.AssetCheckSpec("rows_present", asset="readings"),
            dg.AssetCheckSpec("keys_unique", asset="readings"),
        ],
    )
    def readings(context: dg.AssetExecutionContext):
        yield dg.MaterializeResult(metadata={"rows": 3})
        yield dg.AssetCheckResult(check_name="rows_present", passed=True)
        yield dg.AssetCheckResult(check_name="keys_unique", passed=False, metadata={"dupes": 1})

    @dg.asset(partitions_def=hours, deps=[readings])
    def features() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"windows": 1})

    defs = dg.Definitions(assets=[readings, features])
    """
)
HOUR = "2026-01-01-03:00"


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "dagster"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert write_instance_settings(home)
    return home


def test_the_written_settings_give_the_batched_event_log_over_the_default_files(home, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "")  # restored after the test
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE")
    instance = dg.DagsterInstance.get()
    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == EVENT_BATCH_SIZE  # batches are written
    storage = instance.event_log_storage
    assert type(storage) is HomeSqliteEventLogStorage
    assert isinstance(storage, BatchedSqliteEventLogStorage)
    assert os.path.samefile(storage._base_dir, home / "history" / "runs")
    # What a launched run's process does: the instance rebuilt from its reference.
    worker = dg.DagsterInstance.from_ref(instance.get_ref())
    assert type(worker.event_log_storage) is HomeSqliteEventLogStorage
    assert os.path.samefile(worker.event_log_storage._base_dir, storage._base_dir)
    # refrig pipeline run takes the configured storage as it is.
    assert type(pipeline_instance().event_log_storage) is HomeSqliteEventLogStorage
    settings = yaml.safe_load((home / "dagster.yaml").read_text())
    assert settings["telemetry"] == {"enabled": False}
    assert settings == instance_settings()


def test_a_configured_file_is_left_as_it_is(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    assert not write_instance_settings(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"


def test_refrig_pipeline_run_gives_a_fresh_home_the_same_settings_as_make(tmp_path):
    from refrig_assets.cli.runner import _without_telemetry_banner

    _without_telemetry_banner(tmp_path)

    assert yaml.safe_load((tmp_path / "dagster.yaml").read_text()) == instance_settings()


def test_a_run_in_another_process_records_every_materialization_and_check(home, tmp_path):
    code = tmp_path / "location.py"
    code.write_text(DEFINITIONS)
    done = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "dagster"),
            "asset",
            "materialize",
            "-f",
            str(code),
            "--select",
            "*",
            "--partition",
            HOUR,
        ],
        # Batching as the settings turn it on, not as this process may have it.
        env={k: v for k, v in os.environ.items() if k != "DAGSTER_EVENT_BATCH_SIZE"}
        | {"PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Dagster's default storage over the same files (what a plain dagster.yaml gives).
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    plain = dg.DagsterInstance.get()
    assert type(plain.event_log_storage) is SqliteEventLogStorage
    for asset, metadata in (("readings", {"rows": 3}), ("features", {"windows": 1})):
        assert plain.get_materialized_partitions(dg.AssetKey(asset)) == {HOUR}
        [record] = plain.fetch_materializations(dg.AssetKey(asset), limit=5).records
        assert {k: v.value for k, v in record.asset_materialization.metadata.items()} == metadata
    checks = {
        e.get_dagster_event().event_specific_data.check_name: e.get_dagster_event().event_specific_data.passed
        for e in plain.all_logs(
            plain.get_runs()[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    }
    assert checks == {"rows_present": True, "keys_unique": False}
    [run] = plain.get_runs()
    assert run.status == dg.DagsterRunStatus.SUCCESS
