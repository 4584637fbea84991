"""Sensor-health signals: one per device window and quality flag (a failing sensor's
ticket), or per window in which a device reported (almost) nothing (a communications ticket)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract, quality_flag_names
from refrig_assets.core.fleet_sensors import fleet_sensor_columns
from refrig_assets.incidents.baselines import numbered
from refrig_assets.incidents.policy import IncidentPolicy
from refrig_assets.incidents.signal_frame import (
    DROPOUT_FLAG,
    SENSOR_TRACK,
    device_places,
    empty_signals,
    hashes,
    utc,
    utc_ns,
)


def flag_bits(quality: pd.DataFrame, flags: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per sensor-health flag, whether each quality row carries it (mask bits, else names)."""
    names = quality_flag_names()
    if "quality_mask" in quality:
        mask = quality["quality_mask"].fillna(0).astype("int64").to_numpy()
        return {f: (mask & (1 << names.index(f))) != 0 for f in flags}
    text = quality["quality_flags"].fillna("").astype(str)
    return {f: text.str.contains(rf"\b{f}\b", regex=True).to_numpy() for f in flags}


def silent_windows(quality: pd.DataFrame, policy: IncidentPolicy) -> np.ndarray:
    """Windows in which a device reported (almost) nothing."""
    silent = np.zeros(len(quality), dtype=bool)
    if "reading_count" in quality:
        silent |= quality["reading_count"].fillna(0).to_numpy() <= 0
    if "sensor_completeness" in quality:
        completeness = quality["sensor_completeness"].fillna(0.0).to_numpy(dtype=float)
        silent |= completeness < policy.silent_completeness_below
    return silent


def held_flags(evidence: pd.Series) -> pd.Series:
    """The ``quality_flags`` value held in each cause evidence (JSON), "" where none."""
    pattern = r'"feature":\s*"quality_flags",\s*"value":\s*"([^"]*)"'
    return evidence.astype(str).str.extract(pattern, expand=False).fillna("")


def quality_signals(
    quality: pd.DataFrame | None,
    devices: pd.DataFrame | None,
    policy: IncidentPolicy,
    still_silent: dict[str, pd.Timestamp] | None = None,
    never: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """One signal per device window and sensor-health flag (its own ticket track);
    ``still_silent``: devices whose communications ticket is open, with where it began;
    ``never``: sensors no
    device reported (never named as a device's silent sensor)."""
    if quality is None or quality.empty:
        return empty_signals()
    tickets = policy.sensor_tickets
    q = numbered(_with_missing_windows(quality, still_silent or {}))  # no copy if numbered
    bits = flag_bits(q, tickets.flags)
    bits["SILENT"] = silent_windows(q, policy)
    named = pd.Series(dtype=object)
    if DROPOUT_FLAG in bits and bits[DROPOUT_FLAG].any():  # most hours have no dropout
        # A device that sent (almost) nothing is one communications ticket, not also a dropout:
        # neither its silent windows nor the partly silent ones around them, unless one of its
        # sensors was silent on its own while the device reported.
        # Named for the devices with a dropout window only (all their windows): no other
        # device's name is used, and the naming goes device by device.
        dropped = q["device_id"].isin(q.loc[bits[DROPOUT_FLAG], "device_id"]).to_numpy()
        named = _silent_sensors(q[dropped], ~bits["SILENT"][dropped], never)
        ids = q["device_id"].astype(str)
        went_silent = ids.isin(set(ids[bits["SILENT"]])) & ~ids.isin(named.index)
        bits[DROPOUT_FLAG] = bits[DROPOUT_FLAG] & ~bits["SILENT"] & ~went_silent.to_numpy()
    parts = []
    for flag, present in bits.items():
        rows = q[present]
        if rows.empty:
            continue
        detail: Any = flag
        if flag == DROPOUT_FLAG:
            detail = (
                rows["device_id"]
                .astype(str)
                .map(named)
                .map(lambda s: f"{DROPOUT_FLAG}: {s}", na_action="ignore")
                .fillna(DROPOUT_FLAG)
            ).to_numpy()
        site, cohort = device_places(rows["device_id"], devices, rows)
        cause = tickets.silent_cause if flag == "SILENT" else tickets.cause
        parts.append(
            pd.DataFrame(
                {
                    "device_id": rows["device_id"].astype(str).to_numpy(),
                    "site_id": site,
                    "cohort": cohort,
                    "window_start": utc(rows["window_start"]).values,
                    "window_end": utc(rows["window_end"]).values,
                    "evidence_id": hashes(
                        "q-",
                        rows["device_id"],
                        utc(rows["window_start"]),
                        pd.Series(flag, index=rows.index),
                    ),
                    "evidence_type": "quality",
                    "alert_id": None,
                    "source": "quality",
                    "severity": policy.severity.sensor,
                    "max_score": 0.0,
                    "models_flagging": np.int64(0),
                    "cause": cause,
                    "confidence": 1.0,
                    "cause_evidence": json.dumps([{"quality_flag": flag}]),
                    "base": policy.severity.sensor,
                    "detail": detail,
                    "track": f"{SENSOR_TRACK}:{flag}",
                    "key": rows["device_id"].astype(str).to_numpy(),
                }
            )
        )
    if not parts:
        return empty_signals()
    out = pd.concat(parts, ignore_index=True)
    out["window_start"] = utc(out["window_start"])
    out["window_end"] = utc(out["window_end"])
    return out


def _with_missing_windows(
    quality: pd.DataFrame, still_silent: dict[str, pd.Timestamp]
) -> pd.DataFrame:
    """``quality`` plus an empty row (no reading) for each window of the fleet's that a device
    which reported earlier has no row in: a device that sends nothing has no feature window at
    all, and is silent there. Windows before a device's first row are not its (it may be new),
    except for ``still_silent`` devices (an open communications ticket), silent since before:
    from where that ticket began, never earlier."""
    at = utc_ns(quality["window_start"])
    grid = np.sort(pd.unique(at))
    win = np.searchsorted(grid, at)
    # Device codes without hashing every id twice; the still-silent ones appended after.
    codes, ids = pd.factorize(quality["device_id"].astype(object), sort=False)
    names = [str(i) for i in ids]
    extra = sorted(set(still_silent) - set(names))
    names += extra
    n, g = len(names), len(grid)
    pairs = pd.unique(codes.astype(np.int64) * g + win)  # (device, window) pairs with a row
    device, window = pairs // g, pairs % g
    count = np.bincount(device, minlength=n)
    first = np.full(n, g, dtype=np.int64)
    np.minimum.at(first, device, window)
    if still_silent:
        held = [i for i, name in enumerate(names) if name in still_silent]
        since = utc_ns(pd.Series([still_silent[names[i]] for i in held]))
        first[held] = np.minimum(first[held], np.searchsorted(grid, since))
    short = np.flatnonzero(count < g - np.minimum(first, g))
    if not len(short):
        return quality
    have = np.zeros((len(short), g), dtype=bool)
    row_of = np.full(n, -1)
    row_of[short] = np.arange(len(short))
    mine = row_of[device] >= 0
    have[row_of[device[mine]], window[mine]] = True
    gap = ~have & (np.arange(g)[None, :] >= first[short][:, None])
    r, c = np.nonzero(gap)
    ends = np.zeros(g, dtype=np.int64)
    ends[win] = utc_ns(quality["window_end"])
    empty = pd.DataFrame(
        {
            "device_id": np.asarray(names, dtype=object)[short[r]],
            "window_start": pd.to_datetime(grid[c], utc=True),
            "window_end": pd.to_datetime(ends[c], utc=True),
        }
    )
    empty["reading_count"] = 0
    empty["sensor_completeness"] = 0.0
    empty["quality_flags"] = ""
    if "quality_mask" in quality:
        empty["quality_mask"] = 0
    for column in ("window_start", "window_end"):
        stamps = pd.DatetimeIndex(empty[column])
        dtype = quality[column].dtype
        naive = not isinstance(dtype, pd.DatetimeTZDtype)
        empty[column] = stamps.tz_localize(None) if naive else stamps.tz_convert(dtype.tz)
    return pd.concat([quality, empty.reindex(columns=quality.columns)], ignore_index=True)


def _silent_sensors(
    quality: pd.DataFrame, reporting: np.ndarray, never: frozenset[str] = frozenset()
) -> pd.Series:
    """Per device: the fleet's sensors (``REFRIG_SENSORS``; a sensor the fleet never reports is
    never silent, nor one of ``never``) without a single value in one of its windows of
    ``quality`` while the device was ``reporting``, joined by ", " in contract order. Read from
    the windows' ``<sensor>_mean`` columns, where present: a dropout within one window leaves
    its mean set and is named by the device's fully silent windows, if any."""
    sensors = [
        c.name
        for c in fleet_sensor_columns(load_contract("sensor_readings"))
        if f"{c.name}_mean" in quality and c.name not in never
    ]
    if not sensors:
        return pd.Series(dtype=object)
    live = np.asarray(reporting, dtype=bool)
    if "reading_count" in quality:
        live &= quality["reading_count"].fillna(0).to_numpy() > 0
    silent = pd.DataFrame(
        {s: quality[f"{s}_mean"].isna().to_numpy() & live for s in sensors},
        index=quality["device_id"].astype(str).to_numpy(),
    )
    per_device = silent.groupby(level=0).any()
    if per_device.empty:
        return pd.Series(dtype=object)
    silent_of = per_device[sensors].to_numpy(dtype=bool)
    names = pd.Series(
        [", ".join(s for s, off in zip(sensors, row, strict=True) if off) for row in silent_of],
        index=per_device.index,
        dtype=object,
    )
    return names[names.ne("")]
