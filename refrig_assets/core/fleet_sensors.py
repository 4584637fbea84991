"""Which of the contract's measurements a fleet has.

Every measurement of ``contracts/sensor_readings.yaml`` is optional (``optional: true``); a fleet
names the ones it has in ``REFRIG_SENSORS`` (comma-separated column names; unset: all of them).
Quality flags, features' completeness, streaming rules and detector inputs use only these, so
a temperature-and-door fleet is not reported as a permanent dropout of six sensors.
"""

from __future__ import annotations

import os

from refrig_assets.core.contracts import ColumnSpec, Contract, ContractError

ENV = "REFRIG_SENSORS"


def measurement_columns(contract: Contract) -> list[ColumnSpec]:
    """The contract's measurements: columns with a role (sensor or state)."""
    return [c for c in contract.columns if c.role in ("sensor", "state")]


def fleet_measurements(contract: Contract) -> list[str]:
    """Measurement columns the fleet has (``REFRIG_SENSORS``, checked against the contract)."""
    every = [c.name for c in measurement_columns(contract)]
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return every
    named = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in named if n not in every]
    if unknown:
        raise ContractError(
            f"{ENV}: {', '.join(unknown)} not measurements of sensor_readings ({', '.join(every)})"
        )
    optional = {c.name for c in measurement_columns(contract) if c.extra.get("optional")}
    left_out = [n for n in every if n not in named and n not in optional]
    if left_out:
        raise ContractError(f"{ENV}: {', '.join(left_out)} are required by sensor_readings")
    return [n for n in every if n in named]


def fleet_sensor_columns(contract: Contract, role: str = "sensor") -> list[ColumnSpec]:
    """``contract.columns_with_role(role)`` limited to the fleet's measurements."""
    have = set(fleet_measurements(contract))
    return [c for c in contract.columns_with_role(role) if c.name in have]


def absent_measurements(contract: Contract) -> list[str]:
    """Measurements of the contract the fleet does not have."""
    have = set(fleet_measurements(contract))
    return [c.name for c in measurement_columns(contract) if c.name not in have]


def _strings(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def usable_features(
    names: list[str], features: Contract, readings: Contract | None = None
) -> list[str]:
    """The feature columns of ``names`` a fleet can compute, in order: a feature of an absent
    measurement is left out, and without the running-state sensor (the one with
    ``running_above``) a running-conditioned statistic becomes the plain one
    (``<sensor>_running_mean`` -> ``<sensor>_mean``) and running-state features are left out."""
    from refrig_assets.core.contracts import load_contract

    readings = readings or load_contract("sensor_readings")
    absent = set(absent_measurements(readings))
    if not absent:
        return list(names)
    running = [c.name for c in readings.running_sensors()]
    no_running = bool(running) and running[0] in absent
    out: list[str] = []
    for name in names:
        try:
            col = features.column(name)
        except KeyError:
            out.append(name)
            continue
        extra = col.extra
        derived = extra.get("derived") or {}
        if no_running and extra.get("condition") == "running":
            plain = f"{extra.get('sensor')}_{extra.get('stat')}"
            if extra.get("sensor") in absent or plain not in features.column_names:
                continue
            name, extra, derived = plain, features.column(plain).extra, {}
        needs_running = (
            name == "duty_cycle"
            or "running" in name
            or (isinstance(derived, dict) and derived.get("state") in ("running", "defrost"))
        )
        if no_running and needs_running:
            continue
        if _strings(extra) & absent or any(m in name for m in absent):
            continue
        if name not in out:
            out.append(name)
    return out
