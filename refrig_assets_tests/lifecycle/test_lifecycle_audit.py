"""The lifecycle audit trail is append-only in the database itself; pins edit one line only.

Audit tests run on a real SQLite file, and also on PostgreSQL when ``REFRIG_TEST_POSTGRES_URL``
names a database they may create tables in.
"""

import os
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import yaml

from refrig_assets.lifecycle.audit import (
    APPEND_ONLY_MESSAGE,
    PINNED,
    PROMOTED,
    PROMOTION_BLOCKED,
    TABLE,
    AuditTrail,
    LifecycleEvent,
)
from refrig_assets.lifecycle.history import serving_periods, serving_version_at
from refrig_assets.lifecycle.pinning import file_pin, write_pin

POSTGRES_URL = os.environ.get("REFRIG_TEST_POSTGRES_URL")
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture(params=["sqlite", *(["postgresql"] if POSTGRES_URL else [])])
def audit(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'lifecycle.db'}" if request.param == "sqlite" else POSTGRES_URL
    trail = AuditTrail(url, clock=Clock())
    if request.param == "postgresql":  # a shared database may hold a previous test's table
        with trail.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
    yield trail
    trail.close()


def event(kind=PROMOTED, serving="1", **kw) -> LifecycleEvent:
    base = dict(
        model_id="isolation_forest",
        event=kind,
        actor="alice",
        reason="first version",
        to_version=serving,
        production_version=serving,
        serving_version=serving,
    )
    return LifecycleEvent(**(base | kw))


def test_an_event_is_recorded_with_who_when_from_to_why_and_gate_results(audit):
    gates = [{"name": "top_k_overlap", "passed": False, "value": 0.5}]
    audit.append(event(PROMOTION_BLOCKED, "1", from_version="1", to_version="2", gates=gates))
    (stored,) = audit.events("isolation_forest")
    assert (stored.actor, stored.at, stored.from_version, stored.to_version) == (
        "alice",
        T0,
        "1",
        "2",
    )
    assert stored.reason == "first version" and stored.gates == gates
    assert stored.id is not None


def test_an_update_of_an_audit_record_is_refused_by_the_database(audit):
    audit.append(event())
    with pytest.raises(sa.exc.DatabaseError, match=APPEND_ONLY_MESSAGE):
        with audit.engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {TABLE} SET actor = 'mallory'"))
    assert audit.events()[0].actor == "alice"


def test_a_delete_of_an_audit_record_is_refused_by_the_database(audit):
    audit.append(event())
    with pytest.raises(sa.exc.DatabaseError, match=APPEND_ONLY_MESSAGE):
        with audit.engine.begin() as conn:
            conn.execute(sa.text(f"DELETE FROM {TABLE}"))
    assert len(audit.events()) == 1


def test_the_audit_trail_offers_no_way_to_change_a_record(audit):
    public = {name for name in dir(audit) if not name.startswith("_")}
    assert not {n for n in public if any(w in n for w in ("update", "delete", "remove", "edit"))}


def test_an_unknown_event_or_a_missing_actor_is_refused(audit):
    with pytest.raises(ValueError, match="unknown lifecycle event"):
        audit.append(event("renamed"))
    with pytest.raises(ValueError, match="needs an actor"):
        audit.append(event(actor=" "))


def test_which_version_served_at_time_t(audit):
    clock = audit._clock
    audit.append(event(PROMOTED, "1"))
    clock.now = T0 + timedelta(hours=2)
    audit.append(event(PROMOTED, "2", from_version="1", reason="gates passed"))
    clock.now = T0 + timedelta(hours=5)
    audit.append(event(PINNED, "1", pinned_version="1", production_version="2", reason="rollback"))
    assert serving_version_at(audit, "isolation_forest", T0 - timedelta(minutes=1)) is None
    assert serving_version_at(audit, "isolation_forest", T0) == "1"
    assert serving_version_at(audit, "isolation_forest", T0 + timedelta(hours=3)) == "2"
    assert serving_version_at(audit, "isolation_forest", T0 + timedelta(hours=5)) == "1"
    periods = serving_periods(audit.events("isolation_forest"))
    assert [(p.version, p.pinned) for p in periods] == [("1", False), ("2", False), ("1", True)]
    assert periods[1].end == T0 + timedelta(hours=5) and periods[-1].end is None


# -- pinning in models/<id>.yaml ----------------------------------------------------------------

MODEL_FILE = """\
# A detector file with comments that must survive.
model_id: isolation_forest
detector: isolation_forest
hyperparameters:
  n_estimators: 200   # trees
pinned_version: null  # rollback: set a registry version
flag_threshold: 0.8
"""


def test_pinning_changes_only_the_pinned_version_line(tmp_path):
    path = tmp_path / "isolation_forest.yaml"
    path.write_text(MODEL_FILE)
    write_pin(path, "3")
    assert file_pin(path) == "3"
    assert path.read_text() == MODEL_FILE.replace(
        "pinned_version: null  # rollback", 'pinned_version: "3"  # rollback'
    )
    write_pin(path, None)
    assert path.read_text() == MODEL_FILE


def test_pinning_a_file_without_the_line_appends_it(tmp_path):
    path = tmp_path / "m.yaml"
    body = "model_id: m\nflag_threshold: 0.8\n"
    path.write_text(body)
    write_pin(path, "2")
    assert path.read_text().startswith(body)
    assert yaml.safe_load(path.read_text()) == {
        "model_id": "m",
        "flag_threshold": 0.8,
        "pinned_version": "2",
    }
    write_pin(tmp_path / "m.yaml", None)
    assert file_pin(path) is None


def test_an_indented_pinned_version_key_is_not_the_pin(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("model_id: m\nnotes:\n  pinned_version: 9\n")
    write_pin(path, "4")
    raw = yaml.safe_load(path.read_text())
    assert raw["pinned_version"] == "4" and raw["notes"] == {"pinned_version": 9}
