"""The batched event log writes, with its statements built once, exactly the rows Dagster's own
SQLite event log writes event by event: an asset's index row inserted the first time and
updated after (by materializations and planned ones in any order), and a check's execution row
updated when planned, inserted when not (a partitioned check, an unpartitioned one, a check
evaluated again by a later run), in a batch or one event at a time."""

import time

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events import (
    AssetCheckEvaluationPlanned,
    AssetMaterializationPlannedData,
    DagsterEventType,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from refrig_assets.defs.shared.event_log import BatchedSqliteEventLogStorage
from refrig_assets_tests.pipeline.test_batched_event_log import (
    HOURS,
    RUN,
    check_planned,
    entry,
    materialization,
    rows,
)

TABLES = ["event_logs", "asset_keys", "asset_event_tags", "asset_check_executions"]


def planned(asset: str, hour: str, at: float):
    return entry(
        DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        AssetMaterializationPlannedData(dg.AssetKey(asset), partition=hour),
        at,
    )


def evaluation(check: str, hour: str | None, passed: bool, at: float, target: int | None = None):
    return entry(
        DagsterEventType.ASSET_CHECK_EVALUATION,
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("clean"),
            check_name=check,
            passed=passed,
            metadata={"rows": 3},
            partition=hour,
            target_materialization_data=None
            if target is None
            else AssetCheckEvaluationTargetMaterializationData(
                storage_id=target, run_id=RUN, timestamp=at
            ),
        ),
        at,
    )


def in_run(event, run_id: str):
    """``event`` as an event of another run."""
    data = event.dagster_event
    return event._replace(run_id=run_id, dagster_event=data._replace())


def same_rows(plain: SqliteEventLogStorage, batched: BatchedSqliteEventLogStorage, runs) -> None:
    for table in TABLES:
        assert rows(batched, "index", table) == rows(plain, "index", table), table
    for run_id in runs:
        assert rows(batched, run_id, "event_logs") == rows(plain, run_id, "event_logs"), run_id


def history(now: float) -> list[list]:
    """Batches as a backfill stores them: planned and done hours of two assets, one asset seen
    for the first time midway, checks planned for part of the hours only."""
    return [
        [planned("clean", h, now) for h in HOURS] + [planned("features", HOURS[0], now)],
        [materialization("clean", h, rows=i, at=now + i) for i, h in enumerate(HOURS[:2])],
        [
            materialization("features", HOURS[0], rows=7, at=now + 3),
            evaluation("contract", HOURS[0], True, now + 3, target=2),
            evaluation("contract", HOURS[1], False, now + 4),
            evaluation("linked", HOURS[1], True, now + 4),  # no planned row: inserted
            evaluation("linked", None, True, now + 4),  # unpartitioned
            planned("status", HOURS[0], now + 5),  # an asset new to the index
            materialization("clean", HOURS[2], rows=9, at=now + 5),
        ],
    ]


@pytest.mark.parametrize("batch", [True, False], ids=["batched", "one event at a time"])
def test_every_row_is_dagster_s_own(tmp_path, batch):
    plain = SqliteEventLogStorage(str(tmp_path / "plain"))
    batched = BatchedSqliteEventLogStorage(str(tmp_path / "batched"))
    now = time.time()
    for storage in (plain, batched):
        storage.store_event(check_planned(now))  # the contract check planned for every hour
        storage.store_event(unpartitioned_check_planned(now))
    later = "run-2"
    batches = history(now)
    batches.append([in_run(e, later) for e in batches[-1]])  # the same hours again, later run
    for events in batches:
        for event in events:
            plain.store_event(event)
        if batch:
            batched.store_event_batch(events)
        else:
            for event in events:
                batched.store_event(event)
    same_rows(plain, batched, [RUN, later])
    # The index saw every kind of write: rows planned, updated and inserted.
    executions = rows(batched, "index", "asset_check_executions")
    assert {(r["check_name"], r["partition"], r["execution_status"]) for r in executions} >= {
        ("contract", HOURS[0], "SUCCEEDED"),
        ("contract", HOURS[1], "FAILED"),
        ("contract", HOURS[2], "PLANNED"),
        ("linked", HOURS[1], "SUCCEEDED"),
        ("linked", None, "SUCCEEDED"),
    }
    assert {r["asset_key"] for r in rows(batched, "index", "asset_keys")} == {
        '["clean"]',
        '["features"]',
        '["status"]',
    }


def unpartitioned_check_planned(at: float):
    return entry(
        DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
        AssetCheckEvaluationPlanned(asset_key=dg.AssetKey("clean"), check_name="linked"),
        at,
    )


@pytest.mark.parametrize("storage", [SqliteEventLogStorage, BatchedSqliteEventLogStorage])
def test_a_check_planned_twice_in_a_run_is_refused(tmp_path, storage):
    log = storage(str(tmp_path))
    now = time.time()
    log.store_event(unpartitioned_check_planned(now))
    log.store_event(unpartitioned_check_planned(now))
    with pytest.raises(DagsterInvariantViolationError, match="duplicate"):
        log.store_event(evaluation("linked", None, True, now))
