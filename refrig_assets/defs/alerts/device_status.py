"""``device_status``: per device, its latest anomaly score, trend and open alerts, every hour."""

import math

import dagster as dg
import pandas as pd

from refrig_assets.alerts.device_status import TrendSettings
from refrig_assets.alerts.hourly import status_in_shards
from refrig_assets.core.contracts import load_contract
from refrig_assets.defs.shared.contract_checks import contract_check_result, contract_check_spec
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.ranges import (
    hour_by_hour,
    in_range,
    per_range,
    range_backfill_policy,
)
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.engines.device_shards import hour_shards

GROUP = "alerts"


def trend_hours(settings: TrendSettings) -> int:
    """Hourly score partitions that hold the trend's windows."""
    from refrig_assets.features.windows import window_minutes

    return max(1, math.ceil(settings.windows * window_minutes() / 60.0))


@dg.asset(
    name="device_status",
    group_name=GROUP,
    owners=["team:refrigeration-ops"],
    partitions_def=hourly_partitions,
    deps=["device_alerts", "device_registry"],
    description="Per device as of the end of the hour: latest anomaly score (highest of any "
    "model in its latest window), trend (rising/stable/falling/unknown: slope of the last window "
    "scores against the tolerance in contracts/device_status.yaml) and open alert count.",
    check_specs=[contract_check_spec("device_status", "device_status", True, hourly_partitions)],
    kinds={"parquet", "sqlite"},
    backfill_policy=range_backfill_policy(),
)
@hour_by_hour
def device_status_asset(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> dg.MaterializeResult:
    """Scores of the last hours (enough for the trend windows), open alerts from the store."""
    settings = TrendSettings.from_contract()
    end = pd.Timestamp(context.partition_time_window.end)
    hours = pd.date_range(end=end - pd.Timedelta("1h"), periods=trend_hours(settings), freq="h")
    registry = refrig.store.read("device_registry")
    open_alerts = refrig.alerts.open_alert_counts(created_before=end.to_pydatetime())
    # Device shard by shard (memory budget): the hours' scores are never in memory at once.
    shards = hour_shards(refrig.store, [context.partition_key])
    # The hours of a range share their reads of the trend's overlapping score hours.
    read = per_range(context, "status_scores", dict) if in_range(context) else None
    status = status_in_shards(
        refrig.store, list(hours), registry, open_alerts, end, settings, shards, read
    )
    path = refrig.store.write("device_status", context.partition_key, status)
    check = contract_check_result("device_status", load_contract("device_status"), status)
    top = status.nlargest(10, "latest_anomaly_score")
    return dg.MaterializeResult(
        metadata={
            "devices": len(status),
            "by_trend": dg.MetadataValue.json(status["anomaly_trend"].value_counts().to_dict()),
            "devices_with_open_alerts": int((status["open_alert_count"] > 0).sum()),
            "highest_scores": dg.MetadataValue.md(
                top[["device_id", "latest_anomaly_score", "anomaly_trend", "open_alert_count"]]
                .round(3)
                .to_markdown(index=False)
            ),
            "device_shards": len(shards),
            "path": str(path),
        },
        check_results=[check],
    )


defs = dg.Definitions(assets=[device_status_asset])
