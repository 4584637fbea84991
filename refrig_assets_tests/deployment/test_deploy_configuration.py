"""What the docker-compose deployment promises, checked without a Docker engine: the compose
file validated by a real `docker compose config` where a client is installed, and its
structure, the Dagster instance and workspace validated with Dagster's own config schemas."""

import itertools
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES = COMPOSE["services"]
DAGSTER_SERVICES = ["user_code", "dagster_webserver", "dagster_daemon"]
# Run once and exit: no healthcheck, no restart; dependants wait for their success.
ONE_SHOT_SERVICES = {"migrate"}
APP_ROLE = "refrig_app"
SHARED_VOLUME = "refrig_data"


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def mounts(service: str) -> dict[str, str]:
    """Mount target → source (volume name or host path) of a service."""
    result = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        result[target] = source
    return result


def command_flags(service: str) -> dict[str, str]:
    command = SERVICES[service]["command"]
    return dict(itertools.pairwise(command))


def env_sources(path: Path) -> set[str]:
    """Environment variables a Dagster YAML file reads with ``{env: NAME}``."""
    return set(re.findall(r"\{env:\s*(\w+)\}", path.read_text()))


def test_compose_runs_the_deployment_services():
    assert set(SERVICES) == {
        "postgres",
        "migrate",
        "user_code",
        "dagster_webserver",
        "dagster_daemon",
        "mlflow",
        "console",
        "serving",
    }
    assert SHARED_VOLUME in COMPOSE["volumes"]


def test_only_the_uis_and_the_console_are_published_and_only_on_loopback():
    published = {name: s["ports"] for name, s in SERVICES.items() if s.get("ports")}
    assert set(published) == {"dagster_webserver", "mlflow", "console", "serving"}
    for ports in published.values():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), port


def test_every_service_has_a_healthcheck_and_starts_after_healthy_dependencies():
    for name, service in SERVICES.items():
        if name in ONE_SHOT_SERVICES:
            assert "healthcheck" not in service and service.get("restart") == "no", name
        else:
            assert service["healthcheck"]["test"], name
            assert service.get("restart") == "unless-stopped", name
        for dependency, condition in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully"
                if dependency in ONE_SHOT_SERVICES
                else "service_healthy"
            )
            assert condition == {"condition": expected}, (name, dependency)


def test_migrations_run_as_the_owner_and_the_code_connects_as_the_application_role():
    migrate = SERVICES["migrate"]
    assert migrate["command"] == ["refrig", "db", "migrate", "--app-role", APP_ROLE]
    assert migrate["image"] == SERVICES["user_code"]["image"]
    owner_url = migrate["environment"]["REFRIG_ALERTS_DB_URL"]
    assert owner_url.startswith("postgresql+psycopg2://${POSTGRES_USER}:${POSTGRES_PASSWORD}@")
    app_url = SERVICES["user_code"]["environment"]["REFRIG_ALERTS_DB_URL"]
    assert app_url.startswith(f"postgresql+psycopg2://{APP_ROLE}:${{REFRIG_APP_DB_PASSWORD}}@")
    assert owner_url.rsplit("@", 1)[1] == app_url.rsplit("@", 1)[1], "the same database"
    assert "REFRIG_LIFECYCLE_DB_URL" not in SERVICES["user_code"]["environment"]
    assert SERVICES["user_code"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    # The application role is created on an empty volume, after the databases.
    roles = ROOT / "deploy" / "postgres" / "20-refrig-roles.sh"
    assert mounts("postgres")["/docker-entrypoint-initdb.d/20-refrig-roles.sh"] == (
        "./deploy/postgres/20-refrig-roles.sh"
    )
    assert roles.stat().st_mode & 0o111, "the postgres image executes *.sh init files"
    assert f"CREATE ROLE {APP_ROLE} " in roles.read_text()
    assert "REFRIG_APP_DB_PASSWORD" in SERVICES["postgres"]["environment"]


def test_credentials_come_only_from_the_uncommitted_env_file():
    text = COMPOSE_FILE.read_text()
    example = env_example()
    interpolated = set(re.findall(r"\$\{(\w+)", text))
    assert interpolated <= set(example), "every setting is documented in .env.example"
    assert example["POSTGRES_PASSWORD"] not in text
    assert example["REFRIG_APP_DB_PASSWORD"] not in text
    postgres_env = SERVICES["postgres"]["environment"]
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "REFRIG_APP_DB_PASSWORD"):
        assert postgres_env[name].startswith("${" + name + ":?"), "required, never defaulted"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], check=False, cwd=ROOT)
    assert ignored.returncode == 0, ".env must be git-ignored"


def test_mlflow_server_is_lean_with_postgres_backend_and_artifacts_on_the_shared_volume():
    flags = command_flags("mlflow")
    assert flags["--workers"] == "1"
    assert SERVICES["mlflow"]["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert re.fullmatch(
        r"postgresql\+psycopg2://.+@postgres:5432/\w+", flags["--backend-store-uri"]
    )
    artifacts = PurePosixPath(flags["--default-artifact-root"].removeprefix("file://"))
    (volume_root,) = [t for t, s in mounts("mlflow").items() if s == SHARED_VOLUME]
    assert artifacts.is_relative_to(volume_root)
    assert "mlflow:5000" in flags["--allowed-hosts"].split(",")


def test_mlflow_requires_a_signed_in_user_and_the_code_server_signs_in():
    flags = command_flags("mlflow")
    assert flags["--app-name"] == "basic-auth"
    env = SERVICES["mlflow"]["environment"]
    config_path = env["MLFLOW_AUTH_CONFIG_PATH"]
    assert mounts("mlflow")[config_path] == "./deploy/mlflow/basic_auth.ini"
    for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert re.fullmatch(r"\$\{\w+:\?.+\}", env[name]), "required, from .env"
    # The user store outlives the container: it is on the shared volume.
    auth = (ROOT / "deploy" / "mlflow" / "basic_auth.ini").read_text()
    (store,) = re.findall(r"^database_uri = sqlite:///(/\S+)$", auth, re.MULTILINE)
    (volume_root,) = [t for t, s in mounts("mlflow").items() if s == SHARED_VOLUME]
    assert PurePosixPath(store).is_relative_to(volume_root)
    for name in ("user_code", "console"):
        code_env = SERVICES[name]["environment"]
        assert code_env["MLFLOW_TRACKING_USERNAME"] == env["MLFLOW_AUTH_ADMIN_USERNAME"]
        assert code_env["MLFLOW_TRACKING_PASSWORD"] == env["MLFLOW_AUTH_ADMIN_PASSWORD"]


def test_code_and_mlflow_share_one_volume_for_data_landing_zone_and_model_artifacts():
    env = SERVICES["user_code"]["environment"]
    code_root = {s: t for t, s in mounts("user_code").items()}[SHARED_VOLUME]
    mlflow_root = {s: t for t, s in mounts("mlflow").items()}[SHARED_VOLUME]
    # Artifact paths that the code logs must resolve identically inside the MLflow server.
    assert env["REFRIG_HOME"] == code_root == mlflow_root
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert re.fullmatch(r"postgresql\+psycopg2://.+@postgres:5432/\w+", env["REFRIG_ALERTS_DB_URL"])


def test_detector_files_come_from_the_checkout_so_pins_survive_redeploys():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    user_code_stage = dockerfile.split(" AS user_code", 1)[1]
    project_dir = re.findall(r"^WORKDIR (\S+)", user_code_stage, re.MULTILINE)[-1]
    assert mounts("user_code")[f"{project_dir}/models"] == "./models"


def test_every_database_the_services_use_is_created_by_init_sql():
    init = ROOT / "deploy" / "postgres" / "init.sql"
    created = set(re.findall(r"CREATE DATABASE (\w+)", init.read_text()))
    used = {
        SERVICES["user_code"]["environment"]["DAGSTER_PG_DB"],
        SERVICES["user_code"]["environment"]["REFRIG_ALERTS_DB_URL"].rsplit("/", 1)[1],
        command_flags("mlflow")["--backend-store-uri"].rsplit("/", 1)[1],
    }
    assert used <= created
    assert mounts("postgres")["/docker-entrypoint-initdb.d/10-refrig-databases.sql"] == (
        "./deploy/postgres/init.sql"
    )


def test_dagster_services_get_the_instance_workspace_and_every_variable_they_read():
    needed = env_sources(ROOT / "deploy" / "dagster.yaml") | env_sources(ROOT / "workspace.yaml")
    for name in DAGSTER_SERVICES:
        env = SERVICES[name]["environment"]
        assert needed <= set(env), (name, needed - set(env))
        home = PurePosixPath(env["DAGSTER_HOME"])
        assert mounts(name)[str(home / "dagster.yaml")] == "./deploy/dagster.yaml"
    for name in ("dagster_webserver", "dagster_daemon"):
        workspace = command_flags(name)["-w"]
        assert mounts(name)[workspace] == "./workspace.yaml"


def test_workspace_points_at_the_code_server_over_grpc(monkeypatch):
    from dagster._core.workspace.config_schema import ensure_workspace_config

    env = SERVICES["dagster_webserver"]["environment"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = ROOT / "workspace.yaml"
    workspace = yaml.safe_load(path.read_text())
    ensure_workspace_config(workspace, str(path))
    (entry,) = workspace["load_from"]
    grpc = entry["grpc_server"]
    assert env[grpc["host"]["env"]] == "user_code"
    assert env[grpc["port"]["env"]] == command_flags("user_code")["-p"]


def test_instance_queues_runs_one_per_partition_and_retries_crashed_runs():
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.storage.tags import PARTITION_NAME_TAG

    config, _ = dagster_instance_config(str(ROOT / "deploy"))  # validates against the schema
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {
        "key": PARTITION_NAME_TAG,
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in limits
    retries = config["run_retries"]
    assert retries["enabled"] and retries["max_retries"] >= 1
    assert retries["retry_on_asset_or_op_failure"] is False
    assert config["run_monitoring"]["enabled"]


def test_platform_image_pins_the_same_versions_as_the_project():
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = {Requirement(r).name: Requirement(r).specifier for r in project}
    lines = (ROOT / "deploy" / "requirements-platform.txt").read_text().splitlines()
    for line in lines:
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            assert requirement.specifier == pinned[requirement.name], requirement.name


def test_dockerfile_builds_the_targets_and_copies_files_that_exist():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    targets = set(re.findall(r"^FROM \S+ AS (\w+)", dockerfile, re.MULTILINE))
    for name, service in SERVICES.items():
        if "build" in service:
            assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
            assert service["build"]["target"] in targets, name
    for source in re.findall(r"^COPY (?!--from=)(.+) \S+$", dockerfile, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), path


def compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "compose", "version"], check=False, capture_output=True
        ).returncode
        == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_validates_the_file(tmp_path):
    client = compose_client()
    if client is None:
        pytest.skip(
            "no `docker compose` / `docker-compose` client "
            "(scripts/system_packages.sh docker-compose installs one)"
        )
    for name in ("docker-compose.yml", "workspace.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    config = [*client, "-f", "docker-compose.yml", "config", "--quiet"]

    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    valid = subprocess.run(
        config, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr

    (tmp_path / ".env").unlink()
    without_env = subprocess.run(
        config, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert without_env.returncode != 0
    assert "POSTGRES_" in without_env.stdout + without_env.stderr
