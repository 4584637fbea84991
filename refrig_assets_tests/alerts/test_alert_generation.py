"""Batch alert generation: severity from model agreement, SLA deadlines, dedup window edges,
explanations an operator can read, provenance, and re-runs that change nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from refrig_assets.alerts.generation import explain, generate_alerts, readable_evidence
from refrig_assets.alerts.severity import classify_severity, mark_suppressed, sla_deadline
from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.config import config_path, read_yaml
from refrig_assets.core.contracts import load_contract

POLICY = read_yaml(config_path("alerts"))
W0 = pd.Timestamp("2026-01-01T10:00:00Z")
WINDOW = pd.Timedelta(minutes=15)
DEDUP = pd.Timedelta(hours=POLICY["dedup_window_hours"])
REGISTRY = pd.DataFrame(
    {"device_id": ["d1", "d2"], "site_id": ["site-1", "site-2"], "cohort": ["reach_in"] * 2}
)
STAT_DETAIL = (
    "vibration_compressor_running_mean 4.2σ above this device's baseline, "
    "given the rest of the window"
)
IF_DETAIL = "current_compressor_max 3.1 robust σ above its cohort's typical value"


def score(
    device="d1",
    model="statistical_baseline",
    value=0.9,
    flag=True,
    start=W0,
    contributors="vibration_compressor,current_compressor,pressure_low_side",
    detail=STAT_DETAIL,
    version="1",
) -> dict:
    return {
        "device_id": device,
        "window_start": start,
        "window_end": start + WINDOW,
        "model_id": model,
        "model_version": version,
        "granularity": "device",
        "anomaly_score": value,
        "anomaly_flag": flag,
        "top_contributors": contributors,
        "contributor_detail": detail,
        "confidence": 1.0,
        "scored_at": W0,
    }


def scores(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def no_previous() -> pd.DataFrame:
    return pd.DataFrame(columns=["device_id", "top_contributors", "alert_created_at", "suppressed"])


def generate(frame: pd.DataFrame, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    prev = no_previous() if previous is None else previous
    return generate_alerts(frame, REGISTRY, prev, "2026-01-01-10:00", "run-42")


# -- severity (seed 001, Contract 6), every branch and its edges ------------------------------


@pytest.mark.parametrize(
    ("max_score", "models", "severity"),
    [
        (0.951, 1, "CRITICAL"),  # score alone, whatever the agreement
        (0.99, 3, "CRITICAL"),
        (0.95, 1, "MEDIUM"),  # not above 0.95: one model → MEDIUM by score
        (0.95, 2, "HIGH"),  # > 0.85 with two models
        (0.851, 2, "HIGH"),
        (0.85, 2, "MEDIUM"),  # not above 0.85: agreement alone → MEDIUM
        (0.9, 1, "MEDIUM"),  # high score, one model → MEDIUM by score
        (0.701, 1, "MEDIUM"),
        (0.3, 2, "MEDIUM"),  # two models agreeing, low score
        (0.7, 1, "LOW"),  # neither: not above 0.7, one model
        (0.1, 1, "LOW"),
    ],
)
def test_severity_rules(max_score, models, severity):
    assert classify_severity(np.array([max_score]), np.array([models]))[0] == severity


def test_severity_rules_come_from_the_alert_policy_in_order():
    rules = POLICY["severity_rules"]
    assert [r["severity"] for r in rules] == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    assert rules[0]["score_above"] == 0.95
    assert (rules[1]["score_above"], rules[1]["min_models"]) == (0.85, 2)
    assert (rules[2]["score_above"], rules[2]["min_models"], rules[2]["any_of"]) == (0.7, 2, True)


# -- SLA deadlines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "minutes"), [("CRITICAL", 30), ("HIGH", 120), ("MEDIUM", 240), ("LOW", 1440)]
)
def test_sla_deadline_per_severity(severity, minutes):
    created = pd.Series([W0])
    deadline = sla_deadline(created, pd.Series([severity]))
    assert deadline.iloc[0] == W0 + pd.Timedelta(minutes=minutes)


def test_generated_alerts_carry_the_deadline_of_their_severity():
    alerts = generate(
        scores(
            score("d1", value=0.97),
            score("d2", value=0.9),
            score("d2", "isolation_forest", value=0.88, detail=IF_DETAIL),
        )
    )
    by_device = alerts.set_index("device_id")
    assert by_device.loc["d1", "severity"] == "CRITICAL"
    assert by_device.loc["d1", "sla_deadline"] == W0 + WINDOW + pd.Timedelta(minutes=30)
    assert by_device.loc["d2", "severity"] == "HIGH"
    assert by_device.loc["d2", "sla_deadline"] == W0 + WINDOW + pd.Timedelta(hours=2)
    assert (alerts["escalation_level"] == "L1").all()


# -- dedup window edges ----------------------------------------------------------------------


def frame(device, contributor, at, suppressed=False) -> dict:
    return {
        "device_id": device,
        "top_contributors": f"{contributor},other",
        "alert_created_at": at,
        "suppressed": suppressed,
    }


def suppressed(new: list[dict], previous: list[dict]) -> list[bool]:
    prev = pd.DataFrame(previous) if previous else no_previous()
    return mark_suppressed(pd.DataFrame(new), prev).tolist()


def test_same_device_and_contributor_just_inside_the_window_is_suppressed():
    assert suppressed(
        [frame("d1", "temp", W0 + DEDUP - pd.Timedelta(seconds=1))], [frame("d1", "temp", W0)]
    ) == [True]


def test_exactly_at_the_end_of_the_window_it_alerts_again():
    assert suppressed([frame("d1", "temp", W0 + DEDUP)], [frame("d1", "temp", W0)]) == [False]


def test_another_contributor_or_device_is_not_a_repeat():
    previous = [frame("d1", "temp", W0)]
    at = W0 + pd.Timedelta(hours=1)
    assert suppressed([frame("d1", "pressure", at), frame("d2", "temp", at)], previous) == [
        False,
        False,
    ]


def test_only_the_first_contributor_counts():
    new = {
        **frame("d1", "pressure", W0 + pd.Timedelta(hours=1)),
        "top_contributors": "pressure,temp",
    }
    assert suppressed([new], [frame("d1", "temp", W0)]) == [False]


def test_a_suppressed_alert_does_not_extend_the_window():
    previous = [frame("d1", "temp", W0), frame("d1", "temp", W0 + pd.Timedelta(hours=3), True)]
    assert suppressed([frame("d1", "temp", W0 + DEDUP)], previous) == [False]


def test_a_lasting_fault_alerts_once_per_window_within_one_partition_run():
    hours = [W0 + pd.Timedelta(hours=h) for h in range(9)]
    flags = suppressed([frame("d1", "temp", at) for at in hours], [])
    assert flags == [False, True, True, True, False, True, True, True, False]


def test_suppressed_alerts_are_kept_and_marked():
    previous = pd.DataFrame([frame("d1", "vibration_compressor", W0 - pd.Timedelta(hours=1))])
    alerts = generate(scores(score("d1")), previous)
    assert len(alerts) == 1 and alerts["suppressed"].iloc[0]


# -- explanation and provenance --------------------------------------------------------------


def test_evidence_names_the_sensor_and_what_was_measured():
    assert readable_evidence(STAT_DETAIL) == (
        "vibration_compressor 4.2σ above this device's baseline (running mean)"
    )
    assert readable_evidence(IF_DETAIL) == (
        "current_compressor 3.1 robust σ above its cohort's typical value (maximum)"
    )
    assert readable_evidence("duty_cycle 3.0σ above normal") == "duty_cycle 3.0σ above normal"


def test_explanation_leads_with_the_strongest_models_evidence_then_agreement():
    alerts = generate(
        scores(
            score("d1", "statistical_baseline", 0.97, version="4"),
            score("d1", "isolation_forest", 0.91, detail=IF_DETAIL, version="2"),
        )
    )
    assert alerts["explanation"].iloc[0] == (
        "vibration_compressor 4.2σ above this device's baseline (running mean). "
        "Flagged by 2 models: statistical_baseline 0.97, isolation_forest 0.91. "
        "Also unusual: current_compressor, pressure_low_side."
    )


def test_explanation_of_a_single_model():
    text = explain(IF_DETAIL, [("isolation_forest", 0.8)], "current_compressor")
    assert text == (
        "current_compressor 3.1 robust σ above its cohort's typical value (maximum). "
        "Flagged by 1 model: isolation_forest 0.80."
    )


def test_provenance_site_and_contract():
    alerts = generate(
        scores(
            score("d1", "statistical_baseline", 0.9, version="4"),
            score("d1", "isolation_forest", 0.95, detail=IF_DETAIL, version="2"),
            score("d3", value=0.8),  # not in the registry
            score("d2", value=0.99, flag=False),  # scored but not flagged: no alert
        )
    )
    d1 = alerts.set_index("device_id").loc["d1"]
    assert d1["model_versions"] == "isolation_forest@2,statistical_baseline@4"
    assert d1["models_flagging"] == 2 and d1["max_score"] == pytest.approx(0.95)
    assert d1["top_contributors"].startswith("vibration_compressor")  # highest-scoring model
    assert (d1["feature_partition"], d1["run_id"], d1["site_id"]) == (
        "2026-01-01-10:00",
        "run-42",
        "site-1",
    )
    assert alerts.set_index("device_id").loc["d3", "site_id"] == "unknown"
    assert "d2" not in set(alerts["device_id"])
    assert load_contract("device_alerts").validate(alerts).empty


def test_no_flag_no_alert():
    alerts = generate(scores(score(flag=False)))
    assert alerts.empty and list(alerts.columns) == load_contract("device_alerts").column_names


# -- idempotent re-run -----------------------------------------------------------------------


def test_rerunning_a_partition_yields_the_same_alerts_and_stores_nothing_new(tmp_path):
    frame_ = scores(score("d1", value=0.97), score("d2", value=0.75, start=W0 + WINDOW))
    first, second = generate(frame_), generate(frame_)
    pd.testing.assert_frame_equal(first, second)

    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")
    assert store.upsert(first)["inserted"] == 2
    store.acknowledge(first["alert_id"].iloc[0], "ana", "on it")
    again = store.upsert(second)
    assert (again["inserted"], again["updated"]) == (0, 0)
    assert store.get(first["alert_id"].iloc[0])["status"] == "ACKNOWLEDGED"


def test_alert_ids_depend_on_device_window_and_source_only():
    a = generate(scores(score("d1", value=0.97)))
    b = generate(scores(score("d1", value=0.75, contributors="pressure_low_side")))
    c = generate(scores(score("d1", start=W0 + WINDOW)))
    assert a["alert_id"].iloc[0] == b["alert_id"].iloc[0] != c["alert_id"].iloc[0]


def test_alert_time_is_the_data_time_not_the_wall_clock():
    alerts = generate(scores(score("d1")))
    assert alerts["alert_created_at"].iloc[0] == W0 + WINDOW
