"""The streaming rules of ``config/streaming.yaml``, checked on load against the contracts
(sensors of sensor_readings, threshold columns of device_registry)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from refrig_assets.core.config import ConfigError, Section, deprecated_location, load_config
from refrig_assets.core.contracts import Contract, load_contract
from refrig_assets.core.fleet_sensors import fleet_measurements, measurement_columns
from refrig_assets.features.windows import fleet_cadence_seconds

STREAMING_CONFIG = "streaming"

NS_PER_MINUTE = 60 * 10**9
# A timestamp that is none (int64 ns): no streak, no stay, not known.
NO_TIME = np.iinfo(np.int64).min

# Parameters each rule kind needs (minutes unless named otherwise).
RULE_KINDS: dict[str, tuple[str, ...]] = {
    "above": (),
    "above_moving_average": ("average_hours", "min_history_minutes", "cohort_min_devices"),
    # After a start, a reference is no higher than the device's running average (below).
    "drop_within": (
        "window_minutes",
        "settle_minutes",
        "average_hours",
        "min_history_minutes",
        "cohort_min_devices",
    ),
    # With the device idle, the rise must also outpace the device's own defrost warm-up (the
    # fastest rise into the contract's defrost state it has shown, once it has seen
    # min_defrosts defrosts; else its cohort's median).
    "sustained_rise": (
        "rate_window_minutes",
        "sustain_minutes",
        "min_defrosts",
        "cohort_min_devices",
    ),
    # A state (door_open) on at every reading for longer than the threshold in minutes.
    "state_held": (),
    # Below threshold × the device's moving average with the compressor idle at every reading
    # for sustain_minutes: even the idle draw is gone (no supply).
    "below_moving_average_held": (
        "average_hours",
        "min_history_minutes",
        "cohort_min_devices",
        "sustain_minutes",
    ),
}
# An ``above`` rule may also judge devices whose registry row leaves its threshold empty: above
# ``running_multiplier`` × the device's moving average of the sensor while running (its cohort's
# typical before it has one; neither known: the contract default). All four or none.
OWN_DRAW_PARAMS = (
    "running_multiplier",
    "average_hours",
    "min_history_minutes",
    "cohort_min_devices",
)
# Durations that are no look-back, so not lengthened to a reading interval (a settling time
# after a change of state is measured from the last reading before the change).
NOT_LOOKBACKS = ("settle_minutes",)
# A state_held rule's least held time at the fleet's cadence (min_readings_held intervals).
HELD_FLOOR = "min_held_minutes"
# A sustained_rise rule on a sensor with a contract ``defrost_above``: the level above which the
# idle coil is defrosting (absent: the rule learns no defrost warm-up).
DEFROST_ABOVE = "defrost_above"
# Kinds that keep a moving average per running state (sustained_rise: its devices' defrost
# warm-ups in the same record), and kinds that carry a streak.
MOVING_AVERAGE_KINDS = (
    "above_moving_average",
    "below_moving_average_held",
    "sustained_rise",
    "drop_within",
)
# (drop_within: whether the device's running stretch began with a start seen in the readings.)
STREAK_KINDS = ("sustained_rise", "state_held", "below_moving_average_held", "drop_within")
# Kinds that read the compressor's running state (stretches of one state, idle levels,
# per-state averages): silent for a device that never showed the running state.
RUNNING_STATE_KINDS = ("drop_within", "below_moving_average_held", "above_moving_average")


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
    def keeps_average(self) -> bool:
        """Whether the rule keeps a moving average of its sensor per running state (its kind's,
        or an ``above`` rule judging devices without a registry threshold by their own draw)."""
        return self.kind in MOVING_AVERAGE_KINDS or self.judges_own_draw

    @property
    def judges_own_draw(self) -> bool:
        """An ``above`` rule that judges a device without a registry threshold against
        ``running_multiplier`` × its running average."""
        return self.kind == "above" and "running_multiplier" in self.params

    @property
    def history_needed(self) -> float:
        """How much of its own history a device needs before its moving average is trusted:
        minutes of readings, or (sustained_rise) defrosts seen."""
        if self.kind == "sustained_rise":
            return float(self.params["min_defrosts"])
        return self.minutes("min_history_minutes")

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
    # A running stretch shorter than this between idle readings reads as idle (0: none does).
    least_run_ns: int = 0

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


def _streaming_section(registry: Contract) -> Section:
    section = load_config(STREAMING_CONFIG)
    legacy = registry.settings
    if "streaming_rules" in legacy or "streaming" in legacy:
        deprecated_location(
            "contracts/device_registry.yaml", section.path, ["streaming_rules", "streaming"]
        )
        raw = {**section.raw, **(legacy.get("streaming") or {})}
        if "streaming_rules" in legacy:
            raw["rules"] = legacy["streaming_rules"]
        section = Section(section.path, raw)
    return section


def load_streaming_settings(
    registry: Contract | None = None, readings: Contract | None = None
) -> StreamingSettings:
    """Rules from ``config/streaming.yaml``, validated against the sensor_readings contract
    (sensors) and the device registry's columns (thresholds)."""
    registry = registry or load_contract("device_registry")
    readings = readings or load_contract("sensor_readings")
    config = _streaming_section(registry)
    rules_section = config.section("rules")
    rules = []
    fitted = set(fleet_measurements(readings))
    cadence_seconds = fleet_cadence_seconds()
    cadence_minutes = cadence_seconds / 60.0
    floor_minutes = config.number("min_readings_per_lookback", minimum=0.0) * cadence_minutes
    held_floor = config.number("min_readings_held", minimum=0.0) * cadence_minutes
    for name in rules_section.raw:
        rule = rules_section.section(name)
        kind = rule.choice("kind", RULE_KINDS)
        sensor = rule.choice("sensor", [c.name for c in measurement_columns(readings)])
        if sensor not in fitted:  # a fleet without this sensor (REFRIG_SENSORS) gets no rule
            continue
        threshold = rule.text("threshold")
        try:
            column = registry.column(threshold)
        except KeyError:
            raise rule.fail("threshold", f"{threshold!r} is not a device_registry column") from None
        if column.default is None:
            raise rule.fail("threshold", f"registry column {threshold!r} needs a default")
        params = {p: rule.number(p, minimum=0.0) for p in RULE_KINDS[kind]}
        if kind == "above" and any(rule.has(p) for p in OWN_DRAW_PARAMS):
            params |= {p: rule.number(p, minimum=0.0) for p in OWN_DRAW_PARAMS}
        params = {
            p: max(v, floor_minutes) if p.endswith("_minutes") and p not in NOT_LOOKBACKS else v
            for p, v in params.items()
        }
        if kind == "state_held":
            params[HELD_FLOOR] = held_floor
        defrost_above = readings.column(sensor).extra.get(DEFROST_ABOVE)
        if kind == "sustained_rise" and defrost_above is not None:
            params[DEFROST_ABOVE] = float(defrost_above)
        rules.append(StreamingRule(name, kind, sensor, threshold, params))
    running = readings.running_sensors()
    if not running:
        raise ConfigError("sensor_readings contract: no sensor declares running_above")
    return StreamingSettings(
        rules=tuple(rules),
        running_sensor=running[0].name,
        running_above=float(running[0].extra["running_above"]),
        severity=config.choice(
            "severity", load_contract("device_alerts").column("severity").allowed or ()
        ),
        episode_gap_ns=int(config.number("episode_gap_minutes", minimum=0.0) * NS_PER_MINUTE),
        max_gap_ns=int(
            max(config.number("max_gap_minutes", minimum=0.0), floor_minutes) * NS_PER_MINUTE
        ),
        lookback_ns=int(config.number("landing_lookback_hours", minimum=0.0) * 60 * NS_PER_MINUTE),
        tick_budget_seconds=config.number("tick_budget_seconds", minimum=0.0),
        version=_version(registry, config),
        units={c.name: c.unit or "" for c in readings.columns},
        threshold_defaults={
            r.threshold: float(registry.column(r.threshold).default) for r in rules
        },
        least_run_ns=_least_run_ns(cadence_seconds),
    )


def _least_run_ns(cadence_seconds: float) -> int:
    """The least run of the compressor that is a start, in ns: the ``min_seconds`` of the
    device_features contract's running-state start count. As in the feature SQL, only a fleet
    reading faster than that applies it (slower, a run seen at all spans a reading interval).
    0: no such setting, or a cadence of min_seconds or slower."""
    for column in load_contract("device_features").columns:
        spec = column.extra.get("derived") or {}
        if spec.get("state") != "running" or spec.get("kind") not in ("starts", "starts_per_hour"):
            continue
        seconds = float(spec.get("min_seconds") or 0.0)
        return int(seconds * 10**9) if seconds > cadence_seconds else 0
    return 0


def _version(registry: Contract, config: Section) -> str:
    """Changes when the rules or the registry's thresholds change (alerts name it)."""
    body = json.dumps(config.raw, sort_keys=True, default=str) + registry.source_hash
    return hashlib.sha256(body.encode()).hexdigest()[:12]
