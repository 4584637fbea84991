"""The independent R290 fleet (tools/fleets/propane.py) follows the contracts it is written for."""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.evaluation.labelled import read_labels
from refrig_assets.ingestion.device_registry import load_device_registry
from tools.fleets.propane import EXPECTED_CAUSES, write_fleet


def test_propane_fleet_is_contract_conformant(tmp_path):
    plan = write_fleet(tmp_path, devices=12, hours=3, train_hours=1, cadence_s=60, seed=5)
    files = sorted((tmp_path / "landing").rglob("*.parquet"))
    assert len(files) == 3
    readings = pd.concat(pd.read_parquet(f) for f in files)
    contract = load_contract("sensor_readings")
    by_name = {c.name: c for c in contract.columns}
    assert set(readings.columns) <= set(by_name)
    assert "vibration_compressor" not in readings  # a sensor this fleet does not have
    for name in readings.columns:
        spec = by_name[name]
        if spec.range is not None:
            lo, hi = spec.range
            assert readings[name].between(lo, hi).all(), name
        operating = spec.extra.get("operating_range")
        if operating is not None:  # hourly means where a working device's lie (no UNIT_SUSPECT)
            means = readings.groupby(["device_id", readings["ts"].dt.floor("h")])[name].mean()
            assert means.between(*operating).all(), name
    pattern = by_name["device_id"].extra["pattern"]
    assert readings["device_id"].str.fullmatch(pattern).all()
    assert not readings.duplicated(["device_id", "ts"]).any()
    # Healthy compressors cycle: running for part of the time, never all of it.
    duty = (readings["current_compressor"] > 2.0).groupby(readings["device_id"]).mean()
    assert duty.between(0.1, 0.95).sum() >= len(duty) // 2

    registry = load_device_registry(tmp_path / "reference" / "device_registry.csv")
    assert set(registry["device_id"]) == set(readings["device_id"])
    labels = read_labels(tmp_path / "reference" / "labels.parquet")
    assert labels.kind == "intervals"
    assert set(labels.frame["kind"]) <= set(EXPECTED_CAUSES)
    assert len(plan.labels) and np.isin(plan.labels["device_id"], registry["device_id"]).all()


def _hours(ts: pd.Series) -> pd.Series:
    return (ts - pd.Timestamp("2026-01-01T00:00:00Z")).dt.total_seconds() / 3600


def test_propane_site_events_are_written_and_labelled(tmp_path):
    quiet = write_fleet(tmp_path / "a", devices=24, hours=6, train_hours=1, cadence_s=60, seed=5)
    plan = write_fleet(
        tmp_path / "b", devices=24, hours=6, train_hours=1, cadence_s=60, seed=5, site_events=True
    )
    assert quiet.site_events is None
    events = pd.read_parquet(tmp_path / "b" / "reference" / "site_events.parquet")
    assert list(events["event"]) == ["site_communications_loss", "heat_wave", "site_power_loss"]
    read = {
        k: pd.concat(pd.read_parquet(f) for f in sorted((tmp_path / k / "landing").rglob("*")))
        for k in ("a", "b")
    }
    site = plan.registry.set_index("device_id")["site_id"]
    b = read["b"].assign(site=read["b"]["device_id"].map(site), h=_hours(read["b"]["ts"]))
    comms, heat, power = (plan.site_events.iloc[i] for i in range(3))
    # The gateway outage: nothing from the site while it lasts, readings before and after.
    at = b[b["site"] == comms["site_id"]]
    assert not at["h"].between(comms["onset"] + 0.02, comms["end"] - 0.02).any()
    assert (at["h"] < comms["onset"]).any() and (at["h"] > comms["end"]).any()
    # The power loss: two cuts (no current at all), supply between them.
    cuts = plan.event_spans[2]
    assert len(cuts) == 2 and cuts[0][1] < cuts[1][0]
    at = b[b["site"] == power["site_id"]]
    for t0, t1 in cuts:
        assert (at.loc[at["h"].between(t0 + 0.02, t1 - 0.02), "current_compressor"] == 0).all()
    between = at["h"].between(cuts[0][1] + 0.02, cuts[1][0] - 0.02)
    assert (at.loc[between, "current_compressor"] > 0.2).all()
    # The heat wave: the room warmer by 6 K or more at its height than the hour before it.
    at = b[b["site"] == heat["site_id"]]
    before = at.loc[at["h"].between(heat["onset"] - 1, heat["onset"]), "ambient_temperature"]
    peak = at.loc[at["h"].between(heat["onset"] + 0.6, heat["end"] - 0.1), "ambient_temperature"]
    assert peak.mean() - before.mean() > 5.0
    # Labels: every device of the outage's site carries it; a door left open during the heat
    # wave at its site; the heat wave itself is no fault.
    labels = plan.labels.assign(site=plan.labels["device_id"].map(site))
    outage = labels[labels["fault_type"] == "site_communications_loss"]
    assert set(outage["device_id"]) == set(site[site == comms["site_id"]].index)
    assert (outage["category"] == "site").all()
    door = labels[(labels["site"] == heat["site_id"]) & (labels["category"] != "site")]
    assert (door["fault_type"] == "door_left_open").any()
    assert ((door["onset"] > heat["onset"]) & (door["onset"] < heat["end"])).any()
    assert set(labels["fault_type"]) <= set(EXPECTED_CAUSES)
    # The sites without an event read as in the fleet without them.
    calm = sorted(set(site) - set(events["site_id"]))
    a = read["a"][read["a"]["device_id"].map(site).isin(calm)].reset_index(drop=True)
    b = read["b"][read["b"]["device_id"].map(site).isin(calm)].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
