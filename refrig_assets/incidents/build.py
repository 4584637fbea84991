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

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.incidents.aggregate import (
    aggregate_incidents,
    evidence_links,
    explanations,
    per_group,
)
from refrig_assets.incidents.alert_signals import (
    alert_signals,
    diagnosis_signals,
    evaporator_temperatures,
)
from refrig_assets.incidents.cause_table import CauseTable, cause_table
from refrig_assets.incidents.closing import close_arrived_late, close_quiet
from refrig_assets.incidents.grouping import group_signals, prior_rows
from refrig_assets.incidents.inhibition import inhibit_explained
from refrig_assets.incidents.never_reported import (
    never_reported_message,
    never_reported_sensors,
    undiagnose_never_reported,
    without_never_reported,
)
from refrig_assets.incidents.policy import IncidentPolicy, incident_policy
from refrig_assets.incidents.quality_signals import quality_signals
from refrig_assets.incidents.sensor_tickets import (
    absorb_into_tickets,
    arrived_late_tickets,
    join_flagged_windows,
    join_sensor_tickets,
    silence_refrigeration,
    still_silent_devices,
)
from refrig_assets.incidents.severity import assign_severity
from refrig_assets.incidents.signal_frame import (
    DEVICE_TRACK,
    DROPOUT_FLAG,
    SENSOR_TRACK,
    UNKNOWN,
    empty_signals,
    utc,
)
from refrig_assets.incidents.site_signals import (
    ambient_signals,
    site_alert_signals,
    site_signals,
    warm_sites,
)

# The names other packages import from here; the build's parts live in the modules above.
__all__ = [
    "DEVICE_TRACK",
    "DROPOUT_FLAG",
    "EVIDENCE_COLUMNS",
    "SENSOR_TRACK",
    "UNKNOWN",
    "IncidentBuild",
    "build_incidents",
    "cause_table",
    "never_reported_message",
]

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
    # unset): not a dropout of each device (see never_reported_sensors).
    never_reported: list[str] = field(default_factory=list)
    # Stored communications tickets this build closed because none of their windows is silent
    # any more: the device's readings for them arrived late (see arrived_late_tickets).
    arrived_late: list[str] = field(default_factory=list)


_log = logging.getLogger(__name__)


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
    never = never_reported_sensors(quality, policy)
    if never and quality is not None:
        _log.log(
            logging.WARNING if warn_never_reported else logging.DEBUG,
            "%s",
            never_reported_message(never),
        )
        quality = without_never_reported(quality, never)
        diagnoses = undiagnose_never_reported(diagnoses, quality, policy)
    parts = [
        alert_signals(alerts, diagnoses, causes),
        diagnosis_signals(diagnoses, alerts, devices),
    ]
    device_signals = pd.concat([p for p in parts if len(p)] or [empty_signals()], ignore_index=True)
    device_signals["key"] = device_signals["device_id"]
    kinds = device_signals["cause"].map(causes.kind)
    device_signals["track"] = np.where(kinds.eq("sensor"), SENSOR_TRACK, DEVICE_TRACK)
    join_sensor_tickets(device_signals, kinds, policy)
    join_flagged_windows(device_signals, quality, policy)
    silence_refrigeration(device_signals, quality, policy)
    device_signals["evaporator"] = evaporator_temperatures(device_signals, quality, policy.severity)
    frames = [
        device_signals,
        quality_signals(
            quality, devices, policy, still_silent_devices(open_incidents), frozenset(never)
        ),
        site_signals(quality, devices, policy),
        site_alert_signals(device_signals, causes, policy),
        ambient_signals(diagnoses, quality, devices, warm_sites(device_signals, policy), policy),
    ]
    signals = pd.concat([f for f in frames if len(f)] or [empty_signals()], ignore_index=True)
    # Every signal column, whichever kinds of signal this build has.
    columns = [*empty_signals().columns, "key", "track"]
    signals = signals.reindex(columns=list(dict.fromkeys([*columns, *signals.columns])))
    arrived_late, silence_ended = arrived_late_tickets(open_incidents, signals, quality, policy)
    signals["is_prior"] = False
    signals["prior_id"] = None
    signals["status"] = None
    signals["closed_at"] = pd.NaT
    prior = prior_rows(open_incidents)
    if silence_ended:
        # Its windows since then are no longer silent: the ticket now ends where they begin.
        ends = prior["prior_id"].map(silence_ended)
        prior["window_end"] = utc(ends.where(ends.notna(), prior["window_end"]))
    rows = pd.concat([f for f in (signals, prior) if len(f)] or [signals], ignore_index=True)
    rows["closed_at"] = utc(rows["closed_at"])
    rows["window_start"] = utc(rows["window_start"])
    rows["window_end"] = utc(rows["window_end"])
    if rows.empty:
        return IncidentBuild(
            contract.empty_frame(), pd.DataFrame(columns=EVIDENCE_COLUMNS), never_reported=never
        )
    grouped = group_signals(rows, diagnoses, policy, causes)
    evidence = grouped[~grouped["is_prior"]]
    # Sensor-health flags become tickets only once they persist (or when an alert is involved).
    spans = per_group(
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
    absorbed = absorb_into_tickets(grouped, policy)
    evidence = grouped[~grouped["is_prior"]]
    inc = aggregate_incidents(grouped, prior, open_incidents, policy, causes)
    close_quiet(inc, as_of, policy)
    close_arrived_late(inc, arrived_late)
    inhibit_explained(inc, policy)
    assign_severity(inc, policy, causes)
    inc["explanation"] = explanations(inc)
    out_evidence = evidence_links(evidence)
    return IncidentBuild(
        inc[contract.column_names + ["track"]].reset_index(drop=True),
        out_evidence,
        absorbed,
        never,
        arrived_late,
    )
