"""What operators watch and who may call: Prometheus metrics with model labels, /health against
the seed 002 thresholds of config/serving.yaml, and API tokens."""

from __future__ import annotations

import gc

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from support.serving_world import HOURS, as_json, landed_readings, use_serving_world

from refrig_assets.access.store import AccessStore
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.serving.app import create_app
from refrig_assets.serving.service import ScoringService


@pytest.fixture
def home(tmp_path, monkeypatch):
    return use_serving_world(tmp_path, monkeypatch)


def set_serving_config(tmp_path, **changes) -> None:
    """Change keys of the test's own config/serving.yaml (dotted names)."""
    path = tmp_path / "config" / "serving.yaml"
    raw = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    path.write_text(yaml.safe_dump(raw))


def samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def test_metrics_carry_model_version_and_deployment_after_requests(home):
    with TestClient(create_app(ScoringService(single_user=True))) as client:
        answer = client.post("/v1/score", json=as_json(landed_readings(home, HOURS[2:])))
        assert answer.status_code == 200
        bad = as_json(landed_readings(home, HOURS[2:]).head(3))
        bad["readings"][0]["ts"] = "yesterday"
        assert client.post("/v1/score", json=bad).status_code == 422
        text = client.get("/metrics").text

    found = samples(text)
    labels = {
        "model_id": "isolation_forest",
        "model_version": "1",
        "deployment": "production",
    }

    def value(name: str, **extra) -> float:
        wanted = {**labels, **extra}
        [s] = [s for s in found if s.name == name and wanted.items() <= s.labels.items()]
        return s.value

    assert value("request_count_total") == 1
    # every window of the answer was scored, or not scorable (an empty prediction)
    windows = len(answer.json()["windows"])
    scored, empty = value("windows_scored_total"), value("empty_predictions_total")
    assert scored + empty == windows > 0
    assert value("empty_prediction_rate") == pytest.approx(empty / windows)
    assert value("inference_latency_ms_count") == 1
    assert value("error_rate") == 0.0
    assert value("models_loaded") == 1
    assert value("request_errors_total") == 0
    statuses = {s.labels["status"]: s.value for s in found if s.name == "http_requests_total"}
    assert statuses == {"200": 1, "422": 1}
    assert any(s.name == "data_freshness_seconds" for s in found)
    # two readings requests, each computed alone (nothing else was waiting)
    passes = {s.name: s.value for s in found if s.name.startswith("score_pass_requests_")}
    assert passes["score_pass_requests_count"] == passes["score_pass_requests_sum"] == 2


def test_a_serving_process_leaves_what_it_loaded_at_start_out_of_full_collections(home):
    app = create_app(ScoringService(single_user=True), freeze_gc=True)
    try:
        with TestClient(app) as client:
            assert gc.get_freeze_count() > 0
            answer = client.post("/v1/score", json=as_json(landed_readings(home, HOURS[2:])))
            assert answer.status_code == 200
    finally:
        gc.unfreeze()


def test_health_reports_versions_and_each_threshold_of_the_config(home, tmp_path):
    set_serving_config(tmp_path, **{"thresholds.freshness_minutes": 5, "thresholds.drift_psi": 0.2})
    store = ParquetStore(home / "data")
    store.write(
        "feature_drift",
        "2026-01-01",
        pd.DataFrame(
            {
                "partition": ["2026-01-01"] * 2,
                "model_id": ["isolation_forest"] * 2,
                "model_version": ["1", "1"],
                "cohort": ["*", "*"],
                "feature": ["pressure_low_side_mean", "current_compressor_mean"],
                "psi": [0.35, 0.05],
            }
        ),
    )
    with TestClient(create_app(ScoringService(single_user=True))) as client:
        client.post("/v1/score", json=as_json(landed_readings(home, HOURS[2:])))
        response = client.get("/health")
        exported = samples(client.get("/metrics").text)

    assert response.status_code == 200
    report = response.json()
    versions = {m["model_id"]: m["versions"] for m in report["models"]["models"]}
    assert versions["isolation_forest"] == [{"version": "1", "deployment": "production"}]
    checks = report["checks"]
    assert checks["latency"]["threshold_ms"] == 500
    assert checks["error_rate"] == {"value": 0.0, "threshold": 0.01, "breached": False}
    # The simulated readings are from January: far older than 5 minutes.
    assert checks["data_freshness"]["threshold_minutes"] == 5
    assert checks["data_freshness"]["breached"]
    assert checks["drift"]["psi"] == pytest.approx(0.35)
    assert checks["drift"]["feature"] == "pressure_low_side_mean"
    assert checks["drift"]["breached"]
    assert report["status"] == "degraded"
    [psi] = [s for s in exported if s.name == "feature_drift_psi"]
    assert psi.labels == {"model_id": "isolation_forest", "model_version": "1"}
    assert psi.value == pytest.approx(0.35)


def test_health_latency_threshold_comes_from_the_config(home, tmp_path):
    set_serving_config(tmp_path, **{"thresholds.latency_ms": 0.001})
    with TestClient(create_app(ScoringService(single_user=True))) as client:
        client.post("/v1/score", json=as_json(landed_readings(home, HOURS[2:]).head(60)))
        checks = client.get("/health").json()["checks"]
    assert checks["latency"]["threshold_ms"] == 0.001
    assert checks["latency"]["breached"]
    assert not checks["error_rate"]["breached"]


def test_health_is_503_when_no_model_serves(home, tmp_path):
    from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url
    from refrig_assets.lifecycle.promotion import ModelLifecycle
    from refrig_assets.training.registry import ModelRegistry

    s = get_settings()
    lifecycle = ModelLifecycle(
        ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir),
        AuditTrail(lifecycle_db_url(s.alerts_db_url)),
        s.models_dir,
    )
    for model_id in ("isolation_forest", "statistical_baseline"):
        lifecycle.pause(model_id, "tester", "maintenance of the model")
    lifecycle.audit.close()
    with TestClient(create_app(ScoringService(single_user=True))) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    # the paused ones, and any hourly model of models/ without a trained version
    assert {"isolation_forest", "statistical_baseline"} <= set(
        response.json()["models"]["unavailable"]
    )


def test_scoring_needs_a_valid_api_token_unless_single_user(home):
    access = AccessStore(get_settings().alerts_db_url)
    access.add_user("gateway", "viewer", "tester")
    _, token = access.create_token("gateway", "tester", days=1)
    access.alerts.close()
    body = as_json(landed_readings(home, HOURS[2:]).head(60))

    with TestClient(create_app(ScoringService(single_user=False))) as client:
        missing = client.post("/v1/score", json=body)
        wrong = client.post("/v1/score", json=body, headers={"Authorization": "Bearer nope"})
        good = client.post("/v1/score", json=body, headers={"Authorization": f"Bearer {token}"})

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert good.status_code == 200, good.text


def test_single_user_mode_is_refused_off_loopback(home):
    with pytest.raises(ValueError, match="loopback"):
        ScoringService(single_user=True, host="0.0.0.0")
