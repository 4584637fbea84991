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


def yield_rule_causes(
    s: pd.DataFrame,
    run: np.ndarray,
    diagnoses: pd.DataFrame | None,
    policy: IncidentPolicy,
    causes: CauseTable,
) -> None:
    """A device fault a streaming rule named alone meets the diagnosis of its episode (in
    place): of the device faults the episode holds (:func:`_held_diagnoses`), the one held
    nearest before the rule's window, else the first after it. Where that is the rule's own
    cause, the rule is confirmed: its signal carries the diagnosis's evidence (the incident is
    a diagnosed one, split as any other by a later held fault). Otherwise it yields: a rule
    reads one sensor, the signatures several features, so its signal takes the held fault's
    cause, confidence and evidence and the incident is renamed, not split in two. What the
    rule measured still counts: its signal keeps its base severity (a total cooling loss
    firing in a leak's episode raises the leak to CRITICAL), and a stored incident keeps its
    severity. ``s``: the signals sorted by track and time; ``run``: their episode."""
    cause = s["cause"].to_numpy(dtype=object)
    rule = _rule_named(s, causes) & (cause != UNKNOWN)
    if not rule.any():
        return
    held = _held_diagnoses(s, run, rule, diagnoses, policy, causes)
    if held.empty:
        return
    r = pd.DataFrame(
        {"row": np.flatnonzero(rule), "run": run[rule], "start": s["window_start"][rule].array}
    ).assign(cause=cause[rule])
    nearest = _nearest(r.merge(held, on="run", suffixes=("", "_dx")))
    at = s.index[nearest["row"].to_numpy()]
    s.loc[at, "cause_evidence"] = nearest["evidence"].astype(str).to_numpy()
    renamed = nearest["cause_dx"].ne(nearest["cause"]).to_numpy()
    s.loc[at[renamed], "cause"] = nearest.loc[renamed, "cause_dx"].to_numpy()
    s.loc[at[renamed], "confidence"] = nearest.loc[renamed, "confidence"].astype(float).to_numpy()


def _nearest(m: pd.DataFrame) -> pd.DataFrame:
    """Per rule signal (``row``) of ``m``, the held fault starting nearest before its window
    (``start_dx`` at or before ``start``), else the first after it."""
    m = m.sort_values(["row", "start_dx"], kind="stable")
    before = (m["start_dx"] <= m["start"]).to_numpy()
    nearest = [m[before].drop_duplicates("row", keep="last"), m[~before].drop_duplicates("row")]
    return pd.concat(nearest).drop_duplicates("row")


def _held_diagnoses(
    s: pd.DataFrame,
    run: np.ndarray,
    rule: np.ndarray,
    diagnoses: pd.DataFrame | None,
    policy: IncidentPolicy,
    causes: CauseTable,
) -> pd.DataFrame:
    """The device faults a diagnosis holds in each episode with a rule-named signal (columns
    run, start, cause, confidence, evidence): every ``cause_change_min_signals`` or more
    adjacent windows of the device diagnosed with one fault, alerted or not (a rule's firing is
    often the episode's only alert), from the episode's first window to the hysteresis after
    its last, with its most confident window's figures; and every stored incident of the
    episode that a diagnosis named (held when it was named)."""
    runs = np.unique(run[rule])
    mine = np.isin(run, runs)
    prior = mine & s["is_prior"].to_numpy(dtype=bool) & ~_rule_named(s, causes)
    prior &= (s["cause"].to_numpy(dtype=object) != UNKNOWN) & _device_fault(s["cause"], causes)
    parts = [
        pd.DataFrame(
            {
                "run": run[prior],
                "start": s["window_start"][prior].array,
                "cause": s["cause"][prior].to_numpy(),
                "confidence": s["confidence"][prior].to_numpy(),
                "evidence": s["cause_evidence"][prior].to_numpy(),
            }
        )
    ]
    if diagnoses is not None and len(diagnoses):
        span = (
            pd.DataFrame(
                {
                    "run": run[mine],
                    "device_id": s["key"][mine].astype(str).to_numpy(),
                    "first": s["window_start"][mine].array,
                    "last": s["window_end"][mine].array,
                }
            )
            .groupby("run")
            .agg(device_id=("device_id", "first"), first=("first", "min"), last=("last", "max"))
            .reset_index()
        )
        d = diagnoses[
            ["device_id", "window_start", "window_end", "cause", "confidence", "evidence"]
        ]
        d = d[d["device_id"].astype(str).isin(set(span["device_id"]))]
        d = d[_device_fault(d["cause"], causes)]
        d = d.assign(
            device_id=d["device_id"].astype(str),
            window_start=utc(d["window_start"]),
            window_end=utc(d["window_end"]),
        ).drop_duplicates(["device_id", "window_start"], keep="last")
        w = span.merge(d, on="device_id")
        w = w[(w["window_end"] > w["first"]) & (w["window_start"] < w["last"] + policy.hysteresis)]
        w = w.sort_values(["run", "window_start"], kind="stable")
        # Blocks of adjacent windows of one cause, per episode.
        new = (
            w["run"].ne(w["run"].shift())
            | w["window_start"].ne(w["window_end"].shift())
            | w["cause"].ne(w["cause"].shift())
        )
        block = new.cumsum()
        w = w.assign(block=block, start=w.groupby(block)["window_start"].transform("first"))
        w = w[w.groupby("block")["cause"].transform("size") >= policy.cause_change_min_signals]
        best = w.sort_values("confidence", kind="stable").drop_duplicates("block", keep="last")
        parts.append(best[["run", "start", "cause", "confidence", "evidence"]])
    return pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)


def effective_causes(s: pd.DataFrame, run: np.ndarray, policy: IncidentPolicy) -> np.ndarray:
    """Per signal, the cause of the incident it belongs to: unknown signals take their
    neighbours' known cause; a known cause holding for fewer than ``cause_change_min_signals``
    signals (after the first cause of the run) is a flicker and takes the preceding cause.
    A warm room (``site_ambient.cause``) is no fault: like unknown it takes a fault named in
    the same episode, and names the episode only where none is."""
    cause = s["cause"].to_numpy(dtype=object)
    warm = cause == policy.site_ambient.cause
    known = (cause != UNKNOWN) & ~warm
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
