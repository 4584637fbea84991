"""The real console page in headless Chromium: list → filter → open an alert → acknowledge.

The console runs under uvicorn on 127.0.0.1 (a free port) over a temporary alert database; the
browser is Debian's chromium driven by Playwright. Screenshots go to ``test-artifacts/console/``.
"""

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from support.operator_world import (
    T0,
    Clock,
    free_port,
    operations,
    seed_store,
    write_device_history,
)

from refrig_assets.alerts.store import AlertStore

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]


@pytest.fixture
def console(refrig_home, tmp_path):
    """The console served by uvicorn in a thread; yields (base URL, database URL, alerts)."""
    import uvicorn

    from refrig_assets.console import create_app

    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    alerts = seed_store(url)
    data_dir = tmp_path / "data"
    write_device_history(data_dir, "dev-003", [T0 - timedelta(hours=h) for h in range(12, 0, -1)])
    app = create_app(url, data_dir, settings=operations(tmp_path), clock=Clock(T0))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "console did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", url, alerts
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.set_default_timeout(15_000)
        yield page
        browser.close()


def test_an_operator_filters_opens_and_acknowledges_an_alert(console, page):
    base, url, alerts = console
    page.goto(base + "/")
    rows = page.locator("#alert-table tbody tr")
    assert rows.count() == 5
    assert rows.first.locator("td").nth(1).inner_text().startswith("breached")
    page.screenshot(path=str(ARTIFACTS / "01-alerts.png"), full_page=True)

    # Filter: choosing a site reloads the list with only that site's alerts.
    page.select_option("#filter-site", "site-B")
    page.wait_for_url("**site=site-B**")
    assert rows.count() == 3
    sites = {rows.nth(i).locator("td").nth(4).inner_text() for i in range(rows.count())}
    assert sites == {"site-B"}
    page.screenshot(path=str(ARTIFACTS / "02-filtered.png"), full_page=True)

    # Open the most urgent one: the breached CRITICAL alert of dev-003.
    target = alerts.set_index("device_id").loc["dev-003", "alert_id"]
    page.locator(f"tr[data-alert-id='{target}'] a.alert-link").click()
    page.wait_for_url(f"**/alerts/{target}")
    assert "current_compressor" in page.locator("#explanation").inner_text()
    assert "statistical_baseline v3" in page.locator("#provenance").inner_text()

    # Acting without a name is refused in the page; nothing reaches the database.
    page.click("#btn-acknowledge")
    assert "Enter your name" in page.locator("#flash").inner_text()
    store = AlertStore(url)
    assert store.get(target)["status"] == "OPEN"

    page.fill("#operator", "Ana Operator")
    page.fill("#note", "Technician dispatched, compressor current high")
    page.click("#btn-acknowledge")
    page.wait_for_selector("#alert-status .status-acknowledged")
    assert "Alert acknowledged." in page.locator("#flash").inner_text()
    history = page.locator("#history tbody tr").last.inner_text()
    assert "acknowledged" in history and "Ana Operator" in history
    assert "Technician dispatched" in history
    page.screenshot(path=str(ARTIFACTS / "03-acknowledged.png"), full_page=True)

    row = store.get(target)
    assert (row["status"], row["acknowledged_by"]) == ("ACKNOWLEDGED", "Ana Operator")
    last = store.history(target)[-1]
    assert (last["to_status"], last["actor"]) == ("ACKNOWLEDGED", "Ana Operator")
    assert last["note"] == "Technician dispatched, compressor current high"
    store.close()

    # The acknowledged alert is no longer breached in the list.
    page.goto(base + "/?site=site-B")
    assert (
        "acknowledged by Ana Operator" in page.locator(f"tr[data-alert-id='{target}']").inner_text()
    )


def test_an_operator_marks_a_false_positive_and_opens_the_device_chart(console, page):
    base, url, alerts = console
    target = alerts.set_index("device_id").loc["dev-003", "alert_id"]
    page.goto(f"{base}/alerts/{target}")
    page.fill("#operator", "Bo")
    page.click("#btn-false-positive")
    assert "Add a note" in page.locator("#flash").inner_text()
    page.fill("#note", "Defrost cycle, not a fault")
    page.click("#btn-false-positive")
    page.wait_for_selector("#alert-status .status-false_positive")
    assert "1 of 3" in page.locator("#flash").inner_text()
    assert page.locator("#btn-resolve").count() == 0  # final state: no more actions offered

    page.goto(f"{base}/devices/dev-003")
    charts = page.locator("#charts svg.chart")
    assert charts.count() >= 2
    assert charts.first.locator("polyline").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "04-device.png"), full_page=True)
