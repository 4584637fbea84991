"""Real servers for the deployment tests: PostgreSQL (scripts/postgres_start.sh), the commands
of docker-compose.yml run on loopback, and `dagster dev` — each in its own process group so that
one SIGTERM stops the server and every child it spawned."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE_FILE = ROOT / "docker-compose.yml"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """A server started in a new session (its own process group), logging to a file."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path = ROOT
    process: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> "ServerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def terminate(self) -> None:
        """SIGTERM the whole process group."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the whole process group; SIGKILL what is left after ``timeout``."""
        stop_all([self], timeout)


def stop_all(servers: list[ServerProcess], timeout: float = 30) -> None:
    """Stop several servers at once (SIGTERM to every group, then wait, then SIGKILL)."""
    started = [s for s in servers if s.process is not None]
    for server in started:
        server.terminate()
    deadline = time.monotonic() + timeout
    for server in started:
        # poll() reaps the leader: a zombie would keep its group looking alive.
        while server.process.poll() is None or _group_alive(server.process.pid):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    for server in started:
        if _group_alive(server.process.pid):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def wait_for_http(url: str, servers: list[ServerProcess], timeout: float = 180) -> bytes:
    """GET ``url`` until it answers 200; fail early, with the log, if a server dies."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        for server in servers:
            server.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return response.read()
        except (urllib.error.URLError, OSError) as e:
            last_error = str(e)
        time.sleep(0.5)
    logs = "\n".join(f"--- {s.name}\n{s.log_tail()}" for s in servers)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s ({last_error})\n{logs}")


def wait_for_port(port: int, servers: list[ServerProcess], timeout: float = 180) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for server in servers:
            server.check_alive()
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    logs = "\n".join(f"--- {s.name}\n{s.log_tail()}" for s in servers)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s\n{logs}")


def compose_service(name: str) -> dict:
    """One service of docker-compose.yml, as written (no interpolation)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"][name]


def compose_command(
    service: str, overrides: dict[str, str], healthcheck: bool = False
) -> list[str]:
    """The service's command (or healthcheck) from docker-compose.yml, run from this
    virtualenv on loopback: each flag in ``overrides`` gets the given value (host, port, paths,
    URLs inside the containers); every other argument stays as deployed."""
    spec = compose_service(service)
    command = list(spec["healthcheck"]["test"][1:] if healthcheck else spec["command"])
    if (BIN / command[0]).exists():
        command[0] = str(BIN / command[0])
    for i, arg in enumerate(command[:-1]):
        if arg in overrides:
            command[i + 1] = overrides[arg]
    missing = set(overrides) - set(command)
    assert not missing, f"{service} command has no {sorted(missing)}: {command}"
    return command


def compose_environment(service: str) -> dict[str, str]:
    """The literal (non-interpolated) environment entries of a compose service."""
    env = compose_service(service).get("environment") or {}
    return {k: str(v) for k, v in env.items() if "${" not in str(v)}


@dataclass(frozen=True)
class PostgresServer:
    """A throwaway PostgreSQL server and the deployment settings that point at it."""

    directory: str
    settings: dict[str, str]

    def url(self, database: str) -> str:
        s = self.settings
        return (
            f"postgresql+psycopg2://{s['PGUSER']}:{s['PGPASSWORD']}@127.0.0.1:{s['PGPORT']}"
            f"/{database}"
        )


def start_postgres() -> PostgresServer:
    """scripts/postgres_start.sh; skips the test only when PostgreSQL cannot be installed
    because apt-get is not there."""
    have_server = any(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not have_server and shutil.which("apt-get") is None:
        pytest.skip("PostgreSQL is not installed and apt-get is unavailable to install it")
    done = subprocess.run(
        [str(ROOT / "scripts" / "postgres_start.sh")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"postgres_start.sh failed:\n{done.stderr}")
    settings = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return PostgresServer(settings["REFRIG_PG_DIR"], settings)


def restart_postgres(server: PostgresServer) -> None:
    """Restart the server with its options, fast: every client's connection is cut."""
    command = [
        f"{server.settings['REFRIG_PG_BIN']}/pg_ctl",
        *("-D", f"{server.directory}/data", "-l", f"{server.directory}/postgres.log"),
        *("-m", "fast", "-w", "-t", "60", "restart"),
    ]
    if os.getuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


# One GraphQL query that reads each of the webserver's Dagster storages: runs, event log
# (assets) and daemon heartbeats.
READS_EVERY_STORAGE = (
    "{ runsOrError(limit: 1) { __typename ... on Runs { results { runId } } } "
    "assetsOrError(limit: 1) { __typename ... on AssetConnection { nodes { key { path } } } } "
    "instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
)


def stop_postgres(server: PostgresServer) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "postgres_stop.sh"), server.directory], check=True, timeout=120
    )
