"""What to simulate: the :class:`SimulationConfig` value object and the time grid it implies."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
DEVICES_PER_SITE = 25


@dataclass(frozen=True)
class SimulationConfig:
    """Size, time range, randomness and fault mix of one simulated fleet.

    ``start`` must fall on a whole hour; a naive datetime is read as UTC, an aware one is
    converted to UTC. Readings are taken every ``cadence_seconds`` (a divisor of 3600), so each
    simulated hour holds ``3600 // cadence_seconds`` readings per device.
    """

    devices: int = 1000
    hours: int = 6
    start: datetime = field(default=DEFAULT_START)
    seed: int = 42
    faults: bool = True
    fault_fraction: float = 0.06
    sensor_fault_fraction: float = 0.02
    cadence_seconds: int = 60
    sites: int | None = None
    # Operational faults (door left open, short cycling, defrost failure) on this share of the
    # devices, site power losses on this many sites, and an unlabelled regional heat wave.
    operational_fault_fraction: float = 0.03
    power_loss_sites: int = 1
    heat_wave: bool = False
    # The measurements the fleet has (None: every one of the contract). Only these are written,
    # and only faults they can show are injected (faults.FAULT_SIGNATURES).
    sensors: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        start = self.start
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        if (start.minute, start.second, start.microsecond) != (0, 0, 0):
            raise ValueError(f"start must fall on a whole hour, got {start.isoformat()}")
        object.__setattr__(self, "start", start)
        if self.seed < 0:
            raise ValueError("seed must be non-negative")
        if self.devices < 1:
            raise ValueError("devices must be at least 1")
        if self.hours < 1:
            raise ValueError("hours must be at least 1")
        if not 1 <= self.cadence_seconds <= 3600 or 3600 % self.cadence_seconds:
            raise ValueError("cadence_seconds must divide 3600")
        for name in ("fault_fraction", "sensor_fault_fraction", "operational_fault_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.fault_fraction + self.sensor_fault_fraction > 1.0:
            raise ValueError("fault_fraction + sensor_fault_fraction must not exceed 1")
        if self.power_loss_sites < 0:
            raise ValueError("power_loss_sites must not be negative")
        if self.sensors is not None:
            object.__setattr__(self, "sensors", tuple(self.sensors))
            if not self.sensors:
                raise ValueError("sensors must name at least one measurement")
        if self.sites is not None and not 1 <= self.sites <= self.devices:
            raise ValueError("sites must be between 1 and the number of devices")

    @property
    def n_sites(self) -> int:
        """Number of sites: ``sites`` or about one site per 25 devices."""
        if self.sites is not None:
            return self.sites
        return max(1, round(self.devices / DEVICES_PER_SITE))

    @property
    def steps_per_hour(self) -> int:
        """Readings per device and hour."""
        return 3600 // self.cadence_seconds

    @property
    def total_steps(self) -> int:
        """Readings per device over the whole simulation."""
        return self.hours * self.steps_per_hour

    @property
    def step_minutes(self) -> float:
        """Length of one time step in minutes (physics rates are per minute)."""
        return self.cadence_seconds / 60.0

    @property
    def end(self) -> datetime:
        """First instant after the simulated range (exclusive)."""
        return self.start + timedelta(hours=self.hours)

    def steps_for_minutes(self, minutes: float) -> int:
        """Whole number of steps covering ``minutes`` (at least one)."""
        return max(1, math.ceil(minutes * 60.0 / self.cadence_seconds))

    def hour_start(self, i: int) -> datetime:
        """Start of simulated hour ``i`` (0-based)."""
        return self.start + timedelta(hours=i)
