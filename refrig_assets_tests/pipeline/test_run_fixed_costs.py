"""A run's fixed costs in the project's instance: the event log creates each run's SQLite file
without reading Dagster's migration scripts again, and the file is the one Dagster's own storage
creates (same tables, indexes and migration stamp), so every reader sees the same runs."""

import sqlite3
import subprocess
from pathlib import Path

import dagster as dg
from alembic import util as alembic_util
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager

from refrig_assets.defs.shared.event_log import BatchedSqliteEventLogStorage, pipeline_instance
from refrig_assets.defs.shared.instance import write_instance_settings

HOURS = dg.StaticPartitionsDefinition(["a", "b", "c"])


@dg.asset(partitions_def=HOURS)
def hourly(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"key": context.partition_key})


JOB = dg.Definitions(assets=[hourly], jobs=[dg.define_asset_job("j")]).resolve_job_def("j")
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _schema(path: Path) -> tuple[list[tuple[str, str]], list[tuple[str]]]:
    with sqlite3.connect(path) as conn:
        objects = conn.execute(
            "select name, sql from sqlite_master where name not like 'sqlite_%' order by name"
        ).fetchall()
        stamp = conn.execute("select version_num from alembic_version").fetchall()
    return objects, stamp


def test_a_run_s_file_is_created_as_dagster_creates_it(tmp_path):
    plain = SqliteEventLogStorage(str(tmp_path / "plain"))
    kept = BatchedSqliteEventLogStorage(str(tmp_path / "kept"))
    for storage in (plain, kept):
        with storage.run_connection("run-1"):
            pass
    kept.dispose()
    expected = _schema(tmp_path / "plain" / "run-1.db")
    assert expected[1], "Dagster stamps a run's file with its migration head"
    assert _schema(tmp_path / "kept" / "run-1.db") == expected


def test_runs_read_the_migration_scripts_once_and_stay_readable(tmp_path, monkeypatch):
    home = tmp_path / "dagster"
    write_instance_settings(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    loaded: list[str] = []
    load = alembic_util.load_python_file
    monkeypatch.setattr(
        alembic_util, "load_python_file", lambda d, f: loaded.append(f) or load(d, f)
    )
    instance = pipeline_instance()
    JOB.execute_in_process(instance=instance, partition_key="a", run_config=QUIET)
    first = len(loaded)
    for key in ("b", "c"):
        JOB.execute_in_process(instance=instance, partition_key=key, run_config=QUIET)
    assert len(loaded) == first, "each further run read Dagster's migration scripts again"

    # Read while the runs' instance still holds its connections: every commit is visible.
    fresh = dg.DagsterInstance.get()
    runs = fresh.get_runs()
    assert len(runs) == 3 and all(r.is_success for r in runs)
    assert fresh.get_materialized_partitions(dg.AssetKey("hourly")) == {"a", "b", "c"}
    for run in runs:
        kinds = {e.dagster_event_type for e in fresh.all_logs(run.run_id) if e.is_dagster_event}
        assert dg.DagsterEventType.ASSET_MATERIALIZATION in kinds
        assert dg.DagsterEventType.RUN_SUCCESS in kinds
    records = fresh.fetch_materializations(dg.AssetKey("hourly"), limit=10).records
    assert {r.asset_materialization.metadata["key"].value for r in records} == {"a", "b", "c"}
    instance.dispose()


def test_runs_keep_one_connection_to_the_run_storage(tmp_path, monkeypatch):
    home = tmp_path / "dagster"
    write_instance_settings(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = pipeline_instance()
    opened: list[str] = []
    connect = sqlite3.dbapi2.connect

    def counted(database, *args, **kwargs):
        opened.append(str(database))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3.dbapi2, "connect", counted)
    for key in ("a", "b", "c"):
        JOB.execute_in_process(instance=instance, partition_key=key, run_config=QUIET)
    assert len([db for db in opened if db.endswith("runs.db")]) <= 1
    instance.dispose()
    assert {r.status for r in dg.DagsterInstance.get().get_runs()} == {dg.DagsterRunStatus.SUCCESS}


def test_in_process_runs_start_no_processes_and_the_home_keeps_its_capture(tmp_path, monkeypatch):
    home = tmp_path / "dagster"
    write_instance_settings(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    started: list[object] = []
    popen = subprocess.Popen.__init__

    def counted(self, args, *rest, **kwargs):
        started.append(args)
        popen(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", counted)
    instance = pipeline_instance()
    result = JOB.execute_in_process(instance=instance, partition_key="a", run_config=QUIET)
    assert result.success
    assert started == [], "a run started processes to capture its output"
    instance.dispose()
    # The home's own instance (the daemon's, the UI's) still captures its runs' output.
    assert isinstance(dg.DagsterInstance.get().compute_log_manager, LocalComputeLogManager)
