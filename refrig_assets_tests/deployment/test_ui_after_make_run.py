"""After ``make run`` an ML engineer opens the Dagster UI (``make dev``) and the MLflow UI in a
browser: the partitions are the run's hours, all filled; checks name their partition; drift
metadata is one rounded table with the report's path; each MLflow version shows its signature.
``make dev`` stops on SIGTERM even started in the background.

One combined slow test (a run, two servers, a browser). Screenshots land in test-artifacts/.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.service_processes import (
    BIN,
    ROOT,
    ServerProcess,
    _group_alive,
    free_port,
    wait_for_http,
)

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Enough windows on both sides of the drift comparison (drift.min_windows) after training on
# the first two hours.
START, HOURS, TRAIN_HOURS, DEVICES = "2026-01-01T00:00", 4, 2, 30
RUN_HOURS = [f"2026-01-01-{h:02d}:00" for h in range(HOURS)]
UI_TIMEOUT_MS = 120_000


def _environment(home: Path) -> dict[str, str]:
    """What ``make`` gives its commands: REFRIG_HOME, DAGSTER_HOME under it, nothing else of
    the test process's project settings (no configured partition start)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REFRIG_", "DAGSTER_", "MLFLOW_TRACKING"))
    }
    env.update(
        REFRIG_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        MLFLOW_DISABLE_TELEMETRY="true",
        PYTHONWARNINGS="ignore",
        VENV=str(BIN.parent),
    )
    return env


def make_run(home: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The two commands of ``make run`` on a small fleet; returns the pipeline's process."""
    (home / "dagster").mkdir(parents=True)
    refrig = str(BIN / "refrig")
    simulate = [refrig, "simulate", "--devices", str(DEVICES), "--hours", str(HOURS)]
    simulate += ["--start", START]
    subprocess.run(simulate + ["--seed", "7"], env=env, cwd=ROOT, check=True, timeout=600)
    pipeline = [refrig, "pipeline", "run", "--start", START, "--hours", str(HOURS)]
    return subprocess.run(
        pipeline + ["--train-hours", str(TRAIN_HOURS)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def _screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"ml_{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _children(pid: int) -> list[int]:
    listed = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    )
    return [int(p) for p in listed.stdout.split()]


def test_after_make_run_the_uis_show_the_runs_partitions_checks_drift_and_model_versions(
    tmp_path,
):
    from playwright.sync_api import expect, sync_playwright

    from refrig_assets.core.model_config import load_model_config

    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (make ui-test installs it)")
    home = tmp_path / "home"
    env = _environment(home)
    run = make_run(home, env)
    output = run.stdout + run.stderr

    # Progress with a counter and an estimate; no third-party banners; the console's count.
    steps = re.findall(r"^\[\s*(\d+)/(\d+)\] .*  [\d.]+ s, ETA ", output, re.MULTILINE)
    assert steps and steps[-1][0] == steps[-1][1], output[-3000:]
    for banner in ("Telemetry:", "Successfully registered model", "Created version"):
        assert banner not in output
    assert "alerts (as the console lists them):" in output

    port = free_port()
    dev = ServerProcess(
        "make dev",
        [str(BIN / "python"), str(ROOT / "scripts" / "dagster_dev.py"), str(port)],
        env,
        home / "dev.log",
    ).start()
    mlflow_port = free_port()
    mlflow = ServerProcess(
        "mlflow server",
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port)]
        + ["--workers", "1", "--backend-store-uri", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"],
        env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        home / "mlflow.log",
    ).start()
    ui = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{ui}/server_info", [dev], timeout=600)
        wait_for_http(f"http://127.0.0.1:{mlflow_port}/health", [mlflow], timeout=600)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)  # the first pages load slowly on 2 cores

            # The asset page: the run's hours are all the partitions there are, all filled.
            page.goto(f"{ui}/assets/device_features?view=partitions")
            expect(page.get_by_text(f"Materialized ({HOURS})", exact=True)).to_be_visible()
            expect(page.get_by_text("Missing (0)", exact=True)).to_be_visible()
            expect(page.get_by_text(f"{HOURS} Partitions Selected", exact=True)).to_be_visible()
            expect(page.get_by_text("Join the Dagster community")).to_have_count(0)
            _screenshot(page, "asset_partitions")

            # A check, with its description and the partition it checked.
            page.goto(f"{ui}/assets/device_features?view=checks")
            expect(page.get_by_text("Rows follow contracts/device_features.yaml")).to_be_visible()
            expect(page.get_by_text(RUN_HOURS[-1], exact=True).first).to_be_visible()
            _screenshot(page, "check")

            # Drift metadata: one table of rounded PSI values, and the report's path.
            page.goto(f"{ui}/assets/feature_drift")
            expect(page.get_by_text("psi_by_feature").first).to_be_visible()
            feature = load_model_config("isolation_forest").feature_columns[0]
            expect(page.get_by_role("cell", name=feature, exact=True).first).to_be_visible()
            expect(page.get_by_text(re.compile(r"report: ")).first).to_be_visible()
            _screenshot(page, "drift_metadata")

            # The MLflow version page: description and signature.
            page.goto(f"http://127.0.0.1:{mlflow_port}/#/models/isolation_forest/versions/1")
            expect(page.get_by_text(re.compile(r"^Inputs \([1-9]\d*\)$"))).to_be_visible()
            expect(
                page.get_by_text(
                    re.compile(r"isolation_forest 1\.0\.0 \(isolation_forest\): trained")
                )
            ).to_be_visible()
            _screenshot(page, "mlflow_version")
            browser.close()
    finally:
        mlflow.stop(timeout=30)
        # make dev in the background: SIGTERM to it alone stops dagster dev, which runs in a
        # session of its own, cleanly (its services say so in the log).
        dagster_dev = _children(dev.process.pid) if dev.process is not None else []
        if dev.process is not None and dev.process.poll() is None:
            os.kill(dev.process.pid, signal.SIGTERM)
            try:
                dev.process.wait(timeout=180)
            finally:
                # Killed leftovers of its session are reaped by init: give that a moment.
                for _ in range(60):
                    left = [pid for pid in dagster_dev if _group_alive(pid)]
                    if not left:
                        break
                    time.sleep(0.5)
                dev.stop(timeout=10)
                for pid in left:
                    os.killpg(pid, signal.SIGKILL)
            assert not left, f"make dev left dagster dev running\n{dev.log_tail()}"
            assert "Dagster services shut down." in dev.log_path.read_text(errors="replace")
    # Last, so that a failing step still leaves the screenshots of everything else.
    assert run.returncode == 0, output[-4000:]
