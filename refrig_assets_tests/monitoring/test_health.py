"""``GET /health``: component states, and scoring latency and error rate per model version."""

import shutil

import dagster as dg
from fastapi import FastAPI
from fastapi.testclient import TestClient
from support.lifecycle_world import HOURS, MODEL, use_world

from refrig_assets.console.app import create_app
from refrig_assets.console.health_endpoint import build_health
from refrig_assets.core.settings import get_settings
from refrig_assets.monitoring.service_health import ScoringObservation, scoring_stats
from refrig_assets.training.registry import ModelRegistry


def score_hour(hour: str):
    from refrig_assets.definitions import defs
    from refrig_assets.defs.scoring.assets import scoring_assets

    (asset,) = [a for a in scoring_assets if a.key == dg.AssetKey(f"{MODEL}_scores")]
    with dg.DagsterInstance.get() as instance:  # the DAGSTER_HOME instance the console reads
        return dg.materialize(
            [asset],
            partition_key=hour,
            instance=instance,
            resources=defs.resources,
            raise_on_error=False,
        )


def test_health_reports_components_and_scoring_per_model_version(tmp_path, monkeypatch):
    use_world(tmp_path, monkeypatch)
    assert not score_hour(HOURS[3]).success  # no production version yet: the step fails
    settings = get_settings()
    ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir).set_production(
        MODEL, "1"
    )
    assert score_hour(HOURS[3]).success
    with TestClient(create_app(), base_url="http://127.0.0.1") as client:
        response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    components = body["components"]
    assert {"dagster_instance", "alert_db", "registry"} <= set(components)
    assert all(c["state"] == "ok" for c in components.values())
    last = components["dagster_instance"]["info"]["last_successful"]
    assert f"{MODEL}_scores" in last
    serving = components["registry"]["info"]["production_versions"][MODEL]
    rows = {r["model_version"]: r for r in body["scoring"] if r["model_id"] == MODEL}
    assert serving == "1"
    row = rows["1"]
    assert row["steps"] == 1 and row["error_rate"] == 0.0
    assert rows["unresolved"]["error_rate"] == 1.0  # the failed step, before a version resolved
    assert row["latency_p50_s"] > 0 and row["latency_p99_s"] >= row["latency_p50_s"]


def test_an_unreachable_alert_database_makes_the_service_down(tmp_path, monkeypatch):
    use_world(tmp_path, monkeypatch)
    unreachable = f"sqlite:///{tmp_path / 'missing-folder' / 'alerts.db'}"
    app = FastAPI()
    app.include_router(build_health(unreachable))
    with TestClient(app) as client:
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["components"]["alert_db"]["state"] == "down"
    assert body["components"]["dagster_instance"]["state"] == "ok"


def test_scoring_stats_give_error_and_empty_rates_and_latency_percentiles_per_version():
    observations = [
        ScoringObservation("m", "1", 1.0, False, 10),
        ScoringObservation("m", "1", 3.0, False, 0),
        ScoringObservation("m", "2", 2.0, False, 5),
        ScoringObservation("m", None, None, True),
    ]
    rows = {(r["model_id"], r["model_version"]): r for r in scoring_stats(observations)}
    assert rows[("m", "1")]["latency_p50_s"] == 2.0
    assert rows[("m", "1")]["empty_prediction_rate"] == 0.5
    assert rows[("m", "1")]["error_rate"] == 0.0
    assert rows[("m", "unresolved")]["error_rate"] == 1.0
    assert rows[("m", "unresolved")]["latency_p99_s"] is None


def test_with_only_refrig_home_set_the_instance_is_the_one_make_dev_uses(tmp_path, monkeypatch):
    """Like the Makefile: without DAGSTER_HOME the instance is $REFRIG_HOME/dagster."""
    home = use_world(tmp_path, monkeypatch)
    monkeypatch.delenv("DAGSTER_HOME")
    app = FastAPI()
    app.include_router(build_health(get_settings().alerts_db_url))
    with TestClient(app) as client:
        dagster = client.get("/health").json()["components"]["dagster_instance"]
    assert dagster["state"] == "ok", dagster

    shutil.rmtree(home / "dagster")
    with TestClient(app) as client:
        dagster = client.get("/health").json()["components"]["dagster_instance"]
    assert dagster["state"] == "down"
    assert (
        dagster["detail"]
        == f"FileNotFoundError: no Dagster instance at {home / 'dagster'} (set DAGSTER_HOME)"
    )
