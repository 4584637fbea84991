"""The signal frame every source fills: its columns, the tracks incidents run on, the
cause a window has when nothing names one, and the timestamp helpers the sources share."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import pandas as pd

UNKNOWN = "unknown"
# Cause kinds (config/causes.yaml) that are a device's own fault: a streaming rule's name of
# one yields to the episode's diagnosis of another.
DEVICE_FAULT_KINDS = ("refrigeration", "operational")
DEVICE_TRACK = "device"
SENSOR_TRACK = "sensor"
# The quality flag of a missing sensor value; its ticket names the silent sensor.
DROPOUT_FLAG = "SENSOR_DROPOUT"
SITE_TRACK = "site"
OPEN_STATUSES = ("OPEN", "ACKNOWLEDGED")
NAT = np.iinfo(np.int64).min  # NaT in UTC nanoseconds (utc_ns)


def hashes(prefix: str, *parts: pd.Series) -> list[str]:
    """Per row, ``prefix`` and a short SHA-1 of the row's ``parts`` joined: a deterministic id."""
    joined = parts[0].astype(str)
    for p in parts[1:]:
        joined = joined + "|" + p.astype(str)
    return [prefix + hashlib.sha1(v.encode()).hexdigest()[:16] for v in joined]


def utc(series: pd.Series) -> pd.Series:
    """``series`` as tz-aware UTC timestamps (no copy when it already is)."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC":
        return series
    return pd.to_datetime(series, utc=True)


def utc_ns(column: pd.Series) -> np.ndarray:
    """UTC nanoseconds of a timestamp column, without a Timestamp per value."""
    return utc(column).values.astype("datetime64[ns]").view("int64")


def empty_signals() -> pd.DataFrame:
    """A signal frame without rows (every column, typed)."""
    return _EMPTY_SIGNALS().copy()


@lru_cache(maxsize=1)
def _EMPTY_SIGNALS() -> pd.DataFrame:  # noqa: N802 - a constant built once
    return pd.DataFrame(
        {
            "key": pd.Series(dtype=object),
            "track": pd.Series(dtype=object),
            "device_id": pd.Series(dtype=object),
            "site_id": pd.Series(dtype=object),
            "cohort": pd.Series(dtype=object),
            "window_start": pd.Series(dtype="datetime64[ns, UTC]"),
            "window_end": pd.Series(dtype="datetime64[ns, UTC]"),
            "evidence_id": pd.Series(dtype=object),
            "evidence_type": pd.Series(dtype=object),
            "alert_id": pd.Series(dtype=object),
            "source": pd.Series(dtype=object),
            "severity": pd.Series(dtype=object),
            "max_score": pd.Series(dtype=float),
            "models_flagging": pd.Series(dtype="int64"),
            "cause": pd.Series(dtype=object),
            "confidence": pd.Series(dtype=float),
            "cause_evidence": pd.Series(dtype=object),
            "base": pd.Series(dtype=object),
            "detail": pd.Series(dtype=object),
            "evaporator": pd.Series(dtype=float),
        }
    )


def device_places(
    device_ids: pd.Series, devices: pd.DataFrame | None, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Site and cohort per device: from ``frame`` when it has them, else from the registry."""
    out = []
    registry = None  # indexed once for both columns (a fleet's registry has 1M devices)
    for column in ("site_id", "cohort"):
        if column in frame:
            out.append(frame[column].astype(str).to_numpy())
        elif devices is not None and column in devices:
            if registry is None:
                # Only the entries of these devices: a few signals' lookup does not index the
                # whole registry (most calls name a few thousand of its devices).
                named = devices[devices["device_id"].isin(device_ids).to_numpy()]
                registry = named.drop_duplicates("device_id").set_index("device_id")
            lookup = registry[column]
            out.append(device_ids.map(lookup).fillna(UNKNOWN).astype(str).to_numpy())
        else:
            out.append(np.full(len(device_ids), UNKNOWN, dtype=object))
    return out[0], out[1]
