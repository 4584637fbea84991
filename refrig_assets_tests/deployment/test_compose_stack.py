"""The docker-compose deployment, running: the smoke test of `make compose-test`.

deploy/compose-test.sh builds the images without an image registry, brings docker-compose.yml up
with deploy/compose.loopback.yml (host networking, every service on 127.0.0.1 at a port of its
own) and runs this module with REFRIG_COMPOSE (its docker-compose wrapper) and
REFRIG_COMPOSE_ENV (the stack's settings, credentials included). Without them it is skipped.

Everything goes through the deployed services: runs are submitted to the webserver and dequeued
by the daemon, which launches them in the code server; the test reads PostgreSQL, MLflow and the
console over loopback, as an operator would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from support.service_processes import READS_EVERY_STORAGE

from refrig_assets.core.model_config import all_model_ids

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = os.environ.get("REFRIG_COMPOSE")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.compose,
    pytest.mark.skipif(not COMPOSE, reason="no running compose stack (make compose-test)"),
]

LOCATION = "refrig_assets"
PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
DETECTORS = all_model_ids()
MODELS = [f"{model}_model" for model in DETECTORS]
EVERY_MINUTE = "compose_test_every_minute"  # compose_location.py
# A guard against a hung run, not a speed claim: training the four detectors took 13 min at load
# average 12-20 on 2 cores and more than 15 min at 15-25.
RUN_TIMEOUT_S = 2700


@dataclass(frozen=True)
class Stack:
    """The running test stack: its docker-compose wrapper and its settings."""

    compose: str
    env: dict[str, str]

    def run(self, *args: str, timeout: int = 600, secret: bool = False) -> str:
        """A docker-compose command against the stack; its stdout. Fails on a non-zero exit,
        quoting the output unless it may hold a ``secret``."""
        done = subprocess.run(
            [self.compose, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = "(output withheld: it may hold a secret)" if secret else done.stdout + done.stderr
        assert done.returncode == 0, f"compose {args[0]}: {output[-4000:]}"
        return done.stdout

    def port(self, name: str) -> int:
        return int(self.env[f"LOOPBACK_{name}_PORT"])

    def db_url(self, database: str, app_role: bool = False) -> str:
        user, password = (
            ("refrig_app", self.env["REFRIG_APP_DB_PASSWORD"])
            if app_role
            else (self.env["POSTGRES_USER"], self.env["POSTGRES_PASSWORD"])
        )
        return f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{self.port('PG')}/{database}"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.port('UI')}"

    @property
    def mlflow(self) -> str:
        return f"http://127.0.0.1:{self.port('MLFLOW')}"

    @property
    def hours(self) -> list[str]:
        """Three landed hours; the last is the one the every-minute schedule requests."""
        last = datetime.strptime(self.env["LOOPBACK_SCHEDULED_PARTITION"], "%Y-%m-%d-%H:%M")
        return [(last - timedelta(hours=n)).strftime("%Y-%m-%d-%H:%M") for n in (2, 1, 0)]

    def health(self) -> dict[str, str]:
        """Service → "healthy"/"unhealthy"/"starting", or "exited <code>" for one-shots."""
        states = {}
        for container in self.run("ps", "-q").split():
            inspected = json.loads(
                subprocess.run(
                    ["docker", "inspect", container],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )[0]
            service = inspected["Config"]["Labels"]["com.docker.compose.service"]
            state = inspected["State"]
            states[service] = (
                state["Health"]["Status"]
                if "Health" in state
                else f"{state['Status']} {state['ExitCode']}"
            )
        return states

    def wait_healthy(self, timeout_s: int = 600) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.health()
            waiting = {s: v for s, v in states.items() if v not in ("healthy", "exited 0")}
            if not waiting or time.monotonic() > deadline:
                return states
            time.sleep(5)


def read_env_file(path: str) -> dict[str, str]:
    lines = Path(path).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


@pytest.fixture(scope="module")
def stack() -> Stack:
    assert COMPOSE
    return Stack(COMPOSE, read_env_file(os.environ["REFRIG_COMPOSE_ENV"]))


@pytest.fixture(scope="module")
def instance(stack: Stack, tmp_path_factory) -> Iterator[dg.DagsterInstance]:
    """The deployment's Dagster instance (deploy/dagster.yaml), read from here over loopback."""
    home = tmp_path_factory.mktemp("dagster-home")
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(stack.port("PG")),
            "DAGSTER_PG_USER": stack.env["POSTGRES_USER"],
            "DAGSTER_PG_PASSWORD": stack.env["POSTGRES_PASSWORD"],
            "DAGSTER_PG_DB": "dagster",
            "REFRIG_DAGSTER_STORAGE_DIR": str(home / "storage"),
        }.items():
            patch.setenv(name, value)
        with dg.DagsterInstance.from_config(str(home)) as dagster_instance:
            yield dagster_instance


def graphql(stack: Stack, query: str, variables: dict | None = None) -> dict:
    """One GraphQL request to the webserver, never retried: an error is the deployment's."""
    response = httpx.post(
        f"{stack.ui}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def launch(
    stack: Stack,
    job: str,
    partition: str | None = None,
    assets: list[str] | None = None,
    run_config: dict | None = None,
) -> str:
    """Submit a run to the webserver, as the UI's Launch button does; the daemon dequeues it."""
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=stack.port("UI"))
    return client.submit_job_execution(
        job,
        repository_location_name=LOCATION,
        run_config=run_config or {},
        tags={"dagster/partition": partition} if partition else {},
        asset_selection=assets,
    )


def wait_for_runs(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, str]:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        runs = {r: instance.get_run_by_id(r) for r in run_ids}
        if all(run and run.is_finished for run in runs.values()) or time.monotonic() > deadline:
            return {r: run.status.value if run else "MISSING" for r, run in runs.items()}
        time.sleep(3)


def run_all(instance: dg.DagsterInstance, launches: list[str]) -> None:
    statuses = wait_for_runs(instance, launches)
    failures = [
        event.message
        for run_id, status in statuses.items()
        if status != "SUCCESS"
        for event in instance.all_logs(run_id)
        if event.is_dagster_event and event.dagster_event.is_failure
    ]
    assert set(statuses.values()) == {"SUCCESS"}, (statuses, failures)


def rows(url: str, query: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def materialized(stack: Stack, instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """A small simulated fleet landed in the shared volume, then, each through the run queue:
    the device registry, readings → features for three hours, training on the first two, and
    the whole hourly pipeline for the third."""
    first, second, third = stack.hours
    stack.run(
        "exec",
        "-T",
        "user_code",
        "refrig",
        "simulate",
        "--devices",
        "40",
        "--hours",
        "3",
        "--seed",
        "3",
        "--start",
        datetime.strptime(first, "%Y-%m-%d-%H:%M").strftime("%Y-%m-%dT%H:%M"),
    )
    run_ids = {"registry": [launch(stack, "refresh_device_registry")]}
    run_all(instance, run_ids["registry"])
    run_ids["prep"] = [launch(stack, "hourly_pipeline", hour, PREP) for hour in stack.hours]
    run_all(instance, run_ids["prep"])
    config = {"config": {"start_partition": first, "end_partition": second}}
    run_ids["train"] = [
        launch(stack, "train_detectors", run_config={"ops": dict.fromkeys(MODELS, config)})
    ]
    run_all(instance, run_ids["train"])
    run_ids["hourly"] = [launch(stack, "hourly_pipeline", third)]
    run_all(instance, run_ids["hourly"])
    return run_ids


def test_every_service_is_healthy_and_the_dagster_ui_answers(stack):
    states = stack.wait_healthy()
    assert states.pop("migrate") == "exited 0"
    assert states and set(states.values()) == {"healthy"}, states

    assert httpx.get(f"{stack.ui}/server_info", timeout=30).status_code == 200
    data = graphql(
        stack,
        "{ workspaceOrError { ... on Workspace { locationEntries { name "
        "locationOrLoadError { __typename } } } } }",
    )
    entries = data["workspaceOrError"]["locationEntries"]
    assert [(e["name"], e["locationOrLoadError"]["__typename"]) for e in entries] == [
        (LOCATION, "RepositoryLocation")
    ]


def test_a_partition_materializes_through_the_run_queue_and_its_alerts_land_in_postgres(
    stack, instance, materialized
):
    (run_id,) = materialized["hourly"]
    (queued,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)
    # The daemon takes it off the queue and launches it in the code server.
    (launched,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_STARTING)
    assert queued.timestamp <= launched.timestamp
    run = instance.get_run_by_id(run_id)
    assert run and run.tags["dagster/partition"] == stack.hours[-1]

    in_parquet = json.loads(
        stack.run(
            "exec",
            "-T",
            "user_code",
            "python",
            "-c",
            "import json; from refrig_assets.core.settings import get_settings; "
            "from refrig_assets.core.storage import ParquetStore; "
            f"a = ParquetStore(get_settings().data_dir).read('device_alerts', '{stack.hours[-1]}'); "
            "print(json.dumps(sorted(a['alert_id'])))",
        )
    )
    in_postgres = {
        row[0] for row in rows(stack.db_url("refrig_alerts"), "SELECT alert_id FROM alerts")
    }
    assert in_parquet, "the simulated fleet raises alerts in its third hour"
    # Every alert of the partition is in PostgreSQL (next to those of the streaming sensor).
    assert set(in_parquet) <= in_postgres


def test_mlflow_holds_the_model_versions_and_refuses_anonymous_alias_changes(
    stack, materialized, monkeypatch
):
    from mlflow.tracking import MlflowClient

    # Signed in as the deployment's admin user, as the code server is.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack.env["MLFLOW_ADMIN_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.env["MLFLOW_ADMIN_PASSWORD"])
    client = MlflowClient(tracking_uri=stack.mlflow, registry_uri=stack.mlflow)
    for model in DETECTORS:
        assert [v.version for v in client.search_model_versions(f"name='{model}'")] == ["1"]
        assert client.get_model_version_by_alias(model, "production").version == "1"

    alias = {"name": DETECTORS[0], "alias": "production", "version": "1"}
    endpoint = f"{stack.mlflow}/api/2.0/mlflow/registered-models/alias"
    anonymous = httpx.post(endpoint, json=alias, timeout=30)
    assert anonymous.status_code == 401
    wrong = httpx.post(endpoint, json=alias, auth=("refrig-admin", "not-the-password"), timeout=30)
    assert wrong.status_code == 401
    assert (
        httpx.get(f"{stack.mlflow}/api/2.0/mlflow/registered-models/search", timeout=30).status_code
        == 401
    )
    # Signed in, the same request goes through (a harmless alias, removed again).
    client.set_registered_model_alias(DETECTORS[0], "compose-smoke", "1")
    client.delete_registered_model_alias(DETECTORS[0], "compose-smoke")
    assert client.get_model_version_by_alias(DETECTORS[0], "production").version == "1"


def test_the_console_answers_with_a_token_and_refuses_without(stack, materialized):
    by = ("--by", "compose-smoke-test")
    stack.run(
        "exec", "-T", "console", "refrig", "users", "add", "smoke-viewer", "--role", "viewer", *by
    )
    created = stack.run(
        "exec", "-T", "console", "refrig", "tokens", "create", "smoke-viewer", *by, secret=True
    )
    token = created.strip().splitlines()[0]
    alerts = f"http://127.0.0.1:{stack.port('CONSOLE')}/api/alerts"

    assert httpx.get(alerts, timeout=30).status_code == 401
    forged = httpx.get(alerts, headers={"Authorization": "Bearer not-a-token"}, timeout=30)
    assert forged.status_code == 401
    signed_in = httpx.get(alerts, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert signed_in.status_code == 200
    in_postgres = rows(stack.db_url("refrig_alerts"), "SELECT count(*) FROM alerts")[0][0]
    assert 0 < signed_in.json()["total"] <= in_postgres, "the alerts of the database"


def append_only_tables(url: str) -> set[str]:
    from refrig_assets.core.append_only import append_only_tables as protected

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return protected(conn)
    finally:
        engine.dispose()


def snapshot(stack: Stack) -> dict[str, set]:
    """What must survive a restart: runs, alerts, every audit row, model versions."""
    alerts_db = stack.db_url("refrig_alerts")
    kept: dict[str, set] = {
        "runs": set(rows(stack.db_url("dagster"), "SELECT run_id, status FROM runs")),
        "alerts": set(rows(alerts_db, "SELECT alert_id, status FROM alerts")),
        "model versions": set(
            rows(stack.db_url("mlflow"), "SELECT name, version FROM model_versions")
        ),
    }
    for table in sorted(append_only_tables(alerts_db)):
        kept[table] = set(rows(alerts_db, f"SELECT * FROM {table}"))
    return kept


def set_schedule(stack: Stack, running: bool) -> None:
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": "__repository__",
        "scheduleName": EVERY_MINUTE,
    }
    if running:
        mutation = (
            "mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { __typename } }"
        )
        variables: dict = {"s": selector}
    else:
        state = graphql(
            stack,
            "query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) "
            "{ ... on Schedule { scheduleState { id selectorId } } } }",
            {"s": selector},
        )["scheduleOrError"]["scheduleState"]
        mutation = "mutation($id: String!) { stopRunningSchedule(id: $id) { __typename } }"
        variables = {"id": state["id"]}
    graphql(stack, mutation, variables)


def test_restarting_the_daemon_and_postgres_loses_nothing_and_the_next_scheduled_run_succeeds(
    stack, instance, materialized
):
    set_schedule(stack, running=True)
    ticking = True
    try:
        before = snapshot(stack)
        assert before["alerts"] and before["model versions"]
        assert before["model_lifecycle_events"], "training recorded its audit rows"
        stack.run("restart", "dagster_daemon", "postgres")
        # Every run created from now on comes from the restarted daemon.
        restarted_at = datetime.now(UTC)
        states = stack.wait_healthy()
        assert set(states.values()) <= {"healthy", "exited 0"}, states

        after = snapshot(stack)
        for name, kept in before.items():
            if name == "runs":
                finished = {(r, s) for r, s in kept if s in ("SUCCESS", "FAILURE", "CANCELED")}
                assert finished <= after["runs"], "finished runs keep their status"
                assert {r for r, _ in kept} <= {r for r, _ in after["runs"]}
            else:
                assert kept <= after[name], name

        # The first run the schedule requests after the restart. The schedule stops once it has:
        # it ticks every minute, and on a busy host runs of the same partition queue behind it.
        deadline = time.monotonic() + RUN_TIMEOUT_S
        next_run = None
        while time.monotonic() < deadline:
            scheduled = instance.get_run_records(
                dg.RunsFilter(
                    tags={"dagster/schedule_name": EVERY_MINUTE}, created_after=restarted_at
                )
            )
            if scheduled:
                if ticking:
                    set_schedule(stack, running=False)
                    ticking = False
                first = min(scheduled, key=lambda record: record.create_timestamp)
                next_run = instance.get_run_by_id(first.dagster_run.run_id)
                if next_run and next_run.is_finished:
                    break
            time.sleep(5)
        assert next_run is not None, "a scheduled run after the restart"
        assert next_run.status == dg.DagsterRunStatus.SUCCESS, next_run.status
        assert next_run.tags["dagster/partition"] == stack.hours[-1]
    finally:
        if ticking:
            set_schedule(stack, running=False)


def test_the_webserver_answers_its_first_request_after_postgres_restarts(stack):
    # A connection the webserver has used before the restart...
    before = graphql(stack, READS_EVERY_STORAGE)
    assert before["runsOrError"]["__typename"] == "Runs"
    stack.run("restart", "postgres")
    states = stack.wait_healthy()
    assert set(states.values()) <= {"healthy", "exited 0"}, states

    # ...is not what answers the first request after it: one request, no retry.
    after = graphql(stack, READS_EVERY_STORAGE)
    assert after["runsOrError"]["__typename"] == "Runs"
    assert after["assetsOrError"]["__typename"] == "AssetConnection"
    ui = httpx.get(f"{stack.ui}/runs", timeout=60)
    assert ui.status_code == 200


REFUSED_TO_THE_APPLICATION_ROLE = [
    "DROP TRIGGER {table}_no_change ON {table}",
    "ALTER TABLE {table} DISABLE TRIGGER {table}_no_change",
    "ALTER TABLE {table} DISABLE TRIGGER ALL",
    "DROP TABLE {table}",
    "TRUNCATE {table}",
    "DELETE FROM {table}",
    "SET session_replication_role = replica",
]


def test_the_application_role_cannot_drop_or_disable_the_audit_triggers(stack, materialized):
    owner_url = stack.db_url("refrig_alerts")
    protected = append_only_tables(owner_url)
    assert {"alert_transitions", "model_lifecycle_events"} <= protected

    app = sa.create_engine(stack.db_url("refrig_alerts", app_role=True))
    try:
        for table in sorted(protected):
            for statement in REFUSED_TO_THE_APPLICATION_ROLE:
                sql = statement.format(table=table)
                with app.connect() as conn, pytest.raises(sa.exc.DBAPIError) as refused:
                    conn.exec_driver_sql(sql)
                reason = str(refused.value.orig)
                assert any(r in reason for r in ("must be owner", "permission denied")), sql
    finally:
        app.dispose()

    enabled = rows(
        owner_url,
        "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal",
    )
    for table in protected:
        for trigger in (f"{table}_no_change", f"{table}_no_truncate"):
            assert (table, trigger, "O") in enabled, (table, trigger)
