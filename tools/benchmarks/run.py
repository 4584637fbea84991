"""The benchmark plan: which steps run, in which order, on which inputs.

Inputs are cached under ``<out>/cache`` (the simulated landing file and registry of a fleet size
and seed); everything the pipeline writes goes to a fresh project home ``<out>/home`` (Parquet
data, Dagster instance, MLflow registry, alert database), so each run measures the code as it is.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from refrig_assets.core.settings import PROJECT_ROOT, git_commit
from tools.benchmarks.measure import StepResult, run_step

PARTITION = "2026-01-01-00:00"  # hour 0 of the simulator's default start
DAY = "2026-01-01"


@dataclass
class BenchConfig:
    """What to measure."""

    devices: int = 100_000
    growth: tuple[int, ...] = (10_000, 100_000, 300_000)
    seed: int = 42
    spark: bool = True
    daily: bool = True
    # Daily detectors are trained on the first hours of the day (training is setup, not measured).
    daily_train_hours: int = 4
    out: Path = field(default_factory=lambda: PROJECT_ROOT / "bench-results")
    step_timeout_s: float = 900
    # Run part of the plan on the home of an earlier full run (see ONLY); None: everything.
    only: str | None = None
    # --scale: after the rest, the whole hourly path again on a fleet this many times larger
    # (the simulated fleet tiled, cached under <out>/cache); 0: not measured.
    scale_copies: int = 0


# Parts of the plan that run on the home an earlier full run left (its measured hour of
# features; for ``daily_scores`` also its day of features and trained daily detectors).
ONLY = {
    "daily": ["daily_features", "train_daily", "daily_scores"],
    "daily_scores": ["daily_scores"],
    # the hourly run at the measured size, then at --scale times it (default 10)
    "scale": ["registry", "hourly_total", "scale"],
}


@dataclass
class BenchRun:
    """Results of one benchmark run, in the order measured."""

    config: BenchConfig
    results: dict[str, StepResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    environment: dict = field(default_factory=dict)

    def add(self, result: StepResult, log=print) -> StepResult:
        self.results[result.name] = result
        status = "ok" if result.ok else f"FAILED ({result.error})"
        log(
            f"  {result.name:<24} {result.wall_s:8.2f} s  {result.peak_rss_mb:8.0f} MB  "
            f"(process {result.process_wall_s:.1f} s)  {status}"
        )
        return result


def _environment() -> dict:
    commit = git_commit()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _pipeline_env(home: Path, landing: Path, registry: Path) -> dict[str, str]:
    env = {
        "REFRIG_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "REFRIG_LANDING_DIR": str(landing),
        "REFRIG_DEVICE_REGISTRY": str(registry),
        "REFRIG_DATA_DIR": str(home / "data"),
        "REFRIG_ALERTS_DB_URL": f"sqlite:///{home / 'alerts.db'}",
        # The MLflow store of this home (also for code that uses the process-wide URI).
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "REFRIG_ENGINE": "duckdb",
        "PYTHONWARNINGS": "ignore",
    }
    return env


def _model_assets() -> tuple[list[str], list[str]]:
    from refrig_assets.core.model_config import all_model_ids, load_model_config

    hourly: list[str] = []
    daily: list[str] = []
    for model_id in all_model_ids():
        (hourly if load_model_config(model_id).schedule == "hourly" else daily).append(model_id)
    return hourly, daily


def run_benchmark(config: BenchConfig, log=print) -> BenchRun:
    """Run every step of the benchmark; a failing step is recorded and the rest carry on."""
    run = BenchRun(config, environment=_environment())
    out = config.out
    cache = out / "cache" / f"fleet-{config.devices}-seed{config.seed}"
    landing, registry = cache / "landing", cache / "device_registry.csv"
    home = out / "home"
    logs = out / "logs"
    data = home / "data"
    env = _pipeline_env(home, landing, registry)
    timeout = config.step_timeout_s
    if config.only:
        return _run_only(config, run, env, logs / config.only, log)
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").touch()

    def step(name: str, kind: str, args: dict) -> StepResult:
        return run.add(run_step(name, kind, args, env, timeout, logs), log)

    started = time.perf_counter()
    log(f"benchmark: {config.devices:,} devices, out {out}")
    if registry.exists() and any(landing.rglob("*.parquet")):
        run.notes.append(f"simulated fleet reused from {cache}")
    else:
        shutil.rmtree(cache, ignore_errors=True)
        step(
            "simulate",
            "simulate",
            {
                "devices": config.devices,
                "seed": config.seed,
                "landing_dir": str(landing),
                "registry_path": str(registry),
            },
        )

    # The project's hourly path, one asset (or step) per fresh process.
    hourly_models, daily_models = _model_assets()
    step("registry", "dagster_materialize", {"assets": ["device_registry"]})
    job = {"job": "hourly_pipeline", "partition": PARTITION}
    step("ingest", "dagster_job", job | {"assets": ["sensor_readings"]})
    step("quality", "dagster_job", job | {"assets": ["clean_readings", "quarantined_readings"]})
    step("features", "dagster_job", job | {"assets": ["device_features"]})

    # The feature step against the read floor and the reference implementations.
    from refrig_assets.core.storage import ParquetStore

    store = ParquetStore(data)
    clean = store.path("clean_readings", PARTITION)
    features = store.path("device_features", PARTITION)
    bench_data = home / "bench"
    step("read_floor", "read_floor", {"source": str(clean)})
    project = step(
        "features_project",
        "features_project",
        {"source": str(clean), "out_root": str(bench_data / "project"), "partition": PARTITION},
    )
    step(
        "features_pandas",
        "features_pandas",
        {
            "source": str(clean),
            "target": str(bench_data / "pandas" / "device_features.parquet"),
            "compare_with": str(features),
        },
    )
    if config.spark:
        step(
            "features_spark",
            "features_spark",
            {
                "source": str(clean),
                "out_root": str(bench_data / "spark"),
                "partition": PARTITION,
                "compare_with": str(features),
            },
        )

    # Growth of the feature step with the fleet size.
    for devices in config.growth:
        if devices == config.devices:
            run.results[f"growth_{devices}"] = project
            continue
        scaled = bench_data / f"clean-{devices}.parquet"
        prep = step(
            f"prepare_{devices}",
            "scaled_clean_readings",
            {"source": str(clean), "devices": devices, "target": str(scaled)},
        )
        if prep.ok:
            step(
                f"growth_{devices}",
                "features_project",
                {
                    "source": str(scaled),
                    "out_root": str(bench_data / f"growth-{devices}"),
                    "partition": PARTITION,
                },
            )
        scaled.unlink(missing_ok=True)

    # Detectors: train on this hour, then score and alert it.
    train = {"job": "train_detectors"}
    if hourly_models:
        assets = [f"{m}_model" for m in hourly_models]
        window = {"start_partition": PARTITION, "end_partition": PARTITION}
        step(
            "train_hourly",
            "dagster_job",
            train
            | {"assets": assets, "run_config": {"ops": {a: {"config": window} for a in assets}}},
        )
        step("scores", "dagster_job", job | {"assets": [f"{m}_scores" for m in hourly_models]})
    step("alerts", "dagster_job", job | {"assets": ["device_alerts"]})
    step("incidents", "dagster_job", job | {"assets": ["device_incidents"]})
    step("hourly_total", "dagster_job", job | {"forget_landing_index": True})

    # Daily detectors over a day of features.
    if config.daily and daily_models:
        _daily_steps(config, run, step, data, daily_models, ONLY["daily"])
    elif config.daily:
        run.notes.append("no daily detectors configured in models/: daily step skipped")

    if config.scale_copies > 1:
        _scale_steps(config, run, env, cache, logs, log)

    return _finish(run, started, hourly_models, daily_models)


def _scale_steps(config: BenchConfig, run: BenchRun, env: dict, cache: Path, logs, log) -> None:
    """The hourly path on ``scale_copies`` times the fleet: the simulated fleet tiled (cached),
    its registry materialized, then the hourly job for the same hour, readings → alerts, with
    the detectors trained above."""
    devices = config.devices * config.scale_copies
    tiled = cache.parent / f"{cache.name}-x{config.scale_copies}"
    landing, registry = tiled / "landing", tiled / "device_registry.csv"
    scale_env = env | {"REFRIG_LANDING_DIR": str(landing), "REFRIG_DEVICE_REGISTRY": str(registry)}

    def step(name: str, kind: str, args: dict) -> StepResult:
        return run.add(run_step(name, kind, args, scale_env, config.step_timeout_s, logs), log)

    if registry.exists() and any(landing.rglob("*.parquet")):
        run.notes.append(f"scaled fleet reused from {tiled}")
    else:
        shutil.rmtree(tiled, ignore_errors=True)
        step(
            "scale_prepare",
            "tiled_fleet",
            {
                "copies": config.scale_copies,
                "landing_dir": str(cache / "landing"),
                "registry_path": str(cache / "device_registry.csv"),
                "target_landing_dir": str(landing),
                "target_registry_path": str(registry),
            },
        )
    step("scale_registry", "dagster_materialize", {"assets": ["device_registry"]})
    step(
        "scale_hourly_total",
        "dagster_job",
        {"job": "hourly_pipeline", "partition": PARTITION, "forget_landing_index": True}
        | {"devices": devices},
    )
    run.notes.append(
        f"scale: {devices:,} devices = the simulated {config.devices:,} tiled "
        f"{config.scale_copies}× (device ids prefixed per copy), one hour through the hourly "
        "job with the detectors trained on the smaller fleet's hour"
    )


def _daily_steps(
    config: BenchConfig, run: BenchRun, step, data: Path, daily_models: list[str], names
) -> None:
    """The daily detectors' steps among ``names``: a day of features, training, scoring."""
    if "daily_features" in names:
        step(
            "daily_features",
            "shifted_feature_hours",
            {"data_dir": str(data), "partition": PARTITION},
        )
    if "train_daily" in names:
        assets = [f"{m}_model" for m in daily_models]
        last = f"{DAY}-{config.daily_train_hours - 1:02d}:00"
        window = {"start_partition": f"{DAY}-00:00", "end_partition": last}
        step(
            "train_daily",
            "dagster_job",
            {"job": "train_detectors", "assets": assets}
            | {"run_config": {"ops": {a: {"config": window} for a in assets}}},
        )
    if "daily_scores" in names:
        # With --only, one step per asset too, so each detector's own peak memory shows.
        for model_id in daily_models if config.only and len(daily_models) > 1 else []:
            step(
                f"daily_scores_{model_id}",
                "dagster_materialize",
                {"assets": [f"{model_id}_scores"], "partition": DAY},
            )
        step(
            "daily_scores",
            "dagster_materialize",
            {"assets": [f"{m}_scores" for m in daily_models], "partition": DAY},
        )
    run.notes.append(
        "daily detectors scored 24 hourly feature partitions that are copies of the measured "
        "hour shifted by 0..23 h (simulating and ingesting 24 hours of "
        f"{config.devices:,} devices would take longer than the whole benchmark); they were "
        f"trained on the first {config.daily_train_hours} of those hours"
    )


def _run_only(config: BenchConfig, run: BenchRun, env: dict, logs: Path, log) -> BenchRun:
    """Part of the plan (``config.only``) on the home an earlier full run left."""
    from refrig_assets.core.storage import ParquetStore

    if config.only is None:
        raise ValueError("_run_only needs config.only (one of: " + ", ".join(ONLY) + ")")
    if config.only == "scale":
        return _run_only_scale(config, run, env, logs, log)
    names = ONLY[config.only]
    store = ParquetStore(config.out / "home" / "data")
    needed = [PARTITION] if "daily_features" in names else _day_hours()
    missing = [h for h in needed if not store.exists("device_features", h)]
    if missing:
        raise FileNotFoundError(
            f"--only {config.only} needs device_features {', '.join(missing[:3])}... under "
            f"{store.root} from an earlier full run (python -m tools.benchmarks)"
        )
    started = time.perf_counter()
    hourly_models, daily_models = _model_assets()
    log(f"benchmark: {config.devices:,} devices, only {config.only} ({', '.join(names)})")

    def step(name: str, kind: str, args: dict) -> StepResult:
        return run.add(run_step(name, kind, args, env, config.step_timeout_s, logs), log)

    _daily_steps(config, run, step, store.root, daily_models, names)
    run.notes.append(f"only {config.only}: on the project home of an earlier full run")
    return _finish(run, started, hourly_models, daily_models)


def _run_only_scale(config: BenchConfig, run: BenchRun, env: dict, logs: Path, log) -> BenchRun:
    """The hourly run at the measured fleet size and at ``scale_copies`` (default 10) times it,
    one after the other, with the detectors an earlier full run trained in ``<out>/home``."""
    from dataclasses import replace

    if not (config.out / "home" / "mlflow").exists():
        raise FileNotFoundError(
            f"--only scale needs the trained detectors of an earlier full run under "
            f"{config.out / 'home'} (python -m tools.benchmarks --out {config.out})"
        )
    started = time.perf_counter()
    hourly_models, daily_models = _model_assets()
    cache = config.out / "cache" / f"fleet-{config.devices}-seed{config.seed}"
    config = replace(config, scale_copies=config.scale_copies or 10)
    log(f"benchmark: {config.devices:,} devices and {config.scale_copies}× that, hourly run")

    def step(name: str, kind: str, args: dict) -> StepResult:
        return run.add(run_step(name, kind, args, env, config.step_timeout_s, logs), log)

    step("registry", "dagster_materialize", {"assets": ["device_registry"]})
    step(
        "hourly_total",
        "dagster_job",
        {"job": "hourly_pipeline", "partition": PARTITION, "forget_landing_index": True}
        | {"devices": config.devices},
    )
    _scale_steps(config, run, env, cache, logs, log)
    run.notes.append("only scale: on the project home of an earlier full run")
    return _finish(run, started, hourly_models, daily_models)


def _day_hours() -> list[str]:
    return [f"{DAY}-{h:02d}:00" for h in range(24)]


def _finish(run: BenchRun, started: float, hourly_models, daily_models) -> BenchRun:
    run.environment["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    run.environment["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
    run.environment["hourly_models"] = hourly_models
    run.environment["daily_models"] = daily_models
    return run


def write_json(run: BenchRun, path: Path) -> None:
    from tools.benchmarks.report import summary

    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "config": {
            "devices": run.config.devices,
            "growth": list(run.config.growth),
            "seed": run.config.seed,
            "spark": run.config.spark,
            "daily": run.config.daily,
            "scale_copies": run.config.scale_copies,
        },
        "environment": run.environment,
        "steps": {name: r.to_json() for name, r in run.results.items()},
        "summary": summary(run),
        "notes": run.notes,
    }
    path.write_text(json.dumps(body, indent=2, default=str))
