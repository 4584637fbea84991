"""``refrig models``: list, promote through the gates, pin/unpin, rollback, pause, history."""

from datetime import UTC, datetime, timedelta

import pytest
from support.lifecycle_world import MODEL, use_world
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.settings import get_settings
from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url

runner = CliRunner()


def refrig(*args: str):
    return runner.invoke(app, ["models", *args])


def audit_events():
    trail = AuditTrail(lifecycle_db_url(get_settings().alerts_db_url))
    try:
        return trail.events(MODEL)
    finally:
        trail.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The lifecycle world with version 1 in production."""
    home = use_world(tmp_path, monkeypatch)
    result = refrig("promote", MODEL, "1", "--by", "alice")
    assert result.exit_code == 0, result.output
    assert "first version" in result.output
    return home


def test_a_worse_version_is_blocked_then_force_promoted_with_a_reason(home):
    blocked = refrig("promote", MODEL, "2")
    assert blocked.exit_code == 1
    assert "[FAIL] min_training_windows = 12" in blocked.output
    assert "promotion_blocked" in blocked.output
    refused = refrig("promote", MODEL, "2", "--force")
    assert refused.exit_code == 1 and "needs a reason" in refused.output
    forced = refrig("promote", MODEL, "2", "--force", "--reason", "vendor hotfix", "--by", "bob")
    assert forced.exit_code == 0, forced.output
    assert "promoted_forced" in forced.output and "FORCED" in forced.output
    assert [e.event for e in audit_events()] == ["promoted", "promotion_blocked", "promoted_forced"]
    assert audit_events()[-1].actor == "bob"


def test_a_good_version_is_promoted_through_the_gates_at_once_with_now(home):
    result = refrig("promote", MODEL, "3", "--now")
    assert result.exit_code == 0, result.output
    assert "[FAIL]" not in result.output and "promoted: 1 -> 3" in result.output
    listing = refrig("list")
    assert "isolation_forest: serving 3 (production 3, pinned -)" in listing.output
    assert "passed" in listing.output and "first_version" in listing.output


def test_pin_unpin_and_rollback_edit_the_models_file_and_the_audit_trail(home):
    refused = refrig("pin", MODEL, "2")
    assert refused.exit_code == 1 and "has not passed the promotion gates" in refused.output
    assert refrig("promote", MODEL, "3", "--now").exit_code == 0
    rolled = refrig("rollback", MODEL, "--reason", "alerts doubled")
    assert rolled.exit_code == 0, rolled.output
    assert "rolled_back: 3 -> 1" in rolled.output
    assert load_model_config(MODEL, get_settings().models_dir).pinned_version == "1"
    unpinned = refrig("unpin", MODEL)
    assert unpinned.exit_code == 0 and "scoring now uses version 3" in unpinned.output
    assert load_model_config(MODEL, get_settings().models_dir).pinned_version is None
    pinned = refrig("pin", MODEL, "1.0.0")  # a semantic version names the registry version
    assert pinned.exit_code == 0 and "-> 1;" in pinned.output


def test_history_lists_every_change_and_answers_which_version_served_at_a_time(home):
    refrig("promote", MODEL, "3", "--now")
    refrig("rollback", MODEL)
    history = refrig("history", MODEL)
    assert history.exit_code == 0
    for word in ("promoted", "rolled_back", "served versions:", "(pinned)"):
        assert word in history.output
    events = audit_events()
    middle = events[1].at + (events[2].at - events[1].at) / 2
    at = refrig("history", MODEL, "--at", middle.isoformat())
    assert f"version {events[1].serving_version}" in at.output
    before = refrig("history", MODEL, "--at", (events[0].at - timedelta(days=1)).isoformat())
    assert "no version in production" in before.output
    assert refrig("history", MODEL, "--at", "yesterday").exit_code == 1


def test_pause_and_resume_are_audited(home):
    assert refrig("pause", MODEL, "--reason", "score drift under investigation").exit_code == 0
    assert "PAUSED" in refrig("list").output
    assert refrig("resume", MODEL).exit_code == 0
    again = refrig("resume", MODEL)
    assert again.exit_code == 1 and "is not paused" in again.output
    assert [e.paused for e in audit_events()][-2:] == [True, False]


def test_an_unknown_model_or_version_is_one_line_on_stderr(home):
    unknown = refrig("pin", "no_such_model", "1")
    assert unknown.exit_code == 1 and "unknown model 'no_such_model'" in unknown.output
    missing = refrig("pin", MODEL, "42")
    assert missing.exit_code == 1 and "no version '42'" in missing.output
    assert "Traceback" not in missing.output


def test_the_time_of_records_is_utc(home):
    (first,) = audit_events()
    assert first.at.tzinfo is not None
    assert abs(first.at - datetime.now(UTC)) < timedelta(hours=1)
