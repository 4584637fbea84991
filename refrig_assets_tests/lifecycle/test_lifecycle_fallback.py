"""Staleness bands at their 1/2/4 h edges, the failure-mode responses and the rules fallback."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.lifecycle.fallback import (
    FALLBACK_SOURCE,
    distribution_shift,
    fleet_action,
    model_status,
    newest_window_end,
    rules_fallback_alerts,
    scoring_hold_reason,
)
from refrig_assets.lifecycle.policy import load_policy
from refrig_assets.lifecycle.staleness import Action, Staleness, classify_age

POLICY = load_policy()
AS_OF = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
FEATURES = load_contract("device_features")


@pytest.mark.parametrize(
    "age, band",
    [
        (timedelta(0), Staleness.FRESH),
        (timedelta(minutes=59, seconds=59), Staleness.FRESH),
        (timedelta(hours=1), Staleness.STALE),
        (timedelta(hours=2) - timedelta(seconds=1), Staleness.STALE),
        (timedelta(hours=2), Staleness.VERY_STALE),
        (timedelta(hours=4), Staleness.VERY_STALE),
        (timedelta(hours=4, seconds=1), Staleness.EXPIRED),
        (None, Staleness.NO_SCORES),
    ],
)
def test_staleness_bands_change_exactly_at_1_2_and_4_hours(age, band):
    assert classify_age(age, POLICY["staleness"]) is band


@pytest.mark.parametrize(
    "age_hours, action",
    [
        (0.5, Action.NORMAL),
        (1.5, Action.DELAYED),
        (3.0, Action.RULES_FALLBACK),
        (5.0, Action.STREAMING_ONLY),
    ],
)
def test_each_band_sets_what_alerting_does(age_hours, action):
    newest = AS_OF - timedelta(hours=age_hours)
    status = model_status("m", "hourly", AS_OF, newest, POLICY["staleness"])
    assert status.action is action


def test_a_daily_model_is_allowed_its_schedule_before_its_scores_count_as_stale():
    day_old = AS_OF - timedelta(hours=23, minutes=30)
    assert model_status("m", "daily", AS_OF, day_old, POLICY["staleness"]).staleness is (
        Staleness.FRESH
    )
    late = AS_OF - timedelta(hours=26)
    assert model_status("m", "daily", AS_OF, late, POLICY["staleness"]).staleness is (
        Staleness.VERY_STALE
    )


def test_a_paused_model_falls_back_to_rules_whatever_the_age_of_its_scores():
    status = model_status("m", "hourly", AS_OF, AS_OF, POLICY["staleness"], paused=True)
    assert status.action is Action.RULES_FALLBACK
    assert status.row()["state"] == "PAUSED"


def _states(*pairs):
    return pd.DataFrame([{"schedule": s, "action": str(a)} for s, a in pairs])


def test_the_fleet_falls_back_to_rules_only_when_no_hourly_model_is_usable():
    assert fleet_action(_states(("hourly", Action.RULES_FALLBACK), ("hourly", Action.DELAYED))) is (
        Action.NORMAL
    )
    assert (
        fleet_action(_states(("hourly", Action.RULES_FALLBACK), ("hourly", Action.STREAMING_ONLY)))
        is Action.RULES_FALLBACK
    )
    assert (
        fleet_action(_states(("hourly", Action.STREAMING_ONLY), ("daily", Action.NORMAL)))
        is Action.STREAMING_ONLY
    )


# -- scoring crash: the last good scores stay and age -------------------------------------------


def test_after_a_crash_the_newest_good_scores_are_found_and_grow_stale(tmp_path):
    store = ParquetStore(tmp_path)
    hour = pd.Timestamp("2026-01-01T09:00Z")
    windows = pd.DataFrame(
        {
            "window_start": [hour + timedelta(minutes=m) for m in (0, 15, 30, 45)],
            "window_end": [hour + timedelta(minutes=m) for m in (15, 30, 45, 60)],
        }
    )
    store.write("m_scores", "2026-01-01-09:00", windows)
    # hours 10 and 11 crashed: nothing was written for them
    newest = newest_window_end(store, "m_scores", AS_OF)
    assert newest == pd.Timestamp("2026-01-01T10:00Z")
    status = model_status("m", "hourly", AS_OF, newest, POLICY["staleness"])
    assert status.staleness is Staleness.VERY_STALE  # 2 h: rules-based fallback
    # as of 10:30 the same scores were only half an hour old
    earlier = newest_window_end(store, "m_scores", datetime(2026, 1, 1, 10, 30, tzinfo=UTC))
    assert (
        model_status(
            "m", "hourly", AS_OF - timedelta(minutes=90), earlier, POLICY["staleness"]
        ).staleness
        is Staleness.FRESH
    )


def test_nan_scores_fail_the_scores_contract_so_nothing_is_written():
    contract = load_contract("model_scores")
    row = {
        "device_id": "d",
        "window_start": pd.Timestamp("2026-01-01T00:00Z"),
        "window_end": pd.Timestamp("2026-01-01T00:15Z"),
        "model_id": "m",
        "model_version": "1",
        "granularity": "fleet",
        "anomaly_score": float("nan"),
        "anomaly_flag": False,
        "top_contributors": "x",
        "contributor_detail": "x",
        "confidence": 1.0,
        "scored_at": pd.Timestamp("2026-01-01T01:00Z"),
    }
    failures = contract.validate(pd.DataFrame([row], columns=contract.column_names))
    assert "anomaly_score" in set(failures["column"])


# -- holds and the automatic pause ----------------------------------------------------------------


def _windows(end: pd.Timestamp, n=4) -> pd.DataFrame:
    return pd.DataFrame({"window_end": [end - timedelta(minutes=15 * i) for i in range(n)]})


def test_stale_features_hold_scoring_and_fresh_ones_do_not():
    end = pd.Timestamp(AS_OF)
    sla = FEATURES.freshness_sla_minutes
    assert scoring_hold_reason(False, _windows(end), end, sla) is None
    assert scoring_hold_reason(False, _windows(end - timedelta(minutes=sla)), end, sla) is None
    stale = _windows(end - timedelta(minutes=sla + 1))
    assert "features stale" in scoring_hold_reason(False, stale, end, sla)
    assert "features stale" in scoring_hold_reason(False, _windows(end).iloc[:0], end, sla)


def test_a_paused_model_is_held():
    end = pd.Timestamp(AS_OF)
    assert "paused" in scoring_hold_reason(True, _windows(end), end, 90)


def test_a_diverging_score_distribution_pauses_but_ordinary_variation_does_not():
    rng = np.random.default_rng(1)
    pause = POLICY["pause"]
    bins, eps = POLICY["canary"]["histogram_bins"], POLICY["canary"]["kl_epsilon"]
    reference = rng.beta(2, 12, 4000)
    ordinary = rng.beta(2, 12, 2000)
    collapsed = np.clip(rng.normal(0.9, 0.02, 2000), 0, 1)  # every window suddenly anomalous
    assert distribution_shift(ordinary, reference, pause, bins, eps)[0] is False
    anomalous, kl, why = distribution_shift(collapsed, reference, pause, bins, eps)
    assert anomalous and kl > pause["when_kl_above"] and "diverged" in why
    too_few = distribution_shift(collapsed[:10], reference, pause, bins, eps)
    assert too_few[0] is False and too_few[1] is None


# -- rules-based fallback alerts ------------------------------------------------------------------


def _features(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    start = pd.Timestamp("2026-01-01T00:00Z")
    frame = pd.DataFrame(
        {
            "device_id": [f"dev-{i}" for i in range(n)],
            "window_start": [start] * n,
            "window_end": [start + timedelta(minutes=15)] * n,
            "sensor_completeness": [1.0] * n,
            "temperature_evaporator_mean": [-20.0] * n,
            "vibration_compressor_max": [3.0] * n,
            "pressure_low_side_mean": [250.0] * n,
            "current_compressor_max": [8.0] * n,
        }
    )
    for k, v in columns.items():
        frame[k] = v
    return frame


REGISTRY = pd.DataFrame(
    {"device_id": [f"dev-{i}" for i in range(6)], "site_id": "s1", "cohort": "reach_in_cooler"}
)


def test_each_fallback_rule_fires_on_its_own_threshold_from_the_policy_file():
    rules = {r["feature"]: r for r in POLICY["fallback"]["rules"]}
    assert rules["temperature_evaporator_mean"]["above"] == 0.0
    assert rules["vibration_compressor_max"]["above"] == 20.0
    assert rules["pressure_low_side_mean"]["below"] == 100.0
    assert rules["current_compressor_max"]["above"] == 35.0
    features = _features(
        temperature_evaporator_mean=[0.0, 0.1, -20, -20, -20, -20],
        vibration_compressor_max=[3, 3, 20.0, 20.1, 3, 3],
        pressure_low_side_mean=[250, 250, 250, 250, 99.9, 250],
        current_compressor_max=[8, 8, 8, 8, 8, 35.1],
    )
    empty = load_contract("device_alerts").empty_frame()
    alerts = rules_fallback_alerts(features, REGISTRY, empty, POLICY["fallback"], "p", "run")
    assert sorted(alerts["device_id"]) == ["dev-1", "dev-3", "dev-4", "dev-5"]
    assert load_contract("device_alerts").validate(alerts).empty
    assert (alerts["source"] == FALLBACK_SOURCE).all()
    assert (alerts["severity"] == POLICY["fallback"]["severity"]).all()
    assert (alerts["max_score"] == 0).all() and (alerts["models_flagging"] == 0).all()
    by_device = alerts.set_index("device_id")
    assert by_device.loc["dev-1", "top_contributors"] == "temperature_evaporator"
    assert "temperature_evaporator_mean 0.10 °C > 0 °C" in by_device.loc["dev-1", "explanation"]
    assert by_device.loc["dev-4", "top_contributors"] == "pressure_low_side"


def test_missing_values_never_fire_a_rule():
    features = _features(temperature_evaporator_mean=[np.nan, np.nan])
    empty = load_contract("device_alerts").empty_frame()
    assert rules_fallback_alerts(features, REGISTRY, empty, POLICY["fallback"], "p", "r").empty


def test_a_rule_on_an_unknown_feature_is_an_error_naming_it():
    policy = {"severity": "MEDIUM", "rules": [{"feature": "evap_temp", "above": 0}]}
    empty = load_contract("device_alerts").empty_frame()
    with pytest.raises(ValueError, match="'evap_temp' is not a device_features column"):
        rules_fallback_alerts(
            _features(temperature_evaporator_mean=[1.0]), REGISTRY, empty, policy, "p", "r"
        )
