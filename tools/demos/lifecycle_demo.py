"""The lifecycle story, scripted end to end on a small simulated fleet (``make lifecycle-demo``).

train v1 → it becomes production (first version) → train a deliberately worse v2 (absurd
hyperparameters, a handful of training windows) → the canary and gates block it → force-promote
it (recorded as forced) → roll back to v1 by pinning → the audit history shows all of it and
answers which version served at any time.

Everything is real and on disk under one work directory: simulated readings go through the
project's quality rules and feature SQL, versions are registered in an MLflow registry, the audit
trail is a SQLite database, and the pin is written into a copy of ``models/``.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from refrig_assets.core.model_config import ModelConfig, load_model_config
from refrig_assets.core.settings import MODELS_DIR
from refrig_assets.core.storage import ParquetStore
from refrig_assets.features.windows import feature_sql
from refrig_assets.ingestion.device_registry import conform_registry
from refrig_assets.lifecycle import audit as events
from refrig_assets.lifecycle.audit import AuditTrail, LifecycleEvent
from refrig_assets.lifecycle.history import serving_version_at, timeline_frame
from refrig_assets.lifecycle.policy import load_policy
from refrig_assets.lifecycle.promotion import (
    Evaluation,
    ModelLifecycle,
    evaluate_candidate,
    read_labels,
    recent_features,
)
from refrig_assets.scoring.score import score_windows, with_cohort
from refrig_assets.simulator import FleetSimulator, SimulationConfig
from refrig_assets.training.fit import train_detector
from refrig_assets.training.registry import ModelRegistry

ACTOR = "lifecycle-demo"
# The deliberately worse candidate: two tiny trees, trained on a few devices of one hour.
WORSE_HYPERPARAMETERS = {"n_estimators": 2, "max_samples": 16}
WORSE_TRAINING_DEVICES = 3


def hour_key(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d-%H:00")


def simulated_features(
    config: SimulationConfig,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """Feature windows per hourly partition key, the device registry and the labels of a
    simulated fleet, computed by the project's feature SQL. The simulated readings are typed and
    unique already; the quality rules are not the subject here, so every reading counts as clean
    (the feature SQL still ignores values outside the contract ranges)."""
    sim = FleetSimulator(config)
    registry = conform_registry(sim.registry(), "simulator")
    out: dict[str, pd.DataFrame] = {}
    for start, readings in sim.hours():
        clean = readings.assign(
            ts=readings["ts"].astype("datetime64[us, UTC]"), quality_mask=np.int64(0)
        )
        con = duckdb.connect()
        try:
            con.register("clean", clean)
            frame = con.execute(feature_sql("clean", cadence_seconds=config.cadence_seconds)).df()
        finally:
            con.close()
        # DuckDB hands back its session zone (Etc/UTC); the contracts want UTC itself.
        for column in ("window_start", "window_end"):
            frame[column] = frame[column].dt.tz_convert("UTC")
        out[hour_key(start)] = frame
    return out, registry, sim.labels()


@dataclass
class ScenarioOutcome:
    """What happened, for the caller to print or check."""

    model_id: str
    events: list[LifecycleEvent]
    evaluation: Evaluation
    scored_version_after_rollback: str
    timeline: pd.DataFrame
    workdir: Path


def worse_config(config: ModelConfig) -> ModelConfig:
    """The same detector with absurd hyperparameters (for the blocked candidate)."""
    hp = {**config.hyperparameters, **WORSE_HYPERPARAMETERS}
    return dataclasses.replace(
        config, hyperparameters=hp, settings={**config.settings, "hyperparameters": hp}
    )


def run_scenario(
    workdir: Path,
    *,
    devices: int = 30,
    hours: int = 8,
    train_hours: int = 2,
    seed: int = 7,
    model_id: str = "isolation_forest",
    log: Callable[[str], None] = print,
) -> ScenarioOutcome:
    """Run the whole story in ``workdir`` (emptied first) and return its outcome."""
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    models_dir = workdir / "models"
    shutil.copytree(MODELS_DIR, models_dir)
    store = ParquetStore(workdir / "data")
    registry = ModelRegistry(f"sqlite:///{workdir / 'mlflow' / 'mlflow.db'}", workdir / "mlflow")
    audit = AuditTrail(f"sqlite:///{workdir / 'lifecycle.db'}")
    lifecycle = ModelLifecycle(registry, audit, models_dir)
    policy = load_policy(models_dir, model_id)
    config = load_model_config(model_id, models_dir)

    start = datetime(2026, 1, 1, tzinfo=UTC)
    log(f"simulating {devices} devices × {hours} h and computing features ...")
    sim = SimulationConfig(devices=devices, hours=hours, start=start, seed=seed, fault_fraction=0.2)
    by_hour, device_registry, labels = simulated_features(sim)
    store.write("device_registry", None, device_registry)
    for key, frame in by_hour.items():
        store.write("device_features", key, frame)
    labels_path = workdir / "labels.parquet"
    labels.to_parquet(labels_path, index=False)
    keys = list(by_hour)
    train = with_cohort(
        pd.concat([by_hour[k] for k in keys[:train_hours]], ignore_index=True), device_registry
    )

    detector, lineage, metrics = train_detector(
        config, train, f"{keys[0]}..{keys[train_hours - 1]}", "demo-v1"
    )
    v1 = registry.register(detector, lineage, metrics)
    lifecycle.after_training(model_id, v1, ACTOR)
    log(f"v{v1} trained on {len(train)} windows → production (first version)")

    tiny = train[
        train["device_id"].isin(sorted(train["device_id"].unique())[:WORSE_TRAINING_DEVICES])
    ]
    tiny = tiny[tiny["window_start"] < tiny["window_start"].min() + pd.Timedelta(hours=1)]
    detector, lineage, metrics = train_detector(worse_config(config), tiny, keys[0], "demo-v2")
    v2 = registry.register(detector, lineage, metrics)
    lifecycle.after_training(model_id, v2, ACTOR)
    log(f"v{v2} trained on {len(tiny)} windows with {WORSE_HYPERPARAMETERS} → candidate")

    features, stems = recent_features(store, int(policy["canary"]["recent_hours"]))
    evaluation = evaluate_candidate(
        registry, model_id, v2, v1, features, device_registry, read_labels(labels_path), policy
    )
    blocked = lifecycle.apply(evaluation.report, ACTOR)
    log(f"canary + gates on {stems[0]}..{stems[-1]}: {blocked.event}")
    for gate in evaluation.report.failed:
        log(f"  [{gate.kind}] {gate.detail}")

    forced = lifecycle.apply(
        evaluation.report, ACTOR, force=True, reason="demo: force-promote past the gates"
    )
    log(f"{forced.event}: production is v{forced.production_version} (forced)")

    rolled = lifecycle.rollback(model_id, ACTOR, "v2 is worse: roll back to the last good version")
    pinned = load_model_config(model_id, models_dir).pinned_version
    version = registry.resolve_version(model_id, pinned)
    scored = score_windows(registry.load(model_id, version), version, features, datetime.now(UTC))
    log(
        f"{rolled.event}: models/{model_id}.yaml pins v{pinned}; the next scoring run uses "
        f"v{version} ({len(scored)} windows scored as version {set(scored['model_version'])})"
    )

    history = audit.events(model_id)
    timeline = timeline_frame(audit, model_id)
    log("\naudit trail:")
    for e in history:
        log(
            f"  {e.at:%H:%M:%S.%f} {e.event:<18} {e.from_version or '-'} → {e.to_version or '-'}"
            f"  serving v{e.serving_version}  by {e.actor}{'  FORCED' if e.forced else ''}"
        )
    log("\nserving history:")
    for period in timeline.to_dict("records"):
        until = "now" if pd.isna(period["until"]) else f"{period['until']:%H:%M:%S.%f}"
        marks = (" pinned" if period["pinned"] else "") + (" FORCED" if period["forced"] else "")
        log(f"  v{period['version']}{marks}: {period['from']:%H:%M:%S.%f} .. {until}")
    for e in history:
        assert serving_version_at(audit, model_id, e.at) == e.serving_version
    audit.close()
    if events.ROLLED_BACK not in {e.event for e in history}:  # pragma: no cover - sanity
        raise RuntimeError("the scenario did not roll back")
    return ScenarioOutcome(model_id, history, evaluation, version, timeline, workdir)


def main(argv: list[str] | None = None) -> None:
    """``make lifecycle-demo``: run the scripted lifecycle in its own folder and print each step."""
    import argparse
    import logging
    import os
    import warnings

    from refrig_assets.core.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where to run (emptied first; default REFRIG_HOME/lifecycle-demo)",
    )
    parser.add_argument("--devices", type=int, default=30, help="simulated devices (>= 10)")
    args = parser.parse_args(argv)
    if args.devices < 10:
        parser.error("--devices must be at least 10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    target = args.workdir or get_settings().home / "lifecycle-demo"
    outcome = run_scenario(target, devices=args.devices, log=print)
    print(f"\nall of it is on disk under {outcome.workdir}")


if __name__ == "__main__":
    main()
