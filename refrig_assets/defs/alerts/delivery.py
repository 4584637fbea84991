"""``alert_notification_delivery``: sends the notifications queued in the alert database's outbox.

The alert-creating asset and sensors only queue notifications (in the same transaction as the
alert change); this sensor delivers them, so a broken or slow endpoint cannot fail or stall
detection. Dead letters are counted in every tick's message.
"""

import dagster as dg

from refrig_assets.alerts.delivery import deliver_due
from refrig_assets.alerts.notify import notifier_from_env
from refrig_assets.defs.shared.resources import RefrigResource

DELIVERY_SECONDS = 15


@dg.sensor(
    name="alert_notification_delivery",
    minimum_interval_seconds=DELIVERY_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 15 s: delivers due notifications of the outbox (REFRIG_WEBHOOK_URL or log "
    "lines) with a short timeout; failures are retried with exponential backoff and dead-lettered "
    "after the last attempt (config/alerts.yaml notifications). The message counts dead letters; "
    "`refrig alerts outbox --status dead` lists them.",
)
def alert_notification_delivery(
    context: dg.SensorEvaluationContext, refrig: RefrigResource
) -> dg.SkipReason:
    """One delivery pass; its outcome is the skip message (no run is needed)."""
    report = deliver_due(refrig.alerts, notifier_from_env())
    message = report.summary()
    if report.dead:
        context.log.error(f"{report.dead} notification(s) dead-lettered: {report.errors[-1]}")
    elif report.delivered or report.retrying:
        context.log.info(message)
    if report.dead_letters:
        message += " (list them: refrig alerts outbox --status dead)"
    return dg.SkipReason(message)


defs = dg.Definitions(sensors=[alert_notification_delivery])
