"""Per-device baselines: which feature windows train each device's normal behaviour.

By default a detector trains on one range of hours for the whole fleet. Real devices are
commissioned, repaired and replaced at different times, so a device's natural baseline is its
own first healthy period, or a period an engineer marks normal:

* **first hours**: each device's own first ``first_hours`` of windows (from its first window in
  the stored features), clean windows only (``quality_mask`` 0);
* **normal periods**: a file of ``device_id, start, end`` rows (CSV or Parquet): the windows of
  each device inside its periods.

A device without a baseline yet (it appeared too late, or has no period) trains nothing of its
own: the detectors score it against its cohort, as for any device with too little history, and
it gets its own baseline at a later training once it has the hours.

Whichever windows are chosen, a device's **start-up** never trains: the first minutes of its
recorded history (``training.start_up_minutes`` in ``models/``; :func:`start_up_ends`).

The periods used are kept in a ledger (``device_baselines.parquet``: device_id, start, end,
source): a retraining keeps each device's recorded period unless ``reset`` asks to choose again,
so a device's baseline does not drift into a fault that started after it was commissioned.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import pandas as pd

from refrig_assets.core.storage import durable_replace

LEDGER_COLUMNS = ["device_id", "start", "end", "source"]


class BaselineError(ValueError):
    """A normal-periods file is malformed."""


def _utc(values) -> pd.Series:
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def read_normal_periods(path: Path | str) -> pd.DataFrame:
    """``device_id, start, end`` periods from a CSV or Parquet file (times UTC; naive = UTC)."""
    path = Path(path)
    if not path.exists():
        raise BaselineError(f"{path}: normal-periods file not found")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = {"device_id", "start", "end"} - set(frame.columns)
    if missing:
        raise BaselineError(
            f"{path}: needs columns device_id, start, end (missing {sorted(missing)})"
        )
    try:
        out = pd.DataFrame(
            {
                "device_id": frame["device_id"].astype(str),
                "start": _utc(frame["start"]),
                "end": _utc(frame["end"]),
            }
        )
    except (ValueError, TypeError) as exc:
        raise BaselineError(f"{path}: start/end are not times ({exc})") from None
    if (out["end"] <= out["start"]).any():
        raise BaselineError(f"{path}: a period ends before it starts")
    return out


def first_hours_periods(features: pd.DataFrame, hours: float) -> pd.DataFrame:
    """Per device: from its first window to ``hours`` later, for devices whose windows already
    reach that far (the others have no baseline yet)."""
    first = features.groupby("device_id")["window_start"].min()
    last = features.groupby("device_id")["window_end"].max()
    end = first + pd.Timedelta(hours=hours)
    ready = last >= end
    return pd.DataFrame(
        {
            "device_id": first.index[ready].astype(str),
            "start": _utc(first[ready].to_numpy()),
            "end": _utc(end[ready].to_numpy()),
        }
    ).reset_index(drop=True)


def choose_periods(
    features: pd.DataFrame,
    *,
    first_hours: float | None = None,
    normal_periods: pd.DataFrame | None = None,
    ledger: pd.DataFrame | None = None,
    reset: bool = False,
) -> pd.DataFrame:
    """The baseline period(s) of every device that has one (:data:`LEDGER_COLUMNS`): periods
    already in the ``ledger`` unless ``reset``, then the ``normal_periods`` of devices not in it,
    then each remaining device's first ``first_hours``."""
    kept = (
        ledger[LEDGER_COLUMNS]
        if ledger is not None and len(ledger) and not reset
        else pd.DataFrame(columns=LEDGER_COLUMNS)
    )
    parts = [kept]
    done = set(kept["device_id"].astype(str))
    if normal_periods is not None and len(normal_periods):
        new = normal_periods[~normal_periods["device_id"].isin(done)]
        parts.append(new.assign(source="normal_periods"))
        done |= set(new["device_id"])
    if first_hours:
        new = first_hours_periods(features, first_hours)
        parts.append(new[~new["device_id"].isin(done)].assign(source=f"first_{first_hours:g}h"))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=LEDGER_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    return out.assign(
        device_id=out["device_id"].astype(str), start=_utc(out["start"]), end=_utc(out["end"])
    )[LEDGER_COLUMNS]


def baseline_windows(features: pd.DataFrame, periods: pd.DataFrame) -> pd.DataFrame:
    """The clean windows (``quality_mask`` 0) of each device that lie inside its periods."""
    if features.empty or periods.empty:
        return features.iloc[0:0]
    f = features.assign(
        _row=range(len(features)),
        _ws=_utc(features["window_start"]),
        _we=_utc(features["window_end"]),
        _dev=features["device_id"].astype(str),
    )
    pairs = f[["_row", "_dev", "_ws", "_we"]].merge(
        periods.rename(columns={"device_id": "_dev"}), on="_dev"
    )
    inside = pairs[(pairs["_ws"] >= pairs["start"]) & (pairs["_we"] <= pairs["end"])]
    keep = features.iloc[sorted(set(inside["_row"]))]
    if "quality_mask" in keep:
        keep = keep[keep["quality_mask"].fillna(0).astype("int64") == 0]
    return keep.reset_index(drop=True)


def start_up_ends(
    features: pd.DataFrame, minutes: float, running_before: Collection[str] = ()
) -> pd.Series:
    """When each device's start-up ends (``minutes`` after its first window in ``features``),
    for the devices whose recorded history begins in ``features``: not those in
    ``running_before`` (recorded before these windows). Indexed by device_id; empty when
    ``minutes`` is 0.

    A device's data begins when it, or its logger, is switched on: a cabinet still pulling
    down, a condenser still at room temperature, a first run from rest. Those windows are not
    the device's normal, and as they come first they also lie at one end of the context it was
    trained over (a night's falling ambient): left in, they bend the slopes the detectors learn
    on the context towards nothing."""
    if not minutes or features.empty:
        return pd.Series(dtype="datetime64[ns, UTC]")
    first = _utc(features["window_start"]).groupby(features["device_id"].to_numpy()).min()
    first = first[~first.index.isin(list(running_before))]
    return first + pd.Timedelta(minutes=minutes)


def without_start_up(features: pd.DataFrame, ends: pd.Series, min_windows: int = 1) -> pd.DataFrame:
    """``features`` less the windows that begin before their device's start-up ends
    (:func:`start_up_ends`; devices not in ``ends`` keep every window). A device that would
    keep fewer than ``min_windows`` windows keeps them all: a baseline of its own, start-up and
    all, judges it better than its cohort's (a training range of an hour, a baseline of the
    first minutes)."""
    if features.empty or ends.empty:
        return features
    end = features["device_id"].map(ends)
    start_up = (_utc(features["window_start"]) < end).to_numpy()
    if not start_up.any():
        return features
    devices = features["device_id"].to_numpy()
    kept = pd.Series(~start_up).groupby(devices).transform("sum").to_numpy()
    start_up &= kept >= min_windows
    return features[~start_up].reset_index(drop=True)


def start_ups_left_out(before: pd.DataFrame, after: pd.DataFrame, ends: pd.Series) -> pd.Series:
    """The start-up ends (:func:`start_up_ends`) of the devices whose start-up windows
    :func:`without_start_up` took from ``before`` to leave ``after``."""
    if ends.empty or before.empty:
        return ends.iloc[:0]
    had = before["device_id"].value_counts()
    kept = after["device_id"].value_counts().reindex(had.index, fill_value=0)
    return ends[ends.index.isin(had.index[(had > kept).to_numpy()])]


def read_ledger(path: Path) -> pd.DataFrame | None:
    """The recorded baseline periods (None before the first per-device training)."""
    return pd.read_parquet(path) if path.exists() else None


def write_ledger(periods: pd.DataFrame, path: Path) -> None:
    """Record the baseline periods atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    periods[LEDGER_COLUMNS].to_parquet(tmp, index=False)
    durable_replace(tmp, path)
