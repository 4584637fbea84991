"""A simulated fleet through landing, quality, features and one detector, in this process (no
Dagster): the domain packages chained as the hourly assets chain them, for fleets of another
cadence or with fewer sensors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import build_detector
from refrig_assets.features.windows import feature_sql
from refrig_assets.simulator import SimulationConfig, simulate_fleet
from support.quality_helpers import run_hour

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Fleet:
    features: pd.DataFrame
    labels: pd.DataFrame
    registry: pd.DataFrame
    quality: list


def simulated_fleet(
    root: Path,
    *,
    devices: int,
    hours: int,
    cadence_seconds: int,
    seed: int = 5,
    keep: list[str] | None = None,
    fault_fraction: float = 0.3,
    faults: bool = True,
    tamper: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> Fleet:
    """Simulate, optionally keep only the measurement columns ``keep`` in the landing files
    and pass each through ``tamper``, then quality and feature windows hour by hour at the
    fleet's cadence."""
    landing = root / "landing"
    config = SimulationConfig(
        devices=devices,
        hours=hours,
        start=START,
        seed=seed,
        fault_fraction=fault_fraction,
        cadence_seconds=cadence_seconds,
        faults=faults,
    )
    simulate_fleet(config, landing, root / "registry.csv", root / "labels.parquet")
    if keep is not None or tamper is not None:
        for path in sorted(landing.rglob("*.parquet")):
            frame = pd.read_parquet(path)
            if keep is not None:
                frame = frame[["device_id", "ts", *keep]]
            if tamper is not None:
                frame = tamper(frame)
            frame.to_parquet(path, index=False)
    registry = pd.read_csv(root / "registry.csv")
    frames, results = [], []
    for h in range(hours):
        start = START + timedelta(hours=h)
        key = f"{start:%Y-%m-%d-%H}:00"
        clean, result = run_hour(
            landing,
            registered=tuple(registry["device_id"]),
            index_path=root / "index.json",
            key=key,
            start=start,
        )
        results.append(result)
        con = duckdb.connect()
        try:
            con.register("clean_df", clean)
            con.execute("CREATE TABLE clean AS SELECT * FROM clean_df")
            frames.append(con.execute(feature_sql("clean", cadence_seconds=cadence_seconds)).df())
        finally:
            con.close()
    features = pd.concat(frames, ignore_index=True).merge(
        registry[["device_id", "cohort"]], on="device_id", how="left"
    )
    return Fleet(features, pd.read_parquet(root / "labels.parquet"), registry, results)


def scored(fleet: Fleet, model_id: str, training: Fleet) -> pd.DataFrame:
    """Fit ``model_id`` on the windows of ``training`` (e.g. the same fleet simulated without
    faults: a normal day of it) and score every window of ``fleet``."""
    detector = build_detector(load_model_config(model_id))
    detector.fit(training.features)
    return detector.score(fleet.features)
