"""``<model_id>_model`` assets: fit a detector on a range of feature hours and register it."""

import dagster as dg
import pandas as pd

from refrig_assets.core.model_config import (
    ModelConfig,
    all_model_ids,
    load_model_config,
)
from refrig_assets.defs.shared.lifecycle import model_lifecycle, run_actor
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.detectors.base import NotTrainable
from refrig_assets.lifecycle.promotion import GATE_STATUS_TAG, PENDING
from refrig_assets.lifecycle.retraining_policy import (
    asset_code_version,
    current_fingerprint,
)
from refrig_assets.operations.maintenance import exclude_maintenance
from refrig_assets.scoring.score import with_cohort
from refrig_assets.training.baselines import (
    baseline_windows,
    choose_periods,
    read_ledger,
    read_normal_periods,
    start_up_ends,
    start_ups_left_out,
    without_start_up,
    write_ledger,
)
from refrig_assets.training.fit import (
    train_detector,
    training_fingerprint,
    training_partitions,
)
from refrig_assets.training.registry import ARTIFACT_SHA256_TAG, CorruptArtifactError

GROUP = "training"


class TrainingConfig(dg.Config):
    """Which feature hours to train on (hourly partition keys, inclusive); default: all present.

    Per-device baselines instead of one range for the fleet: ``baseline_first_hours`` (each
    device's own first N hours of clean windows) and/or ``normal_periods_file`` (CSV/Parquet of
    device_id, start, end). The periods are kept for later trainings unless
    ``reset_baselines`` (see :mod:`refrig_assets.training.baselines`)."""

    start_partition: str | None = None
    end_partition: str | None = None
    baseline_first_hours: float | None = None
    normal_periods_file: str | None = None
    reset_baselines: bool = False


def per_device_baselines(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    config: TrainingConfig,
    features: pd.DataFrame,
) -> pd.DataFrame:
    """The training windows: ``features`` as they are, or each device's baseline windows when
    the config asks for per-device baselines (periods recorded in the baseline ledger)."""
    if not config.baseline_first_hours and not config.normal_periods_file:
        return features
    ledger_path = refrig.store.root / "device_baselines.parquet"
    periods = choose_periods(
        features,
        first_hours=config.baseline_first_hours,
        normal_periods=read_normal_periods(config.normal_periods_file)
        if config.normal_periods_file
        else None,
        ledger=read_ledger(ledger_path),
        reset=config.reset_baselines,
    )
    write_ledger(periods, ledger_path)
    chosen = baseline_windows(features, periods)
    waiting = features["device_id"].nunique() - chosen["device_id"].nunique()
    context.log.info(
        f"per-device baselines: {chosen['device_id'].nunique()} device(s) with their own "
        f"({len(chosen)} windows); {waiting} without one yet use their cohort's"
    )
    return chosen


def load_training_features(refrig: RefrigResource, stems: list[str]) -> pd.DataFrame:
    """Training windows with cohorts; windows under declared maintenance never shape a baseline."""
    frame = refrig.store.read_many("device_features", stems)
    registry = refrig.store.read("device_registry")
    return exclude_maintenance(
        with_cohort(frame, registry), refrig.settings.alerts_db_url, registry
    )


def running_before(refrig: RefrigResource, stems: list[str], features: pd.DataFrame) -> set[str]:
    """Devices whose recorded history began before the training windows: when earlier hours are
    stored, those already reporting in the first training hour (their start-up lies earlier)."""
    stored = refrig.store.partitions("device_features")
    if not stored or not len(features) or stems[0] <= stored[0]:
        return set()
    starts = pd.to_datetime(features["window_start"], utc=True)
    first_hour = starts < starts.min().floor("h") + pd.Timedelta(hours=1)
    return set(features.loc[first_hour.to_numpy(), "device_id"].astype(str))


def reusable_version(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    model_id: str,
    fingerprint: dict[str, str],
) -> str | None:
    """The registered version trained with this fingerprint whose artifact is intact, if any
    (a corrupt one is not reused: training registers a fresh version)."""
    version = refrig.registry.version_with_fingerprint(model_id, fingerprint)
    if version is None:
        return None
    try:
        refrig.registry.check(model_id, version)
    except CorruptArtifactError as exc:
        context.log.error(f"{exc}; not reused, training a new version")
        return None
    return version


def reused_result(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    model_id: str,
    version: str,
    partitions: str,
    fingerprint,
) -> dg.MaterializeResult:
    """Nothing new registered: the metadata names the reused version. A model without a
    production version yet still gets its first one (audited)."""
    lifecycle = model_lifecycle(refrig)
    try:
        promoted = False
        if refrig.registry.production_version(model_id) is None:
            promoted = lifecycle.after_training(model_id, version, run_actor(context)) is not None
    finally:
        lifecycle.audit.close()
    tags = refrig.registry.version_tags(model_id, version)
    context.log.info(
        f"{model_id}: code, config and training data unchanged — reused version {version} "
        f"({tags.get('semver')}); nothing registered"
    )
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "semver": tags.get("semver", ""),
            "reused_version": True,
            "reused": f"reused version {version}: same code version, config hash and "
            "training-data hash",
            "promoted_to_production": promoted,
            "awaiting_gates": tags.get(GATE_STATUS_TAG) == PENDING,
            "training_partitions": partitions,
            "registered_training_partitions": tags.get("training_partitions", ""),
            "training_windows": int(tags.get("training_rows", 0) or 0),
            "training_data_hash": tags.get("training_data_hash", ""),
            "config_hash": tags.get("config_hash", ""),
            "code_version": tags.get("code_version", ""),
            ARTIFACT_SHA256_TAG: tags.get(ARTIFACT_SHA256_TAG, ""),
            **fingerprint.as_metadata(),
        }
    )


def not_trained_result(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    refused: NotTrainable,
    partitions: str,
    fingerprint,
) -> dg.MaterializeResult:
    """The training data is too small for the detector (e.g. a fleet with no more devices than
    DBSCAN's ``min_samples``) or carries no information (every scored feature missing or
    constant, e.g. no window in the running state): nothing is registered, the refusal is audited, and the asset
    succeeds with ``trained: False`` and the reason. Scoring then writes empty partitions that
    say why; a production version from an earlier training, if any, keeps serving. The next
    training on enough data trains it normally."""
    model_id = refused.model_id
    lifecycle = model_lifecycle(refrig)
    try:
        lifecycle.record_not_trained(model_id, run_actor(context), refused.reason, refused.setting)
        serving = lifecycle.state(model_id).serving
    finally:
        lifecycle.audit.close()
    context.log.warning(
        f"{model_id}: not trained on {partitions}: {refused.reason}"
        + (f"; version {serving} keeps serving" if serving else "; it is not scored")
    )
    return dg.MaterializeResult(
        metadata={
            "trained": False,
            "not_trained": refused.reason,
            "short_of_setting": refused.setting,
            "model_version": "",
            "serving_version": serving or "",
            "reused_version": False,
            "promoted_to_production": False,
            "awaiting_gates": False,
            "training_partitions": partitions,
            **fingerprint.as_metadata(),
        }
    )


def mlflow_version_link(model_id: str, version: str) -> dict[str, dg.MetadataValue]:
    """``mlflow_version``: a link to the version's page in the MLflow UI (config/access.yaml
    links.mlflow_url; none when that is empty)."""
    from refrig_assets.access.policy import load_access_policy

    base = load_access_policy().mlflow_url
    if not base:
        return {}
    return {
        "mlflow_version": dg.MetadataValue.url(f"{base}/#/models/{model_id}/versions/{version}")
    }


def build_training_asset(config: ModelConfig) -> dg.AssetsDefinition:
    """One training asset for a detector configured in ``models/``."""
    model_id = config.model_id

    @dg.asset(
        name=f"{model_id}_model",
        group_name=GROUP,
        owners=["team:ml-platform"],
        deps=["device_features", "device_registry"],
        description=f"{config.settings.get('description', model_id)} Trained on a range of "
        "feature hours and registered in MLflow with lineage tags.",
        kinds={"mlflow", "scikitlearn" if "forest" in config.detector else "python"},
        tags={"detector": config.detector},
        # Training code + models/ config: Dagster marks the model stale when either changes.
        code_version=asset_code_version(config),
    )
    def _train(
        context: dg.AssetExecutionContext,
        refrig: RefrigResource,
        config: TrainingConfig,
    ) -> dg.MaterializeResult:
        model_config = load_model_config(model_id, refrig.settings.models_dir)
        stems = training_partitions(refrig.store, config.start_partition, config.end_partition)
        if not stems:
            raise ValueError(f"{model_id}: no device_features partitions to train on")
        loaded = load_training_features(refrig, stems)
        baseline = per_device_baselines(context, refrig, config, loaded)
        start_ups = start_up_ends(
            loaded,
            float(model_config.setting("training.start_up_minutes")),
            running_before(refrig, stems, loaded),
        )
        features = without_start_up(
            baseline, start_ups, int(model_config.hyperparameters.get("min_device_windows", 1))
        )
        partitions = f"{stems[0]}..{stems[-1]}"
        fingerprint = current_fingerprint(
            model_config,
            [refrig.store.root / "device_features" / f"{s}.parquet" for s in stems],
        )
        # Same code, config, data and feature schema as a registered version: reuse it.
        reused = reusable_version(
            context, refrig, model_id, training_fingerprint(model_config, features)
        )
        if reused is not None:
            return reused_result(context, refrig, model_id, reused, partitions, fingerprint)
        try:
            detector, lineage, metrics = train_detector(
                model_config, features, partitions, context.run.run_id
            )
        except NotTrainable as refused:
            return not_trained_result(context, refrig, refused, partitions, fingerprint)
        detector.set_start_ups(start_ups_left_out(baseline, features, start_ups))
        version = refrig.registry.register(detector, lineage, metrics, training_features=features)
        tags = refrig.registry.version_tags(model_id, version)
        # The first version of a model becomes production; a later one is a candidate that
        # only the promotion gates (<model_id>_canary → <model_id>_promotion) can promote.
        lifecycle = model_lifecycle(refrig)
        try:
            lifecycle.record_registration(
                model_id,
                version,
                run_actor(context),
                refrig.registry.recorded_checksums(model_id, version) or {},
                f"registered version {version} ({tags.get('semver', '')}) trained on "
                f"{partitions}; artifact sha256 recorded",
            )
            promoted = lifecycle.after_training(model_id, version, run_actor(context)) is not None
        finally:
            lifecycle.audit.close()
        context.log.info(f"registered {model_id} version {version} ({tags.get('semver')})")
        for note in detector.notes:
            context.log.warning(f"{model_id}: {note}")
        return dg.MaterializeResult(
            metadata={
                "model_version": version,
                **mlflow_version_link(model_id, version),
                "semver": tags.get("semver", ""),
                "reused_version": False,
                "promoted_to_production": promoted,
                "awaiting_gates": not promoted,
                "training_partitions": partitions,
                "training_windows": lineage.training_rows,
                "training_notes": "; ".join(detector.notes),
                "training_data_hash": lineage.training_data_hash,
                "config_hash": lineage.config_hash,
                "code_version": lineage.code_version,
                ARTIFACT_SHA256_TAG: tags.get(ARTIFACT_SHA256_TAG, ""),
                **fingerprint.as_metadata(),
                **{k: float(v) for k, v in metrics.items()},
            }
        )

    return _train


training_assets = [build_training_asset(load_model_config(m)) for m in all_model_ids()]
defs = dg.Definitions(assets=training_assets)
