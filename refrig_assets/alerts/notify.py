"""Pluggable alert notifications: log lines by default, a JSON webhook when configured.

A notifier must never break the pipeline that calls it: delivery failures are logged, not raised.
Set ``REFRIG_WEBHOOK_URL`` to POST events as JSON (``{"event": ..., "payload": {...}}``).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import pandas as pd

log = logging.getLogger(__name__)

NEW_ALERT_EVENT = "alert.created"
ESCALATION_EVENT = "alert.escalated"
# Severities worth interrupting someone for the moment they appear.
NOTIFY_SEVERITIES = ("CRITICAL", "HIGH")
PAYLOAD_FIELDS = (
    "alert_id",
    "device_id",
    "site_id",
    "severity",
    "explanation",
    "sla_deadline",
    "top_contributors",
)


@runtime_checkable
class Notifier(Protocol):
    """Anything that can deliver an event with a JSON-serialisable payload."""

    def send(self, event: str, payload: dict[str, Any]) -> None: ...


class LogNotifier:
    """Writes each event as one log line (the default when no webhook is configured)."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO):
        self.logger = logger or log
        self.level = level

    def send(self, event: str, payload: dict[str, Any]) -> None:
        """Log the event and its payload as JSON."""
        self.logger.log(self.level, "%s %s", event, json.dumps(payload, default=str))


class WebhookNotifier:
    """POSTs ``{"event": ..., "payload": ...}`` as JSON to ``url``; failures are only logged."""

    def __init__(self, url: str, timeout: float = 5.0):
        self.url = url
        self.timeout = timeout

    def send(self, event: str, payload: dict[str, Any]) -> None:
        """Deliver one event; returns normally whether or not the receiver got it."""
        body = json.dumps({"event": event, "payload": payload}, default=str).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("webhook %s failed for %s: %s", self.url, event, exc)


def notifier_from_env() -> Notifier:
    """A :class:`WebhookNotifier` for ``REFRIG_WEBHOOK_URL``, else a :class:`LogNotifier`."""
    url = os.environ.get("REFRIG_WEBHOOK_URL", "").strip()
    if not url:
        return LogNotifier()
    timeout = float(os.environ.get("REFRIG_WEBHOOK_TIMEOUT", "5"))
    return WebhookNotifier(url, timeout=timeout)


def alert_payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The notification fields of one alert, JSON-ready (timestamps as ISO 8601 strings)."""
    return {name: _jsonable(alert.get(name)) for name in PAYLOAD_FIELDS}


def notify_new_alerts(
    notifier: Notifier,
    alerts: pd.DataFrame,
    severities: Iterable[str] = NOTIFY_SEVERITIES,
) -> int:
    """Send one ``alert.created`` event per non-suppressed alert of the given severities.

    ``alerts`` should hold only alerts that are new (e.g. the rows whose ids
    ``AlertStore.upsert`` reported in ``inserted_ids``). Returns how many events were sent.
    """
    if alerts.empty:
        return 0
    wanted = alerts[alerts["severity"].isin(list(severities)) & ~alerts["suppressed"].astype(bool)]
    for alert in wanted.to_dict("records"):
        notifier.send(NEW_ALERT_EVENT, alert_payload(alert))
    return len(wanted)


def notify_escalations(notifier: Notifier, escalated: Iterable[Mapping[str, Any]]) -> int:
    """Send one ``alert.escalated`` event per alert returned by ``AlertStore.check_sla``."""
    sent = 0
    for alert in escalated:
        payload = alert_payload(alert)
        payload["escalation_level"] = alert.get("escalation_level")
        payload["previous_escalation_level"] = alert.get("previous_escalation_level")
        notifier.send(ESCALATION_EVENT, payload)
        sent += 1
    return sent


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
