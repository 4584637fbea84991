"""The alert state database: idempotent upserts, the operator lifecycle, SLA escalation, reads.

Every test uses a real SQLite file under ``tmp_path``; tests taking the ``store`` fixture also run
against PostgreSQL when ``REFRIG_TEST_POSTGRES_URL`` names a database they may create tables in.
"""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from refrig_assets.alerts.store import (
    LIFECYCLE_COLUMNS,
    AlertNotFound,
    AlertStore,
    InvalidTransition,
)
from refrig_assets.core.config import config_path, read_yaml
from refrig_assets.core.contracts import ColumnSpec, load_contract

ALERT_POLICY = read_yaml(config_path("alerts"))

CONTRACT = load_contract("device_alerts")
SLA_MINUTES = ALERT_POLICY["sla_minutes"]
LEVELS = ALERT_POLICY["escalation_levels"]
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POSTGRES_URL = os.environ.get("REFRIG_TEST_POSTGRES_URL")


def _default(column: ColumnSpec, i: int):
    if column.allowed:
        return column.allowed[0]
    if column.type == "timestamp":
        return T0
    if column.type == "float":
        return column.range[1] if column.range else 1.0
    if column.type == "int":
        return int(column.range[0]) + 1 if column.range else 1
    if column.type == "bool":
        return False
    return f"{column.name}-{i}"


def make_alerts(n: int = 1, **columns) -> pd.DataFrame:
    """``n`` alerts filling every device_alerts contract column; keyword args override columns.

    Unless given, ``sla_deadline`` is ``alert_created_at`` plus the contract SLA of the severity.
    """
    frame = pd.DataFrame(
        [{c.name: _default(c, i) for c in CONTRACT.columns} for i in range(n)],
        columns=CONTRACT.column_names,
    )
    for name, value in columns.items():
        assert name in CONTRACT.column_names, name
        frame[name] = value
    if "sla_deadline" not in columns:
        minutes = frame["severity"].map(SLA_MINUTES)
        created = pd.to_datetime(frame["alert_created_at"], utc=True)
        frame["sla_deadline"] = created + pd.to_timedelta(minutes, unit="min")
    return frame


class Clock:
    """A settable clock for the store's ``updated_at`` and transition stamps."""

    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", *(["postgresql"] if POSTGRES_URL else [])])
def store(request, tmp_path, clock) -> AlertStore:
    url = f"sqlite:///{tmp_path / 'alerts.db'}" if request.param == "sqlite" else POSTGRES_URL
    s = AlertStore(url, clock=clock)
    s.metadata.drop_all(s.engine)  # a shared PostgreSQL database may hold a previous test's rows
    yield s
    s.metadata.drop_all(s.engine)
    s.close()


# -- schema ---------------------------------------------------------------------------------


def test_tables_are_created_from_the_contract_on_first_use(store):
    store.list()  # first use
    inspector = sa.inspect(store.engine)
    alert_columns = {c["name"] for c in inspector.get_columns("alerts")}
    assert alert_columns == set(CONTRACT.column_names) | set(LIFECYCLE_COLUMNS)
    assert {c["name"] for c in inspector.get_columns("alert_transitions")} >= {
        "id",
        "alert_id",
        "from_status",
        "to_status",
        "actor",
        "at",
        "note",
    }
    indexed = [tuple(ix["column_names"]) for ix in inspector.get_indexes("alerts")]
    assert ("device_id", "window_start") in indexed
    assert ("status",) in indexed


def test_the_database_directory_is_created_and_data_survives_a_new_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'alerts.db'}"
    AlertStore(url).upsert(make_alerts(2))
    assert AlertStore(url).get("alert_id-1")["status"] == "OPEN"


# -- upsert ---------------------------------------------------------------------------------


def test_new_alerts_are_inserted_open_with_a_creation_transition(store):
    result = store.upsert(make_alerts(3))

    assert result["inserted"] == 3 and result["updated"] == 0
    assert sorted(result["inserted_ids"]) == ["alert_id-0", "alert_id-1", "alert_id-2"]
    alert = store.get("alert_id-0")
    assert alert["status"] == "OPEN"
    assert alert["sla_breached"] is False
    assert alert["acknowledged_by"] is None
    assert alert["first_seen_at"] == T0
    [created] = store.history("alert_id-0")
    assert (created["event"], created["from_status"], created["to_status"]) == (
        "created",
        None,
        "OPEN",
    )
    assert created["actor"] == "system"


def test_upserting_the_same_frame_twice_inserts_nothing_the_second_time(store):
    frame = make_alerts(5)
    store.upsert(frame)

    again = store.upsert(frame)

    assert again == {
        "inserted": 0,
        "updated": 0,
        "unchanged": 5,
        "inserted_ids": [],
        "queued": 0,
        "held_historic": 0,
    }
    assert len(store.list()) == 5
    assert len(store.history("alert_id-0")) == 1


def test_reupsert_refreshes_batch_fields_but_keeps_acknowledgement_and_escalation(store, clock):
    store.upsert(make_alerts(1, severity="HIGH"))
    store.check_sla(T0 + timedelta(minutes=SLA_MINUTES["HIGH"], seconds=1))  # escalates to L2
    store.acknowledge("alert_id-0", "alice", "on it")
    clock.now = T0 + timedelta(hours=5)

    rerun = make_alerts(
        1,
        severity="CRITICAL",
        max_score=0.99,
        explanation="re-scored",
        run_id="run-2",
        model_versions="isolation_forest@3",
        alert_created_at=clock.now,
        escalation_level=LEVELS[0],
    )
    result = store.upsert(rerun)

    assert result["updated"] == 1
    alert = store.get("alert_id-0")
    assert (alert["severity"], alert["max_score"], alert["explanation"], alert["run_id"]) == (
        "CRITICAL",
        0.99,
        "re-scored",
        "run-2",
    )
    assert alert["status"] == "ACKNOWLEDGED"
    assert alert["acknowledged_by"] == "alice"
    assert alert["escalation_level"] == LEVELS[1]
    assert alert["sla_breached"] is True
    assert alert["alert_created_at"] == T0
    assert alert["first_seen_at"] == T0
    assert alert["updated_at"] == clock.now


def test_reupsert_only_brings_the_sla_deadline_forward(store):
    store.upsert(make_alerts(1, severity="LOW"))
    low_deadline = store.get("alert_id-0")["sla_deadline"]

    store.upsert(make_alerts(1, severity="LOW", sla_deadline=low_deadline + timedelta(hours=1)))
    assert store.get("alert_id-0")["sla_deadline"] == low_deadline

    store.upsert(make_alerts(1, severity="CRITICAL"))
    assert store.get("alert_id-0")["sla_deadline"] == T0 + timedelta(
        minutes=SLA_MINUTES["CRITICAL"]
    )


def test_a_changed_alert_type_from_a_rerun_is_recorded(store):
    store.upsert(make_alerts(1))
    store.upsert(make_alerts(1, alert_type="ANOMALY_SUSTAINED"))

    last = store.history("alert_id-0")[-1]
    assert last["event"] == "alert_type"
    assert "ANOMALY_DETECTED -> ANOMALY_SUSTAINED" in last["note"]
    assert last["from_status"] == last["to_status"] == "OPEN"


def test_reupsert_does_not_undo_a_reconciled_alert_type(store):
    streaming = make_alerts(1, source="streaming")
    store.upsert(streaming)
    store.set_alert_type("alert_id-0", "ANOMALY_RESOLVED", "batch score 0.4: transient")

    store.upsert(streaming)

    assert store.get("alert_id-0")["alert_type"] == "ANOMALY_RESOLVED"


def test_duplicate_ids_in_one_frame_keep_the_last_row(store):
    frame = pd.concat([make_alerts(1, explanation="first"), make_alerts(1, explanation="last")])
    assert store.upsert(frame)["inserted"] == 1
    assert store.get("alert_id-0")["explanation"] == "last"


def test_upsert_rejects_a_frame_missing_contract_columns(store):
    with pytest.raises(ValueError, match="explanation"):
        store.upsert(make_alerts(1).drop(columns=["explanation"]))


def test_upsert_of_an_empty_frame_is_a_no_op(store):
    assert store.upsert(make_alerts(0))["inserted"] == 0


def _upsert_from_another_process(url: str) -> int:
    return AlertStore(url).upsert(make_alerts(50))["inserted"]


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_concurrent_processes_share_one_sqlite_file_without_locking_errors(tmp_path):
    # Several Dagster runs and the CLI open the same file at once: table creation and
    # read-then-write upserts must wait for each other instead of failing "database is locked".
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    with multiprocessing.get_context("fork").Pool(6) as pool:
        inserted = pool.map(_upsert_from_another_process, [url] * 6)
        # Workers leave on their own: terminate() would rely on SIGTERM, which a parent
        # started from a non-interactive shell may have ignored (and handed down).
        pool.close()
        pool.join()

    assert sum(inserted) == 50  # each alert created exactly once, by whichever process won
    store = AlertStore(url)
    assert len(store.list()) == 50
    assert [h["event"] for h in store.history("alert_id-0")] == ["created"]


def test_ten_thousand_alerts_upsert_in_bulk(store):
    frame = make_alerts(10_000)
    assert store.upsert(frame)["inserted"] == 10_000
    assert store.upsert(frame)["unchanged"] == 10_000


# -- lifecycle ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "final"),
    [
        (["acknowledge"], "ACKNOWLEDGED"),
        (["resolve"], "RESOLVED"),
        (["mark_false_positive"], "FALSE_POSITIVE"),
        (["acknowledge", "resolve"], "RESOLVED"),
        (["acknowledge", "mark_false_positive"], "FALSE_POSITIVE"),
    ],
)
def test_allowed_lifecycle_paths(store, path, final):
    store.upsert(make_alerts(1))
    for action in path:
        alert = getattr(store, action)("alert_id-0", "alice", f"note for {action}")
    assert alert["status"] == final
    assert store.get("alert_id-0")["status"] == final
    statuses = [h["to_status"] for h in store.history("alert_id-0")]
    assert statuses[-1] == final and len(statuses) == len(path) + 1


@pytest.mark.parametrize(
    ("path", "to_status"),
    [
        (["acknowledge"], "ACKNOWLEDGED"),
        (["resolve"], "ACKNOWLEDGED"),
        (["resolve"], "FALSE_POSITIVE"),
        (["mark_false_positive"], "RESOLVED"),
        ([], "OPEN"),
    ],
)
def test_disallowed_transitions_raise_and_change_nothing(store, path, to_status):
    store.upsert(make_alerts(1))
    for action in path:
        getattr(store, action)("alert_id-0", "alice")
    before = store.get("alert_id-0")

    with pytest.raises(InvalidTransition, match=f"is {before['status']}; cannot move it"):
        store.transition("alert_id-0", to_status, "bob")

    assert store.get("alert_id-0") == before
    assert len(store.history("alert_id-0")) == len(path) + 1


def test_invalid_transition_is_a_value_error_and_unknown_id_a_key_error(store):
    store.upsert(make_alerts(1))
    with pytest.raises(ValueError, match="unknown status"):
        store.transition("alert_id-0", "CLOSED", "bob")
    with pytest.raises(KeyError):
        store.acknowledge("no-such-alert", "bob")
    with pytest.raises(AlertNotFound, match="no-such-alert"):
        store.set_alert_type("no-such-alert", "ANOMALY_SUSTAINED")
    assert store.get("no-such-alert") is None
    assert store.history("no-such-alert") == []


def test_acknowledgement_records_who_and_when(store, clock):
    store.upsert(make_alerts(1))
    clock.now = T0 + timedelta(minutes=7)
    store.acknowledge("alert_id-0", "alice")
    alert = store.get("alert_id-0")
    assert (alert["acknowledged_by"], alert["acknowledged_at"]) == ("alice", clock.now)


def test_every_change_is_audited_with_actor_and_note(store, clock):
    store.upsert(make_alerts(1))
    clock.now = T0 + timedelta(minutes=5)
    store.acknowledge("alert_id-0", "alice", "dispatching a technician")
    clock.now = T0 + timedelta(minutes=50)
    store.resolve("alert_id-0", "bob", "door seal replaced")

    trail = [
        (h["event"], h["from_status"], h["to_status"], h["actor"], h["note"], h["at"])
        for h in store.history("alert_id-0")
    ]
    assert trail[1:] == [
        (
            "status",
            "OPEN",
            "ACKNOWLEDGED",
            "alice",
            "dispatching a technician",
            T0 + timedelta(minutes=5),
        ),
        ("status", "ACKNOWLEDGED", "RESOLVED", "bob", "door seal replaced", clock.now),
    ]


def test_set_alert_type_reconciles_without_touching_status(store):
    store.upsert(make_alerts(1, source="streaming"))
    store.acknowledge("alert_id-0", "alice")

    alert = store.set_alert_type("alert_id-0", "ANOMALY_SUSTAINED", "batch score 0.91")

    assert (alert["alert_type"], alert["status"]) == ("ANOMALY_SUSTAINED", "ACKNOWLEDGED")
    last = store.history("alert_id-0")[-1]
    assert last["event"] == "alert_type"
    assert last["from_status"] == last["to_status"] == "ACKNOWLEDGED"
    assert "batch score 0.91" in last["note"]

    store.set_alert_type("alert_id-0", "ANOMALY_SUSTAINED", "same again")  # no-op
    assert len(store.history("alert_id-0")) == 3
    with pytest.raises(ValueError, match="alert_type must be one of"):
        store.set_alert_type("alert_id-0", "ANOMALY_MAYBE")


# -- SLA monitor ----------------------------------------------------------------------------


def _deadline(severity: str = "CRITICAL") -> datetime:
    return T0 + timedelta(minutes=SLA_MINUTES[severity])


def test_no_breach_exactly_at_the_deadline(store):
    store.upsert(make_alerts(1))
    assert store.check_sla(_deadline()) == []
    assert store.get("alert_id-0")["sla_breached"] is False


def test_one_second_after_the_deadline_the_alert_breaches_and_escalates_once(store):
    store.upsert(make_alerts(1))

    [breached] = store.check_sla(_deadline() + timedelta(seconds=1))

    assert breached["alert_id"] == "alert_id-0"
    assert (breached["previous_escalation_level"], breached["escalation_level"]) == tuple(
        LEVELS[:2]
    )
    alert = store.get("alert_id-0")
    assert alert["sla_breached"] is True and alert["escalation_level"] == LEVELS[1]
    assert alert["status"] == "OPEN"
    last = store.history("alert_id-0")[-1]
    assert (last["event"], last["actor"]) == ("escalated", "sla-monitor")
    assert f"{LEVELS[0]} -> {LEVELS[1]}" in last["note"]


def test_escalation_moves_one_level_per_further_sla_period_and_stops_at_the_last(store):
    store.upsert(make_alerts(1))
    period = timedelta(minutes=SLA_MINUTES["CRITICAL"])
    store.check_sla(_deadline() + timedelta(seconds=1))

    assert store.check_sla(_deadline() + timedelta(seconds=1)) == []  # nothing new
    assert store.check_sla(_deadline() + period) == []  # second deadline not yet passed
    [again] = store.check_sla(_deadline() + period + timedelta(seconds=1))
    assert again["escalation_level"] == LEVELS[2] == LEVELS[-1]
    assert store.check_sla(_deadline() + 10 * period) == []  # capped at L3
    assert store.get("alert_id-0")["escalation_level"] == LEVELS[-1]
    escalations = [h for h in store.history("alert_id-0") if h["event"] == "escalated"]
    assert len(escalations) == len(LEVELS) - 1


def test_a_late_check_catches_up_one_level_per_check_never_several_at_once(store):
    store.upsert(make_alerts(1))
    period = timedelta(minutes=SLA_MINUTES["CRITICAL"])
    late = _deadline() + 5 * period

    [first] = store.check_sla(late)
    [second] = store.check_sla(late)

    assert (first["previous_escalation_level"], first["escalation_level"]) == tuple(LEVELS[:2])
    assert (second["previous_escalation_level"], second["escalation_level"]) == tuple(LEVELS[1:])
    assert store.check_sla(late) == []
    notes = [h["note"] for h in store.history("alert_id-0") if h["event"] == "escalated"]
    assert [n.split(": ")[-1] for n in notes] == ["L1 -> L2", "L2 -> L3"]


def test_an_alert_whose_window_ended_before_the_historic_cutoff_is_breached_but_never_paged(
    store,
):
    cutoff = ALERT_POLICY["sla_monitor"]["historic_cutoff_hours"]
    store.upsert(make_alerts(2, alert_id=["live", "backfill"]))
    now = T0 + timedelta(hours=cutoff, minutes=1)  # the windows ended at T0
    with store.engine.begin() as conn:  # "live" is a recent alert, "backfill" an old partition's
        conn.execute(
            store.alerts.update()
            .where(store.alerts.c.alert_id == "live")
            .values(window_end=now - timedelta(hours=1))
        )

    changed = {a["alert_id"]: a for a in store.check_sla(now)}

    assert changed["backfill"]["paged"] is False and changed["live"]["paged"] is True
    backfill = store.get("backfill")
    assert (backfill["sla_breached"], backfill["escalation_level"]) == (True, LEVELS[0])
    assert "not escalated or paged" in store.history("backfill")[-1]["note"]
    assert [n["alert_id"] for n in store.outbox.list()] == ["live"]
    assert "backfill" not in [a["alert_id"] for a in store.check_sla(now + timedelta(hours=1))]


def test_sla_period_comes_from_the_severity(store):
    store.upsert(make_alerts(2, alert_id=["critical", "low"], severity=["CRITICAL", "LOW"]))

    breached = store.check_sla(_deadline("CRITICAL") + timedelta(seconds=1))

    assert [b["alert_id"] for b in breached] == ["critical"]
    assert "low" not in [b["alert_id"] for b in store.check_sla(_deadline("LOW"))]
    later = store.check_sla(_deadline("LOW") + timedelta(seconds=1))
    assert "low" in [b["alert_id"] for b in later]


def test_acknowledged_resolved_and_suppressed_alerts_never_escalate(store):
    frame = make_alerts(4, suppressed=[False, False, False, True])
    store.upsert(frame)
    store.acknowledge("alert_id-0", "alice")
    store.resolve("alert_id-1", "alice")

    breached = store.check_sla(_deadline() + timedelta(days=3))

    assert [b["alert_id"] for b in breached] == ["alert_id-2"]
    assert store.get("alert_id-0")["escalation_level"] == LEVELS[0]


# -- reads ----------------------------------------------------------------------------------


def test_list_orders_by_severity_then_sla_deadline(store):
    frame = make_alerts(
        5,
        severity=["LOW", "CRITICAL", "HIGH", "CRITICAL", "MEDIUM"],
        sla_deadline=[T0 + timedelta(minutes=m) for m in (1, 50, 2, 10, 3)],
    )
    store.upsert(frame)

    listed = store.list()

    assert list(zip(listed["severity"], listed["alert_id"], strict=True)) == [
        ("CRITICAL", "alert_id-3"),
        ("CRITICAL", "alert_id-1"),
        ("HIGH", "alert_id-2"),
        ("MEDIUM", "alert_id-4"),
        ("LOW", "alert_id-0"),
    ]
    assert str(listed["sla_deadline"].dt.tz) == "UTC"
    assert listed["suppressed"].dtype == bool


def test_list_filters(store):
    store.upsert(
        make_alerts(
            4,
            severity=["CRITICAL", "HIGH", "HIGH", "LOW"],
            site_id=["s1", "s1", "s2", "s2"],
            source=["batch", "streaming", "batch", "fallback"],
            suppressed=[False, False, False, True],
        )
    )
    store.acknowledge("alert_id-1", "alice")

    def ids(**filters):
        return list(store.list(**filters)["alert_id"])

    assert ids(severity="HIGH") == ["alert_id-1", "alert_id-2"]
    assert ids(severity=["CRITICAL", "HIGH"], status="OPEN") == ["alert_id-0", "alert_id-2"]
    assert ids(status="ACKNOWLEDGED") == ["alert_id-1"]
    assert ids(site_id="s2") == ["alert_id-2"]
    assert ids(site_id="s2", include_suppressed=True) == ["alert_id-2", "alert_id-3"]
    assert ids(device_id="device_id-0") == ["alert_id-0"]
    assert ids(source="streaming") == ["alert_id-1"]
    assert ids(limit=2) == ["alert_id-0", "alert_id-1"]
    assert ids(severity="MEDIUM") == []
    assert list(store.list(severity="MEDIUM").columns) == list(store.list().columns)


def test_timestamps_are_stored_as_utc_and_returned_tz_aware(store):
    paris = timezone(timedelta(hours=1))
    store.upsert(
        make_alerts(
            2,
            alert_id=["naive", "paris"],
            window_start=[datetime(2026, 1, 1, 11), datetime(2026, 1, 1, 12, tzinfo=paris)],
        )
    )
    naive, aware = store.get("naive"), store.get("paris")
    assert naive["window_start"] == aware["window_start"] == datetime(2026, 1, 1, 11, tzinfo=UTC)
    assert naive["window_start"].tzinfo is not None


def test_recent_alerts_cover_the_dedup_window_across_devices(store):
    created = [T0 - timedelta(hours=5), T0 - timedelta(hours=4), T0 - timedelta(hours=1), T0]
    store.upsert(
        make_alerts(
            4,
            device_id=["d1", "d1", "d2", "d3"],
            alert_created_at=created,
            top_contributors=["temp", "temp", "pressure", "door"],
            suppressed=[False, False, True, False],
        )
    )
    since = T0 - timedelta(hours=ALERT_POLICY["dedup_window_hours"])

    recent = store.recent_alerts(since=since)

    assert list(recent.columns) == [
        "device_id",
        "top_contributors",
        "window_start",
        "alert_created_at",
        "suppressed",
        "source",
    ]
    assert list(recent["device_id"]) == ["d2", "d3"]  # strictly after `since`
    assert list(recent["suppressed"]) == [True, False]
    assert str(recent["alert_created_at"].dt.tz) == "UTC"
    only_d3 = store.recent_alerts(["d3", "d9"], since=since)
    assert list(only_d3["top_contributors"]) == ["door"]
    assert store.recent_alerts([], since=since).empty


# -- the audit trail is append-only, concurrent writers ------------------------------------


def test_the_transition_history_is_append_only_in_the_database(store):
    store.upsert(make_alerts(1))
    store.acknowledge("alert_id-0", "ana", "on it")
    before = store.history("alert_id-0")
    statements = [
        "UPDATE alert_transitions SET actor = 'mallory'",
        "DELETE FROM alert_transitions",
        *(["TRUNCATE alert_transitions"] if store.engine.dialect.name == "postgresql" else []),
    ]
    for statement in statements:
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with store.engine.begin() as conn:
                conn.exec_driver_sql(statement)
    assert store.history("alert_id-0") == before
    # the store's own code paths keep working: they only ever append
    store.resolve("alert_id-0", "ana")
    store.upsert(make_alerts(1, alert_type="ANOMALY_SUSTAINED"))
    store.check_sla(T0 + timedelta(days=2))
    assert len(store.history("alert_id-0")) == len(before) + 2


def test_concurrent_upserts_of_overlapping_alerts_never_fail_and_keep_operator_state(store):
    import threading

    n = 300
    store.upsert(make_alerts(n))
    store.acknowledge("alert_id-5", "ana")
    for round_ in range(5):
        frames = [
            make_alerts(n * 2, max_score=0.5 + 0.01 * round_ + 0.001 * w).iloc[w * n // 2 :]
            for w in range(2)
        ]
        for w, frame in enumerate(frames):
            frame["alert_id"] = [
                f"r{round_}-{i}" if i >= n else f"alert_id-{i}" for i in frame.index
            ]
            frames[w] = frame
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def write(
            frame: pd.DataFrame, barrier: threading.Barrier, errors: list[BaseException]
        ) -> None:
            barrier.wait()
            try:
                store.upsert(frame, notify=True)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(f, barrier, errors)) for f in frames]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
    listed = store.list(include_suppressed=True)
    assert listed["alert_id"].is_unique
    assert len(listed) == n + 5 * n
    ack = store.get("alert_id-5")
    assert (ack["status"], ack["acknowledged_by"]) == ("ACKNOWLEDGED", "ana")
    created = [h for h in store.history("r0-400") if h["event"] == "created"]
    assert len(created) == 1
