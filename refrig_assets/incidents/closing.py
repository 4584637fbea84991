"""Incidents that close in a build: quiet for the hysteresis, or whose readings arrived late."""

from __future__ import annotations

from typing import Any

import pandas as pd

from refrig_assets.incidents.policy import IncidentPolicy
from refrig_assets.incidents.signal_frame import OPEN_STATUSES


def close_quiet(inc: pd.DataFrame, as_of: Any, policy: IncidentPolicy) -> None:
    """Incidents quiet for the hysteresis by ``as_of`` (or by a later signal of their track in
    this build, which then started another incident) close: RESOLVED by the system."""
    live = inc["status"].isin(OPEN_STATUSES) & inc["closed_at"].isna()
    done = pd.Series(False, index=inc.index)
    if as_of is not None:
        stamp = pd.Timestamp(as_of)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        done = live & (inc["quiet_until"] <= stamp)
    later = inc.groupby(["key", "track"])["first_window_start"].transform("max")
    done = done | (live & (later >= inc["quiet_until"]))
    inc.loc[done, "closed_at"] = inc.loc[done, "quiet_until"]
    inc.loc[done, "status"] = "RESOLVED"


def close_arrived_late(inc: pd.DataFrame, arrived_late: list[str]) -> None:
    """The tickets whose readings arrived late (:func:`arrived_late_tickets`) close (in place):
    RESOLVED by the system at the end of their windows, all of which the device reported in."""
    if not arrived_late:
        return
    late = inc["incident_id"].isin(arrived_late) & inc["closed_at"].isna()
    inc.loc[late, "closed_at"] = inc.loc[late, "last_window_end"]
    inc.loc[late, "status"] = "RESOLVED"
