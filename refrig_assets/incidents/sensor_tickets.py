"""Which signals go on a sensor-health ticket rather than the device's fault track, and how
communications tickets end when a silent device's readings arrive late."""

from __future__ import annotations

import pandas as pd

from refrig_assets.incidents.policy import IncidentPolicy
from refrig_assets.incidents.quality_signals import flag_bits, held_flags, silent_windows
from refrig_assets.incidents.signal_frame import (
    DEVICE_TRACK,
    OPEN_STATUSES,
    SENSOR_TRACK,
    UNKNOWN,
    utc,
)


def join_sensor_tickets(signals: pd.DataFrame, kinds: pd.Series, policy: IncidentPolicy) -> None:
    """Alerts explained by a sensor-health flag (the ``quality_flags`` value in their cause's
    evidence) go on that flag's ticket track: the alerts and the flag's own ticket are one
    incident, not two."""
    sensor = kinds.eq("sensor").to_numpy()
    if not sensor.any():
        return
    held = held_flags(signals["cause_evidence"])
    for flag in reversed(policy.sensor_tickets.flags):  # the first flag listed wins
        hit = sensor & held.str.contains(rf"\b{flag}\b", regex=True).to_numpy()
        signals.loc[hit, "track"] = f"{SENSOR_TRACK}:{flag}"


def join_flagged_windows(
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
        device_id=quality["device_id"].astype(str), window_start=utc(quality["window_start"])
    )
    bits = flag_bits(quality, policy.sensor_tickets.flags)
    track = pd.Series(None, index=q.index, dtype=object)
    for flag in reversed(policy.sensor_tickets.flags):  # the first flag listed wins
        track = track.where(~bits[flag], f"{SENSOR_TRACK}:{flag}")
    track = track.where(~silent_windows(quality, policy))
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


def silence_refrigeration(
    signals: pd.DataFrame, quality: pd.DataFrame | None, policy: IncidentPolicy
) -> None:
    """A device that reported (almost) nothing is never a refrigeration fault: its device-track
    signals in silent windows become communications tickets (in place)."""
    if quality is None or quality.empty or signals.empty:
        return
    silent = quality[silent_windows(quality, policy)]
    if silent.empty:
        return
    keys = pd.MultiIndex.from_arrays([silent["device_id"].astype(str), utc(silent["window_start"])])
    at = pd.MultiIndex.from_arrays([signals["device_id"].astype(str), signals["window_start"]])
    hit = at.isin(keys) & signals["track"].eq(DEVICE_TRACK).to_numpy()
    if hit.any():
        signals.loc[hit, "cause"] = policy.sensor_tickets.silent_cause
        signals.loc[hit, "track"] = f"{SENSOR_TRACK}:SILENT"
        signals.loc[hit, "detail"] = "SILENT"
        signals.loc[hit, "base"] = policy.severity.sensor


def still_silent_devices(open_incidents: pd.DataFrame | None) -> dict[str, pd.Timestamp]:
    """Devices whose communications ticket (a silent device's) is still open, with where the
    earliest began: silent since then, so they may have no row in any of the build's windows,
    but not before (a device is not silent before it ever reported)."""
    if open_incidents is None or open_incidents.empty or "track" not in open_incidents:
        return {}
    hit = open_incidents["track"].eq(f"{SENSOR_TRACK}:SILENT") & open_incidents["status"].isin(
        OPEN_STATUSES
    )
    live = open_incidents.loc[hit & open_incidents["device_id"].notna()]
    since = utc(live["first_window_start"]).groupby(live["device_id"].astype(str)).min()
    return {str(d): t for d, t in since.items()}


def arrived_late_tickets(
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
        & open_incidents["status"].isin(OPEN_STATUSES)
        & open_incidents["closed_at"].isna()
    ]
    if live.empty:
        return none
    t = pd.DataFrame(
        {
            "incident_id": live["incident_id"].astype(str).to_numpy(),
            "key": live["device_id"].astype(str).to_numpy(),
            "first": utc(live["first_window_start"]).to_numpy(),
            "last": utc(live["last_window_end"]).to_numpy(),
        }
    )
    q = quality[quality["device_id"].astype(str).isin(set(t["key"]))]
    q = q[~silent_windows(q, policy)]
    reported = pd.DataFrame(
        {
            "key": q["device_id"].astype(str).to_numpy(),
            "window_start": utc(q["window_start"]).to_numpy(),
            "window_end": utc(q["window_end"]).to_numpy(),
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


def absorb_into_tickets(grouped: pd.DataFrame, policy: IncidentPolicy) -> dict[str, str]:
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
