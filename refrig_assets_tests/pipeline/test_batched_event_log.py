"""The backfill's event log writes a batch of asset events in one transaction per SQLite file,
and writes exactly the rows Dagster's own SQLite event log writes event by event: the UI and the
daemon read the same files and see the same partitions, materializations and metadata."""

import time

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.events import (
    AssetCheckEvaluationPlanned,
    DagsterEvent,
    DagsterEventType,
    StepMaterializationData,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from refrig_assets.defs.shared.event_log import (
    BatchedSqliteEventLogStorage,
    batched,
    pipeline_instance,
)

RUN = "run-1"
# Columns that differ between two stores of the same events only by when they were written.
WRITTEN_AT = {"id", "create_timestamp", "update_timestamp", "cached_status_data"}


HOURS = [f"2026-01-01-{h:02d}:00" for h in range(4)]
PARTITIONS = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00")


def materialization(asset: str, hour: str, rows: int, at: float) -> EventLogEntry:
    return entry(
        DagsterEventType.ASSET_MATERIALIZATION,
        StepMaterializationData(
            dg.AssetMaterialization(
                dg.AssetKey(asset), partition=hour, metadata={"rows": rows, "path": f"/d/{hour}"}
            )
        ),
        at,
    )


def check_planned(at: float) -> EventLogEntry:
    return entry(
        DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
        AssetCheckEvaluationPlanned(
            asset_key=dg.AssetKey("clean"),
            check_name="contract",
            partitions_subset=PARTITIONS.subset_with_partition_keys(HOURS).to_serializable_subset(),
        ),
        at,
    )


def check_evaluation(hour: str, passed: bool, at: float) -> EventLogEntry:
    return entry(
        DagsterEventType.ASSET_CHECK_EVALUATION,
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("clean"),
            check_name="contract",
            passed=passed,
            metadata={"violations": 0 if passed else 3},
            partition=hour,
        ),
        at,
    )


def entry(kind: DagsterEventType, data, at: float) -> EventLogEntry:
    event = DagsterEvent(
        event_type_value=kind.value,
        job_name="hourly_pipeline",
        step_key="clean_readings",
        event_specific_data=data,
    )
    return EventLogEntry(
        error_info=None,
        level=10,
        user_message="",
        run_id=RUN,
        timestamp=at,
        step_key="clean_readings",
        job_name="hourly_pipeline",
        dagster_event=event,
    )


def events() -> list[EventLogEntry]:
    now = time.time()
    return [
        materialization(asset, hour, rows=i, at=now + i)
        for i, (asset, hour) in enumerate((a, h) for a in ("clean", "features") for h in HOURS)
    ]


def rows(storage: SqliteEventLogStorage, shard: str, table: str) -> list[dict]:
    engine = sa.create_engine(storage.conn_string_for_shard(shard))
    with engine.connect() as conn:
        found = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1")).mappings().all()
    engine.dispose()
    return [{k: v for k, v in row.items() if k not in WRITTEN_AT} for row in found]


def test_a_batch_writes_the_rows_that_storing_each_event_writes(tmp_path):
    plain = SqliteEventLogStorage(str(tmp_path / "plain"))
    batch = BatchedSqliteEventLogStorage(str(tmp_path / "batched"))
    written = events()
    for event in written:
        plain.store_event(event)
    batch.store_event_batch(written)

    for shard, table in [
        (RUN, "event_logs"),
        ("index", "event_logs"),
        ("index", "asset_keys"),
        ("index", "asset_event_tags"),
    ]:
        assert rows(batch, shard, table) == rows(plain, shard, table), (shard, table)
    for storage in (plain, batch):
        records = storage.get_latest_materialization_events([dg.AssetKey("features")])
        assert records[dg.AssetKey("features")].dagster_event.partition == "2026-01-01-03:00"
    # What the UI asks: every hour of both assets materialized, in either store.
    assert batch.get_materialized_partitions(dg.AssetKey("clean")) == {
        f"2026-01-01-{h:02d}:00" for h in range(4)
    }


def test_a_batch_of_check_evaluations_records_each_hour_as_storing_each_event_does(tmp_path):
    plain = SqliteEventLogStorage(str(tmp_path / "plain"))
    batch = BatchedSqliteEventLogStorage(str(tmp_path / "batched"))
    now = time.time()
    planned = check_planned(now)
    evaluations = [
        check_evaluation(h, passed=h != HOURS[2], at=now + i) for i, h in enumerate(HOURS)
    ]
    for storage in (plain, batch):
        storage.store_event(planned)
    for event in evaluations:
        plain.store_event(event)
    batch.store_event_batch(evaluations)

    for shard, table in [(RUN, "event_logs"), ("index", "event_logs")]:
        assert rows(batch, shard, table) == rows(plain, shard, table), (shard, table)
    executions = rows(batch, "index", "asset_check_executions")
    assert executions == rows(plain, "index", "asset_check_executions")
    # One execution per hour, each with its own outcome (what the UI shows per partition).
    assert {(r["partition"], r["execution_status"]) for r in executions} == {
        (h, "FAILED" if h == HOURS[2] else "SUCCEEDED") for h in HOURS
    }


def test_a_batch_that_fails_part_way_leaves_none_of_its_events(tmp_path, monkeypatch):
    storage = BatchedSqliteEventLogStorage(str(tmp_path))
    storage.store_event(materialization("clean", "2026-01-01-00:00", rows=1, at=time.time()))
    before = {table: rows(storage, "index", table) for table in ("event_logs", "asset_keys")}
    before_run = rows(storage, RUN, "event_logs")
    calls = {"n": 0}
    original = storage._store_asset_event

    def fail_on_third(conn, event, event_id):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk gone")
        original(conn, event, event_id)

    monkeypatch.setattr(storage, "_store_asset_event", fail_on_third)
    with pytest.raises(OSError, match="disk gone"):
        storage.store_event_batch(events())

    # The index (what the UI's partition status reads) has not one event of the batch.
    assert {t: rows(storage, "index", t) for t in ("event_logs", "asset_keys")} == before
    # The run's own file is written first, as Dagster's store_event does: the whole batch.
    assert len(rows(storage, RUN, "event_logs")) == len(before_run) + 8


def recorded_batches(monkeypatch) -> list[list[str]]:
    """The event types of each batch the batched event log stores from now on, in order."""
    batches: list[list[str]] = []
    store_batch = BatchedSqliteEventLogStorage.store_event_batch

    def spy(self, events):
        batches.append([e.dagster_event_type.value for e in events])
        store_batch(self, events)

    monkeypatch.setattr(BatchedSqliteEventLogStorage, "store_event_batch", spy)
    return batches


def test_a_run_with_batching_records_every_partition_as_a_plain_store_does(tmp_path, monkeypatch):
    @dg.asset(
        partitions_def=dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00"),
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def hourly(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        for key in context.partition_keys:
            context.add_asset_metadata({"hour": key}, partition_key=key)
        return dg.MaterializeResult()

    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "")  # restored after the test
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE")  # pipeline_instance sets it
    batches = recorded_batches(monkeypatch)
    instance = pipeline_instance()
    assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
    job = dg.Definitions(assets=[hourly]).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2026-01-01-00:00",
            "dagster/asset_partition_range_end": "2026-01-01-05:00",
        },
    )
    assert result.success
    # The six hours' planned materializations, then their materializations: one batch each.
    assert batches == [["ASSET_MATERIALIZATION_PLANNED"] * 6, ["ASSET_MATERIALIZATION"] * 6]
    hours = {f"2026-01-01-{h:02d}:00" for h in range(6)}
    # Dagster's own storage, reading the same files, sees every hour with its own metadata.
    plain = dg.DagsterInstance.get()
    assert type(plain.event_log_storage) is SqliteEventLogStorage
    assert plain.get_materialized_partitions(dg.AssetKey("hourly")) == hours
    records = plain.fetch_materializations(dg.AssetKey("hourly"), limit=10).records
    assert {r.asset_materialization.metadata["hour"].value for r in records} == hours
    assert {r.partition_key for r in records} == hours


def test_only_the_default_sqlite_event_log_is_replaced(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert isinstance(batched(instance).event_log_storage, BatchedSqliteEventLogStorage)
    with dg.DagsterInstance.ephemeral() as ephemeral:
        assert batched(ephemeral) is ephemeral


def test_threads_writing_and_reading_at_once_share_each_file_s_connection(tmp_path):
    # The UI and the daemon read from many threads: each file's one kept connection is used by
    # one thread at a time, and every thread sees what the others committed.
    from concurrent.futures import ThreadPoolExecutor

    storage = BatchedSqliteEventLogStorage(str(tmp_path / "batched"))
    written = events()

    def store_and_read(i: int) -> int:
        event = written[i]
        storage.store_event_batch([event, written[(i + 1) % len(written)]])
        return len(storage.get_materialized_partitions(dg.AssetKey("clean")))

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(store_and_read, range(len(written))))

    assert all(n >= 1 for n in seen)
    assert storage.get_materialized_partitions(dg.AssetKey("clean")) == set(HOURS)
    assert len(rows(storage, RUN, "event_logs")) == 2 * len(written)
    storage.dispose()
