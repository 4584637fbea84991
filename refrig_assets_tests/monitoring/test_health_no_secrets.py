"""A component that is down says why on /health without the secrets of the URL it failed on."""

from __future__ import annotations

from refrig_assets.monitoring.service_health import DOWN, alert_db_state, probe


def test_a_failing_probe_masks_the_password_of_a_url_in_its_error():
    def check() -> str:
        raise ConnectionError("no route to postgresql://refrig:hunter22@db.internal:5432/alerts")

    state = probe("alert_db", check)

    assert state.state == DOWN
    assert "hunter22" not in state.detail
    assert "postgresql://refrig:***@db.internal:5432/alerts" in state.detail


def test_an_unreachable_alert_database_is_down_without_its_password():
    state = alert_db_state("postgresql://refrig:hunter22@127.0.0.1:9/alerts?connect_timeout=1")

    assert state.state == DOWN
    assert "hunter22" not in state.detail
