"""`refrig evaluate`: sensor and communications tickets say the data was lost, not that the
machine failed. They are scored as their own source ("data-loss tickets"), never as detections
of the ``incidents`` source; a site power loss still counts for the devices under it, a site
communications loss does not."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.storage import ParquetStore
from refrig_assets.evaluation.labelled import DATA_LOSS_SOURCE, data_loss
from refrig_assets_tests.evaluation.test_labelled_evaluation import minutes, windows_of


def incident(incident_id, device, kind, cause, start, end, parent=None):
    return {
        "incident_id": incident_id,
        "device_id": device,
        "parent_incident_id": parent,
        "kind": kind,
        "cause": cause,
        "first_window_start": minutes(start),
        "last_window_end": minutes(end),
    }


def fleet_with_tickets(store: ParquetStore) -> pd.DataFrame:
    """Four devices, four 15-minute windows each (16 windows), one labelled fault each (the
    returned interval labels): d1 30-60 (runs to the end of its data), d2 20-40, d3 20-40,
    d4 10-20; and the incidents below."""
    store.write("device_features", "2026-01-01-00:00", windows_of(["d1", "d2", "d3", "d4"]))
    incidents = pd.DataFrame(
        [
            # d1 goes silent when its data ends: a communications ticket at 60-75.
            incident("t1", "d1", "sensor", "communications_loss", 60, 75),
            # d2: a refrigeration fault incident.
            incident("f2", "d2", "refrigeration", "refrigerant_leak", 15, 45),
            # d3: under a site power loss (the site incident 15-45, d3's own 15-30).
            incident("sp", None, "site", "power_loss", 15, 45),
            incident("c3", "d3", "site", "power_loss", 15, 30, parent="sp"),
            # d4: under a site communications loss (15-45), with its silent ticket.
            incident("sc", None, "site", "communications_loss", 15, 45),
            incident("t4", "d4", "sensor", "communications_loss", 15, 30, parent="sc"),
        ]
    )
    store.write("device_incidents", "2026-01-01-00:00", incidents)
    return pd.DataFrame(
        {
            "device_id": ["d1", "d2", "d3", "d4"],
            "start": [minutes(30), minutes(20), minutes(20), minutes(10)],
            "end": [minutes(60), minutes(40), minutes(40), minutes(20)],
        }
    )


def test_data_loss_tickets_are_their_own_source_and_detect_no_fault(refrig_home, tmp_path):
    labels = tmp_path / "labels.csv"
    fleet_with_tickets(ParquetStore(refrig_home / "data")).to_csv(labels, index=False)
    out = tmp_path / "eval"
    args = ["evaluate", "--labels", str(labels), "--start", "2026-01-01T00:00"]
    result = CliRunner().invoke(app, [*args, "--end", "2026-01-01T01:00", "--out", str(out)])

    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv").set_index("source")
    fault = metrics.loc["incidents"]
    # Anomalous windows: 2 per device (8 of 16). Fault incidents cover d2's two (its own
    # incident) and d3's two (the site power loss): TP 4, FP 0, FN 4.
    assert fault["precision"] == pytest.approx(1.0)
    assert fault["recall"] == pytest.approx(0.5)
    # Events: d2 and d3 detected; d1 (touched only by its silent ticket, within the grace)
    # and d4 (only by the site's communications loss) not.
    assert fault["events"] == 4 and fault["events_detected"] == 2
    assert fault["event_precision"] == pytest.approx(1.0)
    lost = metrics.loc[DATA_LOSS_SOURCE]
    assert lost["events_detected"] == 2 and lost["predicted_events"] == 2
    # The d4 tickets cover its 15-30 (anomalous) and 30-45 (normal) windows.
    assert lost["precision"] == pytest.approx(0.5) and lost["recall"] == pytest.approx(1 / 8)
    assert "touched and no fault incident did: 2 of 4" in result.output


def test_data_loss_names_sensor_tickets_and_communications_losses_not_power_loss():
    frame = pd.DataFrame(
        {
            "kind": ["sensor", "sensor", "site", "site", "site", "refrigeration", "unknown"],
            "cause": [
                "sensor_fault",
                "communications_loss",
                "communications_loss",
                "power_loss",
                "communications_loss",
                "refrigerant_leak",
                "unknown",
            ],
        }
    )
    assert data_loss(frame).tolist() == [True, True, True, False, True, False, False]


def test_the_backtest_asset_table_scores_the_same_sources(refrig_home):
    from refrig_assets.defs.evaluation.assets import labelled_tables

    store = ParquetStore(refrig_home / "data")
    labels = fleet_with_tickets(store)
    metrics, _best = labelled_tables(store, labels, [], ["2026-01-01T00"])
    metrics = metrics.set_index("source")
    assert metrics.loc["incidents", "events_detected"] == 2
    assert metrics.loc[DATA_LOSS_SOURCE, "events_detected"] == 2
