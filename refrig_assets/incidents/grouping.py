"""Signals grouped into incidents: tracks, episodes split by the hysteresis, segments split
by a cause change, and reopening chains, with each incident's deterministic id."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.incidents.cause_choice import effective_causes, yield_rule_causes
from refrig_assets.incidents.cause_table import CauseTable
from refrig_assets.incidents.policy import IncidentPolicy
from refrig_assets.incidents.signal_frame import (
    NAT,
    SITE_TRACK,
    UNKNOWN,
    empty_signals,
    utc,
    utc_ns,
)


def incident_id(key: str, track: str, first_window_start: Any) -> str:
    """Deterministic id of an incident: its device or site, its track and its first window."""
    raw = f"{key}|{track}|{pd.Timestamp(first_window_start).isoformat()}"
    return "inc-" + hashlib.sha1(raw.encode()).hexdigest()[:16]


def prior_rows(open_incidents: pd.DataFrame | None) -> pd.DataFrame:
    """Stored incidents as the first signal of their own episode."""
    if open_incidents is None or open_incidents.empty:
        return empty_signals().assign(prior_id=pd.Series(dtype=object))
    p = open_incidents.reset_index(drop=True)
    key = np.where(p["scope"].eq("site"), p["site_id"], p["device_id"]).astype(object)
    return pd.DataFrame(
        {
            "key": key,
            "track": p["track"].astype(str),
            "device_id": p["device_id"],
            "site_id": p["site_id"].astype(str),
            "cohort": p["cohort"],
            "window_start": utc(p["first_window_start"]),
            "window_end": utc(p["last_window_end"]),
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
            "closed_at": utc(p["closed_at"]),
        }
    )


def group_signals(
    signals: pd.DataFrame,
    diagnoses: pd.DataFrame | None,
    policy: IncidentPolicy,
    causes: CauseTable,
) -> pd.DataFrame:
    """Assign every signal (and stored incident) its incident: ``incident_id``, ``reopened``;
    ``diagnoses``: the device windows' probable causes, which a streaming rule's cause yields
    to (:func:`~refrig_assets.incidents.cause_choice.yield_rule_causes`).

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
    starts, ends = utc_ns(s["window_start"]), utc_ns(s["window_end"])
    is_prior = s["is_prior"].to_numpy(dtype=bool)
    # A new track, or a signal the hysteresis (or more) after the latest end of its track so
    # far, opens an episode.
    since, known = _since(starts, np.r_[NAT, _running_max(ends, track_id)[:-1]])
    gap = ~same_track | (known & (since >= hysteresis))
    episode = np.cumsum(gap)
    # A stored incident continues whatever precedes it within the hysteresis; only a second
    # stored incident of the same track stays apart (they were split by a cause change).
    before = np.cumsum(is_prior) - is_prior
    priors_before = before - before[np.flatnonzero(~same_track)][track_id - 1]
    gap |= is_prior & (priors_before > 0)
    run = np.cumsum(gap)
    yield_rule_causes(s, run, diagnoses, policy, causes)
    cause = effective_causes(s, run, policy)
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
    closed = utc_ns(s["closed_at"])[first]
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
    ids = _returning_causes_continue(ids, chain, chains, episode[first], seg_cause, prior_id)
    s["incident_id"] = ids[of]
    s["reopened"] = reopen[of]
    return s


def _returning_causes_continue(
    ids: np.ndarray,
    chain: np.ndarray,
    chains: int,
    episode: np.ndarray,
    cause: np.ndarray,
    prior_id: np.ndarray,
) -> np.ndarray:
    """Per segment, its incident id once a cause that returns within its episode continues the
    incident it had there: one fault that shows two causes in turn (a door left open on an
    overloaded compressor) is one incident per cause, not a new one at every change back.

    ``episode`` and ``cause`` per segment; a segment holding a stored incident keeps it. The
    segment's whole reopening chain follows it."""
    seg = pd.DataFrame({"episode": episode, "cause": cause})
    owner = (
        seg.index.to_series().groupby([seg["episode"], seg["cause"]], sort=False).transform("first")
    )
    owner = owner.to_numpy(dtype=np.int64)
    returns = (owner < np.arange(len(owner))) & pd.isna(prior_id)
    if not returns.any():
        return ids
    first_of_chain = np.r_[True, chain[1:] != chain[:-1]]
    target = np.arange(chains)
    for i in np.flatnonzero(returns & first_of_chain):
        # Chains ascend with the segments and an owner comes first: its target is final.
        target[chain[i]] = target[chain[owner[i]]]
    chain_ids = np.empty(chains, dtype=object)
    chain_ids[chain] = ids
    return chain_ids[target[chain]]


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
