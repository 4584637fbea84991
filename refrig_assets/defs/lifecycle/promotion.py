"""``<model_id>_canary`` and ``<model_id>_promotion``: gated promotion in the asset graph.

The canary asset scores the newest candidate and the champion on the same recent feature hours
(no alerts), and reports the four canary criteria, the absolute thresholds and the backtest
against the champion as blocking checks: a failing gate records the blocked promotion in the
audit trail and keeps the promotion asset from running. The promotion asset starts the
progressive rollout of a candidate that passed (``rollout`` in ``config/lifecycle.yaml``; the
score assets then advance or roll it back), or moves the ``production`` alias at once when the
rollout is switched off or ``now`` is set — and, configured with ``force`` and a reason, to a
candidate that did not pass (recorded as forced).
"""

import base64
import json

import dagster as dg

from refrig_assets.core.model_config import (
    ModelConfig,
    all_model_ids,
    load_model_config,
)
from refrig_assets.defs.shared.lifecycle import GROUP, model_lifecycle, run_actor
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle.audit import ROLLOUT_STARTED
from refrig_assets.lifecycle.canary import CRITERIA, canary_markdown, canary_plot
from refrig_assets.lifecycle.gates import ABSOLUTE, VS_CHAMPION, GateReport
from refrig_assets.lifecycle.integrity import not_trained_models
from refrig_assets.lifecycle.policy import load_policy
from refrig_assets.lifecycle.promotion import (
    GATE_STATUS_TAG,
    PENDING,
    LifecycleError,
    evaluate_candidate,
    read_labels,
    recent_features,
)
from refrig_assets.lifecycle.rollout import RolloutManager

GATE_CHECKS = {ABSOLUTE: "absolute_gates", VS_CHAMPION: "backtest_vs_champion"}
CHECK_DESCRIPTIONS = {
    "canary_mean_abs_score_diff": "Mean |candidate score − production score| over the same "
    "windows is within config/lifecycle.yaml's canary threshold.",
    "canary_contamination_rate_change": "The share of windows the candidate flags differs from "
    "production's by no more than the canary threshold (relative change).",
    "canary_top_k_overlap": "The candidate's top-K devices overlap production's by at least the "
    "canary threshold.",
    "canary_score_kl_divergence": "KL divergence of the candidate's score histogram from "
    "production's is within the canary threshold.",
    "absolute_gates": "The candidate meets the absolute thresholds of config/lifecycle.yaml "
    "(backtest recall, precision, false alerts) on its own.",
    "backtest_vs_champion": "The candidate's labelled backtest is not worse than the champion's "
    "by more than the allowed margins.",
}


class CanaryConfig(dg.Config):
    """Which version to evaluate; default: the newest registered version while it awaits its
    gates (a blocked version is evaluated again only when named here)."""

    candidate: str | None = None


class PromotionConfig(dg.Config):
    """``force`` promotes a candidate that failed its gates (a reason is required; recorded);
    ``now`` promotes a passing one without the progressive rollout."""

    force: bool = False
    now: bool = False
    reason: str = ""


def evaluation_path(refrig: RefrigResource, model_id: str):
    return refrig.settings.home / "lifecycle" / f"{model_id}_evaluation.json"


def pick_candidate(refrig: RefrigResource, model_id: str, requested: str | None):
    """(candidate, champion) to evaluate, or None when there is nothing to compare."""
    registry = refrig.registry
    champion = registry.production_version(model_id)
    if requested:
        candidate = registry.find_version(model_id, requested)
    else:
        candidate = registry.latest_version(model_id)
        # Only a version still waiting for its gates; a blocked one is re-evaluated on request.
        if candidate is not None and registry.version_tags(model_id, candidate).get(
            GATE_STATUS_TAG
        ) not in (None, PENDING):
            return None
    if champion is None or candidate is None or candidate == champion:
        return None
    return candidate, champion


def _check(asset: str, name: str, gates, nothing: str | None = None) -> dg.AssetCheckResult:
    if nothing is not None:
        return dg.AssetCheckResult(
            asset_key=asset,
            check_name=name,
            passed=True,
            metadata={"evaluated": nothing},
        )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=all(g.passed for g in gates),
        metadata={g.name: dg.MetadataValue.text(g.detail) for g in gates}
        | {"failed_by": dg.MetadataValue.json({g.name: g.margin for g in gates if not g.passed})},
    )


def build_canary_asset(config: ModelConfig) -> dg.AssetsDefinition:
    """The canary + gates evaluation asset of one detector."""
    model_id = config.model_id
    name = f"{model_id}_canary"
    check_names = [f"canary_{c}" for c in CRITERIA] + list(GATE_CHECKS.values())

    @dg.asset(
        name=name,
        group_name=GROUP,
        owners=["team:ml-platform"],
        deps=[f"{model_id}_model", "device_features", "device_registry"],
        description=f"Canary of the newest {model_id} candidate against the production "
        "version on the same recent feature hours (no alerts): mean |score diff|, contamination "
        "change, top-K device overlap, score KL, plus absolute thresholds and the labelled "
        "backtest against the champion. Failing gates block the promotion and are audited.",
        check_specs=[
            dg.AssetCheckSpec(
                c,
                asset=name,
                blocking=True,
                description=CHECK_DESCRIPTIONS[c] + " A failure blocks the promotion.",
            )
            for c in check_names
        ],
        kinds={"mlflow", "parquet"},
        tags={"detector": config.detector},
    )
    def _canary(
        context: dg.AssetExecutionContext, refrig: RefrigResource, config: CanaryConfig
    ) -> dg.MaterializeResult:
        picked = pick_candidate(refrig, model_id, config.candidate)
        path = evaluation_path(refrig, model_id)
        if picked is None:
            path.unlink(missing_ok=True)
            why = "no candidate awaiting promotion"
            if refrig.registry.latest_version(model_id) is None:
                refused = not_trained_models([model_id], refrig.settings.alerts_db_url)
                if model_id in refused:
                    why = f"not trained ({refused[model_id]}): nothing to promote"
            return dg.MaterializeResult(
                metadata={"candidate": "none", "summary": why},
                check_results=[_check(name, c, [], why) for c in check_names],
            )
        candidate, champion = picked
        policy = load_policy(refrig.settings.models_dir, model_id)
        features, stems = recent_features(refrig.store, int(policy["canary"]["recent_hours"]))
        evaluation = evaluate_candidate(
            refrig.registry,
            model_id,
            candidate,
            champion,
            features,
            refrig.store.read("device_registry"),
            read_labels(refrig.settings.labels_path),
            policy,
        )
        canary_path = refrig.store.write("canary_scores", model_id, evaluation.canary.joined)
        # Comparable across versions in the MLflow UI: the canary figures on the candidate,
        # each side's backtest over the same hours on its own version.
        refrig.registry.log_version_metrics(
            model_id,
            candidate,
            {f"canary_{k}": v for k, v in evaluation.canary.metrics.items()}
            | {f"backtest_{k}": v for k, v in evaluation.backtests.get("candidate", {}).items()},
        )
        refrig.registry.log_version_metrics(
            model_id,
            champion,
            {f"backtest_{k}": v for k, v in evaluation.backtests.get("champion", {}).items()},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(evaluation.to_dict(), indent=2, default=str))
        plot = canary_plot(
            evaluation.canary,
            path.with_suffix(".png"),
            f"{model_id}: candidate v{candidate} vs champion v{champion}",
        )
        if not evaluation.passed:
            lifecycle = model_lifecycle(refrig)
            lifecycle.apply(evaluation.report, run_actor(context))
            lifecycle.audit.close()
            context.log.warning(f"{model_id} v{candidate}: {evaluation.report.summary()}")
        report = evaluation.report
        checks = [_check(name, f"canary_{g.name}", [g]) for g in report.of_kind("canary")] + [
            _check(name, check, report.of_kind(kind)) for kind, check in GATE_CHECKS.items()
        ]
        metadata = {
            "candidate": candidate,
            "champion": champion,
            "passed": evaluation.passed,
            "summary": report.summary(),
            "features": f"{stems[0]}..{stems[-1]}",
            **{k: float(v) for k, v in evaluation.canary.metrics.items()},
            "gates": dg.MetadataValue.md(canary_markdown(evaluation.canary)),
            "backtests": dg.MetadataValue.json(evaluation.backtests),
            "canary_scores": str(canary_path),
            "evaluation": str(path),
        }
        if plot is not None:
            png = base64.b64encode(plot.read_bytes()).decode()
            metadata["plot"] = dg.MetadataValue.md(f"![canary](data:image/png;base64,{png})")
            metadata["plot_path"] = str(plot)
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    return _canary


def build_promotion_asset(config: ModelConfig) -> dg.AssetsDefinition:
    """The promotion step of one detector: applies the canary asset's gate report."""
    model_id = config.model_id

    @dg.asset(
        name=f"{model_id}_promotion",
        group_name=GROUP,
        owners=["team:ml-platform"],
        deps=[f"{model_id}_canary"],
        description=f"Starts the progressive rollout of the evaluated {model_id} candidate when "
        "every gate passed (it serves a share of devices; the score asset advances or rolls it "
        "back), or moves the production alias at once (rollout off, now=true, or forced with a "
        "reason); audited. A version pinned in the models/ file wins over both.",
        kinds={"mlflow"},
        tags={"detector": config.detector},
    )
    def _promote(
        context: dg.AssetExecutionContext,
        refrig: RefrigResource,
        config: PromotionConfig,
    ) -> dg.MaterializeResult:
        path = evaluation_path(refrig, model_id)
        if not path.exists():
            return dg.MaterializeResult(metadata={"promoted": False, "why": "nothing evaluated"})
        evaluation = json.loads(path.read_text())
        report = GateReport.from_dict(evaluation)
        lifecycle = model_lifecycle(refrig)
        try:
            if not report.passed and not config.force:
                raise dg.Failure(
                    f"{model_id} v{report.candidate} did not pass its gates (the canary recorded "
                    f"the blocked promotion): {report.summary()}. Materialize with force=true and "
                    "a reason to deploy it anyway."
                )
            rollout = RolloutManager(lifecycle)
            try:
                if report.passed and not config.now and rollout.policy(model_id).enabled:
                    event = rollout.start(report, run_actor(context), reason=config.reason)
                else:
                    event = lifecycle.apply(
                        report,
                        run_actor(context),
                        force=config.force,
                        reason=config.reason,
                    )
            except LifecycleError as exc:
                raise dg.Failure(str(exc)) from exc
            path.unlink(missing_ok=True)
        finally:
            lifecycle.audit.close()
        return dg.MaterializeResult(
            metadata={
                "promoted": event.event != ROLLOUT_STARTED,
                "rollout_started": event.event == ROLLOUT_STARTED,
                "event": event.event,
                "from_version": event.from_version or "",
                "to_version": event.to_version or "",
                "serving_version": event.serving_version or "",
                "pinned_version": event.pinned_version or "",
                "forced": event.forced,
                "reason": event.reason,
            }
        )

    return _promote


lifecycle_configs = [load_model_config(m) for m in all_model_ids()]
canary_assets = [build_canary_asset(c) for c in lifecycle_configs]
promotion_assets = [build_promotion_asset(c) for c in lifecycle_configs]
