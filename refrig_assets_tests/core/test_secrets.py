"""Secrets in URLs never reach a log line, a note or a UI message."""

import pytest
from typer.testing import CliRunner

from refrig_assets.core.secrets import mask_secrets, masked_url

pytestmark = pytest.mark.fault_injection


def test_a_database_password_is_masked_and_the_rest_kept():
    url = "postgresql+psycopg2://refrig:s3cret@db:5432/refrig_alerts"
    assert masked_url(url) == "postgresql+psycopg2://refrig:***@db:5432/refrig_alerts"


def test_a_sqlite_file_url_is_unchanged():
    url = "sqlite:////srv/refrig/a-rather-long-folder-name/alerts.db"
    assert masked_url(url) == url


def test_webhook_tokens_in_the_path_and_the_query_are_masked_inside_any_text():
    text = "POST https://hooks.example.com/services/T0/B0/XXXXXXXXXXXXXXXXXXXXXXXX?sig=abcd: 500"
    masked = mask_secrets(text)
    assert "XXXXXXXX" not in masked and "abcd" not in masked
    assert masked.endswith(": 500") and "hooks.example.com/services/T0/B0/" in masked


def test_the_pipeline_summary_never_prints_the_database_password(refrig_home, monkeypatch):
    from refrig_assets.cli.pipeline import summarise

    monkeypatch.setenv("REFRIG_ALERTS_DB_URL", "postgresql://refrig:s3cret@db/refrig_alerts")
    (refrig_home / "data" / "device_alerts").mkdir(parents=True)
    import pandas as pd

    pd.DataFrame({"alert_id": ["a"], "suppressed": [False], "severity": ["HIGH"]}).to_parquet(
        refrig_home / "data" / "device_alerts" / "2026-01-01T00.parquet"
    )
    text = summarise(["2026-01-01-00:00"])
    assert "s3cret" not in text and "refrig:***@db" in text


def test_the_console_start_message_never_prints_the_database_password(monkeypatch):
    import uvicorn

    from refrig_assets.cli import app

    monkeypatch.setenv("REFRIG_ALERTS_DB_URL", "postgresql://refrig:s3cret@db/refrig_alerts")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    result = CliRunner().invoke(app, ["console"])
    assert "s3cret" not in result.output and "refrig:***@db" in result.output
