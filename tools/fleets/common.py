"""What the independent fleet generators share that is not physics: the shape of a fault's
ramp and the incident score of a pipeline run over a generated home."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def ramp(t_h: np.ndarray, t0: float, t1: float, ramp_h: float) -> np.ndarray:
    """0 before ``t0``, rising linearly to 1 over ``ramp_h`` hours, back to 0 at ``t1``."""
    out = np.clip((t_h - t0) / ramp_h, 0.0, 1.0)
    return np.where(t_h < t1, out, 0.0)


def score(
    home: Path, expected_causes: dict[str, tuple[str, ...]]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Incidents of a pipeline run over ``home`` against its labels: per fault type recall,
    incidents per fault and cause accuracy (``expected_causes``), and the totals."""
    from refrig_assets.core.contracts import load_contract
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.evaluation.backtest import incident_backtest

    store = ParquetStore(home / "data")
    # Every hour's partition holds the incidents it touched: the latest state of each counts.
    incidents = store.read_many("device_incidents", store.partitions("device_incidents"))
    if len(incidents):
        incidents = incidents.drop_duplicates("incident_id", keep="last")
    if incidents.empty:  # a run without incidents: every fault missed, nothing false
        incidents = load_contract("device_incidents").empty_frame()
    labels = pd.read_parquet(home / "reference" / "labels.parquet")
    registry = pd.read_csv(home / "reference" / "device_registry.csv")
    hours = len(store.partitions("device_features"))
    return incident_backtest(
        incidents,
        labels,
        len(registry) * hours,
        devices=registry,
        expected_causes=expected_causes,
    )
