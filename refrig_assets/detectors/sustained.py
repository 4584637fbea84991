"""Sustained evidence: window evidence that adds up over a device's consecutive windows.

One window's evidence (``-log10`` of its tail probability) must be extreme to pass a threshold
meant for large fleets, so a lasting moderate change (a fault that moves a machine's readings
by two or three standard deviations for many minutes) would never be seen. Here each row's
evidence is summed over the device's latest run of rows, less a drift ``allowance`` per row (a
CUSUM over a bounded run): a healthy device, whose windows reach ``allowance`` decades only now
and then, stays near zero, while a change that keeps its windows above the allowance climbs by
the excess each window. The strongest window of the run is left out of its sum, so one odd
window never counts, however extreme. A row's run counts only while the row's own window is
above the allowance, so the evidence drops when the change is over. The run is bounded (at most ``windows`` rows, and only
rows within ``windows`` row lengths of time), so a score depends on a fixed look-back and a gap
in the data does not join two separate events.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def run_sums(
    frame: pd.DataFrame, evidence: np.ndarray, windows: int, allowance: float
) -> np.ndarray:
    """Per row whose own evidence exceeds ``allowance``: the largest sum of
    ``evidence - allowance`` over the device's last L rows without the strongest of them (L
    from 2 to ``windows``), at least 0; 0 for the other rows. Only earlier rows of
    the same device that start less than ``windows`` row lengths before the row count.
    ``frame`` is sorted by device and window start; ``evidence`` is in decades (``-log10`` of a
    tail probability)."""
    excess = np.asarray(evidence, dtype=float) - allowance
    best = np.zeros(len(excess))
    if windows <= 1 or not len(excess):
        return best
    devices = frame["device_id"].to_numpy()
    start = pd.DatetimeIndex(frame["window_start"].array).as_unit("ns").asi8
    span = (pd.DatetimeIndex(frame["window_end"].array).as_unit("ns").asi8 - start) * windows
    total = excess.copy()
    strongest = excess.copy()
    for lag in range(1, windows):
        # Rows are sorted, so a row whose lag-th predecessor is out of reach has no further one.
        reach = np.zeros(len(excess), dtype=bool)
        reach[lag:] = (devices[lag:] == devices[:-lag]) & (start[lag:] - start[:-lag] < span[lag:])
        if not reach.any():
            break
        earlier = np.zeros(len(excess))
        earlier[lag:] = excess[:-lag]
        total = np.where(reach, total + earlier, total)
        strongest = np.where(reach, np.maximum(strongest, earlier), strongest)
        best = np.where(reach, np.maximum(best, total - strongest), best)
    # A run ends where the device's window no longer exceeds the allowance: the evidence of a
    # change that is over does not outlive it.
    return np.where(excess > 0, best, 0.0)
