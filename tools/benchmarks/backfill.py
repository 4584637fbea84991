"""What a history backfill costs, whole, and per hour.

``python -m tools.benchmarks.backfill --devices 1 --hours 1891 --cadence-seconds 300``
simulates a fleet into a fresh project home and backfills every hour in this process as
``refrig pipeline run`` does: readings → features over all hours, training on the first
``--train-hours``, then scores → alerts → incidents → status over all hours, in Dagster runs of
``--hours-per-run`` hours (default: config/backfill.yaml; each step loops over the run's hours,
see refrig_assets/defs/shared/ranges.py; device_features computes a run's hours in one pass,
refrig_assets/features/ranged.py; sensor_readings and clean_readings check a run's hours' contracts
at once). It reports the measured wall time and CPU seconds of
each phase with the load average, nothing extrapolated.

``--hours-per-run 1`` is one Dagster run per hour (the hourly schedule's way); then each run's
wall time is also split into the steps' own time (their STEP_SUCCESS/STEP_FAILURE durations,
which include the events a step writes: materializations, check evaluations, logs) and the rest:
run creation, planned-materialization events and the run's start/step/end events, and the median
hour is extrapolated to ``--extrapolate-hours`` (stated as an extrapolation).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from refrig_assets.core.model_config import hourly_model_ids

PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
SCORE = [
    *(f"{model}_scores" for model in hourly_model_ids()),
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


@dataclass(frozen=True)
class PhaseCost:
    """One phase of a backfill over every hour: wall and CPU seconds (this process, its threads
    and children), Dagster runs, steps that failed, and the load average when it ended."""

    name: str
    hours: int
    wall_s: float
    cpu_s: float
    runs: int
    failed_steps: tuple[str, ...]
    load: tuple[float, float, float]

    def line(self) -> str:
        """The phase as one report line."""
        per_hour = self.wall_s / self.hours if self.hours else 0.0
        return (
            f"{self.name}: {self.hours:,} hour(s) in {self.runs:,} run(s): {self.wall_s:.1f} s "
            f"wall ({per_hour * 1000:.0f} ms/hour), {self.cpu_s:.1f} s CPU, load average "
            + "/".join(f"{x:.1f}" for x in self.load)
        ) + (f"; FAILED steps: {', '.join(self.failed_steps)}" if self.failed_steps else "")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads) and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def backfill_phase(name: str, hours: int, instance, run) -> PhaseCost:
    """Run one phase of the backfill (``run()`` returns the failed steps, as the runner's
    prepare_hours and score_hours do) and measure it."""
    runs_before = len(instance.get_run_ids())
    cpu, began = cpu_seconds(), time.perf_counter()
    failed = run()
    wall = time.perf_counter() - began
    runs = len(instance.get_run_ids()) - runs_before
    return PhaseCost(name, hours, wall, cpu_seconds() - cpu, runs, tuple(failed), os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.benchmarks.backfill", description=__doc__
    )
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--hours", type=int, default=12)
    parser.add_argument("--cadence-seconds", type=int, default=300)
    parser.add_argument("--train-hours", type=int, default=6)
    parser.add_argument("--extrapolate-hours", type=int, default=1891)
    parser.add_argument(
        "--hours-per-run",
        type=int,
        default=None,
        help="Dagster runs of this many hours (default: config/backfill.yaml); 1: one per hour",
    )
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

    from refrig_assets.cli.runner import QUIET, prepare_hours, run_tags, score_hours
    from refrig_assets.core.partition_range import hour_keys
    from refrig_assets.core.settings import get_settings
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    s = get_settings()
    config = SimulationConfig(
        devices=a.devices, hours=a.hours, start=start, cadence_seconds=a.cadence_seconds
    )
    cpu, began = cpu_seconds(), time.perf_counter()
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    simulated = (time.perf_counter() - began, cpu_seconds() - cpu)
    (home / "dagster").mkdir(exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    from refrig_assets.core.backfill import hours_per_run
    from refrig_assets.definitions import defs
    from refrig_assets.defs.shared.event_log import pipeline_instance

    per_run = a.hours_per_run or hours_per_run()

    def quiet(line: str) -> None:
        """The runner's per-hour lines: only failures are shown."""
        if "FAILED" in line:
            print(line, flush=True)

    instance = pipeline_instance()  # the runner's instance (batched event log)
    keys = hour_keys(start, a.hours)
    defs.resolve_job_def("refresh_device_registry").execute_in_process(
        instance=instance, run_config=QUIET, tags=run_tags()
    )
    if per_run == 1:
        prep_costs = hourly_run_costs(defs, instance, keys, PREP)
    else:
        prep = backfill_phase(
            "readings → features",
            len(keys),
            instance,
            lambda: prepare_hours(defs, instance, keys, per_run, quiet),
        )
        print(prep.line(), flush=True)
    train = keys[: a.train_hours]
    models = [m.replace("_scores", "_model") for m in SCORE if m.endswith("_scores")]
    cpu, began = cpu_seconds(), time.perf_counter()
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
    trained = (time.perf_counter() - began, cpu_seconds() - cpu)
    if per_run == 1:
        score_costs = hourly_run_costs(defs, instance, keys, SCORE)
    else:
        scores = [m for m in SCORE if m.endswith("_scores")]
        score = backfill_phase(
            "scores → alerts → incidents → status",
            len(keys),
            instance,
            lambda: score_hours(defs, instance, keys, per_run, scores, quiet),
        )
    readings = sum(
        pq.ParquetFile(p).metadata.num_rows
        for p in (s.data_dir / "clean_readings").glob("*.parquet")
    )
    print(
        f"{a.devices} device(s) × {a.hours} h at {a.cadence_seconds} s ({readings:,} clean "
        f"readings), {per_run} hour(s) per run, home {home}"
    )
    print(f"simulated the landing zone: {simulated[0]:.1f} s wall, {simulated[1]:.1f} s CPU")
    print(
        f"training ({', '.join(models)} on {len(train)} h): {trained[0]:.1f} s wall, "
        f"{trained[1]:.1f} s CPU"
    )
    if per_run == 1:
        print(summarise("readings → features", prep_costs[1:], a.extrapolate_hours))
        print(summarise("scores → alerts", score_costs[1:], a.extrapolate_hours))
        return
    print(prep.line())
    print(score.line())
    total_wall, total_cpu = prep.wall_s + score.wall_s, prep.cpu_s + score.cpu_s
    print(
        f"backfill (readings → status, training not included): {total_wall:.1f} s wall "
        f"= {total_wall / 60:.2f} min, {total_cpu:.1f} s CPU"
    )


if __name__ == "__main__":
    main()
