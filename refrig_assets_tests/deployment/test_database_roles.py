"""The operational database's two roles, as docker-compose.yml runs them: `refrig db migrate`
as the owner creates every table and append-only trigger and grants the application role
refrig_app its row privileges; refrig_app then runs the stores but cannot drop, truncate or
alter a table, disable a trigger or rewrite an append-only table.

On a throwaway PostgreSQL server (scripts/postgres_start.sh, which also runs
deploy/postgres/20-refrig-roles.sh); skipped when PostgreSQL is not installed.
"""

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from refrig_assets.alerts.severity import alert_policy
from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.contracts import load_contract
from refrig_assets.lifecycle.audit import PROMOTED, AuditTrail, LifecycleEvent
from refrig_assets.operations.database import migrate

pytestmark = pytest.mark.fault_injection

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
APPEND_ONLY = {
    "access_audit",
    "alert_transitions",
    "feedback_audit",
    "incident_transitions",
    "model_lifecycle_events",
    "retraining_requests",
}
DELETING = {"work_orders", "alert_suppressions", "model_rollout_observations"}
INSUFFICIENT_PRIVILEGE = "42501"
OWNER_ONLY = "42501"  # "must be owner of table" has the same SQLSTATE


@pytest.fixture(scope="module")
def server():
    if os.environ.get("REFRIG_TEST_POSTGRES") == "0":
        pytest.skip("REFRIG_TEST_POSTGRES=0")
    if not any(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        pytest.skip("PostgreSQL is not installed (scripts/system_packages.sh postgresql)")
    done = subprocess.run(
        [str(ROOT / "scripts" / "postgres_start.sh")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    settings = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    try:
        yield settings
    finally:
        subprocess.run(
            [str(ROOT / "scripts" / "postgres_stop.sh"), settings["REFRIG_PG_DIR"]],
            check=False,
            timeout=120,
        )


def run_migrate(server, tmp_path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "REFRIG_HOME": str(tmp_path / "home"),
        "REFRIG_ALERTS_DB_URL": server["REFRIG_ALERTS_DB_URL"],  # the owner
    }
    env.pop("REFRIG_LIFECYCLE_DB_URL", None)
    command = [str(ROOT / ".venv" / "bin" / "refrig"), "db", "migrate", "--app-role", "refrig_app"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def migrated(server, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("migrate")
    first = run_migrate(server, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    again = run_migrate(server, tmp_path)  # idempotent: every `docker compose up` runs it
    assert again.returncode == 0, again.stdout + again.stderr
    assert "refrig_app on alert_transitions: SELECT, INSERT" in again.stdout
    return server


def make_alerts(severities: list[str]) -> pd.DataFrame:
    contract = load_contract("device_alerts")
    policy = alert_policy()
    n = len(severities)
    fill = {"string": "x", "timestamp": T0, "float": 0.9, "int": 2, "bool": False}
    frame = pd.DataFrame(
        {c.name: [c.allowed[0] if c.allowed else fill[c.type]] * n for c in contract.columns}
    )
    frame["alert_id"] = [f"a{i}" for i in range(n)]
    frame["device_id"] = [f"d{i}" for i in range(n)]
    frame["severity"] = severities
    # Pages are per incident: a streaming firing of the cooling-loss rule opens a CRITICAL one.
    frame["source"] = "streaming"
    frame["explanation"] = [
        "total_cooling_loss: fired" if s == "CRITICAL" else "unmapped_rule: fired"
        for s in severities
    ]
    minutes = frame["severity"].map(policy.sla_minutes)
    frame["sla_deadline"] = T0 + pd.to_timedelta(minutes, unit="min")
    return frame


def sqlstate(excinfo) -> str | None:
    return getattr(excinfo.value.orig, "pgcode", None)


def test_the_application_role_gets_exactly_its_row_privileges(migrated):
    owner = sa.create_engine(migrated["REFRIG_ALERTS_DB_URL"])
    with owner.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = 'refrig_app'"
            )
        ).all()
        sequences = conn.execute(
            sa.text(
                "SELECT c.relname, has_sequence_privilege('refrig_app', c.oid, 'USAGE') "
                "FROM pg_class c WHERE c.relkind = 'S'"
            )
        ).all()
        owners = conn.execute(
            sa.text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
        ).all()
    owner.dispose()
    granted: dict[str, set[str]] = {}
    for table, privilege in rows:
        granted.setdefault(table, set()).add(privilege)
    assert APPEND_ONLY | DELETING | {"alerts", "notification_outbox"} <= set(granted)
    for table, privileges in granted.items():
        if table in APPEND_ONLY:
            assert privileges == {"SELECT", "INSERT"}, table
        elif table in DELETING:
            assert privileges == {"SELECT", "INSERT", "UPDATE", "DELETE"}, table
        else:
            assert privileges == {"SELECT", "INSERT", "UPDATE"}, table
    assert sequences and all(usage for _, usage in sequences), sequences
    assert owners == [(migrated["PGUSER"],)], "refrig_app owns nothing"


def test_the_application_role_runs_the_alert_store_audit_trail_and_outbox(migrated):
    url = migrated["REFRIG_APP_ALERTS_DB_URL"]
    store = AlertStore(url, clock=lambda: T0)
    try:
        store.upsert(make_alerts(["CRITICAL", "LOW"]), notify=True)
        store.upsert(make_alerts(["CRITICAL", "LOW"]), notify=True)  # refresh: UPDATE
        acked = store.acknowledge("a0", "operator", "on it")
        assert acked["status"] == "ACKNOWLEDGED"
        assert store.history("a0")[-1]["to_status"] == "ACKNOWLEDGED"
        pending = store.outbox.list()
        assert pending, "a new CRITICAL incident queues a notification"
        store.outbox.delivered(pending[0]["id"], T0)
    finally:
        store.close()
    audit = AuditTrail(url, clock=lambda: T0)
    try:
        event = audit.append(
            LifecycleEvent(
                model_id="isolation_forest", event=PROMOTED, actor="ci", reason="gates passed"
            )
        )
        assert event.id is not None
    finally:
        audit.close()


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE alert_transitions",
        "DROP TABLE alerts",
        "TRUNCATE alerts",
        "TRUNCATE model_lifecycle_events",
        "ALTER TABLE alert_transitions DISABLE TRIGGER alert_transitions_no_change",
        "ALTER TABLE model_lifecycle_events DISABLE TRIGGER ALL",
        "DELETE FROM alert_transitions",
        "DELETE FROM model_lifecycle_events",
        "UPDATE alert_transitions SET actor = 'someone else'",
        "DELETE FROM alerts",
        "CREATE TABLE shadow (id int)",
        "CREATE OR REPLACE FUNCTION alert_transitions_append_only() RETURNS trigger AS "
        "$$ BEGIN RETURN NULL; END; $$ LANGUAGE plpgsql",
    ],
)
def test_the_application_role_cannot_destroy_or_rewrite_history(migrated, statement):
    engine = sa.create_engine(migrated["REFRIG_APP_ALERTS_DB_URL"])
    try:
        with pytest.raises(sa.exc.ProgrammingError) as excinfo, engine.begin() as conn:
            conn.exec_driver_sql(statement)
        assert sqlstate(excinfo) == INSUFFICIENT_PRIVILEGE, excinfo.value
    finally:
        engine.dispose()


def test_migrate_creates_every_table_on_sqlite_and_runs_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    lifecycle = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    first = migrate(url, lifecycle)
    again = migrate(url, lifecycle)
    assert first.tables == again.tables and not again.grants
    tables = {t for names in first.tables.values() for t in names}
    assert APPEND_ONLY | DELETING | {"alerts", "notification_outbox"} <= tables
    (alert_db,) = [names for name, names in first.tables.items() if "alerts.db" in name]
    assert "model_lifecycle_events" not in alert_db
    with pytest.raises(ValueError, match="PostgreSQL"):
        migrate(url, lifecycle, app_role="refrig_app")
