"""What a history backfill costs per hour, and how much of it is the asset code.

``python -m tools.benchmarks.backfill --devices 1 --hours 12 --cadence-seconds 300``
simulates a fleet into a fresh project home, runs the hourly job once per hour in this process
(as ``refrig pipeline run`` does: one Dagster run per partition), and splits each run's wall
time into the steps' own time (their STEP_SUCCESS/STEP_FAILURE durations, which include the
events a step writes: materializations, check evaluations, logs) and the rest: run creation,
planned-materialization events and the run's start/step/end events in the instance's event log.
The per-hour figures are then extrapolated to a longer history (``--extrapolate-hours``),
stated as an extrapolation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
SCORE = [
    "isolation_forest_scores",
    "statistical_baseline_scores",
    "device_alerts",
    "device_incidents",
    "device_status",
]


@dataclass(frozen=True)
class RunCost:
    """One Dagster run of one hourly partition: wall seconds and the steps' own seconds."""

    partition: str
    wall_s: float
    steps_s: float
    success: bool

    @property
    def overhead_s(self) -> float:
        """Wall time not spent inside a step (run and event bookkeeping)."""
        return max(0.0, self.wall_s - self.steps_s)


def step_seconds(result) -> float:
    """Sum of the steps' own durations in an execute_in_process result."""
    return sum(
        e.event_specific_data.duration_ms / 1000
        for e in result.all_node_events
        if (e.is_step_success or e.is_step_failure)
        and getattr(e.event_specific_data, "duration_ms", None) is not None
    )


def hourly_run_costs(defs, instance, keys: list[str], assets: list[str]) -> list[RunCost]:
    """Run the hourly job for ``assets`` once per partition key (the runner's way) and measure."""
    import dagster as dg

    from refrig_assets.cli.runner import QUIET, run_tags

    job = defs.resolve_job_def("hourly_pipeline")
    costs = []
    for key in keys:
        began = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            partition_key=key,
            asset_selection=[dg.AssetKey(a) for a in assets],
            run_config=QUIET,
            tags=run_tags(),
            raise_on_error=False,
        )
        wall = time.perf_counter() - began
        costs.append(RunCost(key, wall, step_seconds(result), result.success))
    return costs


def summarise(name: str, costs: list[RunCost], extrapolate_hours: int) -> str:
    """Median wall, step and overhead seconds per hour, the extrapolated total, and the hours
    whose run failed (their time is counted, but it is not a backfill that worked)."""
    wall = statistics.median(c.wall_s for c in costs)
    steps = statistics.median(c.steps_s for c in costs)
    overhead = statistics.median(c.overhead_s for c in costs)
    share = overhead / wall if wall else 0.0
    return (
        f"{name}: {len(costs)} hour(s), median per hour {wall:.2f} s wall = {steps:.2f} s in "
        f"steps + {overhead:.2f} s run/event overhead ({share:.0%}); extrapolated to "
        f"{extrapolate_hours:,} hours: {wall * extrapolate_hours / 60:.1f} min "
        f"(steps alone {steps * extrapolate_hours / 60:.1f} min)"
    ) + "".join(f"; FAILED run: {c.partition}" for c in costs if not c.success)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.benchmarks.backfill", description=__doc__
    )
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--hours", type=int, default=12)
    parser.add_argument("--cadence-seconds", type=int, default=300)
    parser.add_argument("--train-hours", type=int, default=6)
    parser.add_argument("--extrapolate-hours", type=int, default=1891)
    parser.add_argument("--out", type=Path, default=Path("bench-results/backfill"))
    a = parser.parse_args(argv)

    home = a.out.resolve() / f"home-{a.devices}x{a.hours}h-{a.cadence_seconds}s"
    if home.exists():
        raise SystemExit(f"{home} exists: remove it or choose another --out")
    home.mkdir(parents=True)
    os.environ.update(
        REFRIG_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        REFRIG_CADENCE_SECONDS=str(a.cadence_seconds),
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    os.environ.setdefault("REFRIG_PARTITION_START", start.strftime("%Y-%m-%d-%H:00"))

    import dagster as dg

    from refrig_assets.cli.runner import QUIET, run_tags
    from refrig_assets.core.partition_range import hour_keys
    from refrig_assets.core.settings import get_settings
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    s = get_settings()
    config = SimulationConfig(
        devices=a.devices, hours=a.hours, start=start, cadence_seconds=a.cadence_seconds
    )
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    (home / "dagster").mkdir(exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    from refrig_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    keys = hour_keys(start, a.hours)
    defs.resolve_job_def("refresh_device_registry").execute_in_process(
        instance=instance, run_config=QUIET, tags=run_tags()
    )
    prep = hourly_run_costs(defs, instance, keys, PREP)
    train = keys[: a.train_hours]
    models = [m.replace("_scores", "_model") for m in SCORE if m.endswith("_scores")]
    defs.resolve_job_def("train_detectors").execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(m) for m in models],
        run_config=QUIET
        | {
            "ops": {
                m: {"config": {"start_partition": train[0], "end_partition": train[-1]}}
                for m in models
            }
        },
        tags=run_tags(),
    )
    score = hourly_run_costs(defs, instance, keys, SCORE)
    print(f"{a.devices} device(s) × {a.hours} h at {a.cadence_seconds} s, home {home}")
    print(summarise("readings → features", prep[1:], a.extrapolate_hours))
    print(summarise("scores → alerts", score[1:], a.extrapolate_hours))


if __name__ == "__main__":
    main()
