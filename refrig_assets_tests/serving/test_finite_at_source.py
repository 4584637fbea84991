"""A scored answer's numbers are checked for NaN and infinities where they are made
(``ScoreResult.finite``), so its JSON is not searched again: an answer marked finite holds none,
and one made with a NaN or an infinity anywhere (score, confidence, contributor detail,
completeness, probable cause) is still refused naming where it is."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from support.serving_world import HOURS, as_json, landed_readings, use_serving_world

from refrig_assets.serving import scorer
from refrig_assets.serving.app import NonFiniteAnswer, _score_body, answer_json
from refrig_assets.serving.finite import all_finite, non_finite
from refrig_assets.serving.service import ScoringService


@pytest.fixture
def served(tmp_path, monkeypatch):
    home = use_serving_world(tmp_path, monkeypatch)
    service = ScoringService(single_user=True)
    service.start()
    readings = as_json(landed_readings(home, HOURS[2:]))["readings"]
    yield service, readings
    service.close()


def _bodies(readings: list[dict]) -> list[bytes]:
    devices = sorted({r["device_id"] for r in readings})
    rows = [readings] + [[r for r in readings if r["device_id"] == d] for d in devices]
    return [json.dumps({"readings": r}).encode() for r in rows]


def test_answers_marked_finite_hold_no_nan_and_write_what_the_search_writes(served):
    service, readings = served
    for body in _bodies(readings):
        result, text = _score_body(service, body, "application/json", None, True)
        content = result.as_dict()
        assert content["windows"] and result.finite
        assert not non_finite(content)
        assert text == answer_json(content)  # the answer the search would have let through
        assert any("probable_cause" in w for w in content["windows"])


def _spoiled(real, column: str, value):
    def model_scores(detector, features):
        found = dict(real(detector, features))
        if found and column in found:
            values = np.asarray(found[column], dtype=object).copy()
            values[len(values) // 2] = value
            found[column] = values
        return found

    return model_scores


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("anomaly_score", math.nan),
        ("anomaly_score", math.inf),
        ("confidence", -math.inf),
        ("contributor_detail", math.nan),
    ],
)
def test_a_non_finite_number_made_in_scoring_is_refused_naming_it(
    served, monkeypatch, column, value
):
    service, readings = served
    monkeypatch.setattr(scorer, "model_scores", _spoiled(scorer.model_scores, column, value))
    body = _bodies(readings)[1]
    with pytest.raises(NonFiniteAnswer, match=rf"\.{column}"):
        _score_body(service, body, "application/json", None, True)


@pytest.mark.parametrize("where", ["confidence", "evidence"])
def test_a_non_finite_number_in_a_probable_cause_is_refused_naming_it(served, monkeypatch, where):
    service, readings = served
    real = service.diagnosis.probable_causes

    def probable_causes(features):
        found = real(features)
        key = sorted(found, key=str)[0]
        cause = dict(found[key])
        if where == "confidence":
            cause["confidence"] = math.nan
        else:
            cause["evidence"] = [*cause["evidence"], {"feature": "x", "value": math.inf}]
        return {**found, key: cause}

    monkeypatch.setattr(service.diagnosis, "probable_causes", probable_causes)
    with pytest.raises(NonFiniteAnswer, match=rf"probable_cause\.{where}"):
        _score_body(service, _bodies(readings)[0], "application/json", None, True)


def test_a_non_finite_completeness_is_refused_naming_it(served, monkeypatch):
    service, readings = served
    real = scorer.score_pass

    def score_pass(features, *args, **kwargs):
        features["sensor_completeness"] = features["sensor_completeness"].where(
            features.index != 0, math.nan
        )
        return real(features, *args, **kwargs)

    monkeypatch.setattr("refrig_assets.serving.service.score_pass", score_pass)
    with pytest.raises(NonFiniteAnswer, match=r"sensor_completeness"):
        _score_body(service, _bodies(readings)[1], "application/json", None, True)


def test_all_finite_is_false_for_what_is_not_a_finite_number():
    assert all_finite([0, 1.5, np.float64(2.0), True])
    assert not all_finite([1.0, math.nan])
    assert not all_finite([1.0, None])
    assert not all_finite(["1.0"])
    assert all_finite([])
