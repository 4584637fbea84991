"""Device incidents a site incident explains: inhibited and linked to it."""

from __future__ import annotations

import pandas as pd

from refrig_assets.incidents.policy import IncidentPolicy
from refrig_assets.incidents.signal_frame import SENSOR_TRACK, SITE_TRACK, UNKNOWN


def inhibit_explained(inc: pd.DataFrame, policy: IncidentPolicy) -> None:
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
