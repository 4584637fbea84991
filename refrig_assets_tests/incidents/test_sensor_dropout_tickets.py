"""A sensor that stops reporting while its device's other sensors go on is one sensor ticket
naming that sensor, at any cadence: not a second incident from the probable-cause table, not
a silent device, and never for a sensor the fleet does not have."""

import json
from datetime import timedelta

import pandas as pd
import pytest
from support.fleet_world import START, simulated_fleet
from support.incident_world import CAUSES, alert, alerts, diagnoses, diagnosis, feature_window

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import fleet_sensor_columns, measurement_columns
from refrig_assets.core.storage import ParquetStore
from refrig_assets.incidents.baselines import build_baselines
from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.causes import diagnose
from refrig_assets.incidents.hourly import quality_columns, with_dropout_sensors
from refrig_assets.incidents.policy import incident_policy
from refrig_assets.incidents.signatures import load_signatures

HOURS = 3
DEVICE = "dev-000002"
SENSOR = "pressure_high_side"
SILENT_FROM = pd.Timestamp(START) + timedelta(minutes=70)
SILENT_TO = pd.Timestamp(START) + timedelta(minutes=140)


def drop_sensor(frame: pd.DataFrame) -> pd.DataFrame:
    """DEVICE's SENSOR reports nothing from SILENT_FROM to SILENT_TO; the rest as simulated."""
    ts = pd.to_datetime(frame["ts"], utc=True)
    hit = frame["device_id"].eq(DEVICE) & (ts >= SILENT_FROM) & (ts < SILENT_TO)
    frame.loc[hit, SENSOR] = None
    return frame


def silence_device(frame: pd.DataFrame) -> pd.DataFrame:
    """DEVICE still sends rows from SILENT_FROM to SILENT_TO, every value of them empty."""
    ts = pd.to_datetime(frame["ts"], utc=True)
    hit = frame["device_id"].eq(DEVICE) & (ts >= SILENT_FROM) & (ts < SILENT_TO)
    values = [c for c in frame.columns if c not in ("device_id", "ts", "door_open")]
    frame.loc[hit, values] = None
    return frame


def incidents_of(fleet) -> pd.DataFrame:
    """The incidents of the fleet's hours, as the hourly step builds them: every window's
    probable cause (baselines from the same hours) and the feature windows as quality."""
    features = fleet.features
    table = load_signatures()
    dx = diagnose(features, build_baselines(features, table), table)
    return build_incidents(
        None,
        dx,
        quality=features,
        devices=fleet.registry,
        as_of=START + timedelta(hours=HOURS),
    ).incidents


@pytest.fixture(autouse=True)
def _own_home(refrig_home):
    """Each test in a home of its own: which sensors a fleet has is what its own data reported
    (nothing, here), never what another run recorded in a shared home."""
    return refrig_home


def cadence_fleet(monkeypatch, tmp_path, cadence, **kwargs):
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", str(cadence))
    monkeypatch.delenv("REFRIG_WINDOW_SECONDS", raising=False)
    return simulated_fleet(
        tmp_path, devices=4, hours=HOURS, cadence_seconds=cadence, faults=False, **kwargs
    )


@pytest.mark.parametrize("cadence", [pytest.param(1, marks=pytest.mark.slow), 60, 300])
def test_one_silent_sensor_is_one_sensor_ticket_naming_it(tmp_path, monkeypatch, cadence):
    fleet = cadence_fleet(monkeypatch, tmp_path, cadence, tamper=drop_sensor)

    incidents = incidents_of(fleet)

    assert len(incidents) == 1
    ticket = incidents.iloc[0]
    assert ticket["device_id"] == DEVICE
    assert ticket[["kind", "cause", "severity"]].tolist() == ["sensor", "sensor_fault", "LOW"]
    assert ticket["detail"] == f"SENSOR_DROPOUT: {SENSOR}"
    assert SENSOR in ticket["explanation"]
    window = incident_policy().window
    assert ticket["first_window_start"] == SILENT_FROM.floor(window)
    assert ticket["last_window_end"] == SILENT_TO.ceil(window)


def test_a_device_sending_empty_readings_is_a_communications_ticket_only(tmp_path, monkeypatch):
    fleet = cadence_fleet(monkeypatch, tmp_path, 60, tamper=silence_device)

    incidents = incidents_of(fleet)

    assert incidents["cause"].tolist() == ["communications_loss"]
    assert incidents["device_id"].tolist() == [DEVICE]


def test_sensors_a_fleet_does_not_have_are_never_a_dropout(tmp_path, monkeypatch):
    monkeypatch.setenv("REFRIG_SENSORS", "temperature_evaporator,door_open")
    fleet = cadence_fleet(monkeypatch, tmp_path, 60, keep=["temperature_evaporator", "door_open"])

    assert not fleet.features["quality_flags"].str.contains("SENSOR_DROPOUT").any()
    assert incidents_of(fleet).empty


def flagged_windows(device: str, flag: str, **means) -> list[dict]:
    """An hour of DEVICE windows carrying ``flag`` with the given ``<sensor>_mean`` values."""
    return [{**feature_window(device, i, flags=flag), **means} for i in range(4)]


def test_a_dropout_ticket_names_no_sensor_when_none_was_silent_for_a_whole_window():
    quality = pd.DataFrame(
        flagged_windows("D1", "SENSOR_DROPOUT", pressure_high_side_mean=None)
        + flagged_windows("D2", "SENSOR_DROPOUT", pressure_high_side_mean=1400.0)
    )

    incidents = build_incidents(None, diagnoses(()), quality=quality, causes=CAUSES).incidents

    details = dict(zip(incidents["device_id"], incidents["detail"], strict=True))
    assert details == {"D1": f"SENSOR_DROPOUT: {SENSOR}", "D2": "SENSOR_DROPOUT"}


def test_alerts_explained_by_a_stuck_sensor_and_its_ticket_are_one_incident():
    quality = pd.DataFrame(flagged_windows("D1", "STUCK_SENSOR"))
    dx = []
    for i in range(4):
        row = diagnosis("D1", i, "sensor_fault")
        row["evidence"] = json.dumps(
            [
                {
                    "feature": "quality_flags",
                    "value": "STUCK_SENSOR",
                    "reference": "flags",
                    "baseline": ["SENSOR_DROPOUT", "STUCK_SENSOR"],
                }
            ]
        )
        dx.append(row)

    incidents = build_incidents(
        alerts([alert("D1", i) for i in range(4)]), diagnoses(dx), quality=quality, causes=CAUSES
    ).incidents

    assert len(incidents) == 1
    assert incidents.iloc[0][["kind", "cause", "alert_count"]].tolist() == [
        "sensor",
        "sensor_fault",
        4,
    ]


def test_the_hourly_step_adds_the_silent_sensors_means_and_keeps_its_own_columns(tmp_path):
    store = ParquetStore(tmp_path)
    key = "2026-01-01-00:00"
    # Every sensor's mean, as device_features holds them; D1's pressure_high_side is silent.
    every_mean = {
        f"{c.name}_mean": 1.0 for c in fleet_sensor_columns(load_contract("sensor_readings"))
    }
    features = pd.DataFrame(
        flagged_windows(
            "D1",
            "SENSOR_DROPOUT",
            **{**every_mean, "pressure_high_side_mean": None, "temperature_condenser_mean": 30.0},
        )
        + [{**every_mean, **feature_window("D2", i)} for i in range(4)]
    ).assign(
        compressor_idle_longest_minutes=0.0, current_compressor_idle_max=0.0, defrost_minutes=0.0
    )
    store.write("device_features", key, features)
    quality = store.read("device_features", key, quality_columns(incident_policy()))

    out = with_dropout_sensors(store, quality, [key])

    # The current and evaporator means the site events and severity use stay as they were.
    pd.testing.assert_frame_equal(out[quality.columns], quality)
    assert out.loc[out["device_id"].eq("D1"), "pressure_high_side_mean"].isna().all()
    assert out.loc[out["device_id"].eq("D1"), "temperature_condenser_mean"].eq(30.0).all()


def test_a_sensor_ticket_carries_its_devices_site_and_cohort_from_the_registry(
    tmp_path, monkeypatch
):
    """A ticket knows where its device stands, so a site-wide incident can explain it."""
    fleet = cadence_fleet(monkeypatch, tmp_path, 60, tamper=drop_sensor)
    registered = fleet.registry.set_index("device_id").loc[DEVICE]

    ticket = incidents_of(fleet).iloc[0]

    assert ticket["detail"] == f"SENSOR_DROPOUT: {SENSOR}"
    assert ticket[["site_id", "cohort"]].tolist() == [
        str(registered["site_id"]),
        str(registered["cohort"]),
    ]


ABSENT = "vibration_compressor"  # the sensor this fleet does not have
MEASUREMENTS = [
    c.name for c in measurement_columns(load_contract("sensor_readings")) if c.name != ABSENT
]


def test_a_sensor_no_device_of_the_fleet_reports_is_not_a_dropout_of_each_device(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    fleet = cadence_fleet(monkeypatch, tmp_path, 60, keep=MEASUREMENTS)

    assert fleet.features["quality_flags"].str.contains("SENSOR_DROPOUT").all()
    assert incidents_of(fleet).empty


def test_a_sensor_one_device_loses_is_still_its_dropout_when_the_fleet_lacks_another(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    fleet = cadence_fleet(monkeypatch, tmp_path, 60, keep=MEASUREMENTS, tamper=drop_sensor)

    incidents = incidents_of(fleet)

    assert incidents[["device_id", "cause", "detail"]].values.tolist() == [
        [DEVICE, "sensor_fault", f"SENSOR_DROPOUT: {SENSOR}"]
    ]


def test_a_one_device_fleet_cannot_tell_an_absent_sensor_from_a_dropout():
    quality = pd.DataFrame(flagged_windows("D1", "SENSOR_DROPOUT", pressure_high_side_mean=None))

    incidents = build_incidents(None, diagnoses(()), quality=quality, causes=CAUSES).incidents

    assert incidents["detail"].tolist() == [f"SENSOR_DROPOUT: {SENSOR}"]


def test_unknown_cause_alerts_are_not_hidden_in_a_ticket_of_a_sensor_the_fleet_never_reports():
    quality = pd.DataFrame(
        flagged_windows("D1", "SENSOR_DROPOUT", pressure_high_side_mean=None)
        + flagged_windows("D2", "SENSOR_DROPOUT", pressure_high_side_mean=None)
    )

    build = build_incidents(
        alerts([alert("D1", i) for i in range(4)]),
        diagnoses(diagnosis("D1", i, "unknown") for i in range(4)),
        quality=quality,
        causes=CAUSES,
    )

    assert build.incidents[["device_id", "kind", "cause", "alert_count"]].values.tolist() == [
        ["D1", "unknown", "unknown", 4]
    ]
    assert build.never_reported == [SENSOR]


def test_a_fleet_that_names_its_sensors_keeps_every_dropout(monkeypatch):
    monkeypatch.setenv("REFRIG_SENSORS", ",".join([*MEASUREMENTS, ABSENT]))
    quality = pd.DataFrame(
        flagged_windows("D1", "SENSOR_DROPOUT", pressure_high_side_mean=None)
        + flagged_windows("D2", "SENSOR_DROPOUT", pressure_high_side_mean=None)
    )

    build = build_incidents(None, diagnoses(()), quality=quality, causes=CAUSES)

    assert build.incidents["detail"].tolist() == [f"SENSOR_DROPOUT: {SENSOR}"] * 2
    assert build.never_reported == []


def test_alerts_diagnosed_as_the_never_reported_sensors_dropout_are_of_unknown_cause():
    quality = pd.DataFrame(
        flagged_windows("D1", "SENSOR_DROPOUT", pressure_high_side_mean=None)
        + flagged_windows("D2", "SENSOR_DROPOUT", pressure_high_side_mean=None)
    )
    dx = []
    for i in range(4):
        row = diagnosis("D1", i, "sensor_fault")
        row["evidence"] = json.dumps(
            [{"feature": "quality_flags", "value": "SENSOR_DROPOUT", "reference": "flags"}]
        )
        dx.append(row)

    incidents = build_incidents(
        alerts([alert("D1", i) for i in range(4)]), diagnoses(dx), quality=quality, causes=CAUSES
    ).incidents

    assert incidents[["device_id", "kind", "cause", "alert_count"]].values.tolist() == [
        ["D1", "unknown", "unknown", 4]
    ]


def test_a_sensor_the_fleet_reported_then_lost_everywhere_keeps_its_tickets(
    refrig_home, monkeypatch
):
    # Recorded as reported by the fleet's data: losing it on every device is a dropout of each.
    from refrig_assets.core.reported_measurements import record_reported
    from refrig_assets.core.settings import get_settings

    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    every = [c.name for c in measurement_columns(load_contract("sensor_readings"))]
    record_reported(get_settings().data_dir, every, "2026-01-01-00:00")
    quality = pd.DataFrame(
        flagged_windows("D1", "SENSOR_DROPOUT", pressure_high_side_mean=None)
        + flagged_windows("D2", "SENSOR_DROPOUT", pressure_high_side_mean=None)
    )

    build = build_incidents(None, diagnoses(()), quality=quality, causes=CAUSES)

    assert build.never_reported == []
    assert build.incidents["detail"].tolist() == [f"SENSOR_DROPOUT: {SENSOR}"] * 2
