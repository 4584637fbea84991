"""Scoring speed and memory at fleet scale, and the synthetic feature windows it runs on.

:func:`synthetic_features` builds device_features rows straight from the contracts (every
sensor of ``sensor_readings`` gets a level inside its contract range per cohort, an offset per
device and noise per window), so detectors can be timed on any fleet size without simulating
readings first. :func:`bench_scoring` fits every detector in ``models/`` on a training range and
times scoring one hour of windows (and, for daily detectors, a whole day the way the daily
asset scores it), each measurement in a fresh process so peak memory is its own.

    .venv/bin/python -m tools.benchmarks.scoring --devices 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.scoring.runs import chunk_hours

START = datetime(2026, 1, 1, tzinfo=UTC)


def synthetic_features(
    devices: int,
    hours: int,
    start: datetime = START,
    seed: int = 0,
    cohorts: tuple[str, ...] = ("cohort_a", "cohort_b", "cohort_c"),
    window_minutes: int = 15,
    first_hour: int = 0,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Healthy feature windows of ``devices`` × ``hours`` (from hour ``first_hour`` after
    ``start``) in the device_features contract, plus a ``cohort`` column. Devices are the same
    for a seed whatever the hours asked, so a long range can be built in pieces. ``columns``
    limits the feature columns built (what a scoring step reads), to spare memory."""
    fleet = np.random.default_rng(seed)
    rng = np.random.default_rng([seed, first_hour, hours])
    readings = load_contract("sensor_readings")
    features = load_contract("device_features")
    per_hour = 60 // window_minutes
    n_windows = hours * per_hour
    n = devices * n_windows
    device_ids = np.array([f"dev-{i:06d}" for i in range(devices)], dtype=object)
    device_cohort = fleet.integers(0, len(cohorts), devices)
    first = pd.Timestamp(start).tz_convert("UTC").tz_localize(None).to_datetime64()
    first = first + np.timedelta64(first_hour * 60, "m")
    starts = first + np.arange(n_windows) * np.timedelta64(window_minutes, "m")
    out: dict[str, object] = {
        "device_id": np.repeat(device_ids, n_windows),
        "window_start": np.tile(starts, devices),
    }
    out["window_end"] = out["window_start"] + np.timedelta64(window_minutes, "m")
    duty = rng.uniform(0.35, 0.9, n)
    # Every sensor: a cohort level inside its contract range, a device offset, window noise;
    # a common load factor (the duty cycle) moves the sensors together, as in real plant.
    levels: dict[str, np.ndarray] = {}
    for col in readings.columns_with_role("sensor"):
        lo, hi = col.range or (0.0, 100.0)
        span = hi - lo
        cohort_level = lo + span * fleet.uniform(0.3, 0.6, len(cohorts))
        device_level = cohort_level[device_cohort] + fleet.normal(0, 0.02 * span, devices)
        load = fleet.uniform(-0.01, 0.01) * span * (duty - 0.6)
        levels[col.name] = (
            np.repeat(device_level, n_windows) + load + rng.normal(0, 0.003 * span, n)
        )
    for col in features.columns_with_role("feature"):
        if columns is not None and col.name not in columns:
            continue
        sensor, stat = col.extra["sensor"], col.extra["stat"]
        level = levels[sensor]
        spread = 0.002 * np.abs(level) + 1e-3
        out[col.name] = {
            "mean": level,
            "std": spread,
            "min": level - 2 * spread,
            "max": level + 2 * spread,
            "last": level + rng.normal(0, 1, n) * spread,
            "slope": rng.normal(0, 0.01, n) * spread,
        }[stat]
    out["duty_cycle"] = duty
    out["door_open_fraction"] = rng.uniform(0.0, 0.1, n)
    out["reading_count"] = np.full(n, window_minutes, dtype=np.int64)
    out["sensor_completeness"] = np.ones(n)
    out["quality_mask"] = np.zeros(n, dtype=np.int64)
    out["quality_flags"] = np.full(n, "", dtype=object)
    wanted = features.column_names if columns is None else [*columns]
    for name in features.column_names:
        # Columns no detector input needs (the probable-cause features): a quiet value of
        # their type, so the frame is a whole device_features partition.
        if name in wanted and name not in out:
            kind = features.column(name).type
            out[name] = np.zeros(n, dtype=np.int64) if kind == "int" else np.zeros(n)
    frame = pd.DataFrame({c: out[c] for c in features.column_names if c in wanted})
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    frame["window_end"] = pd.to_datetime(frame["window_end"], utc=True)
    frame["cohort"] = np.repeat(np.asarray(cohorts, dtype=object)[device_cohort], n_windows)
    return frame


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def measure_model(model_id: str, devices: int, train_hours: int, seed: int = 0) -> dict:
    """Fit one detector on ``train_hours`` and time scoring the following hour (with the
    detector's lookback), in this process."""
    from refrig_assets.core.model_config import load_model_config
    from refrig_assets.detectors.base import build_detector
    from refrig_assets.scoring.score import lookback_hours, score_windows

    config = load_model_config(model_id)
    detector = build_detector(config)
    frame = synthetic_features(
        devices, train_hours + 1, seed=seed, columns=detector.required_columns
    )
    hour = pd.Timestamp(START) + pd.Timedelta(hours=train_hours)
    train = frame[frame["window_start"] < hour]
    t = time.perf_counter()
    detector.fit(train)
    fit_s = time.perf_counter() - t
    lookback = pd.Timedelta(hours=lookback_hours(detector))
    scored = frame[frame["window_start"] >= hour - lookback].reset_index(drop=True)
    del frame, train
    t, cpu = time.perf_counter(), time.process_time()
    scores = score_windows(detector, "bench", scored, datetime.now(UTC), since=hour)
    score_s, score_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    return {
        "model_id": model_id,
        "schedule": config.schedule,
        "devices": devices,
        "training_windows": detector.training_rows,
        "windows_scored": int((scored["window_start"] >= hour).sum()),
        "rows_out": len(scores),
        "fit_s": round(fit_s, 2),
        "score_hour_s": round(score_s, 2),
        "score_hour_cpu_s": round(score_cpu_s, 2),
        "peak_rss_gb": round(_peak_rss_gb(), 2),
    }


def measure_day(model_id: str, devices: int, train_hours: int, seed: int = 0) -> dict:
    """Fit one detector, then score a whole day after the training range the way the daily
    score asset does: runs of ``scoring_chunk_hours`` hours, each with its lookback."""
    from refrig_assets.core.model_config import load_model_config
    from refrig_assets.detectors.base import build_detector
    from refrig_assets.scoring.score import lookback_hours, score_windows

    config = load_model_config(model_id)
    detector = build_detector(config)
    detector.fit(
        synthetic_features(devices, train_hours, seed=seed, columns=detector.required_columns)
    )
    size = chunk_hours(config)
    back = lookback_hours(detector)
    wall, cpu, rows = 0.0, 0.0, 0
    for first in range(train_hours, train_hours + 24, size):
        chunk = synthetic_features(
            devices,
            size + back,
            seed=seed,
            first_hour=first - back,
            columns=detector.required_columns,
        )
        since = pd.Timestamp(START) + pd.Timedelta(hours=first)
        t, c = time.perf_counter(), time.process_time()
        rows += len(score_windows(detector, "bench", chunk, datetime.now(UTC), since=since))
        wall, cpu = wall + time.perf_counter() - t, cpu + time.process_time() - c
        del chunk
    return {
        "model_id": model_id,
        "devices": devices,
        "rows_out_day": rows,
        "score_day_s": round(wall, 1),
        "score_day_cpu_s": round(cpu, 1),
        "peak_rss_gb": round(_peak_rss_gb(), 2),
    }


def bench_scoring(devices: int = 100_000, train_hours: int = 2) -> list[dict]:
    """Every detector in ``models/``, each measured in its own process."""
    from refrig_assets.core.model_config import all_model_ids, load_model_config

    results = []
    for model_id, day in [(m, False) for m in all_model_ids()] + [
        (m, True) for m in all_model_ids() if load_model_config(m).schedule == "daily"
    ]:
        cmd = [
            sys.executable,
            "-m",
            "tools.benchmarks.scoring",
            "--model",
            model_id,
            "--devices",
            str(devices),
            "--train-hours",
            str(train_hours),
            *(["--day"] if day else []),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--train-hours", type=int, default=2)
    parser.add_argument("--model", help="measure one model in this process (JSON line out)")
    parser.add_argument("--day", action="store_true", help="with --model: score a whole day")
    args = parser.parse_args()
    if args.model:
        measure = measure_day if args.day else measure_model
        print(json.dumps(measure(args.model, args.devices, args.train_hours)))
        return
    for row in bench_scoring(args.devices, args.train_hours):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
