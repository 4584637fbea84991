"""The PostgreSQL-backed deployment of docker-compose.yml, run without Docker on loopback.

A throwaway PostgreSQL server (scripts/postgres_start.sh) holds the Dagster instance of
deploy/dagster.yaml, the alert database and MLflow's backend store; the MLflow server, the code
server, the webserver and the daemon run with the commands written in docker-compose.yml, the
webserver and daemon reading workspace.yaml.
"""

import os
import re
import secrets
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from support.service_processes import (
    READS_EVERY_STORAGE,
    ROOT,
    PostgresServer,
    ServerProcess,
    compose_command,
    compose_environment,
    free_port,
    restart_postgres,
    start_postgres,
    stop_all,
    stop_postgres,
    wait_for_http,
    wait_for_port,
)

pytestmark = pytest.mark.slow

HOURS = ["2026-01-01-00:00", "2026-01-01-01:00", "2026-01-01-02:00"]
PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
MODELS = ["isolation_forest_model", "statistical_baseline_model"]
SCORE = ["isolation_forest_scores", "statistical_baseline_scores", "device_alerts"]


@pytest.fixture(scope="module")
def postgres():
    server = start_postgres()
    yield server
    stop_postgres(server)


# The MLflow admin user of the test server (the compose file takes it from .env).
MLFLOW_ADMIN = ("compose-admin", secrets.token_hex(16))


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """docker-compose.yml's MLflow command (one worker, Postgres backend store, basic auth with
    deploy/mlflow/basic_auth.ini, its user store moved into a temporary directory) on loopback."""
    work = tmp_path_factory.mktemp("mlflow-server")
    auth_config = (ROOT / "deploy" / "mlflow" / "basic_auth.ini").read_text()
    auth_config = re.sub(
        r"^database_uri = .*$",
        f"database_uri = sqlite:///{work / 'auth.db'}",
        auth_config,
        flags=re.MULTILINE,
    )
    (work / "basic_auth.ini").write_text(auth_config)
    port = free_port()
    command = compose_command(
        "mlflow",
        {
            "--host": "127.0.0.1",
            "--port": str(port),
            "--backend-store-uri": postgres.url("mlflow"),
            "--default-artifact-root": (work / "artifacts").as_uri(),
        },
    )
    env = {
        **os.environ,
        **compose_environment("mlflow"),
        "MLFLOW_AUTH_CONFIG_PATH": str(work / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": MLFLOW_ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": MLFLOW_ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    server = ServerProcess("mlflow", command, env, work / "mlflow.log").start()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", [server])
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def instance_environment(postgres: PostgresServer, dagster_home: Path) -> dict[str, str]:
    """DAGSTER_HOME holding deploy/dagster.yaml, and the variables it reads."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    names = ["DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"]
    return {
        "DAGSTER_HOME": str(dagster_home),
        "REFRIG_DAGSTER_STORAGE_DIR": str(dagster_home / "storage"),
        "DAGSTER_PG_DB": "dagster",
        **{name: postgres.settings[name] for name in names},
    }


def rows(url: str, query: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query)))
    finally:
        engine.dispose()


def test_graph_runs_on_the_postgres_backed_configuration(
    small_fleet, postgres, mlflow_server, monkeypatch, tmp_path
):
    from refrig_assets.alerts.store import AlertStore
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.definitions import defs
    from refrig_assets.training.registry import ModelRegistry

    for name, value in instance_environment(postgres, tmp_path / "dagster").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REFRIG_ALERTS_DB_URL", postgres.url("refrig_alerts"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", MLFLOW_ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_ADMIN[1])

    def run(instance, assets, partition=None, run_config=None):
        job = defs.resolve_job_def("hourly_pipeline" if partition else "train_detectors")
        return job.execute_in_process(
            instance=instance,
            partition_key=partition,
            asset_selection=[dg.AssetKey(a) for a in assets],
            run_config=run_config,
            raise_on_error=True,
        ).run_id

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        from refrig_assets.defs.ingestion.assets import device_registry

        run_ids = [
            dg.materialize([device_registry], instance=instance, resources=defs.resources).run_id
        ]
        run_ids += [run(instance, PREP, hour) for hour in HOURS]
        config = {"config": {"start_partition": HOURS[0], "end_partition": HOURS[1]}}
        run_ids.append(run(instance, MODELS, run_config={"ops": dict.fromkeys(MODELS, config)}))
        run_ids.append(run(instance, SCORE, HOURS[2]))

    dagster_db = postgres.url("dagster")
    stored_runs = dict(rows(dagster_db, "SELECT run_id, status FROM runs"))
    assert stored_runs == dict.fromkeys(run_ids, "SUCCESS")
    checks = rows(
        dagster_db,
        "SELECT asset_key, check_name, execution_status FROM asset_check_executions "
        f"WHERE run_id = '{run_ids[-1]}'",
    )
    planned = {(asset, check) for asset, check, _ in checks}
    passed = {(asset, check) for asset, check, status in checks if status == "SUCCEEDED"}
    assert planned and passed == planned

    # The alert database the graph wrote to is the PostgreSQL one, holding every alert.
    alerts_db = postgres.url("refrig_alerts")
    engine = sa.create_engine(alerts_db)
    assert {"alerts", "alert_transitions"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()
    alerts = ParquetStore(small_fleet.data_dir).read("device_alerts", HOURS[2])
    in_postgres = {row[0] for row in rows(alerts_db, "SELECT alert_id FROM alerts")}
    assert in_postgres == set(alerts["alert_id"])
    listed = AlertStore(alerts_db).list(include_suppressed=True)
    assert set(listed["alert_id"]) == in_postgres

    registry = ModelRegistry(mlflow_server, small_fleet.mlflow_artifacts_dir)
    assert registry.production_version("isolation_forest") == "1"
    versions = rows(postgres.url("mlflow"), "SELECT name, version FROM model_versions")
    assert sorted(versions) == [("isolation_forest", 1), ("statistical_baseline", 1)]


def test_mlflow_server_accepts_the_compose_service_name_and_no_other_host(mlflow_server):
    import httpx

    search = f"{mlflow_server}/api/2.0/mlflow/experiments/search?max_results=1"
    signed_in = {"auth": MLFLOW_ADMIN}
    assert httpx.get(search, headers={"Host": "mlflow:5000"}, **signed_in).status_code == 200
    assert (
        httpx.get(search, headers={"Host": "attacker.example:5000"}, **signed_in).status_code == 403
    )


def test_mlflow_server_refuses_anonymous_requests(mlflow_server):
    import httpx

    alias = {"name": "isolation_forest", "alias": "production", "version": "1"}
    moved = httpx.post(f"{mlflow_server}/api/2.0/mlflow/registered-models/alias", json=alias)
    assert moved.status_code == 401
    assert httpx.get(f"{mlflow_server}/health").status_code == 200, "health stays open"


@pytest.fixture(scope="module")
def compose_services(postgres, tmp_path_factory):
    """Code server, webserver and daemon started with docker-compose.yml's commands, the
    webserver and daemon loading workspace.yaml, on a small simulated fleet."""
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    home = tmp_path_factory.mktemp("compose-home")
    config = SimulationConfig(
        devices=8, hours=2, start=datetime(2026, 1, 1, tzinfo=UTC), seed=3, fault_fraction=0.25
    )
    simulate_fleet(
        config,
        home / "landing",
        home / "reference" / "device_registry.csv",
        home / "reference" / "labels.parquet",
    )
    grpc_port, web_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REFRIG_", "DAGSTER_", "MLFLOW_TRACKING"))
    }
    env.update(compose_environment("dagster_webserver"))
    env.update(instance_environment(postgres, home / "dagster"))
    env.update(
        REFRIG_HOME=str(home),
        REFRIG_ALERTS_DB_URL=postgres.url("refrig_alerts"),
        DAGSTER_GRPC_HOST="127.0.0.1",
        DAGSTER_GRPC_PORT=str(grpc_port),
    )
    workspace = str(ROOT / "workspace.yaml")
    code_server = ServerProcess(
        "code server",
        compose_command("user_code", {"-h": "127.0.0.1", "-p": str(grpc_port)}),
        env,
        home / "logs" / "code_server.log",
    ).start()
    servers = [code_server]
    try:
        wait_for_port(grpc_port, servers)
        health = compose_command("user_code", {"-p": str(grpc_port)}, healthcheck=True)
        subprocess.run(health, env=env, check=True, capture_output=True, timeout=120)
        servers.append(
            ServerProcess(
                "webserver",
                compose_command(
                    "dagster_webserver", {"-h": "127.0.0.1", "-p": str(web_port), "-w": workspace}
                ),
                env,
                home / "logs" / "webserver.log",
            ).start()
        )
        servers.append(
            ServerProcess(
                "daemon",
                compose_command("dagster_daemon", {"-w": workspace}),
                env,
                home / "logs" / "daemon.log",
            ).start()
        )
        wait_for_http(f"http://127.0.0.1:{web_port}/server_info", servers)
        yield {"env": env, "web_port": web_port, "servers": servers}
    finally:
        stop_all(servers, timeout=10)


def test_run_queue_never_runs_two_runs_of_one_partition_at_once(compose_services, monkeypatch):
    from dagster_graphql import DagsterGraphQLClient

    for name, value in compose_services["env"].items():
        if name.startswith("DAGSTER_") or name == "REFRIG_DAGSTER_STORAGE_DIR":
            monkeypatch.setenv(name, value)
    client = DagsterGraphQLClient("127.0.0.1", port_number=compose_services["web_port"])

    def launch(partition: str) -> str:
        return client.submit_job_execution(
            "hourly_pipeline",
            repository_location_name="refrig_assets",
            tags={"dagster/partition": partition},
            asset_selection=["sensor_readings"],
        )

    first, second, other = launch(HOURS[0]), launch(HOURS[0]), launch(HOURS[1])

    with dg.DagsterInstance.get() as instance:
        deadline = time.monotonic() + 300
        while not all(instance.get_run_by_id(r).is_finished for r in (first, second, other)):
            for server in compose_services["servers"]:
                server.check_alive()
            assert time.monotonic() < deadline, "runs did not finish within 300 s"
            time.sleep(1)
        statuses = {r: instance.get_run_by_id(r).status for r in (first, second, other)}
        assert set(statuses.values()) == {dg.DagsterRunStatus.SUCCESS}, statuses

        def dequeued_at(run_id: str) -> float:
            """When the daemon took the run off the queue and launched it."""
            (event,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_STARTING)
            return event.timestamp

        def ended_at(run_id: str) -> float:
            return instance.get_run_record_by_id(run_id).end_time

        earlier, later = sorted((first, second), key=dequeued_at)
        # Same partition: the later run left the queue only after the earlier one had ended.
        assert dequeued_at(later) >= ended_at(earlier)
        # Another partition is not held back by it.
        assert dequeued_at(other) < ended_at(earlier)

    liveness = compose_command("dagster_daemon", {}, healthcheck=True)
    done = subprocess.run(
        liveness, env=compose_services["env"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_webserver_answers_its_first_request_after_postgres_restarts(
    compose_services, postgres
):
    """No pooled connection outlives a PostgreSQL restart in the webserver (docker-compose.yml
    runs it with --db-pool-recycle 0): the very first request after one succeeds."""
    import httpx

    graphql = f"http://127.0.0.1:{compose_services['web_port']}/graphql"
    before = httpx.post(graphql, json={"query": READS_EVERY_STORAGE}, timeout=60)
    assert before.status_code == 200, before.text[:2000]

    restart_postgres(postgres)

    first = httpx.post(graphql, json={"query": READS_EVERY_STORAGE}, timeout=60)
    assert first.status_code == 200, first.text[:2000]
    assert "errors" not in first.json()
