"""The R717 fleet (tools/fleets/ammonia.py) follows the contracts it is written for."""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.evaluation.labelled import read_labels
from refrig_assets.ingestion.device_registry import load_device_registry
from tools.fleets.ammonia import EXPECTED_CAUSES, write_fleet


def test_ammonia_fleet_is_contract_conformant_with_per_device_sensor_kits(tmp_path):
    plan = write_fleet(tmp_path, devices=12, hours=8, train_hours=2, cadence_s=30, seed=5)
    files = sorted((tmp_path / "landing").rglob("*.parquet"))
    readings = pd.concat(pd.read_parquet(f) for f in files)
    contract = load_contract("sensor_readings")
    by_name = {c.name: c for c in contract.columns}
    assert set(readings.columns) <= set(by_name)
    for name in readings.columns:
        spec = by_name[name]
        if spec.range is not None:
            lo, hi = spec.range
            assert readings[name].dropna().between(lo, hi).all(), name
    pattern = by_name["device_id"].extra["pattern"]
    assert readings["device_id"].str.fullmatch(pattern).all()
    # Sensor kits differ per device: a device without a sensor never reports it, others do.
    reported = readings.drop(columns=["ts"]).groupby("device_id").count() > 0
    for name in plan.kit.columns:
        assert (reported[name] == plan.kit.loc[reported.index, name]).all(), name
        assert plan.kit[name].any() and not plan.kit[name].all(), name
    # The untidy delivery: an hour resent (duplicate readings), the rest unique.
    assert readings.duplicated(["device_id", "ts"]).any()
    first = readings.groupby("device_id")["ts"].min()
    last = readings.groupby("device_id")["ts"].max()
    (newcomer,) = plan.first_hour
    (leaver,) = plan.last_hour
    assert first[newcomer] > first.drop(newcomer).max() + pd.Timedelta(hours=2)
    assert last[leaver] < last.drop(leaver).min() - pd.Timedelta(hours=2)
    # Healthy compressors cycle.
    duty = (readings["current_compressor"] > 5.0).groupby(readings["device_id"]).mean()
    assert duty.between(0.1, 0.95).sum() >= len(duty) // 2

    registry = load_device_registry(tmp_path / "reference" / "device_registry.csv")
    assert set(registry["device_id"]) == set(readings["device_id"])
    labels = read_labels(tmp_path / "reference" / "labels.parquet")
    assert labels.kind == "intervals"
    assert set(labels.frame["kind"]) <= set(EXPECTED_CAUSES)
    assert len(plan.labels) and np.isin(plan.labels["device_id"], registry["device_id"]).all()
