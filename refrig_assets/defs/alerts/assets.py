"""``device_alerts``: batch alerts of one hour, written to Parquet and the alert database."""

import dagster as dg
import pandas as pd

from refrig_assets.alerts.hourly import alerts_in_shards
from refrig_assets.alerts.severity import alert_policy
from refrig_assets.core.contracts import load_contract
from refrig_assets.defs.alerts.reconcile import reconcile_streaming_alerts
from refrig_assets.defs.shared.contract_checks import contract_check_result, contract_check_spec
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.ranges import hour_by_hour, range_backfill_policy
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.defs.shared.score_assets import score_asset_keys
from refrig_assets.engines.device_shards import hour_shards

GROUP = "alerts"


@dg.asset(
    group_name=GROUP,
    owners=["team:refrigeration-ops"],
    partitions_def=hourly_partitions,
    deps=score_asset_keys("hourly") + ["device_registry"],
    description="Alerts from model agreement per device and window: severity, SLA deadline, site, "
    "top contributors, explanation, provenance; repeats within the dedup window are suppressed "
    "(kept, marked). Upserted into the alert database without touching operator state; new "
    "CRITICAL/HIGH alerts are queued for notification in the same transaction (delivered by "
    "alert_notification_delivery), except those of a historic backfill; streaming alerts of the hour are confirmed or softened.",
    check_specs=[contract_check_spec("device_alerts", "device_alerts", True, hourly_partitions)],
    kinds={"parquet", "sqlite"},
    backfill_policy=range_backfill_policy(),
)
@hour_by_hour
def device_alerts(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> dg.MaterializeResult:
    """Read whatever scores of the hourly detectors exist for the hour (any may be missing; daily
    detectors score the day after its hours alerted, see docs/alerts.md) and alert."""
    window = context.partition_time_window
    start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
    registry = refrig.store.read("device_registry")

    def previous() -> pd.DataFrame:
        """The alerts before the hour within the dedup window (repeats are suppressed)."""
        dedup = alert_policy().dedup_window
        earlier = refrig.alerts.recent_alerts(since=(start - dedup).to_pydatetime())
        return earlier[earlier["window_start"] < start] if len(earlier) else earlier

    # Device shard by shard (memory budget): the hour's scores are never in memory at once.
    shards = hour_shards(refrig.store, [context.partition_key])
    if refrig.engine == "spark":  # the same generation on groups of whole devices
        from refrig_assets.engines.spark_hourly import hour_alerts_on_spark

        hour = hour_alerts_on_spark(
            refrig.spark,
            refrig.store,
            context.partition_key,
            start,
            end,
            registry,
            previous(),
            context.run.run_id,
        )
    else:
        hour = alerts_in_shards(
            refrig.store,
            context.partition_key,
            start,
            end,
            registry,
            previous,
            context.run.run_id,
            shards,
        )
    alerts = hour.alerts
    # -- operator suppression: maintenance windows and applied feedback rules (kept, marked) --
    from refrig_assets.operations.suppression import apply_operator_suppression

    alerts = apply_operator_suppression(alerts, refrig.alerts)
    # -- end operator suppression --
    path = refrig.store.write("device_alerts", context.partition_key, alerts)
    counts = refrig.alerts.upsert(alerts, notify=True, hold_historic=True)
    reconciled = reconcile_streaming_alerts(refrig, context.partition_key, start, end)
    check = contract_check_result("device_alerts", load_contract("device_alerts"), alerts)
    active = alerts[~alerts["suppressed"]]
    return dg.MaterializeResult(
        metadata={
            "alerts": len(alerts),
            "suppressed": int(alerts["suppressed"].sum()),
            "by_severity": dg.MetadataValue.json(active["severity"].value_counts().to_dict()),
            **{
                f"alerts_{s.lower()}": int((active["severity"] == s).sum())
                for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW")
            },
            "models_present": dg.MetadataValue.json(hour.models_present),
            "device_shards": len(shards),
            "inserted": counts.get("inserted", 0),
            "updated": counts.get("updated", 0),
            "notifications_queued": counts.get("queued", 0),
            # new CRITICAL/HIGH alerts of a backfill: stored, not notified
            "notifications_held_historic": counts.get("held_historic", 0),
            "streaming_reconciled": dg.MetadataValue.json(reconciled),
            "path": str(path),
        },
        check_results=[check],
    )


defs = dg.Definitions(assets=[device_alerts])
