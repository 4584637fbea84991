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
