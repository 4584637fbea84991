"""The cause each signal gives its incident: unknown windows take their neighbours' cause, a
flicker keeps the cause before it, and a streaming rule's name yields to the diagnosis of
its episode."""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.incidents.cause_table import CauseTable
from refrig_assets.incidents.policy import IncidentPolicy
from refrig_assets.incidents.signal_frame import DEVICE_FAULT_KINDS, DEVICE_TRACK, UNKNOWN, utc


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


def diagnose_rule_named(
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
        window_start=utc(d["window_start"]),
        window_end=utc(d["window_end"]),
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


def effective_causes(
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
