"""Any cadence: the feature window, completeness and streaming look-backs follow the fleet's
cadence (REFRIG_CADENCE_SECONDS), and simulated fleets reporting every 1 s, 30 s, 60 s and
300 s each run from landing files to detector flags that find their machine faults."""

import pandas as pd
import pytest
from support.fleet_world import scored, simulated_fleet

from refrig_assets.evaluation.labelled import EvaluationSettings, evaluate, parse_labels
from refrig_assets.features.windows import window_minutes
from refrig_assets.streaming.config import load_streaming_settings


@pytest.mark.parametrize(
    ("cadence", "minutes"),
    [(1, 1), (5, 1), (30, 15), (60, 15), (300, 15), (600, 30), (900, 60), (3600, 60)],
)
def test_the_window_follows_the_cadence_band_and_holds_enough_readings(
    monkeypatch, cadence, minutes
):
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", str(cadence))
    monkeypatch.delenv("REFRIG_WINDOW_SECONDS", raising=False)
    assert window_minutes() == minutes


def test_a_window_set_in_seconds_overrides_the_band(monkeypatch):
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "1")
    monkeypatch.setenv("REFRIG_WINDOW_SECONDS", "300")
    assert window_minutes() == 5
    monkeypatch.setenv("REFRIG_WINDOW_SECONDS", "90")
    with pytest.raises(ValueError, match="whole minutes"):
        window_minutes()


def test_streaming_look_backs_span_at_least_one_reading_interval(monkeypatch):
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "60")
    minute = load_streaming_settings()
    assert minute.rule("total_cooling_loss").minutes("rate_window_minutes") == 1.0
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "300")
    slow = load_streaming_settings()
    assert slow.rule("total_cooling_loss").minutes("rate_window_minutes") == 5.0
    assert slow.rule("total_cooling_loss").minutes("sustain_minutes") == 5.0
    assert slow.rule("acute_pressure_loss").minutes("window_minutes") == 5.0
    assert slow.max_gap_ns >= 5 * 60 * 10**9


@pytest.mark.parametrize("cadence", [pytest.param(1, marks=pytest.mark.slow), 30, 60, 300])
def test_a_fleet_at_this_cadence_runs_from_landing_files_to_flags(tmp_path, monkeypatch, cadence):
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", str(cadence))
    monkeypatch.delenv("REFRIG_WINDOW_SECONDS", raising=False)
    # Trained on the fleet's normal behaviour (the same fleet simulated without faults), scored
    # on the faulty run.
    size = {"devices": 8, "hours": 8, "cadence_seconds": cadence, "seed": 4}
    normal = simulated_fleet(tmp_path / "normal", faults=False, **size)
    fleet = simulated_fleet(tmp_path / "faulty", **size)
    features = fleet.features
    per_hour = features.groupby(["device_id", features["window_start"].dt.floor("h")]).size()
    assert (per_hour == 60 // window_minutes()).all()
    assert features["sensor_completeness"].median() >= 0.95

    scores = scored(fleet, "statistical_baseline", normal)
    flags = scores[scores["anomaly_flag"]].rename(
        columns={"window_start": "start", "window_end": "end"}
    )
    # Machine faults of single devices; devices with sensor, operational or site events (a
    # power cut's pull-down is abnormal for hours after its label ends) are left out.
    labels = fleet.labels
    machine = labels[labels["category"].isin(["gradual", "acute"])]
    others = set(labels.loc[~labels.index.isin(machine.index), "device_id"])
    assert len(machine) >= 2
    after = features[~features["device_id"].isin(others)]
    result = evaluate(
        parse_labels(machine),
        {"statistical_baseline": flags},
        after[["device_id", "window_start", "window_end"]],
        EvaluationSettings(pd.Timedelta(minutes=30), pd.Timedelta(minutes=30), 11),
    ).iloc[0]
    assert result["event_recall"] >= 0.5
    assert result["false_alarm_rate"] <= 0.05
