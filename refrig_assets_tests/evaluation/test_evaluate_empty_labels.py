"""`refrig evaluate` with a labels file that holds no row: interval labels without an interval
(a period without faults) crashed ("ValueError: NaTType does not support strftime"). They now
score every stored window as normal (false alarms only); point labels without a point, or no
stored window at all, are refused with the reason."""

import pandas as pd
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.storage import ParquetStore

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def _evaluate(labels, out):
    return CliRunner().invoke(app, ["evaluate", "--labels", str(labels), "--out", str(out)])


def test_interval_labels_without_an_interval_count_every_stored_window_normal(
    refrig_home, tmp_path
):
    store = ParquetStore(refrig_home / "data")
    windows = pd.DataFrame(
        {
            "device_id": ["d1"] * 4,
            "window_start": [T0 + pd.Timedelta(minutes=15 * i) for i in range(4)],
            "window_end": [T0 + pd.Timedelta(minutes=15 * (i + 1)) for i in range(4)],
        }
    )
    store.write("device_features", "2026-01-01-00:00", windows)
    store.write("device_alerts", "2026-01-01-00:00", windows.iloc[[1]].assign(suppressed=False))
    labels = tmp_path / "no_faults.csv"
    labels.write_text("device_id,start,end\n")

    result = _evaluate(labels, tmp_path / "eval")

    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(tmp_path / "eval" / "metrics.csv").set_index("source")
    assert metrics.loc["alerts", "points"] == 4
    assert metrics.loc["alerts", "anomalous_points"] == 0
    assert metrics.loc["alerts", "false_alarm_rate"] == 0.25


def test_no_point_or_no_stored_window_is_refused_with_the_reason(refrig_home, tmp_path):
    points = tmp_path / "points.csv"
    points.write_text("device_id,ts,anomaly\n")
    intervals = tmp_path / "intervals.csv"
    intervals.write_text("device_id,start,end\n")

    no_points = _evaluate(points, tmp_path / "a")
    nothing_stored = _evaluate(intervals, tmp_path / "b")

    assert no_points.exit_code == 2
    assert "no labelled points" in no_points.output
    assert nothing_stored.exit_code == 2
    assert "no labelled interval and no stored feature windows" in nothing_stored.output
