"""Severity, SLA deadline and dedup: the alert policy of ``config/alerts.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

from refrig_assets.core.config import Section, config_path, deprecated_location, load_config
from refrig_assets.core.contracts import load_contract

ALERTS_CONFIG = "alerts"
# Keys that contracts/device_alerts.yaml held before config/ existed (read for one release).
LEGACY_KEYS = (
    "severity_rules",
    "sla_minutes",
    "dedup_window_hours",
    "reconciliation",
    "escalation_levels",
)


@dataclass(frozen=True)
class SeverityRule:
    """``severity`` when max_score > ``score_above`` and/or models_flagging >= ``min_models``."""

    severity: str
    score_above: float | None
    min_models: int | None
    any_of: bool


@dataclass(frozen=True)
class SlaMonitorPolicy:
    """How the SLA monitor avoids escalation storms (``sla_monitor`` in config/alerts.yaml)."""

    startup_grace: timedelta
    restart_gap: timedelta
    digest_above: int
    historic_cutoff: timedelta


@dataclass(frozen=True)
class NotificationPolicy:
    """What is notified and how the outbox is delivered (``notifications``)."""

    severities: tuple[str, ...]
    timeout_seconds: float
    base_delay: timedelta
    max_delay: timedelta
    max_attempts: int
    batch_size: int
    pass_budget_seconds: float
    stop_after_failures: int
    # A new alert whose window ended longer ago than this (a backfill) is stored, not notified.
    historic_cutoff: timedelta
    # Environment variables holding the webhook's Authorization value and signing secret.
    auth_header_env: str | None
    signing_secret_env: str | None

    def retry_delay(self, attempts: int) -> timedelta:
        """Wait before the next try after ``attempts`` failed ones: base × 2^(attempts-1),
        at most the max delay."""
        exponent = min(max(0, attempts - 1), 60)
        seconds = self.base_delay.total_seconds() * 2.0**exponent
        return min(self.max_delay, timedelta(seconds=min(seconds, 1e9)))


@dataclass(frozen=True)
class AlertPolicy:
    """Severity rules (first match wins), SLA per severity, dedup window, reconciliation of
    streaming alerts, escalation levels, the SLA monitor and notifications."""

    severity_rules: tuple[SeverityRule, ...]
    sla_minutes: dict[str, float]
    dedup_window_hours: float
    reconciliation: Section
    escalation_levels: tuple[str, ...]
    sla_monitor: SlaMonitorPolicy
    notifications: NotificationPolicy

    @property
    def dedup_window(self) -> timedelta:
        return timedelta(hours=self.dedup_window_hours)


def _policy_section() -> Section:
    section = load_config(ALERTS_CONFIG)
    legacy = load_contract("device_alerts").settings
    moved = [k for k in LEGACY_KEYS if k in legacy]
    if moved:
        deprecated_location("contracts/device_alerts.yaml", section.path, moved)
        section = Section(section.path, {**section.raw, **{k: legacy[k] for k in moved}})
    return section


def _severity_rule(section: Section, severities: tuple[str, ...]) -> SeverityRule:
    return SeverityRule(
        severity=section.choice("severity", severities),
        score_above=section.number("score_above", minimum=0.0, maximum=1.0)
        if section.has("score_above")
        else None,
        min_models=section.number("min_models", minimum=1, integer=True)
        if section.has("min_models")
        else None,
        any_of=section.flag("any_of") if section.has("any_of") else False,
    )


def alert_policy() -> AlertPolicy:
    """The alert policy, checked on load (severities and levels against the alert contract).

    Built once per version of its files: it is asked for per alert on hot paths (SLA checks)."""
    path = config_path(ALERTS_CONFIG)
    try:
        stat = path.stat()
        version = (str(path), stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        version = (str(path), 0, 0)  # load_config names the missing file
    return _alert_policy(version, load_contract("device_alerts").source_hash)


@lru_cache(maxsize=8)
def _alert_policy(file_version: tuple[str, int, int], contract_hash: str) -> AlertPolicy:
    section = _policy_section()
    contract = load_contract("device_alerts")
    severities = tuple(contract.column("severity").allowed or ())
    rules = []
    for i, raw in enumerate(section.items("severity_rules")):
        if not isinstance(raw, dict):
            raise section.fail(f"severity_rules[{i}]", "must be a mapping")
        rules.append(
            _severity_rule(Section(section.path, raw, f"severity_rules[{i}]."), severities)
        )
    levels = tuple(str(v) for v in section.items("escalation_levels"))
    unknown = set(levels) - set(contract.column("escalation_level").allowed or ())
    if unknown:
        raise section.fail("escalation_levels", f"unknown levels {sorted(unknown)}")
    sla_minutes = section.numbers_by_key("sla_minutes", severities)
    return AlertPolicy(
        severity_rules=tuple(rules),
        sla_minutes=sla_minutes,
        dedup_window_hours=section.number("dedup_window_hours", minimum=0.0),
        reconciliation=section.section("reconciliation"),
        escalation_levels=levels,
        sla_monitor=_sla_monitor(section.section("sla_monitor"), sla_minutes, levels),
        notifications=_notifications(section.section("notifications"), severities),
    )


def _sla_monitor(
    section: Section, sla_minutes: dict[str, float], levels: tuple[str, ...]
) -> SlaMonitorPolicy:
    policy = SlaMonitorPolicy(
        startup_grace=timedelta(minutes=section.number("startup_grace_minutes", minimum=0.0)),
        restart_gap=timedelta(minutes=section.number("restart_gap_minutes", minimum=0.0)),
        digest_above=section.number("digest_above", minimum=1, integer=True),
        historic_cutoff=timedelta(hours=section.number("historic_cutoff_hours", minimum=0.0)),
    )
    # The last escalation of the slowest severity happens (levels - 1) SLA periods after the
    # alert: a shorter cut-off would silently stop alerts that are still live from escalating.
    longest = timedelta(minutes=max(sla_minutes.values()) * max(1, len(levels) - 1))
    if policy.historic_cutoff <= longest:
        raise section.fail(
            "historic_cutoff_hours",
            f"must exceed the longest escalation ({longest.total_seconds() / 3600:g} h)",
        )
    return policy


def _notifications(section: Section, severities: tuple[str, ...]) -> NotificationPolicy:
    wanted = tuple(str(v) for v in section.items("severities"))
    unknown = set(wanted) - set(severities)
    if unknown:
        raise section.fail("severities", f"unknown severities {sorted(unknown)}")
    base = section.number("base_delay_seconds", minimum=0.0)
    longest = section.number("max_delay_seconds", minimum=0.0)
    if longest < base:
        raise section.fail("max_delay_seconds", f"must be at least base_delay_seconds ({base:g})")
    return NotificationPolicy(
        severities=wanted,
        timeout_seconds=section.number("timeout_seconds", minimum=0.001),
        base_delay=timedelta(seconds=base),
        max_delay=timedelta(seconds=longest),
        max_attempts=section.number("max_attempts", minimum=1, integer=True),
        batch_size=section.number("batch_size", minimum=1, integer=True),
        pass_budget_seconds=section.number("pass_budget_seconds", minimum=0.0),
        stop_after_failures=section.number("stop_after_failures", minimum=1, integer=True),
        historic_cutoff=timedelta(hours=section.number("historic_cutoff_hours", minimum=0.0)),
        auth_header_env=section.optional_text("auth_header_env"),
        signing_secret_env=section.optional_text("signing_secret_env"),
    )


def classify_severity(max_score: np.ndarray, models_flagging: np.ndarray) -> np.ndarray:
    """Severity per alert from the ordered rules (first matching rule wins)."""
    max_score = np.asarray(max_score, dtype=float)
    models_flagging = np.asarray(models_flagging, dtype=int)
    out = np.full(max_score.shape, None, dtype=object)
    for rule in alert_policy().severity_rules:
        conds = []
        if rule.score_above is not None:
            conds.append(max_score > rule.score_above)
        if rule.min_models is not None:
            conds.append(models_flagging >= rule.min_models)
        if not conds:
            match = np.ones(max_score.shape, dtype=bool)
        elif rule.any_of:
            match = np.logical_or.reduce(conds)
        else:
            match = np.logical_and.reduce(conds)
        out = np.where((out == None) & match, rule.severity, out)  # noqa: E711
    return out


def sla_deadline(created_at: pd.Series, severity: pd.Series) -> pd.Series:
    """created_at plus the SLA of each alert's severity."""
    minutes = severity.map(alert_policy().sla_minutes).astype(float)
    return created_at + pd.to_timedelta(minutes, unit="m")


def mark_suppressed(alerts: pd.DataFrame, previous: pd.DataFrame) -> pd.Series:
    """True for alerts whose device and top contributor already alerted within the dedup window.

    The comparison is with the last *unsuppressed* alert of the same device and contributor
    (from ``previous`` or earlier in ``alerts``), so a lasting fault re-alerts once per window
    instead of being silenced forever.
    """
    window = alert_policy().dedup_window
    first = alerts["top_contributors"].str.split(",").str[0]
    last_seen: dict[tuple[str, str], pd.Timestamp] = {}
    if len(previous):
        prev = previous[~previous["suppressed"].astype(bool)]
        for dev, contrib, at in zip(
            prev["device_id"],
            prev["top_contributors"].str.split(",").str[0],
            prev["alert_created_at"],
            strict=True,
        ):
            key = (dev, contrib)
            if key not in last_seen or at > last_seen[key]:
                last_seen[key] = at
    suppressed = np.zeros(len(alerts), dtype=bool)
    order = np.argsort(alerts["alert_created_at"].to_numpy(), kind="stable")
    devices, created = alerts["device_id"].to_numpy(), alerts["alert_created_at"].to_numpy()
    for i in order:
        key = (devices[i], first.iat[i])
        at = pd.Timestamp(created[i])
        at = at.tz_localize("UTC") if at.tzinfo is None else at
        seen = last_seen.get(key)
        if seen is not None and seen <= at < seen + window:
            suppressed[i] = True
        else:
            last_seen[key] = at
    return pd.Series(suppressed, index=alerts.index)
