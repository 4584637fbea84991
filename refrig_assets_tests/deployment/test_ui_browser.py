"""The Dagster UI in a real browser: `dagster dev` on 127.0.0.1 over a small simulated fleet,
driven by headless Debian Chromium through Playwright.

Screenshots land in test-artifacts/ (git-ignored) for a person to look at.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.service_processes import BIN, ROOT, ServerProcess, free_port, wait_for_http

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A recent hour: the Materialize dialog offers the last 90 days of partitions.
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
PARTITION = START.strftime("%Y-%m-%d-%H:%M")
# A run is a fresh process importing the whole project: minutes on a busy two-core machine.
RUN_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing (Playwright's own download is
    not used)."""
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None:
            pytest.skip("Debian chromium is not installed and apt-get is unavailable")
        subprocess.run(
            [str(ROOT / "scripts" / "system_packages.sh"), "chromium"], check=True, timeout=1200
        )
    assert CHROMIUM.exists(), "scripts/system_packages.sh did not install /usr/bin/chromium"
    return CHROMIUM


def _location_loaded(base_url: str) -> bool:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
    return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory) -> str:
    """`dagster dev -m refrig_assets.definitions` on a free loopback port, over 10 healthy
    simulated devices × 1 hour; stopped with SIGTERM to its process group."""
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    home = tmp_path_factory.mktemp("ui-home")
    simulate_fleet(
        SimulationConfig(devices=10, hours=1, start=START, seed=11, faults=False),
        home / "landing",
        home / "reference" / "device_registry.csv",
        home / "reference" / "labels.parquet",
    )
    dagster_home = home / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REFRIG_", "DAGSTER_", "MLFLOW_TRACKING"))
    }
    env.update(REFRIG_HOME=str(home), DAGSTER_HOME=str(dagster_home))
    port = free_port()
    command = [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)]
    command += ["-m", "refrig_assets.definitions"]
    server = ServerProcess("dagster dev", command, env, home / "dagster-dev.log").start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base_url}/server_info", [server], timeout=300)
        deadline = time.monotonic() + 300
        while not _location_loaded(base_url):
            server.check_alive()
            assert time.monotonic() < deadline, f"code location not loaded\n{server.log_tail()}"
            time.sleep(1)
        yield base_url
    finally:
        server.stop(timeout=10)


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1800, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"ui_{name}.png"
    page.screenshot(path=str(path))
    return path


def reload_until_visible(page, locator, timeout_ms: int) -> None:
    """Reload the page until ``locator`` shows (not every panel updates live)."""
    from playwright.sync_api import expect

    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            expect(locator).to_be_visible(timeout=5_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.reload()


def test_the_asset_graph_shows_every_asset_group(dagster_ui, page):
    from playwright.sync_api import expect

    from refrig_assets.definitions import defs

    groups = sorted({spec.group_name for spec in defs.resolve_all_asset_specs()})
    page.goto(f"{dagster_ui}/asset-groups")
    graph = page.locator("svg")
    for group in groups:
        expect(graph.get_by_text(group, exact=True).filter(visible=True)).to_have_count(1)
    assert screenshot(page, "asset_graph").stat().st_size > 0


def test_a_partition_materialized_from_the_ui_shows_its_checks(dagster_ui, page):
    from playwright.sync_api import expect

    from refrig_assets.definitions import defs

    checks = [spec.name for spec in defs.resolve_assets_def("sensor_readings").check_specs]
    assert checks, "sensor_readings declares asset checks"

    page.goto(f"{dagster_ui}/assets/sensor_readings")
    page.locator("button", has_text="Materialize").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Partition selection")).to_be_visible()
    partitions = dialog.locator("input[type=text]").first
    partitions.fill(PARTITION)
    partitions.press("Enter")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    screenshot(page, "materialize_dialog")
    dialog.get_by_role("button", name="Launch 1 run").click()
    expect(dialog).to_be_hidden()

    # The run goes through the daemon's queue into a fresh process.
    page.goto(f"{dagster_ui}/assets/sensor_readings")
    latest = page.get_by_text(PARTITION, exact=True).filter(visible=True).first
    reload_until_visible(page, latest, RUN_TIMEOUT_MS)
    screenshot(page, "materialized")
    page.goto(f"{dagster_ui}/assets/sensor_readings?view=partitions")
    expect(page.get_by_text("Materialized (1)", exact=True)).to_be_visible()

    page.goto(f"{dagster_ui}/assets/sensor_readings?view=checks")
    for check in checks:
        # The list truncates long names in the middle; the full name is the item's title.
        name = page.get_by_title(check, exact=True).filter(visible=True).first
        item = name.locator("xpath=../..")
        expect(item).to_contain_text("Succeeded")
    expect(page.get_by_text("Passed", exact=True).first).to_be_visible()
    screenshot(page, "checks")
