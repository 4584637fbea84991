"""A temperature-and-door fleet that never sets REFRIG_SENSORS: `refrig pipeline run` learns its
sensors from the landed data, trains its detectors on them, opens no data-loss ticket for the
six sensors it never had, and catches its losses of cooling and doors left open."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import absent_measurements, measurements_source
from refrig_assets.core.model_config import all_model_ids
from refrig_assets.core.reported_measurements import recorded_measurements
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.evaluation.labelled import DATA_LOSS_SOURCE, evaluate_store, read_labels
from refrig_assets.lifecycle.integrity import not_trained_models

TEMPERATURE_AND_DOOR = ["temperature_evaporator", "door_open"]
START, HOURS, TRAIN_HOURS = "2026-01-01T00:00", 6, 3


@pytest.fixture
def temperature_and_door_fleet(refrig_home, monkeypatch):
    """The fleet's files hold only the temperature and door columns; the pipeline is not told."""
    monkeypatch.setenv("REFRIG_SENSORS", ",".join(TEMPERATURE_AND_DOOR))
    simulated = CliRunner().invoke(
        app,
        ["simulate", "--devices", "30", "--hours", str(HOURS), "--start", START]
        + ["--seed", "3", "--cadence-seconds", "60", "--fault-fraction", "0.4"],
    )
    assert simulated.exit_code == 0, simulated.output
    monkeypatch.delenv("REFRIG_SENSORS")
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "60")
    labels = pd.read_parquet(get_settings().labels_path)
    assert {"total_cooling_loss", "door_left_open"} <= set(labels["fault_type"])
    return get_settings()


def test_a_fleet_without_refrig_sensors_runs_on_the_sensors_its_data_reports(
    temperature_and_door_fleet,
):
    s = temperature_and_door_fleet
    ran = CliRunner().invoke(
        app,
        ["pipeline", "run", "--start", START, "--hours", str(HOURS)]
        + ["--train-hours", str(TRAIN_HOURS)],
    )
    assert ran.exit_code == 0, ran.output

    readings = load_contract("sensor_readings")
    assert set(recorded_measurements(s.data_dir)) == set(TEMPERATURE_AND_DOOR)
    assert measurements_source(readings) == "data"
    assert len(absent_measurements(readings)) == 6
    # The detectors trained on the windows, complete for what the fleet has.
    store = ParquetStore(s.data_dir)
    features = store.read_many("device_features", store.partitions("device_features"))
    assert features["sensor_completeness"].median() == pytest.approx(1.0)
    assert "statistical_baseline" not in not_trained_models(all_model_ids(), s.alerts_db_url)

    labels = read_labels(str(s.labels_path))
    begin = pd.Timestamp(START, tz="UTC")
    metrics, _, _, by_kind, _ = evaluate_store(
        store, labels, all_model_ids(), begin, begin + pd.Timedelta(hours=HOURS)
    )
    by_source = metrics.set_index("source")
    # Data-loss tickets only for labelled sensor faults, not one per device for absent sensors.
    sensor_faults = labels.frame["kind"].isin(["sensor_dropout", "stuck_sensor"]).sum()
    assert by_source.loc[DATA_LOSS_SOURCE, "predicted_events"] <= sensor_faults
    recall = by_kind[by_kind["source"] == "incidents"].set_index("kind")["event_recall"]
    assert recall["total_cooling_loss"] > 0
    assert recall["door_left_open"] > 0
