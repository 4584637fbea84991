"""Delivery of the notification outbox: due notifications out, retries with backoff, dead letters.

The code that creates alerts only queues notifications (in the same transaction as the alert
change). :func:`deliver_due` sends them, from its own sensor (``alert_notification_delivery``) or
``refrig alerts deliver``, so a slow or broken endpoint can never fail or stall detection:

* each due notification is claimed first (its attempt counted, its retry scheduled), so a
  deliverer that dies mid-send leaves it to be retried, and two deliverers never send it at once;
* any exception of the transport (refused, timed out, an error status, an answer that is not
  HTTP) is caught for that notification alone and recorded, secrets masked, as ``last_error``;
* a failed notification is retried after ``base_delay_seconds``, doubling up to
  ``max_delay_seconds``; after ``max_attempts`` it is dead (a dead letter, kept and listable);
* a delivered one is never sent again; receivers get its dedup key as ``Idempotency-Key``;
* one pass sends at most ``batch_size`` within ``pass_budget_seconds`` and stops after
  ``stop_after_failures`` failures in a row, leaving the rest due for the next pass.

The settings are ``notifications`` of config/alerts.yaml.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from refrig_assets.alerts.notify import DeliveryFailed, Notifier, describe, mask_secrets
from refrig_assets.alerts.severity import NotificationPolicy, alert_policy
from refrig_assets.alerts.store import AlertStore
from refrig_assets.alerts.store.schema import as_utc

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    """What one pass did, and the outbox's totals after it."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    left_for_next_pass: int = 0
    errors: list[str] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def dead_letters(self) -> int:
        """Dead notifications in the outbox, this pass's and earlier ones."""
        return self.totals.get("dead", 0)

    def summary(self) -> str:
        """One line for a sensor message or the command line."""
        text = (
            f"{self.delivered} delivered, {self.retrying} to retry, {self.dead} dead this pass; "
            f"outbox: {self.totals.get('pending', 0)} pending, {self.dead_letters} dead"
        )
        if self.left_for_next_pass:
            text += f"; {self.left_for_next_pass} left for the next pass"
        return text


def deliver_due(
    store: AlertStore,
    notifier: Notifier,
    *,
    now: datetime | None = None,
    policy: NotificationPolicy | None = None,
) -> DeliveryReport:
    """Send the notifications that are due (as of ``now``, default the wall clock) once each."""
    policy = policy or alert_policy().notifications
    clock: Callable[[], datetime] = (
        (lambda: as_utc(now)) if now is not None else (lambda: datetime.now(UTC))
    )
    started = time.monotonic()
    report = DeliveryReport()
    due = store.outbox.due(clock(), policy.batch_size)
    failures_in_a_row = 0
    for i, row in enumerate(due):
        # Past the budget (a pass always tries one) or after failures in a row: the rest wait.
        if (
            i > 0 and time.monotonic() - started > policy.pass_budget_seconds
        ) or failures_in_a_row >= policy.stop_after_failures:
            report.left_for_next_pass = len(due) - i
            break
        at = clock()
        if row["attempts"] >= policy.max_attempts:
            # Its last attempt was claimed by a deliverer that never recorded the outcome.
            error = row["last_error"] or "last attempt interrupted before its outcome was known"
            store.outbox.failed(row["id"], at, error, None)
            report.dead += 1
            continue
        attempt = row["attempts"] + 1
        retry_at = at + policy.retry_delay(attempt)
        if not store.outbox.claim(row, at, retry_at):
            continue  # another deliverer has it
        try:
            notifier.post(row["event"], row["payload"], row["dedup_key"])
        except Exception as exc:  # noqa: BLE001 - every failure is one notification's, recorded
            failures_in_a_row += 1
            error = f"attempt {attempt}/{policy.max_attempts}: {_error_text(notifier, exc)}"
            report.errors.append(error)
            last = attempt >= policy.max_attempts
            store.outbox.failed(row["id"], clock(), error, None if last else retry_at)
            if last:
                report.dead += 1
                log.error("notification %s is dead: %s", row["dedup_key"], error)
            else:
                report.retrying += 1
                log.warning(
                    "notification %s failed, retry at %s: %s", row["dedup_key"], retry_at, error
                )
            continue
        failures_in_a_row = 0
        store.outbox.delivered(row["id"], clock())
        report.delivered += 1
    report.totals = store.outbox.counts()
    report.seconds = time.monotonic() - started
    return report


def _error_text(notifier: Notifier, exc: Exception) -> str:
    """The failure as one printable line without secrets (an endpoint answering garbage puts
    raw bytes, even NUL, into the error, which PostgreSQL text cannot hold)."""
    text = str(exc) if isinstance(exc, DeliveryFailed) else describe(exc)
    mask = getattr(notifier, "mask", None)
    text = mask(text) if callable(mask) else mask_secrets(text)
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
