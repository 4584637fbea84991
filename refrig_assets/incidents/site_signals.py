"""Site signals: windows in which most devices of a site lost power or went silent together,
rooms warm together, or alerts named after one site-wide cause."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.incidents.cause_table import CauseTable
from refrig_assets.incidents.policy import IncidentPolicy, SiteEventPolicy
from refrig_assets.incidents.quality_signals import silent_windows
from refrig_assets.incidents.signal_frame import SITE_TRACK, UNKNOWN, empty_signals, hashes, utc


def site_signals(
    quality: pd.DataFrame | None, devices: pd.DataFrame | None, policy: IncidentPolicy
) -> pd.DataFrame:
    """Windows in which most registered devices of a site switched off or went silent together.

    Off: no compressor run, no current, stopped for ``min_off_minutes`` and, where the device
    draws an idle current, that draw gone (an idle compressor whose fans still run is powered);
    or, for such a device, idling in the window without its draw. Most: ``quorum_share`` of the
    site's devices that reported in the windows of ``quality``."""
    if quality is None or quality.empty or devices is None or devices.empty:
        return empty_signals()
    rules = policy.site_events
    reg = devices.drop_duplicates("device_id")[["device_id", "site_id"]]
    per_site = reg.groupby("site_id").size()
    per_site = per_site[per_site >= rules.min_site_devices]
    if per_site.empty:
        return empty_signals()
    q = quality
    # Integer codes of the windows' devices and of their sites, for every grouping below: the
    # registry is looked up once per device, and no grouping hashes the id strings again.
    device, ids = pd.factorize(q["device_id"], use_na_sentinel=False)
    site_of = pd.Index(ids).map(reg.set_index("device_id")["site_id"])
    site_code, site_ids = pd.factorize(site_of.to_numpy(dtype=object))
    site = site_code[device]
    known = site >= 0
    if not known.all():
        q, device, site = q[known], device[known], site[known]
    reporting = ~silent_windows(q, policy)
    current = f"{rules.current_sensor}_mean"
    off = reporting.copy()
    if "duty_cycle" in q:
        off &= q["duty_cycle"].fillna(0.0).to_numpy(dtype=float) <= rules.off_duty_cycle_max
    if current in q:
        off &= q[current].fillna(0.0).to_numpy(dtype=float) <= rules.current_off_amps
    if "duty_cycle" not in q and current not in q:
        off[:] = False
    starts, ends = utc(q["window_start"]), utc(q["window_end"])
    length = ((ends - starts).dt.total_seconds() / 60).to_numpy(dtype=float)
    stopped = length
    if rules.off_streak_feature in q:
        streak = q[rules.off_streak_feature].to_numpy(dtype=float)
        stopped = np.where(np.isnan(streak), stopped, streak)
    off &= stopped >= rules.min_off_minutes
    if rules.idle_draw_feature in q:
        drawing, lost = _idle_draw(q, device, rules)
        # An idle compressor whose fans still run is powered; one whose idle draw vanished lost
        # its supply for part of the window at least (a cut shorter than two windows, or not
        # aligned to them, leaves no window off throughout). Only in windows of min_off_minutes
        # or more: in shorter ones (1-minute windows at 1 s) a blip of a minute or two would be
        # a site power loss, where the stop's own length (above) decides.
        off = (off & ~drawing) | (reporting & lost & (length >= rules.min_off_minutes))
    counts = (
        pd.DataFrame({"site": site, "window_start": starts.values, "rep": reporting, "off": off})
        .groupby(["site", "window_start"])[["rep", "off"]]
        .sum()
    )
    counts.index = pd.MultiIndex.from_arrays(
        [site_ids[counts.index.get_level_values(0).to_numpy()], counts.index.get_level_values(1)],
        names=["site_id", "window_start"],
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
    named = ~pd.isna(ids.to_numpy())[device] & reporting  # a device without an id is no device
    active = pd.Series(device[named]).groupby(site[named]).nunique()
    active.index = site_ids[active.index.to_numpy()]
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
        return empty_signals()
    out = pd.DataFrame(
        {
            "device_id": None,
            "site_id": hit["site_id"].astype(str).to_numpy(),
            "cohort": None,
            "window_start": hit["window_start"].values,
            "window_end": ends.values,
            "evidence_id": hashes("s-", hit["site_id"], hit["window_start"], hit["cause"]),
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
    out["window_start"] = utc(out["window_start"])
    out["window_end"] = utc(out["window_end"])
    return out


def _idle_draw(
    q: pd.DataFrame, device: np.ndarray, rules: SiteEventPolicy
) -> tuple[np.ndarray, np.ndarray]:
    """Per window, of devices that usually draw an idle current (controller, fans): whether it
    still draws it (it has supply) and whether it idled without it (no supply while it idled).
    Usual: the device's median ``idle_draw_feature`` over the windows of ``q`` in which it drew
    at least ``idle_draw_min_amps`` (a cut over most of them leaves the usual draw as it was;
    a device that never drew that much is not judged); a window draws it above
    ``idle_draw_ratio`` of that. Both False where the device did not idle or either draw is
    unknown. ``device``: a code per row of ``q``, one per device."""
    draw = pd.to_numeric(q[rules.idle_draw_feature], errors="coerce").astype(float)
    powered = draw.where(draw >= rules.idle_draw_min_amps)
    usual = powered.groupby(device).transform("median").to_numpy(dtype=float)
    now = draw.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        judged = usual >= rules.idle_draw_min_amps
        return judged & (now > rules.idle_draw_ratio * usual), judged & (
            now <= rules.idle_draw_ratio * usual
        )


def site_alert_signals(
    signals: pd.DataFrame, causes: CauseTable, policy: IncidentPolicy
) -> pd.DataFrame:
    """Site events seen in alerts: when at least ``min_site_devices`` devices of one site alert
    with the same site-class cause (a streaming power-loss rule firing across a site), the
    site has one incident of that cause, which explains (inhibits) the devices' own."""
    if signals.empty:
        return empty_signals()
    kind = signals["cause"].map(causes.kind)
    site_wide = signals[kind.eq("site").to_numpy() & signals["site_id"].ne(UNKNOWN).to_numpy()]
    if site_wide.empty:
        return empty_signals()
    devices = site_wide.groupby(["site_id", "cause"])["device_id"].transform("nunique")
    hit = site_wide[devices.to_numpy() >= policy.site_events.min_site_devices]
    if hit.empty:
        return empty_signals()
    out = hit.assign(
        key=hit["site_id"],
        track=SITE_TRACK + ":" + hit["cause"],
        device_id=None,
        cohort=None,
        evidence_id=hashes("s-", hit["site_id"], hit["window_start"], hit["cause"]),
        evidence_type="site",
        alert_id=None,
        source="site",
        severity=None,
        detail=hit["cause"],
        base=None,
    )
    return out.drop_duplicates("evidence_id").reset_index(drop=True)


def warm_sites(signals: pd.DataFrame, policy: IncidentPolicy) -> set[str]:
    """Sites with a device signal named after the warm room (``site_ambient.cause``)."""
    warm = signals.loc[signals["cause"].eq(policy.site_ambient.cause), "site_id"]
    return set(warm.dropna().astype(str)) - {UNKNOWN}


def ambient_signals(
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
        return empty_signals()
    warm = diagnoses.loc[diagnoses["cause"].eq(rules.cause), ["device_id", "window_start"]]
    if warm.empty:
        return empty_signals()
    sites = devices.drop_duplicates("device_id").set_index("device_id")["site_id"].astype(str)
    # Only the sites both warm somewhere and alerting are judged: their devices' windows alone
    # are read (an hour of a large fleet has millions).
    judged = set(sites.reindex(warm["device_id"].astype(str).unique()).dropna()) & alerted_sites
    q = quality[quality["device_id"].isin(sites.index[sites.isin(judged)]).to_numpy()]
    q = q.loc[~silent_windows(q, policy), ["device_id", "window_start", "window_end"]]
    if q.empty:
        return empty_signals()
    q = q.assign(site_id=q["device_id"].map(sites).to_numpy(), window_start=utc(q["window_start"]))
    q = q.drop_duplicates(["device_id", "window_start"])
    hot = pd.MultiIndex.from_arrays(
        [warm["device_id"].astype(str), utc(warm["window_start"])]
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
    return _site_rows(hit, utc(hit["window_end"]), evidence)
