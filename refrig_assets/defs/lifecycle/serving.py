"""``model_serving_state`` and ``fallback_alerts``: staleness, pauses and the rules fallback.

Both are hourly and judge the hour as of its end, so a backfill reproduces what the schedule
decided. The state asset shows per model which version serves, whether it is pinned or paused,
how old its newest scores are and what alerting does about it; the fallback asset writes
rules-based alerts (``source = 'fallback'``) to the alert database when no batch model has
usable scores.
"""

from datetime import timedelta

import dagster as dg
import pandas as pd

from refrig_assets.alerts.severity import alert_policy
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import all_model_ids, load_model_config
from refrig_assets.defs.shared.contract_checks import contract_check_result, contract_check_spec
from refrig_assets.defs.shared.lifecycle import GROUP, model_lifecycle
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle.fallback import (
    NOT_TRAINED,
    fleet_action,
    model_status,
    newest_window_end,
    rules_fallback_alerts,
)
from refrig_assets.lifecycle.integrity import ServingResolution, resolve_serving
from refrig_assets.lifecycle.policy import load_policy
from refrig_assets.lifecycle.staleness import Action
from refrig_assets.training.registry import RegistryError

STATE_COLUMNS = [
    "model_id",
    "schedule",
    "as_of",
    "state",
    "action",
    "score_age_hours",
    "newest_scores_end",
    "serving_version",
    "production_version",
    "pinned_version",
    "paused",
    "features_stale",
    "message",
    "serving_problem",
]


def _fresh_check(model_id: str, row: dict) -> dg.AssetCheckResult:
    """Normal alerting passes; delayed scores, or normal alerting served by another version than
    intended (corrupt artifact, alias moved outside the gates), warn; anything else errs."""
    action = row["action"]
    problem = row.get("serving_problem") or ""
    # Not trained (a fleet too small for the detector) is a known state, not a failure.
    ok = (action == Action.NORMAL and not problem) or row["state"] == NOT_TRAINED
    return dg.AssetCheckResult(
        asset_key="model_serving_state",
        check_name=f"{model_id}_scores_usable",
        passed=ok,
        severity=dg.AssetCheckSeverity.WARN
        if action in (Action.DELAYED, Action.NORMAL) or row["state"] == NOT_TRAINED
        else dg.AssetCheckSeverity.ERROR,
        metadata={
            "state": row["state"],
            "action": action,
            "message": row["message"],
            "serving_version": row["serving_version"] or "",
            "serving_problem": problem,
        },
    )


def _resolution(lifecycle, model_id: str, pinned: str | None) -> ServingResolution | None:
    """Which version really serves (artifacts verified, alias checked against the audit trail);
    None when the model has no version to serve yet (or its pin names an unknown version)."""
    try:
        return resolve_serving(
            lifecycle.registry,
            lifecycle.audit.events(model_id),
            model_id,
            pinned,
            probe=lambda v: lifecycle.registry.check(model_id, v),
        )
    except RegistryError:
        return None


@dg.asset(
    group_name=GROUP,
    owners=["team:ml-platform"],
    partitions_def=hourly_partitions,
    deps=["device_features", *[f"{m}_scores" for m in all_model_ids()]],
    description="Per detector at the end of the hour: serving version (pin or production), "
    "paused or not, age of its newest scores and the staleness band (fresh < 1 h, stale 1–2 h, "
    "very stale 2–4 h → rules-based fallback, expired > 4 h → streaming only). Pins edited by "
    "hand in models/ are recorded in the audit trail here.",
    check_specs=[
        dg.AssetCheckSpec(
            f"{m}_scores_usable",
            asset="model_serving_state",
            partitions_def=hourly_partitions,
            description=f"{m}'s scores are fresh enough for normal alerting.",
        )
        for m in all_model_ids()
    ],
    kinds={"parquet"},
)
def model_serving_state(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> dg.MaterializeResult:
    """Judge every detector's serving state as of the end of this hour."""
    as_of = pd.Timestamp(context.partition_time_window.end)
    policy = load_policy(refrig.settings.models_dir)
    sla = timedelta(minutes=float(load_contract("device_features").freshness_sla_minutes))
    newest_features = newest_window_end(refrig.store, "device_features", as_of)
    features_stale = newest_features is None or as_of - newest_features > sla
    lifecycle = model_lifecycle(refrig)
    rows = []
    try:
        for model_id in all_model_ids(refrig.settings.models_dir):
            config = load_model_config(model_id, refrig.settings.models_dir)
            lifecycle.sync_file_pin(model_id)
            st = lifecycle.state(model_id)
            resolution = _resolution(lifecycle, model_id, st.pinned)
            if resolution is not None and resolution.degraded:
                context.log.error(resolution.summary())
            status = model_status(
                model_id,
                config.schedule,
                as_of.to_pydatetime(),
                newest_window_end(refrig.store, f"{model_id}_scores", as_of),
                policy["staleness"],
                paused=st.paused,
                production=st.production,
                pinned=st.pinned,
                features_stale=features_stale,
                served=resolution.version if resolution else None,
                resolved=resolution is not None,
                problem=resolution.summary() if resolution and resolution.degraded else "",
                not_trained=(resolution.not_trained or "") if resolution else "",
            )
            rows.append(status.row())
    finally:
        lifecycle.audit.close()
    table = pd.DataFrame(rows, columns=STATE_COLUMNS)
    path = refrig.store.write("model_serving_state", context.partition_key, table)
    action = fleet_action(table)
    shown = table[
        ["model_id", "state", "action", "score_age_hours", "serving_version", "serving_problem"]
    ]
    return dg.MaterializeResult(
        metadata={
            "fleet_action": str(action),
            "states": dg.MetadataValue.md(shown.to_markdown(index=False)),
            **{f"{r['model_id']}_state": r["state"] for r in rows},
            **{f"{r['model_id']}_serving_version": r["serving_version"] or "" for r in rows},
            "newest_features_end": str(newest_features),
            "features_stale": bool(features_stale),
            "path": str(path),
        },
        check_results=[
            _fresh_check(r["model_id"], r) for r in rows if r["model_id"] in set(all_model_ids())
        ],
    )


@dg.asset(
    group_name=GROUP,
    owners=["team:ml-platform"],
    partitions_def=hourly_partitions,
    deps=["model_serving_state", "device_features", "device_registry"],
    description="Rules-based fallback alerts (source 'fallback') from this hour's features — "
    "evaporator above freezing, extreme vibration, low-side pressure loss, near-overload "
    "current, thresholds in config/lifecycle.yaml — written to the alert database only while "
    "no batch model has usable scores (very stale or paused).",
    check_specs=[
        contract_check_spec("fallback_alerts", "fallback_alerts", True, hourly_partitions)
    ],
    kinds={"parquet", "sqlite"},
)
def fallback_alerts(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> dg.MaterializeResult:
    """Alert from feature thresholds when the serving state of the hour calls for it."""
    key = context.partition_key
    contract = load_contract("device_alerts")
    states = refrig.store.read("model_serving_state", key)
    action = fleet_action(states)
    alerts = contract.empty_frame()
    if action == Action.RULES_FALLBACK and refrig.store.exists("device_features", key):
        start = pd.Timestamp(context.partition_time_window.start)
        dedup = alert_policy().dedup_window
        previous = refrig.alerts.recent_alerts(since=(start - dedup).to_pydatetime())
        if len(previous):
            previous = previous[previous["window_start"] < start]
        alerts = rules_fallback_alerts(
            refrig.store.read("device_features", key),
            refrig.store.read("device_registry"),
            previous,
            load_policy(refrig.settings.models_dir)["fallback"],
            key,
            context.run.run_id,
        )
    path = refrig.store.write("fallback_alerts", key, alerts)
    check = contract_check_result("fallback_alerts", contract, alerts)
    counts = refrig.alerts.upsert(alerts) if len(alerts) and check.passed else {}
    return dg.MaterializeResult(
        metadata={
            "fleet_action": str(action),
            "alerts": len(alerts),
            "suppressed": int(alerts["suppressed"].sum()) if len(alerts) else 0,
            "devices": int(alerts["device_id"].nunique()) if len(alerts) else 0,
            "inserted": counts.get("inserted", 0),
            "path": str(path),
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key="fallback_alerts",
                check_name="fallback_alerts_contract",
                passed=check.passed,
                metadata=check.metadata,
            )
        ],
    )
