"""``refrig simulate``: write a simulated fleet into the landing zone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import NoReturn

import typer

from refrig_assets.core.settings import get_settings


def simulate(
    devices: int = typer.Option(1000, help="Number of devices."),
    hours: int = typer.Option(6, help="Hours of readings."),
    start: str = typer.Option("2026-01-01T00:00", help="First hour, UTC (ISO 8601)."),
    seed: int = typer.Option(42, help="Random seed (same seed, same fleet)."),
    faults: bool = typer.Option(True, "--faults/--no-faults", help="Inject labelled faults."),
    heat_wave: bool = typer.Option(
        False,
        "--heat-wave",
        help="Warm half of the sites by 8 degC from a third of the range "
        "on (weather, not a fault: nothing is labelled and nothing should alert).",
    ),
    file_format: str = typer.Option("parquet", "--format", help="parquet or csv landing files."),
    cadence_seconds: int | None = typer.Option(
        None,
        help="Seconds between readings (a divisor of 3600; default: the simulator's); run the "
        "pipeline with the same REFRIG_CADENCE_SECONDS.",
    ),
    sensors: str | None = typer.Option(
        None,
        help="Comma-separated measurements the fleet has (default: REFRIG_SENSORS, else all). "
        "Only these are written, and only faults they can show are injected.",
    ),
    fault_fraction: float | None = typer.Option(
        None, help="Share of devices with a machine fault (default: the simulator's)."
    ),
) -> None:
    """Simulate a fleet: hourly reading files, the device registry and the fault labels."""
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    s = get_settings()
    try:
        begin = datetime.fromisoformat(start)
    except ValueError as exc:
        _refuse(f"--start is not an ISO 8601 time ({exc}): {start!r}")
    begin = begin.replace(tzinfo=UTC) if begin.tzinfo is None else begin.astimezone(UTC)
    try:
        config = SimulationConfig(
            devices=devices,
            hours=hours,
            start=begin,
            seed=seed,
            faults=faults,
            heat_wave=heat_wave,
            sensors=_fleet_sensors(sensors),
        )
        if cadence_seconds is not None:
            if cadence_seconds < 1:  # 0 used to mean "the default" without a word
                _refuse(f"--cadence-seconds must be at least 1, got {cadence_seconds}")
            config = replace(config, cadence_seconds=cadence_seconds)
        if fault_fraction is not None:
            config = replace(config, fault_fraction=fault_fraction)
        summary = simulate_fleet(
            config, s.landing_dir, s.registry_path, s.labels_path, file_format=file_format
        )
    except (ValueError, OverflowError) as exc:  # the simulator's checks of its settings
        _refuse(str(exc))
    typer.echo(f"landing files: {s.landing_dir}")
    typer.echo(f"device registry: {s.registry_path}")
    typer.echo(f"labels: {s.labels_path}")
    for key, value in summary.items():
        typer.echo(f"  {key}: {value}")


def _fleet_sensors(option: str | None) -> tuple[str, ...] | None:
    """The measurements named by ``--sensors``, else the fleet's (``REFRIG_SENSORS``, checked
    against the contract); None when that is every one of them."""
    from refrig_assets.core.contracts import load_contract
    from refrig_assets.core.fleet_sensors import measurement_columns, named_measurements

    contract = load_contract("sensor_readings")
    if option is None:  # not the sensors a home's data reported: those of this simulation
        named = named_measurements(contract) or []
    else:
        named = [n.strip() for n in option.split(",") if n.strip()]
    every = {c.name for c in measurement_columns(contract)}
    return None if not named or set(named) == every else tuple(named)


def _refuse(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit 2 (a wrong argument)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
