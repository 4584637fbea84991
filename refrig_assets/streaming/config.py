"""The streaming rules as declared in the device registry contract, checked on load."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from refrig_assets.core.contracts import Contract, ContractError, load_contract

NS_PER_MINUTE = 60 * 10**9

# Parameters each rule kind needs (minutes unless named otherwise).
RULE_KINDS: dict[str, tuple[str, ...]] = {
    "above": (),
    "above_moving_average": ("average_hours", "min_history_minutes", "cohort_min_devices"),
    "drop_within": ("window_minutes",),
    "sustained_rise": ("rate_window_minutes", "sustain_minutes"),
}


@dataclass(frozen=True)
class StreamingRule:
    """One rule: its name, kind, the sensor it reads and the registry column of its threshold."""

    name: str
    kind: str
    sensor: str
    threshold: str
    params: dict[str, float] = field(default_factory=dict)

    def minutes(self, name: str) -> float:
        """A duration parameter in minutes."""
        return float(self.params[name])

    @property
    def span_ns(self) -> int:
        """How far back from a reading this rule looks (0 for a single-reading rule)."""
        if self.kind == "drop_within":
            return int(self.minutes("window_minutes") * NS_PER_MINUTE)
        if self.kind == "sustained_rise":
            minutes = self.minutes("rate_window_minutes") + self.minutes("sustain_minutes")
            return int(minutes * NS_PER_MINUTE)
        return 0


@dataclass(frozen=True)
class StreamingSettings:
    """Every rule plus the shared settings: running state, episodes, gaps, severity."""

    rules: tuple[StreamingRule, ...]
    running_sensor: str
    running_above: float
    severity: str
    episode_gap_ns: int
    max_gap_ns: int
    lookback_ns: int
    tick_budget_seconds: float
    version: str
    units: dict[str, str]
    threshold_defaults: dict[str, float]

    @property
    def sensors(self) -> list[str]:
        """Reading columns the rules need (rule sensors and the running-state sensor)."""
        return list(dict.fromkeys([*(r.sensor for r in self.rules), self.running_sensor]))

    @property
    def buffer_ns(self) -> int:
        """How much of each device's recent history the state keeps for the windows."""
        return max([r.span_ns for r in self.rules] + [0])

    def rule(self, name: str) -> StreamingRule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(f"no streaming rule {name!r}")


def load_streaming_settings(
    registry: Contract | None = None, readings: Contract | None = None
) -> StreamingSettings:
    """Rules from ``streaming_rules`` of the device registry contract, validated against the
    sensor_readings contract (sensors) and the registry's own columns (thresholds)."""
    registry = registry or load_contract("device_registry")
    readings = readings or load_contract("sensor_readings")
    where = "contracts/device_registry.yaml"
    raw_rules: dict[str, dict[str, Any]] = registry.settings.get("streaming_rules") or {}
    shared: dict[str, Any] = registry.settings.get("streaming") or {}
    rules = []
    for name, raw in raw_rules.items():
        kind = raw.get("kind")
        if kind not in RULE_KINDS:
            raise ContractError(f"{where}: rule {name!r} has unknown kind {kind!r}")
        sensor, threshold = raw.get("sensor"), raw.get("threshold")
        if sensor not in readings.sensor_columns:
            raise ContractError(f"{where}: rule {name!r} reads unknown sensor {sensor!r}")
        try:
            column = registry.column(threshold)
        except KeyError:
            raise ContractError(
                f"{where}: rule {name!r} names threshold column {threshold!r}, not a registry column"
            ) from None
        if column.default is None:
            raise ContractError(f"{where}: threshold column {threshold!r} needs a default")
        missing = [p for p in RULE_KINDS[kind] if p not in raw]
        if missing:
            raise ContractError(f"{where}: rule {name!r} ({kind}) lacks {missing}")
        params = {p: float(raw[p]) for p in RULE_KINDS[kind]}
        rules.append(StreamingRule(name, kind, sensor, threshold, params))
    running = [c for c in readings.columns_with_role("sensor") if "running_above" in c.extra]
    if not running:
        raise ContractError("sensor_readings contract: no sensor declares running_above")
    return StreamingSettings(
        rules=tuple(rules),
        running_sensor=running[0].name,
        running_above=float(running[0].extra["running_above"]),
        severity=str(shared.get("severity", "CRITICAL")),
        episode_gap_ns=int(float(shared.get("episode_gap_minutes", 60)) * NS_PER_MINUTE),
        max_gap_ns=int(float(shared.get("max_gap_minutes", 10)) * NS_PER_MINUTE),
        lookback_ns=int(float(shared.get("landing_lookback_hours", 24)) * 60 * NS_PER_MINUTE),
        tick_budget_seconds=float(shared.get("tick_budget_seconds", 20)),
        version=registry.source_hash,
        units={c.name: c.unit or "" for c in readings.columns},
        threshold_defaults={
            r.threshold: float(registry.column(r.threshold).default) for r in rules
        },
    )
