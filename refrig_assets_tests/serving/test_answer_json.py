"""The answer's JSON carries exactly the values the standard library's encoder writes (what
Starlette's JSONResponse sent), whichever encoder writes it, and a NaN or an infinity in an
answer is an error (500) naming where it is, never a silent ``null``."""

from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from support.serving_world import HOURS, as_json, landed_readings, use_serving_world

from refrig_assets.serving.app import NonFiniteAnswer, answer_json, create_app
from refrig_assets.serving.inputs import table_from_records
from refrig_assets.serving.scorer import ScoreResult
from refrig_assets.serving.service import ScoringService


def standard(content) -> bytes:
    """What Starlette's JSONResponse wrote."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def exact(text: bytes) -> str:
    """The decoded values, with every float written by repr (so -0.0 differs from 0.0)."""
    return repr(json.loads(text))


FLOATS = [
    0.1,
    -0.0,
    0.0,
    1e-5,
    -0.0024086961123722184,
    1e16,
    1.2e29,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    0.02064662325691687,
    123456.789,
    1 / 3,
]

ANSWERS = {
    "an answer's shape": {
        "windows": [
            {
                "device_id": "dev-000042",
                "window_start": "2026-01-01T01:00:00+00:00",
                "sensor_completeness": 1.0,
                "quality_flags": [],
                "scores": [
                    {
                        "anomaly_score": f,
                        "anomaly_flag": f > 0.5,
                        "top_contributors": ["duty_cycle"],
                        "contributor_detail": "duty_cycle 4.1σ below this device's baseline",
                        "confidence": 1.0,
                    }
                    for f in FLOATS
                ],
                "probable_cause": {"cause": "unknown", "evidence": [{"sigma": None}]},
            }
        ],
        "models": [{"model_id": "isolation_forest", "windows_scored": 4, "latency_ms": 1.25}],
        "errors": [],
        "unavailable_models": {},
    },
    "64-bit integers": {"counts": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1]},
    "an integer beyond 64 bits": {"count": 2**70},
    "keys that are not text": {"by_hour": {1: 2.5, 2.5: None, False: "x", None: 0}},
    "text of every kind": {"detail": 'quote " backslash \\ tab \t newline \n σ € 𝄞 \u2028'},
    "nothing": {},
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_an_answer_is_written_to_the_values_the_standard_library_writes(name):
    content = ANSWERS[name]
    assert exact(answer_json(content)) == exact(standard(content))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_in_an_answer_is_an_error_naming_where_it_is(value):
    content = {"windows": [{"scores": [{"anomaly_score": 0.5}, {"anomaly_score": value}]}]}
    with pytest.raises(NonFiniteAnswer, match=r"windows\[0\]\.scores\[1\]\.anomaly_score"):
        answer_json(content)
    # the standard library refuses it as well: it never was a number in an answer
    with pytest.raises(ValueError):
        standard(content)


def test_a_non_finite_number_beside_what_only_the_standard_library_writes_is_an_error():
    with pytest.raises(NonFiniteAnswer):
        answer_json({"count": 2**70, "score": math.nan})


@pytest.fixture
def home(tmp_path, monkeypatch):
    return use_serving_world(tmp_path, monkeypatch)


def test_served_answers_carry_the_values_the_standard_library_writes(home):
    service = ScoringService(single_user=True)
    service.start()
    try:
        readings = as_json(landed_readings(home, HOURS[2:]))["readings"]
        devices = sorted({r["device_id"] for r in readings})
        requests = [readings] + [[r for r in readings if r["device_id"] == d] for d in devices]
        for rows in requests:
            answer = service.score("readings", table_from_records(rows, "sensor_readings"))
            content = answer.as_dict()
            assert content["windows"]
            assert exact(answer_json(content)) == exact(standard(content))
    finally:
        service.close()


def test_a_non_finite_score_is_answered_500_and_counted_as_an_error(home, monkeypatch):
    service = ScoringService(single_user=True)
    broken = ScoreResult(
        windows=[{"device_id": "dev-1", "scores": [{"anomaly_score": math.nan}]}], models=[]
    )
    monkeypatch.setattr(service, "score", lambda *args, **kwargs: broken)
    with TestClient(create_app(service)) as client:
        body = as_json(landed_readings(home, HOURS[2:]).head(60))
        response = client.post("/v1/score", json=body)
        text = client.get("/metrics").text
    assert response.status_code == 500
    assert "NonFiniteAnswer" in response.json()["detail"]
    assert "windows[0].scores[0].anomaly_score" in response.json()["detail"]
    served = {
        s.labels["status"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "http_requests_total"
    }
    assert served == {"500": 1.0}


def test_an_answer_is_sent_as_json(home):
    with TestClient(create_app(ScoringService(single_user=True))) as client:
        response = client.post("/v1/score", json=as_json(landed_readings(home, HOURS[2:])))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["windows"]


def test_json_rows_keep_every_key_in_first_seen_order():
    records = [{"b": 1, "a": "x"}, {"c": 2.5}, {"a": "y", "d": True, "b": 3}]
    table = table_from_records(records, "sensor_readings")
    assert table.column_names == ["b", "a", "c", "d"]
    assert table.to_pylist() == [
        {"b": 1, "a": "x", "c": None, "d": None},
        {"b": None, "a": None, "c": 2.5, "d": None},
        {"b": 3, "a": "y", "c": None, "d": True},
    ]
