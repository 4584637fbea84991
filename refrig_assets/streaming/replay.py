"""Replay readings through the streaming rules in memory and score the result against labels.

Used to check the rules on a simulated (or recorded) fleet: the same engine as the sensor, fed
hour frames in order, with no files, database or Dagster involved.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import numpy as np
import pandas as pd

from refrig_assets.streaming.config import StreamingSettings, load_streaming_settings
from refrig_assets.streaming.engine import DeviceThresholds, StreamingEngine
from refrig_assets.streaming.state import StreamState


def frame_arrays(
    frame: pd.DataFrame, sensors: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """device_id, ts (int64 ns UTC) and float sensor arrays of a readings frame."""
    ts = pd.to_datetime(frame["ts"], utc=True).dt.tz_convert("UTC").dt.tz_localize(None)
    return (
        frame["device_id"].to_numpy(dtype=object),
        ts.to_numpy(dtype="datetime64[ns]").view(np.int64),
        {
            # A column the frame lacks (a fleet or file without a door switch) reads as missing.
            s: frame[s].to_numpy(dtype=float, na_value=np.nan)
            if s in frame
            else np.full(len(frame), np.nan)
            for s in sensors
        },
    )


def replay(
    frames: Iterable[pd.DataFrame],
    registry: pd.DataFrame | None = None,
    settings: StreamingSettings | None = None,
    state: StreamState | None = None,
) -> pd.DataFrame:
    """Episode-opening firings of every rule over ``frames`` (each a batch, in order)."""
    settings = settings or load_streaming_settings()
    engine = StreamingEngine(
        settings, state or StreamState.empty(settings), DeviceThresholds(registry, settings)
    )
    out = [engine.process(*frame_arrays(f, settings.sensors)).firings for f in frames]
    out = [f for f in out if len(f)]
    if not out:
        return engine.process(
            np.zeros(0, dtype=object),
            np.zeros(0, dtype=np.int64),
            {s: np.zeros(0) for s in settings.sensors},
        ).firings
    return pd.concat(out, ignore_index=True)


def detection_by_fault(
    firings: pd.DataFrame, labels: pd.DataFrame, within: timedelta
) -> pd.DataFrame:
    """Per labelled fault: the first firing on its device from onset to ``onset + within``
    (inclusive), its rule and the delay; ``detected`` False when there is none."""
    out = labels.copy().reset_index(drop=True)
    out["detected"] = False
    out["delay"] = pd.Series(pd.NaT, index=out.index, dtype="timedelta64[ns]")
    out["rule"] = None
    if firings.empty or out.empty:
        return out
    by_device = firings.sort_values("ts").groupby("device_id")
    groups = {d: g for d, g in by_device}
    for i, row in out.iterrows():
        g = groups.get(row["device_id"])
        if g is None:
            continue
        hit = g[(g["ts"] >= row["onset"]) & (g["ts"] <= row["onset"] + within)]
        if len(hit):
            out.at[i, "detected"] = True
            out.at[i, "delay"] = hit["ts"].iloc[0] - row["onset"]
            out.at[i, "rule"] = hit["rule"].iloc[0]
    return out
