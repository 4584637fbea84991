"""The ``device_incidents`` asset on one hour: features and alerts on disk, the real probable-
cause step, incidents in the alert database and Parquet, checks, and a re-run that changes
nothing."""

import dagster as dg
import pandas as pd
from support.cause_world import COHORT, START, healthy_window, history
from support.incident_world import alert, alerts

from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.incidents.assets import device_incidents
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.incidents.repository import IncidentStore

DEVICES = ("dev-1", "dev-2", "dev-3", "dev-4")
HOUR = START + pd.Timedelta(hours=24)
KEY = "2026-01-02-00:00"


def hour_features(**leak):
    rows = []
    for device in DEVICES:
        for q in range(4):
            row = healthy_window(device, **(leak if device == "dev-1" else {}))
            row.pop("cohort"), row.pop("hours_since_defrost")
            row["window_start"] = HOUR + pd.Timedelta(minutes=15 * q)
            row["window_end"] = row["window_start"] + pd.Timedelta(minutes=15)
            rows.append(row)
    return pd.DataFrame(rows)


def test_an_hour_of_leak_alerts_is_one_incident_with_its_probable_cause(refrig_home):
    store = ParquetStore(get_settings().data_dir)
    past = history(devices=DEVICES, windows=24 * 4).drop(columns=["cohort"])
    for stem, part in past.groupby(past["window_start"].dt.strftime("%Y-%m-%dT%H")):
        store.write("device_features", stem, part)
    registry = pd.DataFrame({"device_id": DEVICES, "site_id": "S1", "cohort": COHORT})
    store.write("device_registry", None, registry)
    low = healthy_window()["pressure_low_side_running_mean"] * 0.8
    store.write(
        "device_features", KEY, hour_features(pressure_low_side_running_mean=low, duty_cycle=0.9)
    )
    hour_alerts = alerts([alert("dev-1", q, t0=HOUR, site="S1") for q in range(4)])
    store.write("device_alerts", KEY, hour_alerts)

    def run():
        result = dg.materialize(
            [device_incidents], partition_key=KEY, resources={"refrig": RefrigResource()}
        )
        assert result.success
        return result

    first = run()
    checks = {c.check_name: c.passed for c in first.get_asset_check_evaluations()}
    assert checks == {
        "device_incidents_contract": True,
        "device_incidents_every_alert_linked": True,
    }
    written = store.read("device_incidents", KEY)
    assert written[["device_id", "cause", "severity", "alert_count"]].values.tolist() == [
        ["dev-1", "refrigerant_leak", "HIGH", 4]
    ]
    meta = first.asset_materializations_for_node("device_incidents")[0].metadata
    assert meta["opened"].value == 1 and meta["by_severity"].value["HIGH"] == 1
    assert "dev-1" in meta["live_incidents"].value

    again = run()
    meta = again.asset_materializations_for_node("device_incidents")[0].metadata
    assert (meta["opened"].value, meta["updated"].value) == (0, 0)
    incidents = IncidentStore(get_settings().alerts_db_url)
    assert len(incidents.list()[0]) == 1
