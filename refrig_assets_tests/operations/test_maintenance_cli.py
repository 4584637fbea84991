"""``refrig maintenance`` and ``refrig feedback`` against the configured SQLite alert database."""

from datetime import timedelta

import pytest
from support.operator_world import T0, alert_frame, db_snapshot, seed_store
from typer.testing import CliRunner

from refrig_assets.alerts.store import AlertStore
from refrig_assets.cli import app
from refrig_assets.core.settings import get_settings

runner = CliRunner()


@pytest.fixture
def url(refrig_home):
    url = get_settings().alerts_db_url
    seed_store(url)
    return url


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_a_window_declared_on_the_command_line_suppresses_and_cancelling_restores(url):
    start, end = T0 - timedelta(hours=12), T0
    result = run(
        "maintenance", "add", "--site", "site-B", "--start", start.isoformat(),
        "--end", end.isoformat(), "--reason", "electrical works", "--by", "planner",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Declared maintenance window #1; 3 alert(s) suppressed." in result.output
    store = AlertStore(url)
    assert set(store.list()["site_id"]) == {"site-A"}

    listed = run("maintenance", "list", "--site", "site-B")
    assert "electrical works" in listed.output and "(planner)" in listed.output

    cancelled = run("maintenance", "cancel", "1", "--by", "planner")
    assert "Cancelled maintenance window #1; 3 alert(s) restored." in cancelled.output
    assert set(store.list()["site_id"]) == {"site-A", "site-B"}
    assert run("maintenance", "list").output.strip() == "No maintenance windows."
    store.close()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "d", "--site", "s"], "give exactly one of --device or --site"),
        (["--device", "d", "--start", "2026-03-02T10:00", "--end", "2026-03-02T09:00"],
         "must be after starts_at"),
        (["--device", "d", "--end", "soon"], "ISO 8601"),
    ],
)  # fmt: skip
def test_bad_windows_exit_1_with_one_line_and_change_nothing(url, args, message):
    defaults = {"--start": "2026-03-02T10:00", "--end": "2026-03-02T12:00"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    argv = ["maintenance", "add", "--reason", "r", "--by", "ana"]
    for flag, value in {**defaults, **given}.items():
        argv += [flag, value]
    before = db_snapshot(url)
    result = run(*argv)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert db_snapshot(url) == before


def test_windows_are_imported_from_a_file(url, tmp_path):
    path = tmp_path / "plan.csv"
    path.write_text(
        "scope,target,starts_at,ends_at,reason\n"
        "device,dev-001,2026-03-02T10:00Z,2026-03-02T12:00Z,coil cleaning\n"
    )
    result = run("maintenance", "import", path, "--by", "planner")
    assert result.exit_code == 0, result.output
    # dev-001's alert and its repeat both lie inside the window
    assert "Declared 1 window(s)" in result.output and "2 alert(s) suppressed" in result.output
    again = run("maintenance", "import", path, "--by", "planner")
    assert "Declared 0 window(s)" in again.output and "(1 already declared)" in again.output


def test_feedback_rules_are_listed_applied_and_labels_exported(url):
    rows = [
        {"device_id": "dev-050", "site_id": "site-A", "window_start": T0 + timedelta(hours=6 * i),
         "severity": "MEDIUM", "max_score": 0.84, "top_contributors": "duty_cycle"}
        for i in range(3)
    ]  # fmt: skip
    ids = seed_store(url, alert_frame(rows))["alert_id"]
    for alert_id in ids:
        assert (
            run("alerts", "false-positive", alert_id, "--by", "ana", "--note", "defrost").exit_code
            == 0
        )
    listed = run("feedback", "rules")
    assert "1 new rule(s) from repeated false positives." in listed.output
    rule_id = listed.output.split("fr-")[1].split()[0]
    applied = run("feedback", "apply", f"fr-{rule_id}", "--by", "lead")
    assert applied.exit_code == 0 and "is now ACTIVE" in applied.output
    again = run("feedback", "apply", f"fr-{rule_id}", "--by", "lead")
    assert again.exit_code == 1 and "only a PROPOSED rule can become ACTIVE" in again.output
    labels = run("feedback", "labels", "--format", "csv")
    assert labels.output.count("false_positive") == 3
