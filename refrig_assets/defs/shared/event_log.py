"""The Dagster instance of ``refrig pipeline run``: SQLite event log writes in batches.

A ranged backfill records every hour as its own partition: about 36 asset events an hour
(materializations, planned materializations, check evaluations). Dagster's SQLite event log
stores each event on its own: a new SQLAlchemy engine and connection per statement, and one
commit (one fsync) per database and event; closing the file's only connection also checkpoints
its write-ahead log (more fsyncs). For a long history of a small fleet that is most of the
backfill's time.

:class:`BatchedSqliteEventLogStorage` is Dagster's ``SqliteEventLogStorage`` with two changes:

- one engine per database file, kept, with its one SQLite connection kept open until the
  engine is dropped (``StaticPool``; every use holds the storage's lock, so one thread at a
  time uses it): the files are in WAL mode, so other processes reading them (the UI, the
  daemon) still see every commit when it is made, and the log is checkpointed as SQLite does
  on its own (every 1,000 pages) instead of at every statement's close; the index's tables and
  columns remembered once found (Dagster looks them up for every event);
- ``store_event_batch`` (what Dagster calls with ``DAGSTER_EVENT_BATCH_SIZE`` set for the
  materializations of a ranged output and the planned events of a run, and what
  :func:`log_check_evaluations` uses for the check results of an hour of a ranged step) writes
  the batch in one transaction per database: the run's file, then the cross-run index, the same
  rows in the same order as one ``store_event`` per event. A batch is all or nothing in each
  file;
- the rows are written with statements built once and given each event's values (SQLAlchemy
  compiles each once), each event serialized once: an asset's row in the index is updated, and
  inserted only when it is not there yet (Dagster tries the insert first and updates when it
  fails), and a check's execution row is updated, or inserted when no planned row is there, as
  Dagster does. Building a statement per row cost more than the rows' writing: about 1.2 ms
  CPU an event, ~28 events an hour of a backfill.

The files are the ones Dagster's own storage reads (the UI, the daemon): only the writing is
different. :func:`pipeline_instance` uses it where the home's instance has the default SQLite
event log; an instance configured otherwise (PostgreSQL, ...) is used as configured.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
import sqlalchemy.exc as db_exc
import yaml
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events import (
    ASSET_CHECK_EVENTS,
    ASSET_EVENTS,
    BATCH_WRITABLE_EVENTS,
    DagsterEvent,
    DagsterEventBatchMetadata,
    DagsterEventType,
    generate_event_batch_id,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    AssetKeyTable,
    SqlEventLogStorageMetadata,
    SqlEventLogStorageTable,
)
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sql import get_alembic_config, safe_commit
from dagster._serdes import ConfigurableClassData
from dagster_shared.serdes import serialize_value
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from refrig_assets.defs.shared.run_storage import KeptSqliteRunStorage

# Events of a batch this storage writes in one transaction; any other batch is stored event by
# event (still with the kept engines).
BATCHED = BATCH_WRITABLE_EVENTS - {DagsterEventType.ASSET_FAILED_TO_MATERIALIZE} | {
    DagsterEventType.ASSET_CHECK_EVALUATION
}
# Engines kept at most (run files are written while their run lasts; the index always).
KEPT_ENGINES = 16
# Events Dagster buffers before a batch write (the batch also ends with its output or run).
EVENT_BATCH_SIZE = "1000"

# Statements built once; each execution gives the row's values (the WHERE's as "where_<column>").
_INSERT_EVENT = SqlEventLogStorageTable.insert()
_INSERT_ASSET_KEY = AssetKeyTable.insert()
_UPDATE_ASSET_KEY = AssetKeyTable.update().where(
    AssetKeyTable.c.asset_key == bindparam("where_asset_key")
)
_INSERT_CHECK = AssetCheckExecutionsTable.insert()
_CHECK = AssetCheckExecutionsTable.c
_CHECK_ROW = (
    (_CHECK.asset_key == bindparam("where_asset_key"))
    & (_CHECK.check_name == bindparam("where_check_name"))
    & (_CHECK.run_id == bindparam("where_run_id"))
)
# The planned row of a check of one partition, or of an unpartitioned check (partition NULL).
_UPDATE_CHECK = {
    True: AssetCheckExecutionsTable.update().where(
        _CHECK_ROW & (_CHECK.partition == bindparam("where_partition"))
    ),
    False: AssetCheckExecutionsTable.update().where(_CHECK_ROW & _CHECK.partition.is_(None)),
}


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, writing a batch of asset events in one transaction per file."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: dict[str, Engine] = {}
        self._found: set[tuple[str, str]] = set()  # (table, column or "") seen in the index
        self._open = threading.local()  # the connections this thread has open, by file
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> BatchedSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=StaticPool,
                # used by one thread at a time: only inside _connect, under self._db_lock
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine  # most recently used last
        while len(self._engines) > KEPT_ENGINES:
            oldest = next(iter(self._engines))
            self._engines.pop(oldest).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # A connection asked for inside another one to the same file (Dagster's check-table
        # updates inside a batch's index transaction) joins that transaction.
        opened: dict[str, Connection] = self._open.__dict__.setdefault("by_shard", {})
        if shard in opened:
            yield opened[shard]
            return
        with self._db_lock:
            with self._engine(shard).connect() as conn:
                with conn.begin():
                    opened[shard] = conn
                    try:
                        yield conn
                    finally:
                        del opened[shard]

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        """Create a file's tables when it has none, as Dagster's storage does; a run's file (one
        per run) is stamped at the migration head without reading the migration scripts again:
        they are read once per process (:func:`_migration_scripts`)."""
        if for_index_shard:
            super()._initdb(engine, for_index_shard=True)
            return
        retries = 10
        while True:
            try:
                with engine.connect() as connection:
                    migrations = MigrationContext.configure(connection)
                    if migrations.get_current_revision() is None:
                        SqlEventLogStorageMetadata.create_all(engine)
                        connection.execute(text("PRAGMA journal_mode=WAL;"))
                        migrations.stamp(_migration_scripts(), "head")
                        safe_commit(connection)
                return
            except (db_exc.DatabaseError, sqlite3.DatabaseError, sqlite3.OperationalError) as exc:
                # Another process creating the same file at once (Dagster's storage retries so).
                if retries == 0 or not _concurrent_init(str(exc)):
                    raise
                logging.info("a run's event log file was being created elsewhere: %s", exc)
                time.sleep(0.2)
                retries -= 1

    def has_table(self, table_name: str) -> bool:
        # Only a table found is remembered: a migration may add one, none removes one.
        if (table_name, "") not in self._found and super().has_table(table_name):
            self._found.add((table_name, ""))
        return (table_name, "") in self._found

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        if ("asset_keys", column_name) not in self._found and (
            super()._has_asset_key_col_on_connection(conn, column_name)
        ):
            self._found.add(("asset_keys", column_name))
        return ("asset_keys", column_name) in self._found

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store ``events`` as ``store_event`` would one by one, in one transaction per file."""
        if not events:
            return
        run_ids = {event.run_id for event in events}
        if len(run_ids) != 1 or not all(
            event.is_dagster_event and event.dagster_event_type in BATCHED for event in events
        ):
            super().store_event_batch(events)
            return
        rows = [self._event_to_row(event) for event in events]  # each serialized once
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(_INSERT_EVENT, rows)
        indexed = [
            (event, row)
            for event, row in zip(events, rows, strict=True)
            if event.dagster_event_type in ASSET_EVENTS | ASSET_CHECK_EVENTS
        ]
        if not indexed:
            return
        with self.index_transaction() as conn:
            for event, row in indexed:
                inserted = conn.execute(_INSERT_EVENT, row).inserted_primary_key
                assert inserted is not None  # an insert into a table with a primary key
                event_id = inserted[0]
                if event.dagster_event_type in ASSET_EVENTS:
                    self._store_asset_event_tags(conn, [event], [event_id])
                    self._store_asset_event(conn, event, event_id)
                elif (
                    event.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION
                    and event.run_id
                ):
                    self._store_check_evaluation(conn, event, event_id, row["event"])
                else:  # the check's execution row, in this transaction (see _connect)
                    self.store_asset_check_event(event, event_id)

    def _store_asset_event(self, conn: Connection, event: EventLogEntry, event_id: int) -> None:
        """The asset's row of the index (its last materialization, run and time), as Dagster's
        storage writes it: the same values (Dagster's own), updated, or inserted when the
        asset has no row yet."""
        dagster_event = event.dagster_event
        if dagster_event is None or dagster_event.asset_key is None:
            return
        values = self._get_asset_entry_values(
            event, event_id, self._has_asset_key_index_cols_on_connection(conn)
        )
        if not values:
            return
        key = dagster_event.asset_key.to_string()
        if conn.execute(_UPDATE_ASSET_KEY, {"where_asset_key": key, **values}).rowcount == 0:
            conn.execute(_INSERT_ASSET_KEY, {"asset_key": key, **values})

    def _update_asset_check_evaluation(self, event: EventLogEntry, event_id: int | None) -> None:
        with self.index_connection() as conn:
            self._store_check_evaluation(conn, event, event_id, serialize_value(event))

    def _store_check_evaluation(
        self, conn: Connection, event: EventLogEntry, event_id: int | None, serialized: str
    ) -> None:
        """A check evaluation of a run (``serialized``: the event as stored) on its execution
        row, as Dagster's storage writes it: the row its planned event made, updated, or a new
        one when there is none (a step that planned nothing)."""
        evaluation = event.get_dagster_event().event_specific_data
        assert isinstance(evaluation, dg.AssetCheckEvaluation)
        target = evaluation.target_materialization_data
        values = {
            "execution_status": (
                AssetCheckExecutionRecordStatus.SUCCEEDED.value
                if evaluation.passed
                else AssetCheckExecutionRecordStatus.FAILED.value
            ),
            "evaluation_event": serialized,
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
            "materialization_event_storage_id": target.storage_id if target else None,
            "partition": evaluation.partition,
        }
        where: dict[str, Any] = {
            "where_asset_key": evaluation.asset_key.to_string(),
            "where_check_name": evaluation.check_name,
            "where_run_id": event.run_id,
        }
        partitioned = evaluation.partition is not None
        if partitioned:
            where["where_partition"] = evaluation.partition
        updated = conn.execute(_UPDATE_CHECK[partitioned], {**where, **values}).rowcount
        if updated == 0:
            conn.execute(
                _INSERT_CHECK,
                {
                    "asset_key": where["where_asset_key"],
                    "check_name": evaluation.check_name,
                    "run_id": event.run_id,
                    **values,
                },
            )
        elif updated > 1:
            raise DagsterInvariantViolationError(
                f"Updated {updated} rows for asset check evaluation "
                f"{evaluation.asset_check_key} as a result of duplicate AssetCheckPlanned events."
            )

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        super().dispose()


@functools.cache
def _migration_scripts() -> ScriptDirectory:
    """Dagster's migration scripts for its SQLite event log, read once (reading them is most of
    the cost of creating a run's file: ~90 scripts imported)."""
    return ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))


def _concurrent_init(message: str) -> bool:
    """Whether ``message`` is one of the errors Dagster's storage reads as another process
    creating the same file at that moment."""
    return bool(
        re.search(r"table [A-Za-z_]* already exists", message)
        or "database is locked" in message
        or "UNIQUE constraint failed: alembic_version.version_num" in message
    )


def log_check_evaluations(
    context: dg.AssetExecutionContext, evaluations: Sequence[dg.AssetCheckEvaluation]
) -> None:
    """Log ``evaluations`` from a step as ``context.log_event`` logs each, but as one batch:
    with ``DAGSTER_EVENT_BATCH_SIZE`` set they reach the event log's ``store_event_batch``
    together (one transaction per file here); without it, one by one as before."""
    step = context.get_step_execution_context()
    batch = generate_event_batch_id()
    for i, evaluation in enumerate(evaluations):
        event = DagsterEvent.from_step(
            DagsterEventType.ASSET_CHECK_EVALUATION,
            step,
            evaluation,
            message=_check_message(evaluation),
            batch_metadata=DagsterEventBatchMetadata(batch, i == len(evaluations) - 1),
        )
        # What log_event also does: the step's result lists the event.
        context.op_execution_context._events.append(event)  # noqa: SLF001


def _check_message(evaluation: dg.AssetCheckEvaluation) -> str:
    """The message Dagster gives a check evaluation (DagsterEvent.asset_check_evaluation)."""
    return (
        f"Asset check '{evaluation.check_name}' on '{evaluation.asset_key.to_user_string()}' "
        + ("passed." if evaluation.passed else "did not pass.")
        + ("" if evaluation.description is None else f" Description: '{evaluation.description}'")
    )


def pipeline_instance() -> dg.DagsterInstance:
    """The home's Dagster instance ($DAGSTER_HOME) for in-process backfill runs, its default
    SQLite event log replaced by :class:`BatchedSqliteEventLogStorage` over the same files,
    Dagster's event batching on (``DAGSTER_EVENT_BATCH_SIZE``, unless set), and its per-run
    fixed costs cut (see :func:`batched`)."""
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
    instance = dg.DagsterInstance.get()
    return batched(instance, in_process=True)


def batched(instance: dg.DagsterInstance, in_process: bool = False) -> dg.DagsterInstance:
    """``instance`` with a batched event log when its event log is Dagster's default SQLite one
    (the same files); any other instance unchanged.

    ``in_process``: for runs executed in this process, two fixed costs of each run go too.
    Dagster's default SQLite run storage keeps its connection
    (:class:`~refrig_assets.defs.shared.run_storage.KeptSqliteRunStorage`, the same file), and
    Dagster's default local capture of a run's stdout and stderr is off: it starts four processes
    a run (``tail`` and a watcher, for each stream) to copy the output into files and back to
    the terminal, where an in-process run's output goes anyway. The runs, events and
    materializations stored are the same; runs launched by the daemon or the UI build their own
    instance from the home's settings and keep their captured output."""
    if instance.is_ephemeral:
        return instance
    ref = instance.get_ref()
    parts = {
        "run_storage": _part(ref.run_storage_data, "run storage"),
        "event_log_storage": _part(ref.event_storage_data, "event log"),
        "schedule_storage": _part(ref.schedule_storage_data, "schedule storage"),
    }
    changes: dict[str, Any] = {}
    storage_changed = False
    if type(instance.event_log_storage) is SqliteEventLogStorage:
        parts["event_log_storage"] = {
            "module_name": __name__,
            "class_name": BatchedSqliteEventLogStorage.__name__,
            "config_yaml": yaml.dump({"base_dir": instance.event_log_storage._base_dir}),
        }
        storage_changed = True
    if in_process and type(instance.run_storage) is SqliteRunStorage:
        parts["run_storage"] |= {
            "module_name": KeptSqliteRunStorage.__module__,
            "class_name": KeptSqliteRunStorage.__name__,
        }
        storage_changed = True
    if in_process and type(instance.compute_log_manager) is LocalComputeLogManager:
        changes["compute_logs_data"] = ConfigurableClassData(
            NoOpComputeLogManager.__module__, NoOpComputeLogManager.__name__, "{}\n"
        )
    if storage_changed:
        changes["storage_data"] = ConfigurableClassData(
            "dagster._core.storage.legacy_storage",
            "CompositeStorage",
            yaml.dump(parts, default_flow_style=False),
        )
    if not changes:
        return instance
    return dg.DagsterInstance.from_ref(ref._replace(**changes))


def _part(data: ConfigurableClassData | None, name: str) -> dict[str, str]:
    """One storage of a composite storage's settings, as ``data`` configures it."""
    if data is None:
        raise ValueError(f"the instance has no {name}")
    return {
        "module_name": data.module_name,
        "class_name": data.class_name,
        "config_yaml": data.config_yaml,
    }
