"""One row per incident from its grouped signals (and its stored fields), its explanation,
and its evidence links."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.incidents.cause_table import CauseTable
from refrig_assets.incidents.policy import IncidentPolicy
from refrig_assets.incidents.signal_frame import SENSOR_TRACK, SITE_TRACK, UNKNOWN, utc


def aggregate_incidents(
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
    inc = per_group(
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
        closed_at[have] = utc(s["closed_at"]).dt.tz_localize(None).to_numpy()
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
    # A reopened incident is live again: its closing is undone, the reopening counted. So is a
    # closed one whose episode this build's signals carry on past its closing: a communications
    # ticket withdrawn (its readings arrived late) closes at its last window, not a hysteresis
    # later, so a true silence right after it continues its episode.
    last_end = utc(inc["last_window_end"]).dt.tz_localize(None).to_numpy()
    carried_on = ~np.isnat(closed_at) & (last_end > closed_at)
    reopened = inc["reopened"].to_numpy(dtype=bool) | carried_on
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


def _kind(cause: pd.Series, track: pd.Series, causes: CauseTable) -> pd.Series:
    kind = cause.map(causes.kind)
    kind = kind.where(~track.str.startswith(SENSOR_TRACK), "sensor")
    kind = kind.where(~track.str.startswith(SITE_TRACK), "site")
    return kind.fillna(UNKNOWN).where(cause.ne(UNKNOWN) | kind.notna(), UNKNOWN)


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


def per_group(by: Any, **named: tuple[str, str]) -> pd.DataFrame:
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


def explanations(inc: pd.DataFrame) -> list[str]:
    """Per incident, the sentence an operator reads: the site's event, the sensor's ticket, or
    the device's probable cause and first detail."""
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


def evidence_links(evidence: pd.DataFrame) -> pd.DataFrame:
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
