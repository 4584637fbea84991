"""The real console in headless Chromium, as a team uses it: signing in with a token or through
the company proxy, roles, bulk triage, silences, the four-eyes rule, the offline API docs and
the layout from a phone to a desktop.

The console runs under uvicorn on 127.0.0.1 (a free port) over a temporary alert database with
a settable clock; the browser is Debian's chromium driven by Playwright. Screenshots go to
``test-artifacts/console/``. Few tests, each a whole story: a browser start costs seconds.
"""

import dataclasses
import ipaddress
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from support.operator_world import (
    T0,
    Clock,
    alert_frame,
    free_port,
    operations,
    seed_store,
    write_device_history,
)

from refrig_assets.access import load_access_policy
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
PROXY_HEADER = load_access_policy().proxy_header

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]


@dataclasses.dataclass
class Console:
    base: str
    url: str
    alerts: object
    clock: Clock
    tokens: dict[str, str]

    def status(self, alert_id: str) -> dict:
        store = AlertStore(self.url)
        try:
            return store.get(alert_id)
        finally:
            store.close()

    def id_of(self, device: str) -> str:
        frame = self.alerts
        return frame[(frame["device_id"] == device) & ~frame["suppressed"]]["alert_id"].iat[0]


@pytest.fixture
def console(refrig_home, tmp_path):
    """The console behind a (simulated) company proxy on 127.0.0.1, with four users."""
    import uvicorn

    from refrig_assets.console import create_app

    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    clock = Clock(T0)
    alerts = seed_store(url, clock=clock)
    data_dir = tmp_path / "data"
    write_device_history(data_dir, "dev-003", [T0 - timedelta(hours=h) for h in range(12, 0, -1)])
    # The proxy runs on this machine: its header is trusted from 127.0.0.1.
    policy = dataclasses.replace(
        load_access_policy(), trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),)
    )
    app = create_app(url, data_dir, settings=operations(tmp_path), clock=clock, access=policy)
    store = app.state.auth.store
    tokens = {}
    for name, role in (
        ("vera", "viewer"),
        ("otto", "operator"),
        ("ana", "admin"),
        ("lead", "admin"),
    ):
        store.add_user(name, role, actor="root")
        tokens[name] = store.create_token(name, actor="root", days=3650)[1]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "console did not start"
        time.sleep(0.05)
    yield Console(f"http://127.0.0.1:{port}", url, alerts, clock, tokens)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def new_page(browser, width=1400, **context):
    page = browser.new_context(viewport={"width": width, "height": 900}, **context).new_page()
    page.set_default_timeout(15_000)
    return page


def sign_in(page, console, name):
    page.goto(console.base + "/")
    page.wait_for_url("**/login?next=%2F")
    page.fill("#token", console.tokens[name])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#identity")
    assert page.locator("#identity").inner_text() == name


def post_from_page(page, path):
    """A POST from the page's own script context (session cookie and CSRF token)."""
    return page.evaluate(
        """async (path) => {
            const meta = document.querySelector("meta[name=csrf-token]");
            const r = await fetch(path, {method: "POST", body: "{}",
              headers: {"Content-Type": "application/json", [meta.dataset.header]: meta.content}});
            return {status: r.status, body: await r.json()};
        }""",
        path,
    )


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_token_sign_in_roles_bulk_acknowledge_and_layouts(console, browser):
    # A viewer signs in with a token: reads everything, has no action buttons, the API refuses.
    page = new_page(browser)
    sign_in(page, console, "vera")
    # The main list shows incidents; the alerts are one click away.
    assert page.locator("#incident-table tbody tr").count() == 5
    page.screenshot(path=str(ARTIFACTS / "incidents-1400.png"), full_page=True)
    page.click("#nav a[href='/alerts']")
    rows = page.locator("#alert-table tbody tr")
    assert rows.count() == 5
    assert page.locator("#bulk-bar").count() == 0
    target = console.id_of("dev-003")
    page.goto(f"{console.base}/alerts/{target}")
    assert page.locator("#btn-acknowledge").count() == 0
    assert "you can read, not act" in page.locator("#read-only").inner_text()
    refused = post_from_page(page, f"/api/alerts/{target}/acknowledge")
    assert refused["status"] == 403
    assert refused["body"]["detail"] == "vera is a viewer; acknowledging needs the operator role"
    assert console.status(target)["status"] == "OPEN"
    page.click(".logout button")
    page.wait_for_url("**/login")

    # An operator acknowledges one alert with a note; history and database name the operator.
    sign_in(page, console, "otto")
    page.goto(console.base + "/alerts")
    page.select_option("#filter-site", "site-B")
    page.wait_for_url("**site=site-B**")
    assert rows.count() == 3
    page.locator(f"tr[data-alert-id='{target}'] a.alert-link").click()
    page.wait_for_url(f"**/alerts/{target}")
    assert "current_compressor" in page.locator("#explanation").inner_text()
    assert page.locator("#dagster-run").get_attribute("href").endswith("/runs/run-1")
    page.fill("#note", "Technician dispatched")
    page.click("#btn-acknowledge")
    page.wait_for_selector("#alert-status .status-acknowledged")
    history = page.locator("#history tbody tr").last.inner_text()
    assert "otto" in history and "Technician dispatched" in history
    assert console.status(target)["acknowledged_by"] == "otto"

    # Bulk: select three open alerts, acknowledge them in one go.
    page.goto(console.base + "/alerts")
    chosen = [console.id_of(d) for d in ("dev-001", "dev-002", "dev-004")]
    for alert_id in chosen:
        page.check(f"tr[data-alert-id='{alert_id}'] input.pick-item")
    assert page.locator("#bulk-count").inner_text() == "3 selected"
    page.click("#bulk-acknowledge")
    page.wait_for_selector("#flash:not([hidden])")
    assert "3 alert(s) acknowledged." in page.locator("#flash").inner_text()
    assert [console.status(a)["acknowledged_by"] for a in chosen] == ["otto"] * 3

    # Keyboard: j moves to the first row, x selects it; the selection survives a refresh.
    page.keyboard.press("j")
    page.keyboard.press("x")
    assert page.locator("#bulk-count").inner_text() == "1 selected"
    page.evaluate("window.refrigRefresh()")
    page.wait_for_function("document.querySelectorAll('input.pick-item:checked').length === 1")
    page.screenshot(path=str(ARTIFACTS / "alerts-1400.png"), full_page=True)

    # x again clears it; j j focuses the third row (dev-005, still open); a acknowledges it.
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.locator("tr.focused").get_attribute("data-alert-id") == console.id_of("dev-005")
    page.keyboard.press("a")
    # The bulk action's message may still be showing: wait for this action's own.
    page.locator("#flash", has_text="1 alert(s) acknowledged.").wait_for()
    assert console.status(console.id_of("dev-005"))["acknowledged_by"] == "otto"

    # A phone: the same pages as cards, the navigation wraps, nothing scrolls sideways.
    phone = new_page(browser, width=390, storage_state=page.context.storage_state())
    for name, path in (
        ("incidents", "/"),
        ("alerts", "/alerts"),
        ("alert", f"/alerts/{target}"),
        ("sites", "/sites"),
        ("device", "/devices/dev-003"),
    ):
        phone.goto(console.base + path)
        assert no_horizontal_scroll(phone), path
        phone.screenshot(path=str(ARTIFACTS / f"{name}-390.png"), full_page=True)
    assert phone.locator("#nav a").last.is_visible()
    # The narrowest phones still hold the pages.
    phone.set_viewport_size({"width": 360, "height": 800})
    for path in ("/", "/alerts", f"/alerts/{target}"):
        phone.goto(console.base + path)
        assert no_horizontal_scroll(phone), path


def seed_rule_alerts(console) -> list[str]:
    rows = [
        {
            "device_id": "dev-010",
            "site_id": "site-A",
            "window_start": T0 - timedelta(hours=6 * i),
            "severity": "MEDIUM",
            "max_score": 0.85,
            "top_contributors": "door_open_fraction",
        }
        for i in range(1, 4)
    ]
    return list(seed_store(console.url, alert_frame(rows), console.clock)["alert_id"])


def test_proxy_sign_in_four_eyes_silences_and_offline_docs(console, browser):
    # Behind the company proxy: no sign-in page, the proxy names the user.
    ana = new_page(browser, extra_http_headers={PROXY_HEADER: "ana"})
    ana.goto(console.base + "/")
    assert ana.locator("#identity").inner_text() == "ana"
    assert ana.locator("#role").inner_text() == "admin"

    # An incident: probable cause, its evidence timeline, and the alert behind it.
    ana.locator("#incident-table a.item-link").first.click()
    ana.wait_for_url("**/incidents/inc-*")
    assert ana.locator("#explanation").inner_text()
    ana.locator("#timeline a").first.click()
    ana.wait_for_url("**/alerts/*")
    assert ana.locator("#provenance").count() == 1

    # Ana marks three false positives of one device; the rule they propose is hers to propose,
    # not hers to apply.
    for alert_id in seed_rule_alerts(console):
        ana.goto(f"{console.base}/alerts/{alert_id}")
        ana.fill("#note", "door left open during cleaning")
        ana.click("#btn-false-positive")
        ana.wait_for_selector("#alert-status .status-false_positive")
    assert "Rule fr-" in ana.locator("#flash").inner_text()
    ana.goto(console.base + "/feedback")
    ana.click("button[id^=apply-]")
    ana.wait_for_selector("#flash.error:not([hidden])")
    assert "four-eyes rule: ana marked false positives" in ana.locator("#flash").inner_text()
    lead = new_page(browser, extra_http_headers={PROXY_HEADER: "lead"})
    lead.goto(console.base + "/feedback")
    lead.click("button[id^=apply-]")
    lead.wait_for_selector("#flash:not([hidden])")
    assert "is now active" in lead.locator("#flash").inner_text()

    # A silence on dev-005 hides its alert for 30 minutes, then it is back by itself.
    target = console.id_of("dev-005")
    ana.goto(f"{console.base}/alerts/{target}")
    ana.click("text=Silence similar alerts")
    ana.select_option("#silence-form select[name=target]", "device:dev-005")
    ana.fill("#silence-form input[name=minutes]", "30")
    ana.fill("#silence-form input[name=reason]", "compressor swap")
    ana.click("#silence-form button[type=submit]")
    ana.wait_for_selector("#flash:not([hidden])")
    assert "silence #1 of device dev-005" in ana.locator("#flash").inner_text()
    ana.goto(console.base + "/alerts")
    assert ana.locator(f"tr[data-alert-id='{target}']").count() == 0
    ana.goto(console.base + "/silences")
    assert "compressor swap" in ana.locator("#silences").inner_text()
    console.clock.now = T0 + timedelta(minutes=31)
    ana.goto(console.base + "/alerts")
    assert ana.locator(f"tr[data-alert-id='{target}']").count() == 1

    # /docs renders Swagger UI with every request outside the console refused.
    outside = []

    def local_only(route):
        if route.request.url.startswith(console.base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    docs = new_page(browser)
    docs.route("**/*", local_only)
    docs.goto(console.base + "/docs")
    docs.wait_for_selector(".swagger-ui .info .title")
    assert "operator console" in docs.locator(".swagger-ui .info .title").inner_text()
    docs.wait_for_selector(".opblock-summary-path[data-path='/api/alerts/bulk']")
    assert outside == []
    docs.screenshot(path=str(ARTIFACTS / "docs-offline.png"))
