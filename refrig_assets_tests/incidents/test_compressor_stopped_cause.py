"""The ``compressor_stopped`` signature (config/causes.yaml): a stop half as long again as any
the device ended before, with the coil warmer than its usual range, is a standalone
``total_cooling_loss``; long defrosts, a lightly loaded cabinet's long off-cycle and a stop of
usual length are not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from support.cause_world import history

from refrig_assets.core.config import ConfigError
from refrig_assets.incidents.baselines import build_baselines
from refrig_assets.incidents.cause_table import from_signatures
from refrig_assets.incidents.causes import diagnose
from refrig_assets.incidents.signatures import load_signatures
from refrig_assets.incidents.stops import StopState, derive_stops, empty_state

TABLE = load_signatures()
HISTORY = history()
BASELINES = build_baselines(HISTORY, TABLE)
T = pd.Timestamp("2026-01-02T00:00Z")


def _window(over: float, warm_by: float) -> dict:
    """dev-1's window (its healthy values) with the stop at ``over`` times its longest and
    its coil ``warm_by`` kelvin warmer than usual, compressor stopped."""
    row = HISTORY[HISTORY["device_id"].eq("dev-1")].iloc[0].to_dict()
    row.update(
        window_start=T,
        window_end=T + pd.Timedelta(minutes=15),
        duty_cycle=0.0,
        current_compressor_mean=0.06,
        current_compressor_max=0.06,
        hours_since_defrost=1.0,
        compressor_stop_over_longest=over,
    )
    row["temperature_evaporator_mean"] += warm_by
    row["evaporator_ambient_difference"] += warm_by
    return row


def _diagnosed(*rows: dict) -> pd.DataFrame:
    return diagnose(pd.DataFrame(list(rows)), BASELINES, TABLE)


def test_a_stop_outlasting_the_longest_with_a_warm_coil_is_a_standalone_cooling_loss():
    out = _diagnosed(_window(over=2.0, warm_by=10.0)).iloc[0]
    assert (out["cause"], out["cause_kind"], out["base_severity"]) == (
        "total_cooling_loss",
        "refrigeration",
        "CRITICAL",
    )
    assert bool(out["standalone"]) and out["confidence"] > 0.5


@pytest.mark.parametrize(
    ("over", "warm_by"),
    [
        (1.2, 10.0),  # a defrost or off-cycle about as long as the device's longest: warm, usual
        (3.0, 0.5),  # a lightly loaded cabinet's long off-cycle: the coil stays in its range
        (float("nan"), 10.0),  # not judged yet (no defrost stop ended, too little history)
    ],
)
def test_a_usual_stop_or_a_cold_coil_is_no_standalone_cause(over, warm_by):
    out = _diagnosed(_window(over=over, warm_by=warm_by)).iloc[0]
    assert not (out["cause"] == "total_cooling_loss" and bool(out["standalone"]))


def test_long_defrosts_of_a_low_temperature_case_never_outlast_its_longest_stop():
    """45-minute defrosts (up to 55) every 6 hours between 20-minute off-cycles, for two days:
    the longest stop ended is the longest defrost, and no later defrost reaches 1.5 times it."""
    window = 5 * 60 * 10**9
    n = 2 * 24 * 12
    duty = np.where(np.arange(n) % 8 < 4, 0.0, 1.0)  # 20-minute stops
    heat = np.zeros(n, bool)
    rng = np.random.default_rng(0)
    for start in range(20, n - 12, 72):
        length = int(rng.integers(9, 12))  # 45 to 55 minutes of 5-minute windows
        duty[start : start + length] = 0.0
        duty[start + length] = 1.0
        heat[start : start + length] = True
    start = pd.Timestamp("2026-01-01", tz="UTC").value + np.arange(n, dtype=np.int64) * window
    streak = np.where(duty == 0, 5.0, 0.0)
    _, over, _ = derive_stops(
        np.full(n, "lt-1", dtype=object),
        start,
        start + window,
        duty,
        streak,
        heat,
        StopState(empty_state()),
        min_observed_hours=24,
    )
    assert np.nanmax(over) < 1.5


def test_the_cause_it_names_is_total_cooling_loss_in_the_incident_layer():
    causes = from_signatures(TABLE)
    assert causes.kind("total_cooling_loss") == "refrigeration"
    assert causes.severity("total_cooling_loss") == "CRITICAL"
    assert causes.kind("compressor_stopped") is None


def test_a_cause_must_be_another_signature_of_the_same_kind_and_severity(tmp_path):
    text = TABLE.path.read_text()
    wrong = text.replace(
        "    cause: total_cooling_loss\n    kind: refrigeration\n    severity: CRITICAL",
        "    cause: total_cooling_loss\n    kind: refrigeration\n    severity: HIGH",
    )
    assert wrong != text
    path = tmp_path / "causes.yaml"
    path.write_text(wrong)
    with pytest.raises(ConfigError, match="compressor_stopped.cause"):
        load_signatures(path)


def test_an_any_of_counts_its_strongest_member_in_the_confidence():
    """The no-cooling group of total_cooling_loss held by its duty-cycle member adds that
    member's strength (it counted 0 before)."""
    row = _window(over=float("nan"), warm_by=12.0)
    row.update(
        duty_cycle=0.95,
        temperature_evaporator_slope=1.0,
        current_compressor_mean=7.0,
        compressor_idle_longest_minutes=0.0,
    )
    out = _diagnosed(row).iloc[0]
    assert out["cause"] == "total_cooling_loss" and not bool(out["standalone"])
    evidence = {e["feature"]: e for e in json.loads(out["evidence"])}
    assert evidence["duty_cycle"]["held"]
    # The evaporator and the slope far beyond their thresholds (strength 1 each), the current
    # not down (0): the group adds at least a held condition's 0.5 to the (1 + 1) / 4.
    assert out["confidence"] >= (1 + 1 + 0.5) / 4
