"""Batch/streaming reconciliation: the batch score confirms (ANOMALY_SUSTAINED) or softens
(ANOMALY_RESOLVED) a streaming alert, or leaves it alone until it can tell."""

from __future__ import annotations

import pandas as pd
import pytest

from refrig_assets.alerts.reconciliation import (
    RESOLVED,
    SUSTAINED,
    ReconciliationPolicy,
    reconcile_streaming,
)
from refrig_assets.core.config import config_path, read_yaml

POLICY = ReconciliationPolicy.from_contract()
RULES = read_yaml(config_path("alerts"))["reconciliation"]
H10 = pd.Timestamp("2026-01-01T10:00:00Z")
WINDOW = pd.Timedelta(minutes=15)
AT = H10 + pd.Timedelta(minutes=7)  # the streaming firing
H11 = H10 + pd.Timedelta(hours=1)


def streaming_alert(device="d1", at=AT, span=5, alert_type=None):
    return {
        "alert_id": f"s-{device}-{at:%H%M}",
        "device_id": device,
        "window_start": at - pd.Timedelta(minutes=span),
        "window_end": at,
        "source": "streaming",
        "alert_type": alert_type or "ANOMALY_DETECTED",
    }


def window_scores(device, values, start=H10, model="statistical_baseline"):
    return [
        {
            "device_id": device,
            "window_start": start + i * WINDOW,
            "window_end": start + (i + 1) * WINDOW,
            "model_id": model,
            "anomaly_score": v,
        }
        for i, v in enumerate(values)
    ]


def decide(alerts, scores, scored_until=H11):
    out = reconcile_streaming(pd.DataFrame(alerts), pd.DataFrame(scores), scored_until, POLICY)
    return dict(zip(out["alert_id"], out["alert_type"], strict=True)), out


def test_thresholds_come_from_the_contract():
    assert (POLICY.sustained_above, POLICY.resolved_below) == (0.85, 0.6)
    assert POLICY.confirm == pd.Timedelta(minutes=RULES["confirm_minutes"])


def test_a_high_batch_score_confirms_the_anomaly():
    alert = streaming_alert()
    decided, out = decide([alert], window_scores("d1", [0.5, 0.86]))
    assert decided == {alert["alert_id"]: SUSTAINED}
    assert out["batch_max_score"].iloc[0] == pytest.approx(0.86)
    assert "confirmed" in out["note"].iloc[0]


def test_a_low_batch_score_softens_it_to_a_transient_event():
    alert = streaming_alert()
    decided, out = decide([alert], window_scores("d1", [0.2, 0.59]))
    assert decided == {alert["alert_id"]: RESOLVED}
    assert "transient" in out["note"].iloc[0]


@pytest.mark.parametrize("score", [0.6, 0.7, 0.85])
def test_scores_between_the_thresholds_leave_the_alert_as_it_is(score):
    decided, _ = decide([streaming_alert()], window_scores("d1", [score, score]))
    assert decided == {}


def test_the_highest_score_of_any_model_decides():
    scores = window_scores("d1", [0.3, 0.3]) + window_scores("d1", [0.1, 0.9], model="iforest")
    decided, _ = decide([streaming_alert()], scores)
    assert list(decided.values()) == [SUSTAINED]


def test_only_windows_matching_the_alert_and_what_followed_count():
    # Alert at 10:07; matching windows are 10:00 and 10:15 (confirm span to 10:22).
    before, matching, after = [0.95], [0.3, 0.4], [0.95]
    scores = window_scores("d1", before, start=H10 - WINDOW) + window_scores("d1", matching + after)
    decided, out = decide([streaming_alert()], scores)
    assert list(decided.values()) == [RESOLVED]
    assert out["windows"].iloc[0] == 2


def test_another_devices_scores_do_not_count():
    decided, _ = decide([streaming_alert("d1")], window_scores("d2", [0.99, 0.99]))
    assert decided == {}


def test_softening_waits_until_every_matching_window_is_scored():
    alert = streaming_alert(at=H10 + pd.Timedelta(minutes=55))  # confirm span ends 11:10
    low = window_scores("d1", [0.1, 0.1, 0.1, 0.1])
    decided, _ = decide([alert], low, scored_until=H10 + pd.Timedelta(hours=1))
    assert decided == {}
    next_hour = low + window_scores("d1", [0.2], start=H10 + pd.Timedelta(hours=1))
    decided, _ = decide([alert], next_hour, scored_until=H10 + pd.Timedelta(hours=2))
    assert list(decided.values()) == [RESOLVED]


def test_an_event_at_a_window_boundary_is_judged_with_the_next_window_too():
    alert = streaming_alert(at=H10 + 3 * WINDOW, span=0)  # 10:45, the end of a window
    first_hour = window_scores("d1", [0.1, 0.1, 0.1, 0.1])
    decided, _ = decide([alert], first_hour, scored_until=H11)
    assert decided == {}  # low so far, but the 11:00 window is not scored yet: no softening
    next_hour = first_hour + window_scores("d1", [0.9], start=H11)  # 11:00 shows the fault
    decided, out = decide([alert], next_hour, scored_until=H11 + pd.Timedelta(hours=1))
    assert list(decided.values()) == [SUSTAINED]
    assert out["windows"].iloc[0] == 2


def test_confirmation_does_not_wait():
    alert = streaming_alert(at=H10 + pd.Timedelta(minutes=55))
    decided, _ = decide([alert], window_scores("d1", [0.1, 0.1, 0.1, 0.9]))
    assert list(decided.values()) == [SUSTAINED]


def test_batch_alerts_and_already_reconciled_alerts_are_left_alone():
    batch = {**streaming_alert("d1"), "alert_id": "b", "source": "batch"}
    done = streaming_alert("d2", alert_type=SUSTAINED)
    scores = window_scores("d1", [0.1, 0.1]) + window_scores("d2", [0.1, 0.1])
    decided, _ = decide([batch, done], scores)
    assert decided == {}


def test_devices_without_scores_stay_detected():
    decided, _ = decide([streaming_alert()], [])
    assert decided == {}
