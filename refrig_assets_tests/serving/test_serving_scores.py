"""The online scoring endpoint answers what the batch path computes, with the version the batch
path would use for each device, reloads versions without dropping requests, and refuses input
that breaks the contracts with the rule and the row."""

from __future__ import annotations

import io
import threading
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from fastapi.testclient import TestClient
from support.serving_world import HOURS, as_json, landed_readings, use_serving_world

from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url
from refrig_assets.lifecycle.rollout_state import RolloutStore
from refrig_assets.serving import scorer
from refrig_assets.serving.app import create_app
from refrig_assets.serving.service import ScoringService

MODELS = ["isolation_forest", "statistical_baseline"]
LAST_HOUR = pd.Timestamp("2026-01-01T02:00:00Z")


@pytest.fixture
def home(tmp_path, monkeypatch):
    return use_serving_world(tmp_path, monkeypatch)


@pytest.fixture
def client(home):
    service = ScoringService(single_user=True)
    with TestClient(create_app(service)) as c:
        yield c


def scores_of(response_json: dict, model_id: str) -> pd.DataFrame:
    rows = [
        {
            "device_id": w["device_id"],
            "window_start": pd.Timestamp(w["window_start"]),
            **s,
        }
        for w in response_json["windows"]
        for s in w["scores"]
        if s["model_id"] == model_id
    ]
    return pd.DataFrame(rows)


def batch_scores(home, model_id: str) -> pd.DataFrame:
    return ParquetStore(home / "data").read(f"{model_id}_scores", HOURS[2])


def test_scores_equal_the_batch_path_on_the_same_readings(client, home):
    response = client.post("/v1/score", json=as_json(landed_readings(home)))

    assert response.status_code == 200, response.text
    body = response.json()
    for model_id in MODELS:
        served = scores_of(body, model_id)
        served = served[served["window_start"] >= LAST_HOUR]
        batch = batch_scores(home, model_id)
        both = batch.merge(served, on=["device_id", "window_start"], suffixes=("_batch", ""))
        assert len(both) == len(batch) == len(served) > 0
        assert (both["anomaly_score_batch"] - both["anomaly_score"]).abs().max() < 1e-12
        assert (both["anomaly_flag_batch"] == both["anomaly_flag"]).all()
        assert (both["contributor_detail_batch"] == both["contributor_detail"]).all()
        assert (both["top_contributors_batch"] == both["top_contributors"].str.join(",")).all()
        assert set(both["model_version"]) == {"1"}
        assert set(both["deployment"]) == {"production"}


def test_precomputed_windows_score_like_the_batch_path(client, home):
    store = ParquetStore(home / "data")
    windows = store.read_many("device_features", HOURS)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(windows, preserve_index=False), buffer)

    response = client.post(
        "/v1/score?input=windows",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/vnd.apache.parquet"},
    )

    assert response.status_code == 200, response.text
    served = scores_of(response.json(), "isolation_forest")
    served = served[served["window_start"] >= LAST_HOUR]
    batch = batch_scores(home, "isolation_forest")
    both = batch.merge(served, on=["device_id", "window_start"], suffixes=("_batch", ""))
    assert len(both) == len(batch)
    assert (both["anomaly_score_batch"] - both["anomaly_score"]).abs().max() < 1e-12


def test_during_a_rollout_each_device_is_scored_by_its_side(client, home):
    settings = get_settings()
    audit = AuditTrail(lifecycle_db_url(settings.alerts_db_url))
    rollout = RolloutStore(audit.engine).create(
        "isolation_forest", "2", "1", [0.5, 1.0], actor="tester"
    )
    audit.close()
    client.app.state.service.models.refresh()
    readings = landed_readings(home, HOURS[2:])

    response = client.post("/v1/score", json=as_json(readings))

    assert response.status_code == 200, response.text
    served = scores_of(response.json(), "isolation_forest")
    on_candidate = rollout.serves(served["device_id"])
    assert on_candidate.any() and not on_candidate.all()
    assert set(served.loc[on_candidate, "model_version"]) == {"2"}
    assert set(served.loc[on_candidate, "deployment"]) == {"rollout_candidate"}
    assert set(served.loc[~on_candidate, "model_version"]) == {"1"}
    assert set(served.loc[~on_candidate, "deployment"]) == {"rollout_champion"}
    other = scores_of(response.json(), "statistical_baseline")
    assert set(other["model_version"]) == {"1"}


def pin(tmp_models, model_id: str, version: str) -> None:
    path = tmp_models / f"{model_id}.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["pinned_version"] = version
    path.write_text(yaml.safe_dump(spec))


def test_a_new_pin_serves_the_next_request_while_a_running_one_finishes_on_the_old(
    client, home, tmp_path, monkeypatch
):
    readings = as_json(landed_readings(home, HOURS[2:]))
    inside, release = threading.Event(), threading.Event()
    real = scorer.model_scores

    def held_scoring(detector, features):
        if not release.is_set():
            inside.set()
            assert release.wait(60)
        return real(detector, features)

    monkeypatch.setattr(scorer, "model_scores", held_scoring)
    answers: dict[str, dict] = {}
    running = threading.Thread(
        target=lambda: answers.update(first=client.post("/v1/score", json=readings).json())
    )
    running.start()
    assert inside.wait(60)  # the first request is scoring with version 1

    pin(tmp_path / "models", "isolation_forest", "2")
    assert client.app.state.service.models.refresh()
    release.set()
    second = client.post("/v1/score", json=readings).json()
    running.join(60)

    first_versions = set(scores_of(answers["first"], "isolation_forest")["model_version"])
    assert first_versions == {"1"}
    second_if = scores_of(second, "isolation_forest")
    assert set(second_if["model_version"]) == {"2"}
    assert set(second_if["deployment"]) == {"pinned"}


def test_unchanged_lifecycle_keeps_the_loaded_versions(client):
    models = client.app.state.service.models
    before = models.current()
    assert not models.refresh()
    assert models.current() is before


def test_a_reading_that_breaks_the_contract_is_refused_with_rule_and_row(client, home):
    readings = as_json(landed_readings(home, HOURS[2:]).head(20))
    readings["readings"][3]["pressure_low_side"] = "twelve"

    response = client.post("/v1/score", json=readings)

    assert response.status_code == 422
    [violation] = response.json()["violations"]
    assert violation["rule"] == "unparsable_value"
    assert violation["row"] == 3
    assert violation["column"] == "pressure_low_side"
    assert "request row 3" in violation["message"]


def test_a_missing_contract_column_is_refused_naming_it(client, home):
    readings = landed_readings(home, HOURS[2:]).head(10).drop(columns=["ts"])
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(readings, preserve_index=False), buffer)

    response = client.post(
        "/v1/score",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/octet-stream"},
    )

    assert response.status_code == 422
    [violation] = response.json()["violations"]
    assert (violation["rule"], violation["column"], violation["row"]) == (
        "missing_column",
        "ts",
        -1,
    )


def test_a_window_outside_its_contract_range_is_refused_with_row(client, home):
    windows = ParquetStore(home / "data").read("device_features", HOURS[2]).head(5)
    windows["sensor_completeness"] = windows["sensor_completeness"].astype(float)
    windows.loc[2, "sensor_completeness"] = 1.7
    records = windows.assign(
        window_start=windows["window_start"].map(datetime.isoformat),
        window_end=windows["window_end"].map(datetime.isoformat),
    )
    body = {"windows": records.astype(object).where(records.notna(), None).to_dict("records")}

    response = client.post("/v1/score", json=body)

    assert response.status_code == 422
    [violation] = response.json()["violations"]
    assert (violation["rule"], violation["row"], violation["column"]) == (
        "out_of_range",
        2,
        "sensor_completeness",
    )


def test_scoring_writes_nothing_to_the_alert_store(client, home):
    import sqlalchemy as sa

    engine = sa.create_engine(get_settings().alerts_db_url)

    def counts():
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            return {
                t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar() for t in tables
            }

    before = counts()
    response = client.post("/v1/score", json=as_json(landed_readings(home, HOURS[2:])))
    assert response.status_code == 200
    assert counts() == before
    engine.dispose()


def test_scoring_leaves_the_data_folder_as_it_was(client, home):
    """The probable cause uses the batch step's baselines and defrost state but never writes
    them: a request's few windows must not replace the hour's derived files."""

    def files():
        return {
            p.relative_to(home / "data"): p.stat().st_mtime_ns
            for p in (home / "data").rglob("*")
            if p.is_file()
        }

    before = files()
    for _ in range(2):
        response = client.post("/v1/score", json=as_json(landed_readings(home, HOURS[2:])))
        assert response.status_code == 200, response.text
        assert "probable_cause" in response.json()["windows"][0]
    assert files() == before


def test_each_window_carries_the_probable_cause_the_incidents_diagnosis_gives(client, home):
    from refrig_assets.incidents.causes import diagnose_partition

    response = client.post("/v1/score", json=as_json(landed_readings(home, HOURS[2:])))

    assert response.status_code == 200, response.text
    body = response.json()
    assert "probable_cause_error" not in body
    served = {
        (w["device_id"], pd.Timestamp(w["window_start"])): w["probable_cause"]["cause"]
        for w in body["windows"]
    }
    features = ParquetStore(home / "data").read("device_features", HOURS[2])
    expected = diagnose_partition(get_settings(), HOURS[2], features)
    assert served == {
        (d, pd.Timestamp(t)): c
        for d, t, c in zip(
            expected["device_id"], expected["window_start"], expected["cause"], strict=True
        )
    }


def test_the_probable_cause_can_be_left_out(client, home):
    body = as_json(landed_readings(home, HOURS[2:]).head(60))
    response = client.post("/v1/score?cause=false", json=body)
    assert response.status_code == 200, response.text
    windows = response.json()["windows"]
    assert windows and not any("probable_cause" in w for w in windows)
    assert all(w["scores"] for w in windows)
