"""`refrig evaluate`: which stored features tell the labelled anomalies apart. On a 1 Hz pump
rig the alerts missed every labelled valve fault; per feature, the distance from the device's
normal median separated anomalous from normal minutes little better than chance (ROC AUC
0.50-0.60 for the means the detectors read), while the flow rate the import left out reached
0.95. The table says whether the detectors or the data fall short."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.storage import ParquetStore
from refrig_assets.evaluation.labelled import parse_labels
from refrig_assets.evaluation.separability import separability, window_labels

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
FAULT = range(6, 9)  # minutes 6, 7 and 8 of each device are anomalous


def minutes(m: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=m)


def one_minute_windows() -> pd.DataFrame:
    """Two devices, twelve one-minute windows: suction pressure drops by 30 kPa in the fault
    minutes (around each device's own level), the condenser wanders regardless."""
    rng = np.random.default_rng(4)
    rows = []
    for device, level in (("d1", 300.0), ("d2", 420.0)):
        for m in range(12):
            rows.append(
                {
                    "device_id": device,
                    "window_start": minutes(m),
                    "window_end": minutes(m + 1),
                    "sensor_completeness": 1.0,
                    "quality_mask": 0,
                    "pressure_low_side_mean": level + rng.normal(0, 1) - 30.0 * (m in FAULT),
                    "temperature_condenser_mean": 40.0 + rng.normal(0, 1),
                }
            )
    return pd.DataFrame(rows)


def point_labels() -> pd.DataFrame:
    """Two readings a minute (seconds 10 and 40) of each device, anomalous in the fault."""
    return pd.DataFrame(
        {
            "device_id": device,
            "ts": minutes(m) + pd.Timedelta(seconds=s),
            "anomaly": int(m in FAULT),
        }
        for device in ("d1", "d2")
        for m in range(12)
        for s in (10, 40)
    )


def test_each_window_takes_the_label_of_most_of_its_points_or_of_an_overlapping_interval():
    windows = one_minute_windows()
    expected = np.array([float(m in FAULT) for _ in ("d1", "d2") for m in range(12)])
    assert window_labels(parse_labels(point_labels()), windows) == pytest.approx(expected)
    intervals = parse_labels(
        pd.DataFrame(
            {
                "device_id": ["d1", "d2"],
                "start": [minutes(6.5)] * 2,
                "end": [minutes(8.5)] * 2,
            }
        )
    )
    assert window_labels(intervals, windows) == pytest.approx(expected)
    # A window no labelled point falls in has no label.
    unlabelled = point_labels().query("device_id == 'd1'")
    assert np.isnan(window_labels(parse_labels(unlabelled), windows)[12:]).all()


def test_the_feature_the_fault_moves_separates_and_the_others_do_not():
    table = separability(parse_labels(point_labels()), one_minute_windows()).set_index("feature")
    assert list(table.index) == ["pressure_low_side_mean", "temperature_condenser_mean"]
    pressure, condenser = (
        table.loc["pressure_low_side_mean"],
        table.loc["temperature_condenser_mean"],
    )
    # Every fault minute lies further from its device's normal median than every normal one,
    # although the two devices run 120 kPa apart.
    assert pressure["auc"] == 1.0
    assert (pressure["normal_windows"], pressure["anomalous_windows"]) == (18, 6)
    assert pressure["anomalous_median_sigma"] > 10 * pressure["normal_q90_sigma"]
    assert condenser["auc"] < 0.8


def test_refrig_evaluate_lists_the_separating_features(refrig_home, tmp_path):
    ParquetStore(refrig_home / "data").write(
        "device_features", "2026-01-01-00:00", one_minute_windows()
    )
    labels = tmp_path / "labels.csv"
    point_labels().to_csv(labels, index=False)
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["evaluate", "--labels", str(labels), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "features that tell labelled-anomalous windows from normal ones" in result.output
    table = pd.read_csv(out / "separability.csv")
    assert table["feature"].iloc[0] == "pressure_low_side_mean"
    assert table["auc"].iloc[0] == 1.0
