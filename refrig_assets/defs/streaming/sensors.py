"""``streaming_threshold_rules``: every few seconds, new landing files → CRITICAL alerts.

The sensor evaluates the rules itself and writes alerts straight into the alert database
instead of requesting a run: a run takes seconds to tens of seconds to start, while a tick that
finds a new file stores its alerts within the same evaluation (well under a second for 100K
devices). Landing → alert is then bounded by the tick interval plus the evaluation time. Each
tick that reads files records a materialization of ``streaming_alerts`` with what it did.
"""

import dagster as dg

from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.streaming.tick import process_landed_files

SENSOR_NAME = "streaming_threshold_rules"
TICK_SECONDS = 5

streaming_alerts = dg.AssetSpec(
    "streaming_alerts",
    group_name="streaming",
    owners=["team:refrigeration-ops"],
    description="CRITICAL alerts raised by the streaming threshold rules (compressor overload, "
    "vibration spike, acute pressure loss, total cooling loss), stored in the alert database "
    "with source=streaming. Written by the streaming_threshold_rules sensor, not by a run.",
    kinds={"sqlite", "numpy"},
)


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=TICK_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates the streaming threshold rules on landing files that are new or "
    "changed since the last tick (cursor: path, mtime, size) and stores one CRITICAL alert per "
    "device, rule and episode; new alerts' notifications are queued in the same transaction "
    "(delivered by alert_notification_delivery, never by this sensor).",
)
def streaming_threshold_rules(
    context: dg.SensorEvaluationContext, refrig: RefrigResource
) -> dg.SensorResult | dg.SkipReason:
    """One tick: read new files, fire rules, store alerts and queue their notifications, advance
    the cursor."""
    report = process_landed_files(
        refrig.settings,
        context.cursor,
        refrig.alerts,
        notify=True,
        run_id_prefix=f"sensor:{SENSOR_NAME}",
    )
    if not report.files:
        return dg.SkipReason("no new landing files")
    context.log.info(
        f"{len(report.files)} file(s), {report.readings} readings, {report.inserted} new alert(s) "
        f"in {report.seconds:.2f} s"
    )
    materialization = dg.AssetMaterialization(
        asset_key=streaming_alerts.key,
        description=f"{report.inserted} new streaming alert(s) from {len(report.files)} file(s)",
        metadata={
            **{k: v for k, v in report.metadata().items() if not isinstance(v, list | dict)},
            "files": dg.MetadataValue.json(report.files),
            "firing_readings": dg.MetadataValue.json(report.firing_readings),
            "rejected_files": dg.MetadataValue.json(report.rejected),
            "stage_seconds": dg.MetadataValue.json(report.metadata()["stage_seconds"]),
        },
    )
    return dg.SensorResult(cursor=report.cursor, asset_events=[materialization])


defs = dg.Definitions(assets=[streaming_alerts], sensors=[streaming_threshold_rules])
