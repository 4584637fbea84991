"""Conditional retraining in the asset graph: why a model is stale, and retraining only then.

Each ``<model_id>_model`` asset carries a ``code_version`` (training code + models/ config, see
:mod:`refrig_assets.lifecycle.retraining_policy`), so the UI marks it stale when either changes.
The ``training_is_current`` check says in words why (code, config, dataset or drift), and the
``conditional_retraining`` sensor retrains a detector only when its code, config or training
dataset changed — drift requests are left to the ``retraining_trigger`` sensor.
"""

import dagster as dg
import pandas as pd

from refrig_assets.core.model_config import all_model_ids, load_model_config
from refrig_assets.defs.shared.jobs import TRAINING_JOB
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle.retraining_policy import (
    RetrainingDecision,
    TrainingFingerprint,
    current_fingerprint,
    decide_retraining,
    training_range_files,
)
from refrig_assets.monitoring.retraining_trigger import DRIFT, RetrainingLog


def last_training_metadata(instance: dg.DagsterInstance, model_id: str) -> tuple[dict, float]:
    """Metadata values and timestamp of the latest ``<model_id>_model`` materialization."""
    event = instance.get_latest_materialization_event(dg.AssetKey(f"{model_id}_model"))
    if event is None or event.asset_materialization is None:
        return {}, 0.0
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    return metadata, event.timestamp


def pending_drift_reasons(refrig: RefrigResource, model_id: str, since: float) -> list[str]:
    """Reasons of drift retraining requests recorded after the last training."""
    log = RetrainingLog(refrig.settings.alerts_db_url)
    try:
        requests = log.list(model_id)
    finally:
        log.close()
    after = pd.Timestamp(since, unit="s", tz="UTC")
    pending = requests[(requests["trigger"] == DRIFT) & (requests["requested_at"] > after)]
    return [str(r) for r in pending["reason"]]


def retraining_decision(
    instance: dg.DagsterInstance, refrig: RefrigResource, model_id: str
) -> tuple[RetrainingDecision, dict]:
    """The decision for ``model_id`` now, and the metadata of its last training."""
    metadata, at = last_training_metadata(instance, model_id)
    config = load_model_config(model_id, refrig.settings.models_dir)
    files = training_range_files(refrig.store.root, str(metadata.get("training_partitions", "")))
    current = current_fingerprint(config, files)
    last = TrainingFingerprint.from_metadata(metadata)
    drift = pending_drift_reasons(refrig, model_id, at) if metadata else []
    return decide_retraining(model_id, current, last, drift), metadata


def build_currency_check(model_id: str) -> dg.AssetChecksDefinition:
    """``training_is_current`` on ``<model_id>_model``: warns with the reasons it is stale."""

    @dg.asset_check(
        asset=f"{model_id}_model",
        name="training_is_current",
        description="Passes while the training code, the models/ config and the training dataset "
        "are those of the last training and no drift request is pending; otherwise says why "
        "the model is stale.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, refrig: RefrigResource
    ) -> dg.AssetCheckResult:
        decision, metadata = retraining_decision(context.instance, refrig, model_id)
        refused = str(metadata.get("not_trained") or "")
        return dg.AssetCheckResult(
            passed=not decision.retrain,
            severity=dg.AssetCheckSeverity.WARN,
            # A last training that fitted nothing (a small fleet) is said as such: retraining
            # on the same inputs would refuse again.
            description=f"{model_id} not trained ({refused}); " + decision.summary
            if refused
            else decision.summary,
            metadata={
                "stale_because": "; ".join(decision.reasons) or "nothing changed",
                "not_trained": refused,
            },
        )

    return _check


currency_checks = [build_currency_check(m) for m in all_model_ids()]


def retraining_request(decision: RetrainingDecision, metadata: dict) -> dg.RunRequest | None:
    """A training run for a code, config or dataset change (drift-only decisions: None).

    A model whose last training recorded no fingerprint is left alone: what changed is unknown.
    """
    changes = [r for r in decision.reasons if not r.startswith("drift asked")]
    if not decision.retrain or not changes or TrainingFingerprint.from_metadata(metadata) is None:
        return None
    asset = f"{decision.model_id}_model"
    first, _, last = str(metadata.get("training_partitions", "")).partition("..")
    config = {"start_partition": first, "end_partition": last} if first and last else {}
    key = "|".join(changes)
    return dg.RunRequest(
        run_key=f"retrain:{decision.model_id}:{key}",
        job_name=TRAINING_JOB,
        asset_selection=[dg.AssetKey(asset)],
        run_config={"ops": {asset: {"config": config}}} if config else {},
        tags={"refrig/trigger": "code_config_or_data", "refrig/reason": decision.summary[:500]},
    )


@dg.sensor(
    name="conditional_retraining",
    job_name=TRAINING_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrains a detector on its last training range when its training code, its "
    "models/ config or that range's feature data changed since its last training; any other code "
    "change requests nothing. Detectors never trained are left to the pipeline.",
)
def conditional_retraining(
    context: dg.SensorEvaluationContext, refrig: RefrigResource
) -> dg.SensorResult:
    """One run request per detector whose training inputs changed (run key: the change)."""
    requests = []
    for model_id in all_model_ids(refrig.settings.models_dir):
        decision, metadata = retraining_decision(context.instance, refrig, model_id)
        request = retraining_request(decision, metadata)
        if request is not None:
            context.log.info(decision.summary)
            requests.append(request)
    return dg.SensorResult(run_requests=requests)
