"""`refrig evaluate --labels FILE` on a labelled set small enough to check by hand: point-wise
precision/recall/F1, false-alarm and missed-alarm rates, event recall/precision and delay, for
alerts, incidents and each detector's flags, with a threshold sweep of the scores."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.storage import ParquetStore
from refrig_assets.evaluation.labelled import (
    EvaluationSettings,
    LabelsError,
    best_thresholds,
    evaluate,
    incidents_seen,
    parse_labels,
    recall_by_kind,
    threshold_sweep,
)

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def minutes(m: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=m)


SETTINGS = EvaluationSettings(
    grace=pd.Timedelta(0), max_gap=pd.Timedelta(minutes=2), sweep_points=51
)


def test_point_labels_against_alert_intervals():
    # Ten readings a minute apart; minutes 3, 4, 5 and 8 are anomalous.
    labels = parse_labels(
        pd.DataFrame(
            {
                "device_id": "d1",
                "ts": [minutes(i) for i in range(10)],
                "anomaly": [int(i in (3, 4, 5, 8)) for i in range(10)],
            }
        )
    )
    # One alert covers 3, 4, 5 (a true episode); one covers minute 0 (a false alarm).
    alerts = pd.DataFrame(
        {"device_id": "d1", "start": [minutes(2.5), minutes(0)], "end": [minutes(5.5), minutes(1)]}
    )
    row = evaluate(labels, {"alerts": alerts}, settings=SETTINGS).iloc[0]
    # TP 3, FN 1 (minute 8), FP 1 (minute 0), TN 5.
    assert row["precision"] == pytest.approx(0.75)
    assert row["recall"] == pytest.approx(0.75)
    assert row["f1"] == pytest.approx(0.75)
    assert row["false_alarm_rate"] == pytest.approx(1 / 6)
    assert row["missed_alarm_rate"] == pytest.approx(0.25)
    # Events: [3, 5] and [8, 8] (gap 3 min > 2). The first is seen when the alert's window
    # ends at 5.5: 2.5 minutes after its start. Of two predicted episodes one is true.
    assert row["events"] == 2 and row["events_detected"] == 1
    assert row["event_recall"] == pytest.approx(0.5)
    assert row["event_precision"] == pytest.approx(0.5)
    assert row["median_delay_min"] == pytest.approx(2.5)


def windows_of(devices, n=4, length=15):
    return pd.DataFrame(
        [
            {
                "device_id": d,
                "window_start": minutes(length * i),
                "window_end": minutes(length * (i + 1)),
            }
            for d in devices
            for i in range(n)
        ]
    )


def scored(windows, scores):
    return windows.rename(columns={"window_start": "start", "window_end": "end"}).assign(
        score=scores
    )


def test_interval_labels_score_every_window_and_the_sweep_finds_the_best_threshold():
    labels = parse_labels(
        pd.DataFrame(
            {"device_id": ["d1"], "start": [minutes(20)], "end": [minutes(40)], "kind": ["leak"]}
        )
    )
    windows = windows_of(["d1", "d2"])  # d1's windows 15-30 and 30-45 overlap the interval
    scores = scored(windows, [0.1, 0.9, 0.6, 0.2, 0.1, 0.2, 0.7, 0.1])
    flags = scores[scores["score"] >= 0.5]  # the detector's own flags
    row = evaluate(labels, {"m flags": flags}, windows, settings=SETTINGS).iloc[0]
    # TP 2, FP 1 (d2 30-45), FN 0, TN 5.
    assert row["points"] == 8 and row["anomalous_points"] == 2
    assert row["precision"] == pytest.approx(2 / 3)
    assert row["recall"] == pytest.approx(1.0)
    assert row["f1"] == pytest.approx(0.8)
    assert row["false_alarm_rate"] == pytest.approx(1 / 6)
    assert row["missed_alarm_rate"] == pytest.approx(0.0)
    # The event (20-40) is seen when the window 15-30 ends: 10 minutes in.
    assert row["event_recall"] == 1.0 and row["median_delay_min"] == pytest.approx(10.0)
    assert row["predicted_events"] == 2 and row["event_precision"] == pytest.approx(0.5)

    by_kind = recall_by_kind(labels, {"m flags": flags}, settings=SETTINGS)
    assert by_kind[["source", "kind", "events", "events_detected"]].values.tolist() == [
        ["m flags", "leak", 1, 1]
    ]

    sweep = threshold_sweep(labels, {"m": scores}, windows, settings=SETTINGS)
    at = sweep.set_index("threshold")
    assert at.loc[0.0, "recall"] == 1.0 and at.loc[0.0, "false_alarm_rate"] == 1.0
    assert at.loc[0.8, "f1"] == pytest.approx(2 / 3)  # d1 15-30 only
    best = best_thresholds(sweep).iloc[0]
    assert best["f1"] == pytest.approx(0.8)
    assert 0.2 < best["threshold"] <= 0.6


def test_an_incident_is_seen_at_its_first_alert_not_when_it_last_had_a_signal(monkeypatch):
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "1")  # one-minute feature windows
    monkeypatch.delenv("REFRIG_WINDOW_SECONDS", raising=False)
    labels = parse_labels(
        pd.DataFrame(
            {"device_id": ["d1", "d2"], "start": [minutes(0)] * 2, "end": [minutes(50)] * 2}
        )
    )
    # d1's incident opened with an alert of the window 0-5 and lasted the fault; d2's (a
    # standalone cause, no alert) opened at minute 3.
    incidents = pd.DataFrame(
        {"device_id": ["d1", "d2"], "start": [minutes(0), minutes(3)], "end": [minutes(55)] * 2}
    )
    alerts = pd.DataFrame(
        {"device_id": ["d1"], "window_start": [minutes(0)], "window_end": [minutes(5)]}
    )

    seen = incidents_seen(incidents, alerts)
    row = evaluate(labels, {"incidents": seen}, windows_of(["d1", "d2"]), settings=SETTINGS).iloc[0]

    assert seen["seen"].tolist() == [minutes(5), minutes(4)]
    assert row["event_recall"] == 1.0 and row["median_delay_min"] == pytest.approx(4.5)


def test_the_simulators_fault_labels_are_read_as_intervals():
    labels = parse_labels(
        pd.DataFrame(
            {
                "device_id": ["d1"],
                "onset": [minutes(20)],
                "end": [minutes(40)],
                "fault_type": ["refrigerant_leak"],
                "category": ["gradual"],
            }
        )
    )
    assert labels.kind == "intervals"
    assert labels.frame[["start", "kind"]].values.tolist() == [[minutes(20), "refrigerant_leak"]]


def test_labels_of_another_shape_are_refused_naming_the_columns():
    with pytest.raises(LabelsError, match="device_id, ts, anomaly"):
        parse_labels(pd.DataFrame({"machine": ["a"], "time": ["2026-01-01"]}))
    with pytest.raises(LabelsError, match="not 0/1"):
        parse_labels(pd.DataFrame({"device_id": ["a"], "ts": ["2026-01-01"], "anomaly": ["maybe"]}))


def test_refrig_evaluate_reads_alerts_incidents_and_scores_from_the_store(refrig_home, tmp_path):
    store = ParquetStore(refrig_home / "data")
    windows = windows_of(["d1", "d2"])
    store.write("device_features", "2026-01-01-00:00", windows)
    alerts = windows.iloc[[1, 6]].assign(suppressed=False)
    store.write("device_alerts", "2026-01-01-00:00", alerts)
    incidents = pd.DataFrame(
        {
            "incident_id": ["i1"],
            "device_id": ["d1"],
            "parent_incident_id": [None],
            "kind": ["refrigeration"],
            "cause": ["refrigerant_leak"],
            "first_window_start": [minutes(15)],
            "last_window_end": [minutes(45)],
        }
    )
    store.write("device_incidents", "2026-01-01-00:00", incidents)
    model_scores = windows.assign(
        anomaly_score=[0.1, 0.9, 0.6, 0.2, 0.1, 0.2, 0.7, 0.1],
        anomaly_flag=[False, True, False, False, False, False, True, False],
    )
    # Written by DuckDB, score partitions hold microseconds; pandas-written ones nanoseconds.
    us = "datetime64[us, UTC]"
    model_scores = model_scores.astype({"window_start": us, "window_end": us})
    store.write("statistical_baseline_scores", "2026-01-01-00:00", model_scores)
    labels = tmp_path / "labels.csv"
    pd.DataFrame(
        {"device_id": ["d1"], "start": ["2026-01-01T00:20:00Z"], "end": ["2026-01-01T00:40:00Z"]}
    ).to_csv(labels, index=False)
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--labels",
            str(labels),
            "--start",
            "2026-01-01T00:00",
            "--end",
            "2026-01-01T01:00",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv").set_index("source")
    assert set(metrics.index) == {
        "alerts",
        "incidents",
        "data-loss tickets",
        "statistical_baseline flags",
    }
    assert metrics.loc["data-loss tickets", "predicted_events"] == 0
    # Alerts: d1 15-30 (true), d2 30-45 (false); d1 30-45 missed.
    assert metrics.loc["alerts", "precision"] == pytest.approx(0.5)
    assert metrics.loc["alerts", "recall"] == pytest.approx(0.5)
    # The incident spans both anomalous windows of d1 and nothing else.
    assert metrics.loc["incidents", "f1"] == pytest.approx(1.0)
    assert metrics.loc["incidents", "event_precision"] == pytest.approx(1.0)
    assert (out / "sweep.png").stat().st_size > 0
    assert "event recall by labelled kind" in result.output
    sweep = pd.read_csv(out / "sweep.csv")
    assert set(sweep["source"]) == {"statistical_baseline"}
    assert "point-wise" in result.output and "event-wise" in result.output


def test_a_site_incident_counts_for_every_device_under_it(refrig_home, tmp_path):
    # A power cut at a site: d1 and d2 have their own (short) incidents under the site's, d3
    # (same site, another circuit) none. The site incident is what the operator sees for the
    # whole outage of d1 and d2; it says nothing about d3.
    store = ParquetStore(refrig_home / "data")
    store.write("device_features", "2026-01-01-00:00", windows_of(["d1", "d2", "d3"]))
    incidents = pd.DataFrame(
        {
            "incident_id": ["site", "child1", "child2"],
            "device_id": [None, "d1", "d2"],
            "parent_incident_id": [None, "site", "site"],
            "kind": ["site", "site", "site"],
            "cause": ["power_loss", "power_loss", "power_loss"],
            "first_window_start": [minutes(15), minutes(15), minutes(15)],
            "last_window_end": [minutes(45), minutes(30), minutes(30)],
        }
    )
    store.write("device_incidents", "2026-01-01-00:00", incidents)
    labels = tmp_path / "labels.csv"
    pd.DataFrame(
        {
            "device_id": ["d1", "d2"],
            "start": ["2026-01-01T00:20:00Z"] * 2,
            "end": ["2026-01-01T00:40:00Z"] * 2,
        }
    ).to_csv(labels, index=False)
    out = tmp_path / "eval"
    args = ["evaluate", "--labels", str(labels), "--start", "2026-01-01T00:00"]
    result = CliRunner().invoke(app, [*args, "--end", "2026-01-01T01:00", "--out", str(out)])

    assert result.exit_code == 0, result.output
    row = pd.read_csv(out / "metrics.csv").set_index("source").loc["incidents"]
    # Both devices' two outage windows each are covered, and nothing of d3.
    assert row["recall"] == pytest.approx(1.0) and row["precision"] == pytest.approx(1.0)
    assert row["event_recall"] == pytest.approx(1.0)
