"""The command line keeps the same rules as the console: four eyes on suppression rules, and
the actor from ``--by``, ``REFRIG_ACTOR`` or the login name."""

from datetime import timedelta

from support.operator_world import T0, alert_frame, seed_store
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.settings import get_settings

runner = CliRunner()


def run(*args: str, **env: str):
    return runner.invoke(app, list(args), env=env or None)


def test_whoever_marked_the_false_positives_cannot_apply_their_rule(refrig_home):
    rows = [
        {"device_id": "dev-050", "site_id": "site-A", "window_start": T0 + timedelta(hours=6 * i),
         "severity": "MEDIUM", "max_score": 0.84, "top_contributors": "duty_cycle"}
        for i in range(3)
    ]  # fmt: skip
    for alert_id in seed_store(get_settings().alerts_db_url, alert_frame(rows))["alert_id"]:
        marked = run("alerts", "false-positive", alert_id, "--note", "defrost", REFRIG_ACTOR="ana")
        assert marked.exit_code == 0 and "by ana" in marked.output
    listed = run("feedback", "rules")
    rule_id = "fr-" + listed.output.split("fr-")[1].split()[0]
    own = run("feedback", "apply", rule_id, REFRIG_ACTOR="ana")
    assert own.exit_code == 1 and "four-eyes rule: ana marked false positives" in own.output
    other = run("feedback", "apply", rule_id, "--by", "lead")
    assert other.exit_code == 0 and "is now ACTIVE" in other.output


def test_users_and_tokens_need_valid_input(refrig_home):
    assert run("users", "add", "ana", "--role", "root").exit_code == 1
    assert run("users", "add", "ana", "--role", "admin").exit_code == 0
    again = run("users", "add", "ana", "--role", "viewer")
    assert again.exit_code == 1 and "already exists" in again.output
    assert "no user 'bo'" in run("tokens", "create", "bo").output
    assert run("users", "disable", "ana", REFRIG_ACTOR="lead").exit_code == 0
    assert "disabled by lead" in run("users", "list").output
    assert run("tokens", "create", "ana").exit_code == 1
