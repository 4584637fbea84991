"""Window-level signals → incidents: one per fault episode, site event or sensor-health ticket.

:func:`build_incidents` is the one pure entry point behind the ``device_incidents`` asset, the
alert store's fold of newly stored alerts and the backtest. Everything is vectorised (sorts,
group-wise cumulative maxima and shifts); nothing loops over windows in Python.

A *signal* is one window that says something is wrong with a device: an alert (batch, streaming
or fallback), a standalone probable cause without an alert (door ajar, short cycling …), a
persisting sensor-health quality flag, or a window in which most devices of a site switched off,
went silent or had their rooms warm together. Signals are grouped per *track* (a device's
faults, each of its sensor health flags, a site's power or communications loss or warm rooms):

* a signal that starts fewer than ``hysteresis_windows`` normal windows after the track's last
  signal continues the episode; after that the episode is closed;
* inside an episode a different known cause that holds for ``cause_change_min_signals``
  signals starts a new incident; ``unknown`` is compatible with every cause;
* a new episode whose cause matches a closed incident closed at most ``reopen_minutes`` earlier
  reopens that incident instead of opening another one (``unknown`` matches every cause, but
  a site event does not reopen an earlier unexplained episode: a power cut does not take over
  a device's earlier unexplained episode);
* stored incidents (``open_incidents``) take part as the first signal of their own episode, so
  re-running the same input yields the same incidents and ids;
* a stored communications ticket whose windows the build sees again, none of them silent any
  more (the readings arrived late and the hour is built again), closes; one whose last windows
  only are no longer silent ends where they begin.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract, quality_flag_names
from refrig_assets.core.fleet_sensors import ENV as SENSORS_ENV
from refrig_assets.core.fleet_sensors import (
    FROM_CONTRACT,
    fleet_sensor_columns,
    measurements_source,
)
from refrig_assets.incidents.baselines import numbered
from refrig_assets.incidents.cause_table import CauseTable, cause_table
from refrig_assets.incidents.policy import (
    IncidentPolicy,
    SeverityPolicy,
    SiteEventPolicy,
    incident_policy,
)

UNKNOWN = "unknown"
# Cause kinds (config/causes.yaml) that are a device's own fault: a streaming rule's name of
# one yields to the episode's diagnosis of another.
DEVICE_FAULT_KINDS = ("refrigeration", "operational")
DEVICE_TRACK = "device"
SENSOR_TRACK = "sensor"
# The quality flag of a missing sensor value; its ticket names the silent sensor.
DROPOUT_FLAG = "SENSOR_DROPOUT"
SITE_TRACK = "site"
# Columns of incident_evidence rows (the store's table and IncidentBuild.evidence).
EVIDENCE_COLUMNS = [
    "evidence_id",
    "incident_id",
    "evidence_type",
    "alert_id",
    "device_id",
    "window_start",
    "window_end",
    "source",
    "severity",
    "max_score",
    "cause",
    "confidence",
    "detail",
    "repeat",
]
_OPEN_STATUSES = ("OPEN", "ACKNOWLEDGED")


@dataclass
class IncidentBuild:
    """Incidents touched by one build (device_incidents contract) and their evidence links.

    ``absorbed``: stored incidents (id → id of the incident that takes them over) whose whole
    evidence belongs to another incident of this build: an unexplained episode that was the
    early part of a sensor ticket. The store moves their evidence; they end up superseded."""

    incidents: pd.DataFrame
    evidence: pd.DataFrame
    absorbed: dict[str, str] = field(default_factory=dict)
    # Contract sensors no device of the fleet reported in the build's windows (REFRIG_SENSORS
    # unset): not a dropout of each device (see _never_reported).
    never_reported: list[str] = field(default_factory=list)
    # Stored communications tickets this build closed because none of their windows is silent
    # any more: the device's readings for them arrived late (see _arrived_late).
    arrived_late: list[str] = field(default_factory=list)


_log = logging.getLogger(__name__)


def incident_id(key: str, track: str, first_window_start: Any) -> str:
    """Deterministic id of an incident: its device or site, its track and its first window."""
    raw = f"{key}|{track}|{pd.Timestamp(first_window_start).isoformat()}"
    return "inc-" + hashlib.sha1(raw.encode()).hexdigest()[:16]


def _hashes(prefix: str, *parts: pd.Series) -> list[str]:
    joined = parts[0].astype(str)
    for p in parts[1:]:
        joined = joined + "|" + p.astype(str)
    return [prefix + hashlib.sha1(v.encode()).hexdigest()[:16] for v in joined]


def _utc(series: pd.Series) -> pd.Series:
    """``series`` as tz-aware UTC timestamps (no copy when it already is)."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC":
        return series
    return pd.to_datetime(series, utc=True)


# -- signals ------------------------------------------------------------------------------


def _empty_signals() -> pd.DataFrame:
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


def _alert_signals(
    alerts: pd.DataFrame, diagnoses: pd.DataFrame | None, causes: CauseTable
) -> pd.DataFrame:
    """Every alert as a signal, with the probable cause of its window (or of its streaming rule)."""
    if alerts is None or alerts.empty:
        return _empty_signals()
    a = alerts.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "device_id": a["device_id"].astype(str),
            "site_id": a["site_id"].astype(str) if "site_id" in a else UNKNOWN,
            "cohort": a["cohort"].astype(str) if "cohort" in a else UNKNOWN,
            "window_start": _utc(a["window_start"]),
            "window_end": _utc(a["window_end"]),
            "evidence_id": a["alert_id"].astype(str),
            "evidence_type": "alert",
            "alert_id": a["alert_id"].astype(str),
            "source": a["source"].astype(str),
            "severity": a["severity"].astype(str),
            "max_score": a["max_score"].astype(float),
            "models_flagging": a["models_flagging"].fillna(0).astype("int64"),
            "cause": UNKNOWN,
            "confidence": 0.0,
            "cause_evidence": "[]",
            "base": None,
            "detail": a["explanation"].astype(str) if "explanation" in a else "",
        }
    )
    streaming = out["source"].eq("streaming")
    if streaming.any():
        rules = out.loc[streaming, "detail"].str.split(":", n=1).str[0].str.strip()
        mapped = rules.map(causes.for_streaming_rule)
        out.loc[streaming, "cause"] = mapped.fillna(UNKNOWN).to_numpy()
        out.loc[streaming & out["cause"].ne(UNKNOWN), "confidence"] = 1.0
        out.loc[streaming, "base"] = out.loc[streaming, "cause"].map(causes.severity).to_numpy()
    if diagnoses is not None and len(diagnoses):
        # Only the alerted devices' windows (a fleet's hour has 100K devices' diagnoses).
        diagnoses = diagnoses[diagnoses["device_id"].isin(set(out["device_id"]))]
        d = diagnoses[
            [
                "device_id",
                "window_start",
                "cause",
                "confidence",
                "evidence",
                "base_severity",
            ]
        ].copy()
        d["window_start"] = _utc(d["window_start"])
        d = d.drop_duplicates(["device_id", "window_start"], keep="last")
        merged = out[["device_id", "window_start"]].merge(
            d, on=["device_id", "window_start"], how="left"
        )
        use = (~streaming).to_numpy() & merged["cause"].notna().to_numpy()
        out.loc[use, "cause"] = merged.loc[use, "cause"].astype(str).to_numpy()
        out.loc[use, "confidence"] = merged.loc[use, "confidence"].astype(float).to_numpy()
        out.loc[use, "cause_evidence"] = merged.loc[use, "evidence"].astype(str).to_numpy()
        out.loc[use, "base"] = merged.loc[use, "base_severity"].to_numpy()
    return out


def _diagnosis_signals(
    diagnoses: pd.DataFrame | None,
    alerts: pd.DataFrame | None,
    devices: pd.DataFrame | None,
) -> pd.DataFrame:
    """Standalone probable causes (door ajar, short cycling …) of windows without an alert."""
    if diagnoses is None or diagnoses.empty:
        return _empty_signals()
    d = diagnoses[diagnoses["standalone"].astype(bool) & diagnoses["cause"].ne(UNKNOWN)]
    if d.empty:
        return _empty_signals()
    d = d.assign(window_start=_utc(d["window_start"]), window_end=_utc(d["window_end"]))
    if alerts is not None and len(alerts):
        alerted = pd.MultiIndex.from_arrays(
            [alerts["device_id"].astype(str), _utc(alerts["window_start"])]
        )
        d = d[~pd.MultiIndex.from_arrays([d["device_id"], d["window_start"]]).isin(alerted)]
    site, cohort = _device_places(d["device_id"], devices, d)
    return pd.DataFrame(
        {
            "device_id": d["device_id"].astype(str).to_numpy(),
            "site_id": site,
            "cohort": cohort,
            "window_start": d["window_start"].values,
            "window_end": d["window_end"].values,
            "evidence_id": _hashes("dx-", d["device_id"], d["window_start"]),
            "evidence_type": "diagnosis",
            "alert_id": None,
            "source": "diagnosis",
            "severity": d["base_severity"].astype(str).to_numpy(),
            "max_score": 0.0,
            "models_flagging": np.int64(0),
            "cause": d["cause"].astype(str).to_numpy(),
            "confidence": d["confidence"].astype(float).to_numpy(),
            "cause_evidence": d["evidence"].astype(str).to_numpy(),
            "base": d["base_severity"].astype(str).to_numpy(),
            "detail": "",
        }
    ).assign(
        window_start=lambda f: _utc(f["window_start"]),
        window_end=lambda f: _utc(f["window_end"]),
    )


def _device_places(
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
                registry = devices.drop_duplicates("device_id").set_index("device_id")
            lookup = registry[column]
            out.append(device_ids.map(lookup).fillna(UNKNOWN).astype(str).to_numpy())
        else:
            out.append(np.full(len(device_ids), UNKNOWN, dtype=object))
    return out[0], out[1]


def _flag_bits(quality: pd.DataFrame, flags: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per sensor-health flag, whether each quality row carries it (mask bits, else names)."""
    names = quality_flag_names()
    if "quality_mask" in quality:
        mask = quality["quality_mask"].fillna(0).astype("int64").to_numpy()
        return {f: (mask & (1 << names.index(f))) != 0 for f in flags}
    text = quality["quality_flags"].fillna("").astype(str)
    return {f: text.str.contains(rf"\b{f}\b", regex=True).to_numpy() for f in flags}


def _silent(quality: pd.DataFrame, policy: IncidentPolicy) -> np.ndarray:
    """Windows in which a device reported (almost) nothing."""
    silent = np.zeros(len(quality), dtype=bool)
    if "reading_count" in quality:
        silent |= quality["reading_count"].fillna(0).to_numpy() <= 0
    if "sensor_completeness" in quality:
        completeness = quality["sensor_completeness"].fillna(0.0).to_numpy(dtype=float)
        silent |= completeness < policy.silent_completeness_below
    return silent


def _held_flags(evidence: pd.Series) -> pd.Series:
    """The ``quality_flags`` value held in each cause evidence (JSON), "" where none."""
    pattern = r'"feature":\s*"quality_flags",\s*"value":\s*"([^"]*)"'
    return evidence.astype(str).str.extract(pattern, expand=False).fillna("")


def _join_sensor_tickets(signals: pd.DataFrame, kinds: pd.Series, policy: IncidentPolicy) -> None:
    """Alerts explained by a sensor-health flag (the ``quality_flags`` value in their cause's
    evidence) go on that flag's ticket track: the alerts and the flag's own ticket are one
    incident, not two."""
    sensor = kinds.eq("sensor").to_numpy()
    if not sensor.any():
        return
    held = _held_flags(signals["cause_evidence"])
    for flag in reversed(policy.sensor_tickets.flags):  # the first flag listed wins
        hit = sensor & held.str.contains(rf"\b{flag}\b", regex=True).to_numpy()
        signals.loc[hit, "track"] = f"{SENSOR_TRACK}:{flag}"


def _join_flagged_windows(
    signals: pd.DataFrame, quality: pd.DataFrame | None, policy: IncidentPolicy
) -> None:
    """Alerts without a known cause in a window whose device carries a sensor-health flag go
    on that flag's ticket track (in place): a sensor that cannot be read is the better
    explanation of what the detectors saw, so it is one maintenance ticket from the start, not
    a second, unknown-cause incident. Silent windows are a communications ticket, not these."""
    unknown = signals["cause"].eq(UNKNOWN) & signals["track"].eq(DEVICE_TRACK)
    if quality is None or quality.empty or not unknown.any():
        return
    q = quality[["device_id", "window_start"]].assign(
        device_id=quality["device_id"].astype(str), window_start=_utc(quality["window_start"])
    )
    bits = _flag_bits(quality, policy.sensor_tickets.flags)
    track = pd.Series(None, index=q.index, dtype=object)
    for flag in reversed(policy.sensor_tickets.flags):  # the first flag listed wins
        track = track.where(~bits[flag], f"{SENSOR_TRACK}:{flag}")
    track = track.where(~_silent(quality, policy))
    flagged = q.assign(flag_track=track.to_numpy()).dropna(subset=["flag_track"])
    if flagged.empty:
        return
    flagged = flagged.drop_duplicates(["device_id", "window_start"], keep="last")
    found = (
        signals.loc[unknown, ["device_id", "window_start"]]
        .reset_index()
        .merge(flagged, on=["device_id", "window_start"], how="inner")
    )
    signals.loc[found["index"].to_numpy(), "track"] = found["flag_track"].to_numpy()


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
    names = per_device.apply(lambda row: ", ".join(s for s in sensors if row[s]), axis=1)
    return names[names.ne("")]


def never_reported_message(sensors: list[str]) -> str:
    """What an operator is told about contract sensors no device reported."""
    return (
        f"No device reported {', '.join(sensors)} in the windows seen: not a sensor dropout "
        f"of each device. Name the fleet's sensors in {SENSORS_ENV} to declare which it has."
    )


def _never_reported(quality: pd.DataFrame | None, policy: IncidentPolicy) -> list[str]:
    """Sensors of the contract that no device reported in any window of ``quality`` while two
    or more devices reported others, while nothing names the fleet's sensors (no
    ``REFRIG_SENSORS``, no hour's reported sensors recorded yet): the files lack the column (or never fill it), so it is a
    sensor the fleet does not have, not a dropout of each device. A window without a dropout
    flag had every sensor (its ``<sensor>_mean`` may not have been read); a sensor without a
    ``<sensor>_mean`` column cannot be judged. One device alone cannot tell an absent sensor
    from a dropout: nothing is returned."""
    if quality is None or quality.empty:
        return []
    if measurements_source(load_contract("sensor_readings")) != FROM_CONTRACT:
        return []  # named in REFRIG_SENSORS, or learnt from the data: a sensor of the fleet
    if not {"quality_mask", "quality_flags"} & set(quality.columns):
        return []
    sensors = [
        c.name
        for c in fleet_sensor_columns(load_contract("sensor_readings"))
        if f"{c.name}_mean" in quality
    ]
    if not sensors or DROPOUT_FLAG not in quality_flag_names():
        return []
    whole = ~_flag_bits(quality, (DROPOUT_FLAG,))[DROPOUT_FLAG]
    if whole.all():
        return []
    live = ~_silent(quality, policy)
    never = [s for s in sensors if not (live & (whole | quality[f"{s}_mean"].notna())).any()]
    if not never or quality.loc[live, "device_id"].nunique() < 2:
        return []
    return never


def _without_never_reported(quality: pd.DataFrame, never: list[str]) -> pd.DataFrame:
    """``quality`` (a copy) without the dropout flag of the windows in which every sensor but
    the ``never`` reported ones has a value (``<sensor>_mean`` set, where the column exists):
    a window missing a reported sensor throughout stays a dropout; one that lost it for part
    of the window cannot be told from the absent sensor's flag and is cleared."""
    others = [
        c.name
        for c in fleet_sensor_columns(load_contract("sensor_readings"))
        if f"{c.name}_mean" in quality and c.name not in never
    ]
    keep = np.zeros(len(quality), dtype=bool)
    for sensor in others:
        keep |= quality[f"{sensor}_mean"].isna().to_numpy()
    clear = _flag_bits(quality, (DROPOUT_FLAG,))[DROPOUT_FLAG] & ~keep
    out = quality.copy()
    if "quality_mask" in out:
        bit = 1 << quality_flag_names().index(DROPOUT_FLAG)
        mask = out["quality_mask"].fillna(0).astype("int64")
        out["quality_mask"] = mask.where(~clear, mask & ~bit)
    if "quality_flags" in out:
        text = out["quality_flags"].fillna("").astype(str)
        cleared = text.str.split(",").map(lambda fs: ",".join(f for f in fs if f != DROPOUT_FLAG))
        out["quality_flags"] = text.where(~clear, cleared)
    return out


def _undiagnose_never_reported(
    diagnoses: pd.DataFrame | None, quality: pd.DataFrame, policy: IncidentPolicy
) -> pd.DataFrame | None:
    """``diagnoses`` with the sensor-fault windows that only a never reported sensor's dropout
    explained (``quality`` as :func:`_without_never_reported` left it: no dropout flag there,
    and no other sensor-health flag in the evidence) set back to unknown, as a window no
    signature matches: the detectors' alert there is not a sensor fault."""
    if diagnoses is None or diagnoses.empty:
        return diagnoses
    held = _held_flags(diagnoses["evidence"])
    hit = diagnoses["cause"].eq(policy.sensor_tickets.cause) & held.str.contains(
        rf"\b{DROPOUT_FLAG}\b", regex=True
    )
    for flag in policy.sensor_tickets.flags:
        if flag != DROPOUT_FLAG:
            hit &= ~held.str.contains(rf"\b{flag}\b", regex=True)
    if not hit.any():
        return diagnoses
    still = quality.loc[
        _flag_bits(quality, (DROPOUT_FLAG,))[DROPOUT_FLAG], ["device_id", "window_start"]
    ]
    still = set(zip(still["device_id"].astype(str), _ns(still["window_start"]), strict=True))
    rows = diagnoses.loc[hit]
    keys = zip(rows["device_id"].astype(str), _ns(rows["window_start"]), strict=True)
    hit.loc[hit] = [k not in still for k in keys]
    out = diagnoses.copy()
    unknown = {"cause": UNKNOWN, "cause_kind": UNKNOWN, "confidence": 0.0, "evidence": "[]"}
    unknown.update(base_severity=None, standalone=False)
    for column, value in unknown.items():
        if column in out:
            out.loc[hit, column] = value
    return out


def _ns(column: pd.Series) -> np.ndarray:
    """UTC nanoseconds of a timestamp column, without a Timestamp per value."""
    return _utc(column).values.astype("datetime64[ns]").view("int64")


def _with_missing_windows(quality: pd.DataFrame, still_silent: set[str]) -> pd.DataFrame:
    """``quality`` plus an empty row (no reading) for each window of the fleet's that a device
    which reported earlier has no row in: a device that sends nothing has no feature window at
    all, and is silent there. Windows before a device's first row are not its (it may be new),
    except for ``still_silent`` devices (an open communications ticket), silent since before."""
    at = _ns(quality["window_start"])
    grid = np.sort(pd.unique(at))
    win = np.searchsorted(grid, at)
    # Device codes without hashing every id twice; the still-silent ones appended after.
    codes, ids = pd.factorize(quality["device_id"].astype(object), sort=False)
    names = [str(i) for i in ids]
    extra = sorted(still_silent - set(names))
    names += extra
    n, g = len(names), len(grid)
    pairs = pd.unique(codes.astype(np.int64) * g + win)  # (device, window) pairs with a row
    device, window = pairs // g, pairs % g
    count = np.bincount(device, minlength=n)
    first = np.full(n, g, dtype=np.int64)
    np.minimum.at(first, device, window)
    if still_silent:
        first[[i for i, name in enumerate(names) if name in still_silent]] = 0
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
    ends[win] = _ns(quality["window_end"])
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


def _still_silent(open_incidents: pd.DataFrame | None) -> set[str]:
    """Devices whose communications ticket (a silent device's) is still open: silent since
    before the build's windows, so they may have no row in any of them."""
    if open_incidents is None or open_incidents.empty or "track" not in open_incidents:
        return set()
    hit = open_incidents["track"].eq(f"{SENSOR_TRACK}:SILENT") & open_incidents["status"].isin(
        _OPEN_STATUSES
    )
    return set(open_incidents.loc[hit, "device_id"].dropna().astype(str))


def _quality_signals(
    quality: pd.DataFrame | None,
    devices: pd.DataFrame | None,
    policy: IncidentPolicy,
    still_silent: set[str] | None = None,
    never: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """One signal per device window and sensor-health flag (its own ticket track);
    ``still_silent``: devices whose communications ticket is open; ``never``: sensors no
    device reported (never named as a device's silent sensor)."""
    if quality is None or quality.empty:
        return _empty_signals()
    tickets = policy.sensor_tickets
    q = numbered(_with_missing_windows(quality, still_silent or set()))  # no copy if numbered
    bits = _flag_bits(q, tickets.flags)
    bits["SILENT"] = _silent(q, policy)
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
        site, cohort = _device_places(rows["device_id"], devices, rows)
        cause = tickets.silent_cause if flag == "SILENT" else tickets.cause
        parts.append(
            pd.DataFrame(
                {
                    "device_id": rows["device_id"].astype(str).to_numpy(),
                    "site_id": site,
                    "cohort": cohort,
                    "window_start": _utc(rows["window_start"]).values,
                    "window_end": _utc(rows["window_end"]).values,
                    "evidence_id": _hashes(
                        "q-",
                        rows["device_id"],
                        _utc(rows["window_start"]),
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
        return _empty_signals()
    out = pd.concat(parts, ignore_index=True)
    out["window_start"] = _utc(out["window_start"])
    out["window_end"] = _utc(out["window_end"])
    return out


def _site_signals(
    quality: pd.DataFrame | None, devices: pd.DataFrame | None, policy: IncidentPolicy
) -> pd.DataFrame:
    """Windows in which most registered devices of a site switched off or went silent together.

    Off: no compressor run, no current, stopped for ``min_off_minutes`` and, where the device
    draws an idle current, that draw gone (an idle compressor whose fans still run is powered);
    or, for such a device, idling in the window without its draw. Most: ``quorum_share`` of the
    site's devices that reported in the windows of ``quality``."""
    if quality is None or quality.empty or devices is None or devices.empty:
        return _empty_signals()
    rules = policy.site_events
    reg = devices.drop_duplicates("device_id")[["device_id", "site_id"]]
    per_site = reg.groupby("site_id").size()
    per_site = per_site[per_site >= rules.min_site_devices]
    if per_site.empty:
        return _empty_signals()
    q = quality
    sites = q["device_id"].map(reg.set_index("device_id")["site_id"])
    known = sites.notna().to_numpy()
    if not known.all():
        q, sites = q[known], sites[known]
    reporting = ~_silent(q, policy)
    current = f"{rules.current_sensor}_mean"
    off = reporting.copy()
    if "duty_cycle" in q:
        off &= q["duty_cycle"].fillna(0.0).to_numpy(dtype=float) <= rules.off_duty_cycle_max
    if current in q:
        off &= q[current].fillna(0.0).to_numpy(dtype=float) <= rules.current_off_amps
    if "duty_cycle" not in q and current not in q:
        off[:] = False
    starts, ends = _utc(q["window_start"]), _utc(q["window_end"])
    length = ((ends - starts).dt.total_seconds() / 60).to_numpy(dtype=float)
    stopped = length
    if rules.off_streak_feature in q:
        streak = q[rules.off_streak_feature].to_numpy(dtype=float)
        stopped = np.where(np.isnan(streak), stopped, streak)
    off &= stopped >= rules.min_off_minutes
    if rules.idle_draw_feature in q:
        drawing, lost = _idle_draw(q, rules)
        # An idle compressor whose fans still run is powered; one whose idle draw vanished lost
        # its supply for part of the window at least (a cut shorter than two windows, or not
        # aligned to them, leaves no window off throughout). Only in windows of min_off_minutes
        # or more: in shorter ones (1-minute windows at 1 s) a blip of a minute or two would be
        # a site power loss, where the stop's own length (above) decides.
        off = (off & ~drawing) | (reporting & lost & (length >= rules.min_off_minutes))
    counts = (
        pd.DataFrame(
            {
                "site_id": sites.to_numpy(),
                "window_start": starts.values,
                "rep": reporting,
                "off": off,
            }
        )
        .groupby(["site_id", "window_start"])[["rep", "off"]]
        .sum()
    )
    first = ~starts.duplicated().to_numpy()
    windows = pd.Series(ends.values[first], index=pd.DatetimeIndex(starts.values[first]))
    grid = pd.MultiIndex.from_product(
        [per_site.index, windows.index], names=["site_id", "window_start"]
    )
    counts = counts.reindex(grid, fill_value=0).reset_index()
    # The quorum counts a site's devices that reported in the build's windows: a device gone
    # for days (dead, removed, never installed) would otherwise hold its site below the quorum
    # for ever. A site with fewer such devices than min_site_devices (all of it silent, say)
    # counts every registered device.
    ids = q["device_id"].to_numpy()[reporting]
    active = pd.Series(ids).groupby(sites.to_numpy()[reporting]).nunique()
    active = active[active >= rules.min_site_devices]
    base = per_site.copy()
    base.loc[base.index.intersection(active.index)] = active
    n = counts["site_id"].map(base).to_numpy(dtype=float)
    need = rules.quorum_share * n
    power = counts["off"].to_numpy() >= need
    comms = ~power & ((n - counts["rep"].to_numpy()) >= need)
    counts["cause"] = np.where(power, rules.power_loss_cause, rules.communications_loss_cause)
    counts["share"] = np.where(power, counts["off"] / n, (n - counts["rep"]) / n)
    hit = counts[power | comms]
    evidence = [
        [{"devices_changed_share": round(float(s), 3), "site_devices": int(k)}]
        for s, k in zip(hit["share"], hit["site_id"].map(base), strict=True)
    ]
    return _site_rows(hit, hit["window_start"].map(windows), evidence)


def _site_rows(hit: pd.DataFrame, ends: pd.Series, evidence: list[Any]) -> pd.DataFrame:
    """Site signals, one per row of ``hit`` (site_id, window_start, cause, share), ending at
    ``ends``, each with its ``evidence`` (JSON-ready)."""
    if hit.empty:
        return _empty_signals()
    out = pd.DataFrame(
        {
            "device_id": None,
            "site_id": hit["site_id"].astype(str).to_numpy(),
            "cohort": None,
            "window_start": hit["window_start"].values,
            "window_end": ends.values,
            "evidence_id": _hashes("s-", hit["site_id"], hit["window_start"], hit["cause"]),
            "evidence_type": "site",
            "alert_id": None,
            "source": "site",
            "severity": None,
            "max_score": 0.0,
            "models_flagging": np.int64(0),
            "cause": hit["cause"].to_numpy(),
            "confidence": hit["share"].astype(float).to_numpy(),
            "cause_evidence": [json.dumps(e) for e in evidence],
            "base": None,
            "detail": hit["cause"].to_numpy(),
        }
    )
    out["key"] = out["site_id"]
    out["track"] = SITE_TRACK + ":" + out["cause"]
    out["window_start"] = _utc(out["window_start"])
    out["window_end"] = _utc(out["window_end"])
    return out


def _warm_sites(signals: pd.DataFrame, policy: IncidentPolicy) -> set[str]:
    """Sites with a device signal named after the warm room (``site_ambient.cause``)."""
    warm = signals.loc[signals["cause"].eq(policy.site_ambient.cause), "site_id"]
    return set(warm.dropna().astype(str)) - {UNKNOWN}


def _ambient_signals(
    diagnoses: pd.DataFrame | None,
    quality: pd.DataFrame | None,
    devices: pd.DataFrame | None,
    alerted_sites: set[str],
    policy: IncidentPolicy,
) -> pd.DataFrame:
    """Windows in which a site's rooms were warmer than usual together: at least
    ``site_ambient.quorum_share`` of the site's reporting devices (``min_site_devices`` or more)
    have the window diagnosed with the warm-room cause, at the ``alerted_sites`` only (those
    with an alert named after the warm room: the context explains something there; a warm site
    whose alerts are all faults', or without any, is nobody's incident)."""
    rules = policy.site_ambient
    if (
        diagnoses is None
        or diagnoses.empty
        or quality is None
        or quality.empty
        or devices is None
        or devices.empty
        or not alerted_sites
    ):
        return _empty_signals()
    warm = diagnoses.loc[diagnoses["cause"].eq(rules.cause), ["device_id", "window_start"]]
    if warm.empty:
        return _empty_signals()
    sites = devices.drop_duplicates("device_id").set_index("device_id")["site_id"].astype(str)
    # Only the sites both warm somewhere and alerting are judged: their devices' windows alone
    # are read (an hour of a large fleet has millions).
    judged = set(sites.reindex(warm["device_id"].astype(str).unique()).dropna()) & alerted_sites
    q = quality[quality["device_id"].isin(sites.index[sites.isin(judged)]).to_numpy()]
    q = q.loc[~_silent(q, policy), ["device_id", "window_start", "window_end"]]
    if q.empty:
        return _empty_signals()
    q = q.assign(site_id=q["device_id"].map(sites).to_numpy(), window_start=_utc(q["window_start"]))
    q = q.drop_duplicates(["device_id", "window_start"])
    hot = pd.MultiIndex.from_arrays(
        [warm["device_id"].astype(str), _utc(warm["window_start"])]
    ).drop_duplicates()
    q["warm"] = pd.MultiIndex.from_arrays([q["device_id"].astype(str), q["window_start"]]).isin(hot)
    counts = q.groupby(["site_id", "window_start"]).agg(
        n=("warm", "size"), warm=("warm", "sum"), window_end=("window_end", "max")
    )
    counts = counts.reset_index()
    counts["share"] = counts["warm"] / counts["n"]
    hit = counts[
        (counts["n"] >= policy.site_events.min_site_devices)
        & (counts["warm"] > 0)
        & (counts["share"] >= rules.quorum_share)
    ].assign(cause=rules.cause)
    evidence = [
        [{"devices_warm_share": round(float(s), 3), "site_devices": int(k)}]
        for s, k in zip(hit["share"], hit["n"], strict=True)
    ]
    return _site_rows(hit, _utc(hit["window_end"]), evidence)


def _idle_draw(q: pd.DataFrame, rules: SiteEventPolicy) -> tuple[np.ndarray, np.ndarray]:
    """Per window, of devices that usually draw an idle current (controller, fans): whether it
    still draws it (it has supply) and whether it idled without it (no supply while it idled).
    Usual: the device's median ``idle_draw_feature`` over the windows of ``q`` in which it drew
    at least ``idle_draw_min_amps`` (a cut over most of them leaves the usual draw as it was;
    a device that never drew that much is not judged); a window draws it above
    ``idle_draw_ratio`` of that. Both False where the device did not idle or either draw is
    unknown."""
    draw = pd.to_numeric(q[rules.idle_draw_feature], errors="coerce").astype(float)
    powered = draw.where(draw >= rules.idle_draw_min_amps)
    usual = powered.groupby(q["device_id"].to_numpy()).transform("median").to_numpy(dtype=float)
    now = draw.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        judged = usual >= rules.idle_draw_min_amps
        return judged & (now > rules.idle_draw_ratio * usual), judged & (
            now <= rules.idle_draw_ratio * usual
        )


def _site_alert_signals(
    signals: pd.DataFrame, causes: CauseTable, policy: IncidentPolicy
) -> pd.DataFrame:
    """Site events seen in alerts: when at least ``min_site_devices`` devices of one site alert
    with the same site-class cause (a streaming power-loss rule firing across a site), the
    site has one incident of that cause, which explains (inhibits) the devices' own."""
    if signals.empty:
        return _empty_signals()
    kind = signals["cause"].map(causes.kind)
    site_wide = signals[kind.eq("site").to_numpy() & signals["site_id"].ne(UNKNOWN).to_numpy()]
    if site_wide.empty:
        return _empty_signals()
    devices = site_wide.groupby(["site_id", "cause"])["device_id"].transform("nunique")
    hit = site_wide[devices.to_numpy() >= policy.site_events.min_site_devices]
    if hit.empty:
        return _empty_signals()
    out = hit.assign(
        key=hit["site_id"],
        track=SITE_TRACK + ":" + hit["cause"],
        device_id=None,
        cohort=None,
        evidence_id=_hashes("s-", hit["site_id"], hit["window_start"], hit["cause"]),
        evidence_type="site",
        alert_id=None,
        source="site",
        severity=None,
        detail=hit["cause"],
        base=None,
    )
    return out.drop_duplicates("evidence_id").reset_index(drop=True)


def _evaporator(
    signals: pd.DataFrame, quality: pd.DataFrame | None, severity: SeverityPolicy
) -> np.ndarray:
    """The evaporator temperature of each signal's window, where the window was measured and
    held no defrost (``severity.defrost_feature`` above 0): a defrost heats the coil on purpose,
    it is no excursion of the cabinet."""
    feature = severity.evaporator_feature
    if quality is None or quality.empty or feature not in quality or signals.empty:
        return np.full(len(signals), np.nan)
    defrost = severity.defrost_feature
    columns = ["device_id", "window_start", feature]
    if defrost in quality:
        columns.append(defrost)
    q = quality.loc[quality["device_id"].isin(set(signals["device_id"].dropna())), columns].copy()
    q["window_start"] = _utc(q["window_start"])
    q = q.drop_duplicates(["device_id", "window_start"])
    if defrost in q:
        heated = pd.to_numeric(q[defrost], errors="coerce").fillna(0.0).to_numpy() > 0
        q[feature] = q[feature].astype(float).where(~heated)
    merged = signals[["device_id", "window_start"]].merge(
        q, on=["device_id", "window_start"], how="left"
    )
    return merged[feature].to_numpy(dtype=float)


def _silence_refrigeration(
    signals: pd.DataFrame, quality: pd.DataFrame | None, policy: IncidentPolicy
) -> None:
    """A device that reported (almost) nothing is never a refrigeration fault: its device-track
    signals in silent windows become communications tickets (in place)."""
    if quality is None or quality.empty or signals.empty:
        return
    silent = quality[_silent(quality, policy)]
    if silent.empty:
        return
    keys = pd.MultiIndex.from_arrays(
        [silent["device_id"].astype(str), _utc(silent["window_start"])]
    )
    at = pd.MultiIndex.from_arrays([signals["device_id"].astype(str), signals["window_start"]])
    hit = at.isin(keys) & signals["track"].eq(DEVICE_TRACK).to_numpy()
    if hit.any():
        signals.loc[hit, "cause"] = policy.sensor_tickets.silent_cause
        signals.loc[hit, "track"] = f"{SENSOR_TRACK}:SILENT"
        signals.loc[hit, "detail"] = "SILENT"
        signals.loc[hit, "base"] = policy.severity.sensor


# -- grouping -----------------------------------------------------------------------------


def _prior_rows(open_incidents: pd.DataFrame | None) -> pd.DataFrame:
    """Stored incidents as the first signal of their own episode."""
    if open_incidents is None or open_incidents.empty:
        return _empty_signals().assign(prior_id=pd.Series(dtype=object))
    p = open_incidents.reset_index(drop=True)
    key = np.where(p["scope"].eq("site"), p["site_id"], p["device_id"]).astype(object)
    return pd.DataFrame(
        {
            "key": key,
            "track": p["track"].astype(str),
            "device_id": p["device_id"],
            "site_id": p["site_id"].astype(str),
            "cohort": p["cohort"],
            "window_start": _utc(p["first_window_start"]),
            "window_end": _utc(p["last_window_end"]),
            "evidence_id": None,
            "evidence_type": "prior",
            "alert_id": None,
            "source": None,
            "severity": p["severity"].astype(str),
            "max_score": p["max_score"].astype(float),
            "models_flagging": p["max_models_flagging"].fillna(0).astype("int64"),
            "cause": p["cause"].astype(str),
            "confidence": p["cause_confidence"].astype(float),
            "cause_evidence": p["cause_evidence"].astype(str),
            "base": p["base_severity"].astype(str),
            "detail": p["detail"].astype(str),
            "evaporator": pd.to_numeric(p["evaporator_start_c"], errors="coerce"),
            "prior_id": p["incident_id"].astype(str),
            "is_prior": True,
            "status": p["status"].astype(str),
            "closed_at": _utc(p["closed_at"]),
        }
    )


def _device_fault(cause: pd.Series, causes: CauseTable) -> np.ndarray:
    """Per cause, whether it is a device's own fault (not a sensor's, not a site's)."""
    return cause.map(causes.kind).isin(DEVICE_FAULT_KINDS).to_numpy()


def _rule_named(s: pd.DataFrame, causes: CauseTable) -> np.ndarray:
    """Per signal, whether its cause is a device fault a streaming rule named alone: a streaming
    alert, or a stored device incident, whose cause carries no diagnosis evidence (a site's
    power cut stays the site's)."""
    source = s["source"].to_numpy(dtype=object)
    bare = s["cause_evidence"].to_numpy(dtype=object) == "[]"
    device = s["track"].to_numpy(dtype=object) == DEVICE_TRACK
    named = device & bare & ((source == "streaming") | s["is_prior"].to_numpy(dtype=bool))
    return named & _device_fault(s["cause"], causes)


def _diagnose_rule_named(
    rows: pd.DataFrame, diagnoses: pd.DataFrame | None, policy: IncidentPolicy, causes: CauseTable
) -> None:
    """A streaming rule's cause (in place) takes the diagnosis of its device's windows where
    these name another device fault for at least ``cause_change_min_signals`` windows in a
    row, from the rule's first window to the hysteresis after its last: the episode the rule
    opened, read by the multi-feature signatures (alerted or not: a rule firing is often the
    episode's only alert). Its confidence, evidence and base severity come with it."""
    if diagnoses is None or diagnoses.empty or rows.empty:
        return
    cause = rows["cause"].to_numpy(dtype=object)
    rule = _rule_named(rows, causes) & (cause != UNKNOWN)
    if not rule.any():
        return
    d = diagnoses[["device_id", "window_start", "window_end", "cause", "confidence", "evidence"]]
    d = d[d["device_id"].astype(str).isin(set(rows.loc[rule, "device_id"].astype(str)))]
    d = d[_device_fault(d["cause"], causes)]
    if d.empty:
        return
    d = d.assign(
        device_id=d["device_id"].astype(str),
        window_start=_utc(d["window_start"]),
        window_end=_utc(d["window_end"]),
        base=d["cause"].map(causes.severity),
    ).drop_duplicates(["device_id", "window_start"], keep="last")
    r = rows.loc[rule, ["device_id", "window_start", "window_end", "cause"]]
    r = r.assign(row=np.flatnonzero(rule), device_id=r["device_id"].astype(str))
    m = r.merge(d, on="device_id", suffixes=("", "_dx"))
    reach = m["window_end"] + policy.hysteresis
    m = m[(m["window_end_dx"] > m["window_start"]) & (m["window_start_dx"] < reach)]
    m = m[m["cause_dx"].ne(m["cause"])].sort_values(["row", "window_start_dx"], kind="stable")
    if m.empty:
        return
    # Runs of adjacent windows of one cause, per rule signal.
    prev_end = m.groupby("row")["window_end_dx"].shift()
    prev_cause = m.groupby("row")["cause_dx"].shift()
    new_run = prev_end.ne(m["window_start_dx"]) | prev_cause.ne(m["cause_dx"])
    run = new_run.cumsum()
    held = m.groupby(run)["cause_dx"].transform("size") >= policy.cause_change_min_signals
    m = m[held.to_numpy()]
    if m.empty:
        return
    first_run = run[m.index].eq(run[m.index].groupby(m["row"]).transform("first"))
    best = m[first_run.to_numpy()].sort_values("confidence", kind="stable").groupby("row").last()
    at = best.index.to_numpy()
    rows.loc[rows.index[at], "cause"] = best["cause_dx"].to_numpy()
    rows.loc[rows.index[at], "confidence"] = best["confidence"].astype(float).to_numpy()
    rows.loc[rows.index[at], "cause_evidence"] = best["evidence"].astype(str).to_numpy()
    rows.loc[rows.index[at], "base"] = best["base"].to_numpy()


def _yielding_rule_causes(
    s: pd.DataFrame, run: np.ndarray, known: np.ndarray, policy: IncidentPolicy, causes: CauseTable
) -> np.ndarray:
    """Per signal, whether its cause was named by a streaming rule alone and yields to the
    diagnosis of its episode: a rule reads one sensor, the signature several features, so where
    the episode's windows are diagnosed with another cause for at least
    ``cause_change_min_signals`` signals in a row, the rule's name is taken as unknown (the
    incident is renamed, not split in two, and its stored severity kept). A stored incident
    counts as rule-named where its cause carries no diagnosis evidence. Device faults only: a
    site's or a sensor's track keeps its causes."""
    rule = known & _rule_named(s, causes)
    diagnosed = known & ~rule
    if not rule.any() or not diagnosed.any():
        return np.zeros(len(s), dtype=bool)
    d = pd.DataFrame(
        {
            "run": run[diagnosed],
            "cause": s["cause"].to_numpy(dtype=object)[diagnosed],
            "prior": s["is_prior"].to_numpy(dtype=bool)[diagnosed],
        }
    )
    prev = d.groupby("run")["cause"].shift()
    block = (prev.isna() | (d["cause"] != prev)).cumsum()
    # A stored incident's diagnosed cause held when it was named.
    held = (
        d.groupby(block)["cause"].transform("size").to_numpy() >= policy.cause_change_min_signals
    ) | d.groupby(block)["prior"].transform("any").to_numpy()
    confirmed = pd.MultiIndex.from_arrays([d["run"][held], d["cause"][held]]).unique()
    runs = pd.Index(confirmed.get_level_values(0)).unique()
    same = pd.MultiIndex.from_arrays([run, s["cause"].to_numpy(dtype=object)]).isin(confirmed)
    return rule & pd.Index(run).isin(runs) & ~same


def _effective_causes(
    s: pd.DataFrame, run: np.ndarray, policy: IncidentPolicy, causes: CauseTable
) -> np.ndarray:
    """Per signal, the cause of the incident it belongs to: unknown signals take their
    neighbours' known cause; a known cause holding for fewer than ``cause_change_min_signals``
    signals (after the first cause of the run) is a flicker and takes the preceding cause.
    A warm room (``site_ambient.cause``) is no fault: like unknown it takes a fault named in
    the same episode, and names the episode only where none is. A streaming rule's cause that
    the episode's diagnosis contradicts (:func:`_yielding_rule_causes`) counts as unknown."""
    cause = s["cause"].to_numpy(dtype=object)
    warm = cause == policy.site_ambient.cause
    known = (cause != UNKNOWN) & ~warm
    known &= ~_yielding_rule_causes(s, run, known, policy, causes)
    eff = pd.Series(np.where(known, cause, None), dtype=object)
    if known.any():
        k = pd.DataFrame(
            {
                "run": run[known],
                "cause": cause[known],
                "prior": s["is_prior"].to_numpy()[known],
            }
        )
        prev = k.groupby("run")["cause"].shift()
        block = (prev.isna() | (k["cause"] != prev)).cumsum()
        size = k.groupby(block)["cause"].transform("size")
        has_prior = k.groupby(block)["prior"].transform("any")
        first = ~k["run"].duplicated()
        first_block = block.isin(block[first.to_numpy()])
        weak = (size < policy.cause_change_min_signals) & ~has_prior & ~first_block
        kept = k["cause"].where(~weak)
        kept = kept.groupby(k["run"].to_numpy()).ffill()
        eff.loc[np.flatnonzero(known)] = kept.to_numpy()
    by_run = pd.Series(run)
    eff = eff.groupby(by_run.to_numpy()).ffill()
    eff = eff.groupby(by_run.to_numpy()).bfill()
    if warm.any():
        warm_run = pd.Series(warm).groupby(by_run.to_numpy()).transform("any").to_numpy()
        eff = eff.where(eff.notna() | ~warm_run, policy.site_ambient.cause)
    return eff.fillna(UNKNOWN).to_numpy(dtype=object)


def _group(signals: pd.DataFrame, policy: IncidentPolicy, causes: CauseTable) -> pd.DataFrame:
    """Assign every signal (and stored incident) its incident: ``incident_id``, ``reopened``.

    Tracks, episodes, segments and reopening chains are runs of the sorted rows, found on their
    arrays (comparisons with the previous row, cumulative sums), not by pandas groupings: the
    fixed cost per grouping was most of an hour's small build."""
    s = signals.sort_values(
        ["key", "track", "window_start", "is_prior", "window_end"],
        ascending=[True, True, True, False, True],
        kind="mergesort",
        ignore_index=True,
    )
    hysteresis = pd.Timedelta(policy.hysteresis).value
    key, track = s["key"].to_numpy(dtype=object), s["track"].to_numpy(dtype=object)
    same_track = np.r_[False, _same_as_previous(key) & _same_as_previous(track)]
    track_id = np.cumsum(~same_track)
    starts, ends = _ns(s["window_start"]), _ns(s["window_end"])
    is_prior = s["is_prior"].to_numpy(dtype=bool)
    # A new track, or a signal the hysteresis (or more) after the latest end of its track so
    # far, opens an episode.
    since, known = _since(starts, np.r_[NAT, _running_max(ends, track_id)[:-1]])
    gap = ~same_track | (known & (since >= hysteresis))
    # A stored incident continues whatever precedes it within the hysteresis; only a second
    # stored incident of the same track stays apart (they were split by a cause change).
    before = np.cumsum(is_prior) - is_prior
    priors_before = before - before[np.flatnonzero(~same_track)][track_id - 1]
    gap |= is_prior & (priors_before > 0)
    run = np.cumsum(gap)
    cause = _effective_causes(s, run, policy, causes)
    s["cause"] = cause
    opens = gap | np.r_[False, ~_same_as_previous(cause)]
    segment = np.cumsum(opens)
    s["segment"] = segment
    # Per segment (in order): its first row, extent, cause and stored incident.
    first = np.flatnonzero(opens)
    of, size = segment - 1, len(first)
    seg_key = _first_valid(key, of, size)
    seg_track = _first_valid(track, of, size)
    seg_cause = _first_valid(cause, of, size)
    seg_start = np.full(size, NAT, dtype=np.int64)
    earliest = np.full(size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(earliest, of[starts != NAT], starts[starts != NAT])
    seg_start[earliest != np.iinfo(np.int64).max] = earliest[earliest != np.iinfo(np.int64).max]
    seg_end = np.full(size, NAT, dtype=np.int64)
    np.maximum.at(seg_end, of, ends)
    prior_id = _first_valid(s["prior_id"].to_numpy(dtype=object), of, size)
    prior_status = _first_valid(s["status"].to_numpy(dtype=object), of, size)
    closed = _ns(s["closed_at"])[first]
    # A new episode reopens the previous incident of its track when the cause is compatible
    # and it returns within reopen_minutes of that incident's closing.
    prev_same = np.r_[False, _same_as_previous(seg_key) & _same_as_previous(seg_track)]
    quiet = np.where(seg_end != NAT, seg_end + hysteresis, NAT)
    prev_closing = np.r_[NAT, np.where(closed != NAT, closed, quiet)[:-1]]
    prev_cause = np.empty(size, dtype=object)
    prev_cause[1:] = seg_cause[:-1]
    # A site event (power cut, site communications) is the site's, not the device's: it does
    # not take over a closed unexplained episode of the device from before it. (An unexplained
    # episode after it, such as the pull-down once the power is back, may still reopen it.)
    site_event = np.array([causes.kind(c) == SITE_TRACK for c in seg_cause], dtype=bool)
    compatible = (
        (prev_cause == seg_cause) | ((prev_cause == UNKNOWN) & ~site_event) | (seg_cause == UNKNOWN)
    )
    reopen_ns = pd.Timedelta(policy.reopen).value
    since, known = _since(seg_start, prev_closing)
    reopen = (
        prev_same
        & gap[first]
        & pd.isna(prior_id)
        & compatible
        & known
        & (since <= reopen_ns)
        & (reopen_ns > 0)
        & ~np.r_[False, prior_status[:-1] == "FALSE_POSITIVE"]
    )
    chain = np.cumsum(~reopen) - 1
    chains = int(chain[-1]) + 1
    ids = _first_valid(prior_id, chain, chains)[chain]
    known_start = seg_start.astype(object)
    known_start[seg_start == NAT] = None
    root_start = _first_valid(known_start, chain, chains)[chain]
    fresh = np.flatnonzero(pd.isna(ids))
    ids[fresh] = [
        incident_id(k, t, pd.Timestamp(int(st), tz="UTC") if st is not None else pd.NaT)
        for k, t, st in zip(seg_key[fresh], seg_track[fresh], root_start[fresh], strict=True)
    ]
    s["incident_id"] = ids[of]
    s["reopened"] = reopen[of]
    return s


NAT = np.iinfo(np.int64).min  # NaT in UTC nanoseconds (_ns)


def _same_as_previous(values: np.ndarray) -> np.ndarray:
    """Per value after the first, whether it equals the one before (a missing value equals
    nothing, as in pandas' ``eq``)."""
    missing = pd.isna(values)
    return (values[1:] == values[:-1]) & ~missing[1:] & ~missing[:-1]


def _since(later: np.ndarray, earlier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``later - earlier`` of UTC nanoseconds, and where both are known (not NaT)."""
    known = (later != NAT) & (earlier != NAT)
    return np.where(known, later, 0) - np.where(known, earlier, 0), known


def _running_max(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The running maximum of UTC nanoseconds within each run of equal, ascending ``groups``;
    NaT is skipped (and stays NaT at its own place), as in pandas' grouped ``cummax``."""
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    offset = groups.astype(np.int64) * len(values)
    out = values[order[np.maximum.accumulate(rank + offset) - offset]]
    out[values == NAT] = NAT
    return out


def _first_valid(values: np.ndarray, groups: np.ndarray, size: int) -> np.ndarray:
    """Per group (0..size-1), the first of ``values`` that is not missing, as pandas' grouped
    ``first()`` picks it; None where the group has none."""
    valid = np.flatnonzero(~pd.isna(values))
    none = np.iinfo(np.int64).max
    first = np.full(size, none, dtype=np.int64)
    np.minimum.at(first, groups[valid], valid)
    out = np.full(size, None, dtype=object)
    out[first != none] = values[first[first != none]]
    return out


# -- incidents ----------------------------------------------------------------------------


def _kind(cause: pd.Series, track: pd.Series, causes: CauseTable) -> pd.Series:
    kind = cause.map(causes.kind)
    kind = kind.where(~track.str.startswith(SENSOR_TRACK), "sensor")
    kind = kind.where(~track.str.startswith(SITE_TRACK), "site")
    return kind.fillna(UNKNOWN).where(cause.ne(UNKNOWN) | kind.notna(), UNKNOWN)


def _severity(inc: pd.DataFrame, policy: IncidentPolicy, causes: CauseTable) -> None:
    """Severity by impact (in place): cause class, evaporator excursion, persistence, agreement;
    never below the stored severity of an incident that was already open."""
    sev = policy.severity
    ranks = {s: i for i, s in enumerate(policy.severities)}
    base = inc["signal_base"].where(inc["signal_base"].notna(), inc["cause"].map(causes.severity))
    base = base.where(inc["cause"].ne(UNKNOWN), sev.unknown_cause).fillna(sev.unknown_cause)
    # A ticket of lost data (a sensor's, a silent device's, a whole site's readings stopping)
    # says nothing about the machines: the sensor severity, never raised, never paged.
    data_loss = (
        inc["kind"].eq("sensor") | inc["cause"].eq(policy.site_events.communications_loss_cause)
    ).to_numpy()
    base = base.where(~data_loss, sev.sensor)
    # A warm room is the context of faults, not one: its base severity, never raised; a site's
    # (its signals are its devices' windows) has no evaporator of its own to warm either.
    warm = inc["cause"].eq(policy.site_ambient.cause).to_numpy()
    held = data_loss | warm
    base_rank = base.map(ranks).to_numpy()
    excursion = (inc["evaporator_peak_c"] - inc["evaporator_start_c"]).fillna(0.0).to_numpy()
    duration = (inc["last_window_end"] - inc["first_window_start"]).to_numpy()
    raises = {
        f"evaporator +{sev.excursion_celsius:g} °C": excursion >= sev.excursion_celsius,
        f"lasting {sev.persistence}": duration >= np.timedelta64(sev.persistence),
        f"{sev.agreement_models}+ models agree": inc["max_models_flagging"].to_numpy()
        >= sev.agreement_models,
    }
    count = np.sum(list(raises.values()), axis=0) if len(inc) else np.zeros(0, dtype=int)
    cap = ranks[sev.raise_cap]
    rank = np.minimum(base_rank, np.maximum(base_rank - count, cap))
    rank = np.where(held, base_rank, rank)
    critical = (excursion >= sev.critical_excursion_celsius) & ~(warm & inc["scope"].eq("site"))
    rank = np.where(critical, 0, rank)
    rank = np.where(data_loss, ranks[sev.sensor], rank)
    prior = inc["prior_severity"].map(ranks).to_numpy(dtype=float)
    rank = np.where(np.isnan(prior), rank, np.minimum(rank, np.nan_to_num(prior, nan=99)))
    names = np.array(policy.severities, dtype=object)
    inc["base_severity"] = base.to_numpy()
    inc["severity"] = names[rank.astype(int)]
    reasons = []
    for i in range(len(inc)):
        why = [f"{inc['cause'].iat[i]}: {base.iat[i]}"]
        why += [name for name, hit in raises.items() if hit[i] and not held[i]]
        if critical[i] and not data_loss[i]:
            why.append(f"evaporator +{excursion[i]:.1f} °C: CRITICAL")
        reasons.append("; ".join(why))
    inc["severity_reasons"] = reasons


def _inhibit(inc: pd.DataFrame, policy: IncidentPolicy) -> None:
    """Device incidents and tickets a site incident of their site explains are inhibited and
    linked to it (in place): those overlapping it that began no earlier than the site event
    (within the hysteresis), and, where their cause is a device fault (not a site event, a
    sensor or unknown), ended by the time the site was quiet again. A fault that was there
    before the power cut, or that outlasts it, is the device's own and stays in sight. A site
    whose rooms are warm (``site_ambient``) explains only its devices' incidents named after
    the warm room.

    A stored incident already explained stays so (with its link) when the incident explaining
    it is not part of this build (the store's fold of a device's new alerts reads that device's
    incidents only)."""
    parent = inc["prior_parent"]
    keep = (parent.notna() & ~parent.isin(set(inc["incident_id"]))).to_numpy()
    inc["inhibited"] = keep
    inc["parent_incident_id"] = parent.where(keep, None)
    sites = inc[inc["scope"].eq("site")]
    if sites.empty:
        return
    devices = inc[inc["scope"].eq("device")].reset_index()
    columns = ["index", "site_id", "first_window_start", "last_window_end", "kind", "cause"]
    pairs = devices[columns].merge(
        sites[["site_id", "incident_id", "first_window_start", "quiet_until", "cause"]],
        on="site_id",
        suffixes=("", "_site"),
    )
    overlap = (pairs["first_window_start"] < pairs["quiet_until"]) & (
        pairs["last_window_end"] > pairs["first_window_start_site"]
    )
    began_with_it = pairs["first_window_start"] >= pairs["first_window_start_site"] - (
        policy.hysteresis
    )
    device_fault = ~pairs["kind"].isin([SITE_TRACK, SENSOR_TRACK, UNKNOWN])
    within = pairs["last_window_end"] <= pairs["quiet_until"]
    explained = ~device_fault | within
    # A warm room explains the incidents named after it (alerts no fault signature names, in
    # windows it shows in). A device fault, a failing sensor or an unexplained episode in it is
    # the device's own, however short: an unnamed fault may begin on a hot day.
    warm = pairs["cause_site"].eq(policy.site_ambient.cause)
    explained &= ~warm | pairs["cause"].eq(policy.site_ambient.cause)
    pairs = pairs[overlap & began_with_it & explained].drop_duplicates("index")
    inc.loc[pairs["index"], "inhibited"] = True
    inc.loc[pairs["index"], "parent_incident_id"] = pairs["incident_id"].to_numpy()


def _explanation(inc: pd.DataFrame) -> list[str]:
    out = []
    for scope, kind, cause, detail, site in zip(
        inc["scope"],
        inc["kind"],
        inc["cause"],
        inc["detail"],
        inc["site_id"],
        strict=True,
    ):
        if scope == "site":
            out.append(f"Site {site}: {cause.replace('_', ' ')} ({detail})")
        elif kind == "sensor":
            out.append(f"Sensor maintenance: {detail or cause}")
        else:
            what = (
                "unknown cause" if cause == UNKNOWN else f"probable cause {cause.replace('_', ' ')}"
            )
            out.append(f"{what}. {detail}".strip())
    return out


def build_incidents(
    alerts: pd.DataFrame | None,
    diagnoses: pd.DataFrame | None,
    *,
    quality: pd.DataFrame | None = None,
    devices: pd.DataFrame | None = None,
    policy: IncidentPolicy | None = None,
    open_incidents: pd.DataFrame | None = None,
    as_of: Any = None,
    causes: CauseTable | None = None,
    warn_never_reported: bool = True,
) -> IncidentBuild:
    """Group window-level signals into incidents (see the module docstring).

    ``alerts``: device_alerts rows. ``diagnoses``: probable cause per device window (columns of
    ``refrig_assets.incidents.causes.diagnose``). ``quality``: per device window health and
    activity (device_features columns: quality_mask or quality_flags, sensor_completeness,
    reading_count, duty_cycle, ``<current sensor>_mean``, the evaporator feature; any may be
    missing) for sensor tickets, silent devices, site events and the evaporator excursion.
    ``devices``: the registry (device_id, site_id, cohort) for site events. ``open_incidents``:
    stored incidents (with their ``track``) still open or closed within ``reopen_minutes``.
    ``as_of``: the data time up to which the fleet has been seen; incidents quiet since then
    close. ``warn_never_reported``: False when the caller reports ``never_reported`` itself
    (the asset, once per run), so the build logs it at debug level only. Returns the incidents
    this build touched and their evidence.
    """
    policy = policy or incident_policy()
    causes = causes or cause_table()
    contract = load_contract("device_incidents")
    never = _never_reported(quality, policy)
    if never and quality is not None:
        _log.log(
            logging.WARNING if warn_never_reported else logging.DEBUG,
            "%s",
            never_reported_message(never),
        )
        quality = _without_never_reported(quality, never)
        diagnoses = _undiagnose_never_reported(diagnoses, quality, policy)
    parts = [
        _alert_signals(alerts, diagnoses, causes),
        _diagnosis_signals(diagnoses, alerts, devices),
    ]
    device_signals = pd.concat(
        [p for p in parts if len(p)] or [_empty_signals()], ignore_index=True
    )
    device_signals["key"] = device_signals["device_id"]
    kinds = device_signals["cause"].map(causes.kind)
    device_signals["track"] = np.where(kinds.eq("sensor"), SENSOR_TRACK, DEVICE_TRACK)
    _join_sensor_tickets(device_signals, kinds, policy)
    _join_flagged_windows(device_signals, quality, policy)
    _silence_refrigeration(device_signals, quality, policy)
    device_signals["evaporator"] = _evaporator(device_signals, quality, policy.severity)
    frames = [
        device_signals,
        _quality_signals(quality, devices, policy, _still_silent(open_incidents), frozenset(never)),
        _site_signals(quality, devices, policy),
        _site_alert_signals(device_signals, causes, policy),
        _ambient_signals(diagnoses, quality, devices, _warm_sites(device_signals, policy), policy),
    ]
    signals = pd.concat([f for f in frames if len(f)] or [_empty_signals()], ignore_index=True)
    # Every signal column, whichever kinds of signal this build has.
    columns = [*_empty_signals().columns, "key", "track"]
    signals = signals.reindex(columns=list(dict.fromkeys([*columns, *signals.columns])))
    arrived_late, silence_ended = _arrived_late(open_incidents, signals, quality, policy)
    signals["is_prior"] = False
    signals["prior_id"] = None
    signals["status"] = None
    signals["closed_at"] = pd.NaT
    prior = _prior_rows(open_incidents)
    if silence_ended:
        # Its windows since then are no longer silent: the ticket now ends where they begin.
        ends = prior["prior_id"].map(silence_ended)
        prior["window_end"] = _utc(ends.where(ends.notna(), prior["window_end"]))
    rows = pd.concat([f for f in (signals, prior) if len(f)] or [signals], ignore_index=True)
    rows["closed_at"] = _utc(rows["closed_at"])
    rows["window_start"] = _utc(rows["window_start"])
    rows["window_end"] = _utc(rows["window_end"])
    if rows.empty:
        return IncidentBuild(
            contract.empty_frame(), pd.DataFrame(columns=EVIDENCE_COLUMNS), never_reported=never
        )
    _diagnose_rule_named(rows, diagnoses, policy, causes)
    grouped = _group(rows, policy, causes)
    evidence = grouped[~grouped["is_prior"]]
    # Sensor-health flags become tickets only once they persist (or when an alert is involved).
    spans = _per_group(
        evidence.groupby("incident_id"),
        start=("window_start", "min"),
        end=("window_end", "max"),
        alerts=("alert_id", "count"),
        track=("track", "first"),
    )
    known = set(prior["prior_id"]) if len(prior) else set()
    tickets = policy.sensor_tickets
    # A silent device is blind in every sensor (a communications ticket sooner than the
    # maintenance ticket of one failing sensor while the others still report).
    needed = np.where(
        spans["track"].eq(f"{SENSOR_TRACK}:SILENT"),
        np.timedelta64(tickets.silent_persistence),
        np.timedelta64(tickets.persistence),
    )
    short = (
        spans["track"].str.startswith(SENSOR_TRACK + ":")
        & ((spans["end"] - spans["start"]).to_numpy() < needed)
        & (spans["alerts"] == 0)
        & ~spans.index.isin(known)
    )
    dropped = set(spans.index[short])
    grouped = grouped[~grouped["incident_id"].isin(dropped)]
    absorbed = _absorb_into_tickets(grouped, policy)
    evidence = grouped[~grouped["is_prior"]]
    inc = _aggregate(grouped, prior, open_incidents, policy, causes)
    _close(inc, as_of, policy)
    _close_arrived_late(inc, arrived_late)
    _inhibit(inc, policy)
    _severity(inc, policy, causes)
    inc["explanation"] = _explanation(inc)
    out_evidence = _evidence(evidence)
    return IncidentBuild(
        inc[contract.column_names + ["track"]].reset_index(drop=True),
        out_evidence,
        absorbed,
        never,
        arrived_late,
    )


def _arrived_late(
    open_incidents: pd.DataFrame | None,
    signals: pd.DataFrame,
    quality: pd.DataFrame | None,
    policy: IncidentPolicy,
) -> tuple[list[str], dict[str, pd.Timestamp]]:
    """Live communications tickets (a silent device's) whose last windows the build's quality
    shows the device reporting in: the readings of those windows arrived after they were first
    built (a late file, its hour built again). Returns the tickets the device reported in every
    window of, which no silent window of the device continues (within the hysteresis): they are
    withdrawn; and, for the others, where the device's reporting without a break up to the
    ticket's end began: their silence ended there. A ticket whose last window is still silent,
    or that the build's windows do not reach, is left as it is."""
    none: tuple[list[str], dict[str, pd.Timestamp]] = ([], {})
    if open_incidents is None or open_incidents.empty or quality is None or quality.empty:
        return none
    if "track" not in open_incidents:
        return none
    silent_track = f"{SENSOR_TRACK}:SILENT"
    live = open_incidents[
        open_incidents["track"].eq(silent_track)
        & open_incidents["status"].isin(_OPEN_STATUSES)
        & open_incidents["closed_at"].isna()
    ]
    if live.empty:
        return none
    t = pd.DataFrame(
        {
            "incident_id": live["incident_id"].astype(str).to_numpy(),
            "key": live["device_id"].astype(str).to_numpy(),
            "first": _utc(live["first_window_start"]).to_numpy(),
            "last": _utc(live["last_window_end"]).to_numpy(),
        }
    )
    q = quality[quality["device_id"].astype(str).isin(set(t["key"]))]
    q = q[~_silent(q, policy)]
    reported = pd.DataFrame(
        {
            "key": q["device_id"].astype(str).to_numpy(),
            "window_start": _utc(q["window_start"]).to_numpy(),
            "window_end": _utc(q["window_end"]).to_numpy(),
        }
    ).drop_duplicates(["key", "window_start"])
    rows = t.merge(reported, on="key")
    rows = rows[(rows["window_start"] >= rows["first"]) & (rows["window_end"] <= rows["last"])]
    # Per ticket, its reported windows from the last back, as long as each ends where the
    # later one starts (the first of them ending at the ticket's end).
    rows = rows.sort_values(["incident_id", "window_start"], ascending=[True, False])
    later_start = rows.groupby("incident_id")["window_start"].shift().fillna(rows["last"])
    unbroken = rows["window_end"].eq(later_start).groupby(rows["incident_id"]).cummin()
    tail = rows[unbroken.to_numpy()].groupby("incident_id")["window_start"].min()
    first = t.set_index("incident_id")["first"].reindex(tail.index)
    silent = signals.loc[signals["track"].eq(silent_track), ["key", "window_start", "window_end"]]
    pairs = t.merge(silent.astype({"key": str}), on="key")
    touching = (pairs["window_start"] < pairs["last"] + policy.hysteresis) & (
        pairs["window_end"] + policy.hysteresis > pairs["first"]
    )
    whole = set(tail.index[tail.eq(first)])
    withdrawn = sorted(whole - set(pairs.loc[touching, "incident_id"]))
    ended = tail[tail.gt(first)]
    return withdrawn, {str(k): pd.Timestamp(v) for k, v in ended.items()}


def _close_arrived_late(inc: pd.DataFrame, arrived_late: list[str]) -> None:
    """The tickets whose readings arrived late (:func:`_arrived_late`) close (in place):
    RESOLVED by the system at the end of their windows, all of which the device reported in."""
    if not arrived_late:
        return
    late = inc["incident_id"].isin(arrived_late) & inc["closed_at"].isna()
    inc.loc[late, "closed_at"] = inc.loc[late, "last_window_end"]
    inc.loc[late, "status"] = "RESOLVED"


def _absorb_into_tickets(grouped: pd.DataFrame, policy: IncidentPolicy) -> dict[str, str]:
    """An unexplained device episode that was a failing sensor seen early joins that sensor's
    ticket (in place); returns the stored incidents so taken over (id → ticket id).

    A sensor-health flag is raised only once the failure shows in the readings for a while (a
    frozen value counts as STUCK_SENSOR after ``stuck_sensor_minutes``): the detectors may flag
    the frozen sensor's windows before that. An episode of unknown cause on the device track
    that begins at most the flag's lead time before the ticket's first window and runs into the
    ticket without a break (closer than the hysteresis) is that ticket's: its signals of this
    build move to the ticket, and a stored one is absorbed (its evidence moves; the store closes
    it as superseded). An episode with a known cause, one that began earlier, one an operator
    marked a false positive, or a silent device's ticket is left as it is."""
    leads = policy.sensor_tickets.lead
    tracks = {f"{SENSOR_TRACK}:{flag}": lead for flag, lead in leads.items()}
    on_ticket = grouped["track"].isin(tracks).to_numpy()
    device = grouped["track"].eq(DEVICE_TRACK).to_numpy()
    if not on_ticket.any() or not device.any():
        return {}
    rows = grouped[on_ticket | device]
    per = rows.groupby("incident_id", sort=True).agg(
        key=("key", "first"),
        track=("track", "first"),
        start=("window_start", "min"),
        end=("window_end", "max"),
    )
    known = rows["cause"].ne(UNKNOWN).groupby(rows["incident_id"]).any()
    false_positive = rows["status"].eq("FALSE_POSITIVE").groupby(rows["incident_id"]).any()
    candidates = per[per["track"].eq(DEVICE_TRACK) & ~known & ~false_positive]
    tickets = per[per["track"].isin(tracks)]
    pairs = (
        candidates.reset_index()
        .merge(tickets.reset_index(), on="key", suffixes=("", "_ticket"))
        .sort_values(["incident_id", "start_ticket"], kind="mergesort")
    )
    if pairs.empty:
        return {}
    lead = pd.to_timedelta(pairs["track_ticket"].map(tracks))
    joins = (
        (pairs["end"] + policy.hysteresis > pairs["start_ticket"])
        & (pairs["start"] < pairs["end_ticket"])
        & (pairs["start"] >= pairs["start_ticket"] - lead)
    )
    pairs = pairs[joins].drop_duplicates("incident_id")
    if pairs.empty:
        return {}
    to_ticket = pairs.set_index("incident_id")
    moving = grouped["incident_id"].isin(to_ticket.index) & ~grouped["is_prior"].astype(bool)
    target = grouped.loc[moving, "incident_id"]
    grouped.loc[moving, "track"] = target.map(to_ticket["track_ticket"]).to_numpy()
    grouped.loc[moving, "incident_id"] = target.map(to_ticket["incident_id_ticket"]).to_numpy()
    stored = grouped[
        grouped["is_prior"].astype(bool) & grouped["incident_id"].isin(to_ticket.index)
    ]
    return {
        str(prior_id): str(to_ticket.at[incident, "incident_id_ticket"])
        for prior_id, incident in zip(stored["prior_id"], stored["incident_id"], strict=True)
    }


def _aggregate(
    grouped: pd.DataFrame,
    prior: pd.DataFrame,
    open_incidents: pd.DataFrame | None,
    policy: IncidentPolicy,
    causes: CauseTable,
) -> pd.DataFrame:
    """One row per incident from its signals and, for a stored incident, its stored fields.

    Past the grouped minima, maxima and firsts, each figure is picked from the arrays of the
    signals sorted by incident (:func:`_last_of`, :func:`_last_valid`), not by a pandas grouping
    and a ``.loc`` assignment per figure: their fixed cost was most of an hour's small build."""
    g = grouped.sort_values(["incident_id", "window_start"], kind="mergesort")
    inc = _per_group(
        g.groupby("incident_id", sort=True),
        key=("key", "first"),
        track=("track", "first"),
        device_id=("device_id", "first"),
        site_id=("site_id", "first"),
        cohort=("cohort", "first"),
        first_window_start=("window_start", "min"),
        last_window_end=("window_end", "max"),
        max_score=("max_score", "max"),
        max_models_flagging=("models_flagging", "max"),
        evaporator_peak_c=("evaporator", "max"),
        reopened=("reopened", "any"),
        evaporator_start_c=("evaporator", "first"),
    )
    size = len(inc)
    ids = g["incident_id"].to_numpy(dtype=object)
    group = np.cumsum(np.r_[False, ids[1:] != ids[:-1]])  # g is sorted by incident
    signal_cause = g["cause"].to_numpy(dtype=object)
    known = np.flatnonzero(signal_cause != UNKNOWN)
    # The cause: the last known one. Its confidence and evidence: of the most confident
    # signal of that cause (the last of equals; missing confidences sort last).
    cause = np.full(size, UNKNOWN, dtype=object)
    last = _last_of(group[known], known, size)
    cause[last >= 0] = signal_cause[last[last >= 0]]
    confidence = g["confidence"].to_numpy(dtype=float)
    by_confidence = known[np.argsort(confidence[known], kind="stable")]
    ranked = group[by_confidence]
    best_cause = _last_valid(signal_cause[by_confidence], ranked, size)
    same = pd.Series(best_cause).eq(pd.Series(cause)).to_numpy()
    best_confidence = _last_valid(confidence[by_confidence], ranked, size).astype(float)
    cause_confidence = np.where(same & ~np.isnan(best_confidence), best_confidence, 0.0)
    evidence = g["cause_evidence"].to_numpy(dtype=object)
    best_evidence = _last_valid(evidence[by_confidence], ranked, size)
    cause_evidence = np.where(same & ~pd.isna(best_evidence), best_evidence, "[]").astype(object)
    # The strongest base severity among the signals of the incident's cause.
    ranks = {name: i for i, name in enumerate(policy.severities)}
    bases = g["base"].to_numpy(dtype=object)[known]
    rank = np.array([ranks.get(b, -1) if isinstance(b, str) else -1 for b in bases], dtype=int)
    own = (rank >= 0) & (signal_cause[known] == cause[group[known]])
    strongest = np.full(size, len(ranks), dtype=np.int64)
    np.minimum.at(strongest, group[known][own], rank[own])
    signal_base = np.array([*policy.severities, np.nan], dtype=object)[strongest]
    # This build's own signals: the first detail given, the alerts, the evidence, the sources.
    new = np.flatnonzero(~g["is_prior"].to_numpy(dtype=bool))
    details = g["detail"].to_numpy(dtype=object)
    told = new[~pd.isna(details[new]) & (details[new].astype(str) != "")]
    first = _first_of(group[told], told, size)
    detail = np.full(size, "", dtype=object)
    detail[first >= 0] = details[first[first >= 0]]
    alerted = new[g["alert_id"].notna().to_numpy()[new]]
    alert_count = np.bincount(group[alerted], minlength=size).astype(float)
    evidence_count = np.bincount(group[new], minlength=size).astype(float)
    named: list[set[str]] = [set() for _ in range(size)]
    for at, source in zip(group[new], g["source"].to_numpy(dtype=object)[new], strict=True):
        if not pd.isna(source):
            named[at].add(str(source))
    sources = np.array([",".join(sorted(s)) for s in named], dtype=object)
    track = inc["track"].to_numpy(dtype=object)
    device = np.array([not str(t).startswith(SITE_TRACK) for t in track], dtype=bool)
    status = np.full(size, "OPEN", dtype=object)
    closed_at = np.full(size, np.datetime64("NaT"), dtype="datetime64[ns]")
    reopen_count = np.zeros(size, dtype=float)
    prior_severity = np.full(size, None, dtype=object)
    prior_parent = np.full(size, None, dtype=object)
    start_c = inc["evaporator_start_c"].to_numpy(dtype=float)
    peak_c = inc["evaporator_peak_c"].to_numpy(dtype=float)
    incident_ids = inc.index.to_numpy(dtype=object)
    if open_incidents is not None and len(open_incidents):
        stored = open_incidents.set_index("incident_id")
        have = pd.Index(incident_ids).isin(stored.index)
        s = stored.reindex(incident_ids[have])
        status[have] = s["status"].to_numpy()
        closed_at[have] = _utc(s["closed_at"]).dt.tz_localize(None).to_numpy()
        reopen_count[have] = s["reopen_count"].astype(int).to_numpy()
        prior_severity[have] = s["severity"].to_numpy()
        if "parent_incident_id" in s and "inhibited" in s:
            explained = s["inhibited"].fillna(False).astype(bool).to_numpy()
            parent = s["parent_incident_id"].to_numpy(dtype=object)
            prior_parent[have] = np.where(explained, parent, None)
        alert_count[have] += s["alert_count"].to_numpy()
        evidence_count[have] += s["evidence_count"].to_numpy()
        sources[have] = [
            ",".join(sorted({*a.split(","), *b.split(",")} - {""}))
            for a, b in zip(sources[have], s["sources"].astype(str), strict=True)
        ]
        stored_start = pd.to_numeric(s["evaporator_start_c"], errors="coerce").to_numpy()
        start_c[have] = np.where(np.isnan(stored_start), start_c[have], stored_start)
        detail[have] = np.where(detail[have] == "", s["detail"].fillna("").to_numpy(), detail[have])
        stored_peak = pd.to_numeric(s["evaporator_peak_c"], errors="coerce").to_numpy()
        peak_c[have] = np.fmax(peak_c[have], stored_peak)
    # A reopened incident is live again: its closing is undone, the reopening counted.
    reopened = inc["reopened"].to_numpy(dtype=bool)
    again = reopened & ~np.isnat(closed_at)
    reopen_count[again] += 1
    closed_at[again] = np.datetime64("NaT")
    status[again & (status == "RESOLVED")] = "OPEN"
    fresh_reopen = reopened & ~again & pd.isna(prior_severity)
    if fresh_reopen.any():
        counted = _reopens_in_build(grouped).reindex(incident_ids[fresh_reopen])
        reopen_count[fresh_reopen] = counted.to_numpy()
    cause_series = pd.Series(cause, dtype=object)
    out = pd.DataFrame(
        {
            "incident_id": incident_ids,
            "key": inc["key"].to_numpy(),
            "track": track,
            "device_id": np.where(device, inc["device_id"].to_numpy(dtype=object), None),
            "site_id": inc["site_id"].to_numpy(),
            "cohort": np.where(device, inc["cohort"].to_numpy(dtype=object), None),
            "first_window_start": inc["first_window_start"].array,
            "last_window_end": inc["last_window_end"].array,
            "max_score": inc["max_score"].to_numpy(),
            "max_models_flagging": inc["max_models_flagging"].to_numpy(),
            "evaporator_peak_c": peak_c,
            "reopened": reopened,
            "evaporator_start_c": start_c,
            "cause": cause,
            "cause_confidence": np.clip(cause_confidence.astype(float), 0.0, 1.0),
            "cause_evidence": cause_evidence,
            "signal_base": signal_base,
            "detail": detail,
            "alert_count": alert_count.astype("int64"),
            "evidence_count": evidence_count.astype("int64"),
            "sources": sources,
            "scope": np.where(device, "device", "site").astype(object),
            "kind": _kind(cause_series, pd.Series(track, dtype=object), causes).to_numpy(),
            "status": status,
            "closed_at": pd.to_datetime(closed_at, utc=True),
            "reopen_count": reopen_count.astype("int64"),
            "prior_severity": prior_severity,
            "prior_parent": prior_parent,
        }
    )
    out["quiet_until"] = out["last_window_end"] + policy.hysteresis
    out["max_models_flagging"] = out["max_models_flagging"].fillna(0).astype("int64")
    out["max_score"] = out["max_score"].fillna(0.0).clip(0.0, 1.0).astype(float)
    return out


def _last_of(groups: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """Per group (0..size-1), the largest of ``positions`` given for it, -1 where none."""
    out = np.full(size, -1, dtype=np.int64)
    np.maximum.at(out, groups, positions)
    return out


def _first_of(groups: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """Per group (0..size-1), the smallest of ``positions`` given for it, -1 where none."""
    out = np.full(size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(out, groups, positions)
    return np.where(out == np.iinfo(np.int64).max, -1, out)


def _last_valid(values: np.ndarray, groups: np.ndarray, size: int) -> np.ndarray:
    """Per group, the last of ``values`` (in their order) that is not missing, as pandas'
    grouped ``last()`` picks it; None where the group has none."""
    valid = np.flatnonzero(~pd.isna(values))
    last = _last_of(groups[valid], valid, size)
    out = np.full(size, None, dtype=object)
    out[last >= 0] = values[last[last >= 0]]
    return out


def _per_group(by: Any, **named: tuple[str, str]) -> pd.DataFrame:
    """``by.agg(**named)`` (named aggregation: output column = (column, function)), with one
    grouped call per function over all its columns instead of one per output column: the
    same values and types, a fraction of pandas' per-column cost on the small frames of an
    hour's build."""
    functions = dict.fromkeys(f for _, f in named.values())
    parts = {}
    for function in functions:
        columns = list(dict.fromkeys(c for c, f in named.values() if f == function))
        parts[function] = getattr(by[columns], function)()
    return pd.DataFrame(
        {out: parts[function][column] for out, (column, function) in named.items()},
        index=next(iter(parts.values())).index,
    )


def _reopens_in_build(grouped: pd.DataFrame) -> pd.Series:
    """How many times each incident was reopened within this build's own signals."""
    firsts = grouped.drop_duplicates("segment")
    return firsts[firsts["reopened"]].groupby("incident_id").size()


def _close(inc: pd.DataFrame, as_of: Any, policy: IncidentPolicy) -> None:
    """Incidents quiet for the hysteresis by ``as_of`` (or by a later signal of their track in
    this build, which then started another incident) close: RESOLVED by the system."""
    live = inc["status"].isin(_OPEN_STATUSES) & inc["closed_at"].isna()
    done = pd.Series(False, index=inc.index)
    if as_of is not None:
        stamp = pd.Timestamp(as_of)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        done = live & (inc["quiet_until"] <= stamp)
    later = inc.groupby(["key", "track"])["first_window_start"].transform("max")
    done = done | (live & (later >= inc["quiet_until"]))
    inc.loc[done, "closed_at"] = inc.loc[done, "quiet_until"]
    inc.loc[done, "status"] = "RESOLVED"


def _evidence(evidence: pd.DataFrame) -> pd.DataFrame:
    """The evidence links, each marked ``repeat`` when not the first of its incident."""
    e = evidence.sort_values(["incident_id", "window_start", "evidence_id"], kind="mergesort")
    e = e.drop_duplicates("evidence_id", keep="last")
    out = pd.DataFrame(
        {
            "evidence_id": e["evidence_id"].astype(str),
            "incident_id": e["incident_id"].astype(str),
            "evidence_type": e["evidence_type"].astype(str),
            "alert_id": e["alert_id"],
            "device_id": e["device_id"],
            "window_start": e["window_start"],
            "window_end": e["window_end"],
            "source": e["source"].astype(str),
            "severity": e["severity"],
            "max_score": e["max_score"].astype(float),
            "cause": e["cause"].astype(str),
            "confidence": e["confidence"].astype(float),
            "detail": e["detail"].astype(str),
        }
    )
    out["repeat"] = out["incident_id"].duplicated()
    return out.reset_index(drop=True)
