"""The retraining trigger: significant drift or age requests retraining, moderate drift does not;
every request is recorded once in an append-only table."""

import shutil
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from refrig_assets.core.settings import MODELS_DIR
from refrig_assets.monitoring.retraining_trigger import (
    DRIFT,
    SCHEDULE,
    RetrainingLog,
    drift_request,
    schedule_request,
)
from refrig_assets.monitoring.settings import MonitoringConfigError, load_monitoring_settings

SETTINGS = load_monitoring_settings()
SIGNIFICANT = SETTINGS.drift.psi_significant
KL = SETTINGS.drift.kl_threshold
DAY = "2026-01-02"


def feature_rows(*rows: tuple[str, str, float], version: str = "3") -> pd.DataFrame:
    """(cohort, feature, psi) rows of the feature_drift dataset for model m@version."""
    return pd.DataFrame(
        [
            {
                "model_id": "m",
                "model_version": version,
                "scope": "fleet" if cohort == "*" else "cohort",
                "cohort": cohort,
                "feature": feature,
                "psi": value,
            }
            for cohort, feature, value in rows
        ]
    )


def score_rows(kl: float) -> pd.DataFrame:
    return pd.DataFrame(
        [{"model_id": "m", "model_version": "3", "kl_divergence": kl, "contamination_rate": 0.02}]
    )


def request(features=None, scores=None, settings=SETTINGS):
    return drift_request("m", "3", features, scores, settings, DAY, ("A", "B"))


def test_moderate_feature_drift_does_not_request_retraining():
    moderate = feature_rows(
        ("*", "a_mean", SETTINGS.drift.psi_moderate), ("c1", "b_max", SIGNIFICANT)
    )
    assert request(moderate) is None  # exactly at the significant bound is still moderate


def test_significant_feature_drift_requests_retraining_with_the_reason():
    rows = feature_rows(
        ("*", "a_mean", 0.05),
        ("walk_in", "evaporator_mean", SIGNIFICANT + 0.01),
        ("*", "door_open_fraction", SIGNIFICANT + 0.3),
    )
    req = request(rows)
    assert req is not None and req.trigger == DRIFT
    assert req.model_id == "m" and req.model_version == "3" and req.drift_partition == DAY
    assert (req.train_start, req.train_end) == ("A", "B")
    # worst first, cohort named, the stable feature left out
    assert "door_open_fraction PSI 0.55, evaporator_mean PSI 0.26 in walk_in" in req.reason
    assert "a_mean" not in req.reason
    assert [e["feature"] for e in req.evidence["feature_drift"]] == [
        "door_open_fraction",
        "evaporator_mean",
    ]


def test_only_the_current_version_counts():
    rows = feature_rows(("*", "a_mean", SIGNIFICANT + 1), version="2")
    assert request(rows) is None  # the drift was measured on a version no longer in use


def test_score_drift_requests_retraining_above_the_kl_threshold_only():
    assert request(scores=score_rows(KL)) is None
    req = request(scores=score_rows(KL + 0.001))
    assert req is not None and f"KL {KL + 0.001:.3f} > {KL:g}" in req.reason


def test_a_request_has_one_id_per_model_version_and_day():
    rows = feature_rows(("*", "a_mean", SIGNIFICANT + 1))
    assert request(rows).request_id == request(rows).request_id == f"retrain:m:3:drift:{DAY}"


def test_schedule_requests_retraining_when_the_version_is_too_old():
    days = SETTINGS.retraining.schedule_days
    now = datetime(2026, 3, 1, tzinfo=UTC)
    fresh = now - timedelta(days=days - 0.01)
    old = now - timedelta(days=days + 0.01)
    assert schedule_request("m", "3", fresh, now, SETTINGS) is None
    req = schedule_request("m", "3", old, now, SETTINGS)
    assert req is not None and req.trigger == SCHEDULE and req.request_id == "retrain:m:3:schedule"
    assert f"retrain every {days:g}" in req.reason


def test_a_detector_can_override_the_bands_in_its_own_file(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    path = next(p for p in models.glob("*.yaml") if not p.name.startswith("_"))
    path.write_text(
        path.read_text()
        + "\nmonitoring:\n  drift: {psi: {significant: 0.5}}\n  retraining: {schedule_days: null}\n"
    )
    strict = load_monitoring_settings(path.stem, models)
    assert strict.drift.psi_significant == 0.5 and strict.drift.psi_moderate == 0.1
    assert strict.retraining.schedule_days is None
    rows = feature_rows(("*", "a_mean", 0.4))
    assert request(rows) is not None and request(rows, settings=strict) is None

    path.write_text(path.read_text() + "  health: {lookback_days: 1}\n")
    with pytest.raises(MonitoringConfigError, match="drift/retraining"):
        load_monitoring_settings(path.stem, models)


def test_a_missing_setting_is_named(tmp_path, monkeypatch):
    (tmp_path / "monitoring.yaml").write_text("drift: {psi: {moderate: 0.1}}\n")
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(tmp_path))
    with pytest.raises(MonitoringConfigError, match="drift.psi.significant"):
        load_monitoring_settings()


def test_the_log_records_each_request_once_and_refuses_changes(tmp_path):
    log = RetrainingLog(f"sqlite:///{tmp_path / 'ops.db'}")
    req = request(feature_rows(("*", "a_mean", SIGNIFICANT + 1)))
    assert log.record(req, at=datetime(2026, 1, 3, tzinfo=UTC)) is True
    assert log.record(req) is False  # evaluated again: not a second request

    rows = log.list("m")
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["request_id"] == req.request_id and row["trigger"] == DRIFT
    assert row["reason"] == req.reason and '"feature": "a_mean"' in row["evidence"]
    assert row["requested_at"] == pd.Timestamp("2026-01-03", tz="UTC")

    with log.engine.begin() as conn, pytest.raises(sa.exc.DBAPIError, match="append-only"):
        conn.execute(sa.text("UPDATE retraining_requests SET reason = 'edited'"))
    with log.engine.begin() as conn, pytest.raises(sa.exc.DBAPIError, match="append-only"):
        conn.execute(sa.text("DELETE FROM retraining_requests"))
    assert log.list()["reason"].tolist() == [req.reason]
    log.close()


def test_the_cli_lists_recorded_requests_and_the_days_summary(refrig_home):
    from typer.testing import CliRunner

    from refrig_assets.cli import app
    from refrig_assets.core.settings import get_settings

    log = RetrainingLog(get_settings().alerts_db_url)
    req = request(feature_rows(("*", "a_mean", SIGNIFICANT + 1)))
    log.record(req, at=datetime(2026, 1, 3, 0, 40, tzinfo=UTC))
    log.close()
    runner = CliRunner()

    listed = runner.invoke(app, ["monitor", "requests"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.strip() == f"2026-01-03 00:40 [drift] {req.reason}"
    as_json = runner.invoke(app, ["monitor", "requests", "--model", "m", "--json"])
    assert f'"request_id":"{req.request_id}"' in as_json.output
    assert runner.invoke(app, ["monitor", "requests", "--model", "other"]).output.strip() == (
        "no retraining requested"
    )

    summary = runner.invoke(app, ["monitor", "summary", "2026-01-01"])
    assert summary.exit_code == 0, summary.output
    assert "2026-01-01: no drift measured" in summary.output
