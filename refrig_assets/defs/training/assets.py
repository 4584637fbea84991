"""``<model_id>_model`` assets: fit a detector on a range of feature hours and register it."""

import dagster as dg
import pandas as pd

from refrig_assets.core.model_config import ModelConfig, all_model_ids, load_model_config
from refrig_assets.defs.shared.lifecycle import model_lifecycle, run_actor
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle.retraining_policy import asset_code_version, current_fingerprint
from refrig_assets.operations.maintenance import exclude_maintenance
from refrig_assets.scoring.score import with_cohort
from refrig_assets.training.fit import train_detector, training_partitions

GROUP = "training"


class TrainingConfig(dg.Config):
    """Which feature hours to train on (hourly partition keys, inclusive); default: all present."""

    start_partition: str | None = None
    end_partition: str | None = None


def load_training_features(refrig: RefrigResource, stems: list[str]) -> pd.DataFrame:
    """Training windows with cohorts; windows under declared maintenance never shape a baseline."""
    frame = refrig.store.read_many("device_features", stems)
    registry = refrig.store.read("device_registry")
    return exclude_maintenance(
        with_cohort(frame, registry), refrig.settings.alerts_db_url, registry
    )


def build_training_asset(config: ModelConfig) -> dg.AssetsDefinition:
    """One training asset for a detector configured in ``models/``."""
    model_id = config.model_id

    @dg.asset(
        name=f"{model_id}_model",
        group_name=GROUP,
        deps=["device_features", "device_registry"],
        description=f"{config.settings.get('description', model_id)} Trained on a range of "
        "feature hours and registered in MLflow with lineage tags.",
        kinds={"mlflow", "scikitlearn" if "forest" in config.detector else "python"},
        tags={"detector": config.detector},
        # Training code + models/ config: Dagster marks the model stale when either changes.
        code_version=asset_code_version(config),
    )
    def _train(
        context: dg.AssetExecutionContext, refrig: RefrigResource, config: TrainingConfig
    ) -> dg.MaterializeResult:
        model_config = load_model_config(model_id, refrig.settings.models_dir)
        stems = training_partitions(refrig.store, config.start_partition, config.end_partition)
        if not stems:
            raise ValueError(f"{model_id}: no device_features partitions to train on")
        features = load_training_features(refrig, stems)
        partitions = f"{stems[0]}..{stems[-1]}"
        detector, lineage, metrics = train_detector(
            model_config, features, partitions, context.run.run_id
        )
        version = refrig.registry.register(detector, lineage, metrics)
        fingerprint = current_fingerprint(
            model_config, [refrig.store.root / "device_features" / f"{s}.parquet" for s in stems]
        )
        # The first version of a model becomes production; a later one is a candidate that
        # only the promotion gates (<model_id>_canary → <model_id>_promotion) can promote.
        lifecycle = model_lifecycle(refrig)
        try:
            promoted = lifecycle.after_training(model_id, version, run_actor(context)) is not None
        finally:
            lifecycle.audit.close()
        tags = refrig.registry.version_tags(model_id, version)
        context.log.info(f"registered {model_id} version {version} ({tags.get('semver')})")
        return dg.MaterializeResult(
            metadata={
                "model_version": version,
                "semver": tags.get("semver", ""),
                "promoted_to_production": promoted,
                "awaiting_gates": not promoted,
                "training_partitions": partitions,
                "training_windows": lineage.training_rows,
                "training_data_hash": lineage.training_data_hash,
                "config_hash": lineage.config_hash,
                "code_version": lineage.code_version,
                **fingerprint.as_metadata(),
                **{k: float(v) for k, v in metrics.items()},
            }
        )

    return _train


training_assets = [build_training_asset(load_model_config(m)) for m in all_model_ids()]
defs = dg.Definitions(assets=training_assets)
