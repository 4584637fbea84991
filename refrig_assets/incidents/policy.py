"""The incident policy of ``config/incidents.yaml``: grouping, hysteresis, reopening, site
events, sensor-health tickets, severity by impact and which incidents are paged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from refrig_assets.core.config import Section, config_path, load_config
from refrig_assets.core.contracts import load_contract

INCIDENTS_CONFIG = "incidents"
# Quality flags raised only after a sensor has misbehaved for a while, and the setting of
# contracts/clean_readings.yaml (quality_rules) that says how long.
_FLAG_LEAD = {"STUCK_SENSOR": "stuck_sensor_minutes"}


@dataclass(frozen=True)
class SiteEventPolicy:
    """When most devices of a site change together (``site_events``)."""

    min_site_devices: int
    quorum_share: float
    off_duty_cycle_max: float
    current_off_amps: float
    current_sensor: str
    power_loss_cause: str
    communications_loss_cause: str
    min_off_minutes: float
    off_streak_feature: str
    idle_draw_feature: str
    idle_draw_ratio: float
    idle_draw_min_amps: float


@dataclass(frozen=True)
class SiteAmbientPolicy:
    """When a site's rooms are warmer than usual together (``site_ambient``)."""

    cause: str
    quorum_share: float


@dataclass(frozen=True)
class SensorTicketPolicy:
    """Which quality flags become maintenance tickets, and after how long (``sensor_tickets``)."""

    flags: tuple[str, ...]
    persistence: timedelta
    # A device that sent (almost) nothing: its whole monitoring is blind, not one sensor.
    silent_persistence: timedelta
    cause: str
    silent_cause: str
    # Per flag: how long a sensor may already be failing before its first flagged reading (a
    # frozen value is STUCK_SENSOR only after the contract's stuck_sensor_minutes; 0 for flags
    # a single reading shows).
    lead: dict[str, timedelta]

    @property
    def look_back(self) -> timedelta:
        """How far back a build must see quality windows to decide any ticket's persistence."""
        return max(self.persistence, self.silent_persistence)


@dataclass(frozen=True)
class SeverityPolicy:
    """Severity by impact (``severity``)."""

    unknown_cause: str
    sensor: str
    excursion_celsius: float
    persistence: timedelta
    agreement_models: int
    raise_cap: str
    critical_excursion_celsius: float
    evaporator_feature: str
    defrost_feature: str


@dataclass(frozen=True)
class IncidentPolicy:
    """Everything ``build_incidents`` and the incident store need from the policy file."""

    hysteresis_windows: int
    window: timedelta
    reopen: timedelta
    cause_change_min_signals: int
    silent_completeness_below: float
    site_events: SiteEventPolicy
    site_ambient: SiteAmbientPolicy
    sensor_tickets: SensorTicketPolicy
    severity: SeverityPolicy
    notify_severities: tuple[str, ...]
    severities: tuple[str, ...]

    @property
    def hysteresis(self) -> timedelta:
        """How long a device must be normal before its incident closes."""
        return self.window * self.hysteresis_windows

    def rank(self, severity: str) -> int:
        """0 for the most severe level, larger for milder ones."""
        return self.severities.index(severity)


def incident_policy() -> IncidentPolicy:
    """The incident policy, checked on load; built once per version of the file."""
    path = config_path(INCIDENTS_CONFIG)
    try:
        stat = path.stat()
        version = (str(path), stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        version = (str(path), 0, 0)  # load_config names the missing file
    # The fleet's feature window (its cadence band or REFRIG_WINDOW_SECONDS), not the
    # contract's default: hysteresis counts windows, so at 1 s (1-minute windows) a 15-minute
    # window would keep every incident open half an hour after its device recovered.
    from refrig_assets.features.windows import window_minutes

    return _incident_policy(version, window_minutes())


@lru_cache(maxsize=8)
def _incident_policy(version: tuple[str, int, int], window_minutes: int) -> IncidentPolicy:
    section = load_config(INCIDENTS_CONFIG)
    severities = tuple(load_contract("device_incidents").column("severity").allowed or ())
    notify = tuple(str(v) for v in section.section("notifications").items("severities"))
    unknown = set(notify) - set(severities)
    if unknown:
        raise section.fail("notifications.severities", f"unknown severities {sorted(unknown)}")
    return IncidentPolicy(
        hysteresis_windows=section.number("hysteresis_windows", minimum=1, integer=True),
        window=timedelta(minutes=window_minutes),
        reopen=timedelta(minutes=section.number("reopen_minutes", minimum=0.0)),
        cause_change_min_signals=section.number(
            "cause_change_min_signals", minimum=1, integer=True
        ),
        silent_completeness_below=section.number(
            "silent_completeness_below", minimum=0.0, maximum=1.0
        ),
        site_events=_site_events(section.section("site_events")),
        site_ambient=_site_ambient(section.section("site_ambient")),
        sensor_tickets=_sensor_tickets(section.section("sensor_tickets")),
        severity=_severity(section.section("severity"), severities),
        notify_severities=notify,
        severities=severities,
    )


def _site_events(s: Section) -> SiteEventPolicy:
    return SiteEventPolicy(
        min_site_devices=s.number("min_site_devices", minimum=1, integer=True),
        quorum_share=s.number("quorum_share", minimum=0.0, maximum=1.0),
        off_duty_cycle_max=s.number("off_duty_cycle_max", minimum=0.0, maximum=1.0),
        current_off_amps=s.number("current_off_amps", minimum=0.0),
        current_sensor=s.text("current_sensor"),
        power_loss_cause=s.text("power_loss_cause"),
        communications_loss_cause=s.text("communications_loss_cause"),
        min_off_minutes=s.number("min_off_minutes", minimum=0.0),
        off_streak_feature=s.text("off_streak_feature"),
        idle_draw_feature=s.text("idle_draw_feature"),
        idle_draw_ratio=s.number("idle_draw_ratio", minimum=0.0, maximum=1.0),
        idle_draw_min_amps=s.number("idle_draw_min_amps", minimum=0.0),
    )


def _site_ambient(s: Section) -> SiteAmbientPolicy:
    return SiteAmbientPolicy(
        cause=s.text("cause"),
        quorum_share=s.number("quorum_share", minimum=0.0, maximum=1.0),
    )


def _sensor_tickets(s: Section) -> SensorTicketPolicy:
    from refrig_assets.core.contracts import quality_flag_names

    flags = tuple(str(v) for v in s.items("flags"))
    unknown = set(flags) - set(quality_flag_names())
    if unknown:
        raise s.fail("flags", f"unknown quality flags {sorted(unknown)}")
    rules = load_contract("clean_readings").settings["quality_rules"]
    lead = {
        flag: timedelta(minutes=float(rules[_FLAG_LEAD[flag]]) if flag in _FLAG_LEAD else 0.0)
        for flag in flags
    }
    return SensorTicketPolicy(
        flags=flags,
        persistence=timedelta(minutes=s.number("persistence_minutes", minimum=0.0)),
        silent_persistence=timedelta(minutes=s.number("silent_persistence_minutes", minimum=0.0)),
        cause=s.text("cause"),
        silent_cause=s.text("silent_cause"),
        lead=lead,
    )


def _severity(s: Section, severities: tuple[str, ...]) -> SeverityPolicy:
    return SeverityPolicy(
        unknown_cause=s.choice("unknown_cause", severities),
        sensor=s.choice("sensor", severities),
        excursion_celsius=s.number("excursion_celsius", minimum=0.0),
        persistence=timedelta(minutes=s.number("persistence_minutes", minimum=0.0)),
        agreement_models=s.number("agreement_models", minimum=1, integer=True),
        raise_cap=s.choice("raise_cap", severities),
        critical_excursion_celsius=s.number("critical_excursion_celsius", minimum=0.0),
        evaporator_feature=s.text("evaporator_feature"),
        defrost_feature=s.text("defrost_feature"),
    )
