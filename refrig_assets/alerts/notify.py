"""Alert notifications: what an event says, its dedup key, and the transports that deliver it.

Notifications are not sent by the code that creates alerts. The alert store writes them into its
``notification_outbox`` in the same transaction as the alert change that causes them (see
:mod:`refrig_assets.alerts.store.outbox`), and :func:`refrig_assets.alerts.delivery.deliver_due`
sends them later through a :class:`Notifier`: log lines by default, a JSON webhook when
``REFRIG_WEBHOOK_URL`` is set (``{"event": ..., "payload": {...}}`` with the notification's dedup
key as the ``Idempotency-Key`` header).

A notifier's :meth:`Notifier.post` raises when the receiver did not take the event; the delivery
loop catches that per notification and retries. Error texts never carry the secrets of a webhook
URL (passwords, tokens in the path or the query): see :func:`mask_secrets`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from refrig_assets.alerts.severity import alert_policy
from refrig_assets.core.secrets import mask_secrets, masked_url, url_secrets

log = logging.getLogger(__name__)

NEW_ALERT_EVENT = "alert.created"
ESCALATION_EVENT = "alert.escalated"
DIGEST_EVENT = "alert.sla_digest"
PAYLOAD_FIELDS = (
    "alert_id",
    "device_id",
    "site_id",
    "severity",
    "explanation",
    "sla_deadline",
    "top_contributors",
)
# Ids listed in one digest; the counts always cover every alert.
DIGEST_IDS = 50
# A path segment this long (a Slack/Teams/Discord token) is taken for a secret.


@runtime_checkable
class Notifier(Protocol):
    """Anything that delivers one event with a JSON-serialisable payload, or raises."""

    def post(self, event: str, payload: dict[str, Any], key: str) -> None:
        """Deliver ``event``; ``key`` identifies the notification (the same on every retry)."""
        ...


class LogNotifier:
    """Writes each event as one log line (the default when no webhook is configured)."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO):
        self.logger = logger or log
        self.level = level

    def post(self, event: str, payload: dict[str, Any], key: str) -> None:
        """Log the event, its key and its payload as JSON."""
        self.logger.log(self.level, "%s [%s] %s", event, key, json.dumps(payload, default=str))


class DeliveryFailed(RuntimeError):
    """The receiver did not take the event; the message holds no secret of its URL."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Answers a redirect with an error: following a POST's 301/302/303 sends a bodiless GET,
    and a page answering that GET with 200 would count as a delivery nobody received."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: PLR0913
        raise urllib.error.HTTPError(
            req.full_url,
            code,
            f"{msg} (redirect not followed: point the webhook URL at the receiver itself)",
            headers,
            fp,
        )


class _Deadline:
    """Shuts the connections of one POST when its time is up. A socket timeout bounds each
    read, not the answer: an endpoint sending its answer a byte at a time would otherwise hold
    the delivery pass (and every notification after it) for as long as it likes."""

    def __init__(self) -> None:
        self.connections: list[http.client.HTTPConnection] = []
        self.expired = False

    def connection_class(self, cls: Any) -> Any:
        """``cls`` (an HTTP(S) connection class) with each connection it makes remembered."""

        def make(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
            conn = cls(*args, **kwargs)
            self.connections.append(conn)
            return conn

        return make

    def expire(self) -> None:
        """End the POST: its blocked read returns and the request fails."""
        self.expired = True
        for conn in self.connections:
            if conn.sock is not None:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed


class _OpensWithDeadline:
    """An HTTP(S) handler whose connections ``deadline`` can shut."""

    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class, req, **kwargs):  # type: ignore[no-untyped-def]
        opened = super().do_open  # type: ignore[misc]
        return opened(self.deadline.connection_class(http_class), req, **kwargs)


class _DeadlineHTTPHandler(_OpensWithDeadline, urllib.request.HTTPHandler):
    pass


class _DeadlineHTTPSHandler(_OpensWithDeadline, urllib.request.HTTPSHandler):
    pass


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """No redirect is followed; proxies from the environment still apply."""
    return urllib.request.build_opener(
        _RefuseRedirects, _DeadlineHTTPHandler(deadline), _DeadlineHTTPSHandler(deadline)
    )


class WebhookNotifier:
    """POSTs ``{"event": ..., "payload": ...}`` as JSON to ``url`` within ``timeout`` seconds.

    ``auth_header`` is sent as the ``Authorization`` header; without it, a user and password in
    ``url`` (``https://user:pass@host/x``) are sent as HTTP Basic authentication (urllib would
    take them for part of the host name). With ``signing_secret`` each POST
    carries ``X-Refrig-Timestamp`` (Unix seconds) and ``X-Refrig-Signature: sha256=<hex>``, the
    HMAC-SHA256 of ``b"<timestamp>." + body``: a receiver recomputes it and refuses old
    timestamps (replays). Neither value appears in any error text.
    """

    def __init__(
        self,
        url: str,
        timeout: float,
        *,
        auth_header: str | None = None,
        signing_secret: str | None = None,
    ):
        self.url = url
        self.timeout = timeout
        self.safe_url = masked_url(url)
        self._target, basic = _without_credentials(url)
        self._auth_header = auth_header or basic
        self._signing_secret = signing_secret or None

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.safe_url!r}, timeout={self.timeout})"

    def headers(self, body: bytes, key: str, now: float | None = None) -> dict[str, str]:
        """The request headers of one POST of ``body``."""
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if self._auth_header:
            headers["Authorization"] = self._auth_header
        if self._signing_secret:
            stamp = str(int(time.time() if now is None else now))
            digest = hmac.new(
                self._signing_secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256
            )
            headers["X-Refrig-Timestamp"] = stamp
            headers["X-Refrig-Signature"] = f"sha256={digest.hexdigest()}"
        return headers

    def post(self, event: str, payload: dict[str, Any], key: str) -> None:
        """Deliver one event within ``timeout`` seconds, answer included; any failure (refused,
        timed out, an error status, an answer that is not HTTP or not complete in time) raises
        :class:`DeliveryFailed` with a masked message."""
        body = json.dumps({"event": event, "payload": payload}, default=str).encode()
        request = urllib.request.Request(
            self._target,
            data=body,
            headers=self.headers(body, key),
            method="POST",
        )
        deadline = _Deadline()
        timer = threading.Timer(self.timeout, deadline.expire)
        timer.daemon = True
        timer.start()
        try:
            with _opener(deadline).open(request, timeout=self.timeout) as response:
                response.read()
        except Exception as exc:  # the HTTP layer raises far more than URLError/OSError
            what = (
                f"timed out: no complete answer within {self.timeout:g} s"
                if deadline.expired
                else describe(exc)
            )
            raise DeliveryFailed(self.mask(f"POST {self.url}: {what}")) from None
        finally:
            timer.cancel()

    def mask(self, text: str) -> str:
        """``text`` with this webhook's URL and each of its secrets masked."""
        secrets = [*url_secrets(self.url), self._auth_header, self._signing_secret]
        if self._auth_header and " " in self._auth_header:  # "Bearer <token>": the token too
            secrets.append(self._auth_header.split(" ", 1)[1])
        found = sorted({s for s in secrets if s}, key=len, reverse=True)
        return mask_secrets(text, secrets=found)


def _without_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its ``user:password@`` part, and that part as a Basic ``Authorization``
    value (None when the URL names no user)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, None
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), basic


def notifier_from_env() -> Notifier:
    """A :class:`WebhookNotifier` for ``REFRIG_WEBHOOK_URL``, else a :class:`LogNotifier`.

    The timeout is ``notifications.timeout_seconds`` of config/alerts.yaml, or
    ``REFRIG_WEBHOOK_TIMEOUT`` when set. The ``Authorization`` value and the signing secret
    come from the environment variables that ``notifications.auth_header_env`` and
    ``notifications.signing_secret_env`` name (unset: not sent).
    """
    url = os.environ.get("REFRIG_WEBHOOK_URL", "").strip()
    if not url:
        return LogNotifier()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"REFRIG_WEBHOOK_URL must be an http:// or https:// URL with a host, got "
            f"{masked_url(url)!r}"
        )
    policy = alert_policy().notifications
    override = os.environ.get("REFRIG_WEBHOOK_TIMEOUT", "").strip()
    timeout = _positive_seconds("REFRIG_WEBHOOK_TIMEOUT", override) if override else None

    def secret(env: str | None) -> str | None:
        return (os.environ.get(env, "").strip() or None) if env else None

    return WebhookNotifier(
        url,
        timeout=timeout or policy.timeout_seconds,
        auth_header=secret(policy.auth_header_env),
        signing_secret=secret(policy.signing_secret_env),
    )


def _positive_seconds(name: str, text: str) -> float:
    """``text`` as a number of seconds above zero, or a ValueError naming ``name``."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{name} must be a number of seconds above 0, got {text!r}")
    return seconds


# -- what a notification says ---------------------------------------------------------------


def alert_payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The notification fields of one alert, JSON-ready (timestamps as ISO 8601 strings)."""
    return {name: _jsonable(alert.get(name)) for name in PAYLOAD_FIELDS}


def escalation_payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """An alert's fields plus its escalation step (``previous_escalation_level`` → level)."""
    payload = alert_payload(alert)
    payload["escalation_level"] = alert.get("escalation_level")
    payload["previous_escalation_level"] = alert.get("previous_escalation_level")
    return payload


def digest_payload(alerts: Iterable[Mapping[str, Any]], at: datetime) -> dict[str, Any]:
    """One notification for many alerts breached or escalated in the same SLA check: counts by
    severity and level, and the first :data:`DIGEST_IDS` alert ids (most severe first)."""
    rows = list(alerts)
    by_severity: dict[str, int] = {}
    by_level: dict[str, int] = {}
    for a in rows:
        by_severity[str(a["severity"])] = by_severity.get(str(a["severity"]), 0) + 1
        by_level[str(a["escalation_level"])] = by_level.get(str(a["escalation_level"]), 0) + 1
    return {
        "at": _jsonable(at),
        "alerts": len(rows),
        "by_severity": by_severity,
        "by_escalation_level": by_level,
        "alert_ids": [str(a["alert_id"]) for a in rows[:DIGEST_IDS]],
        "sites": sorted({str(a.get("site_id")) for a in rows}),
    }


def new_alert_key(alert_id: str) -> str:
    """The dedup key of an alert's creation notice: one per alert, ever."""
    return f"{NEW_ALERT_EVENT}:{alert_id}"


def escalation_key(alert_id: str, level: str) -> str:
    """The dedup key of an alert reaching ``level``: levels never go down, so once per level."""
    return f"{ESCALATION_EVENT}:{alert_id}:{level}"


def digest_key(alerts: Iterable[Mapping[str, Any]]) -> str:
    """The dedup key of a digest: the alerts and the levels they reached."""
    steps = sorted(f"{a['alert_id']}@{a['escalation_level']}" for a in alerts)
    return f"{DIGEST_EVENT}:{hashlib.sha256('|'.join(steps).encode()).hexdigest()[:24]}"


def wanted_new_alerts(alerts: pd.DataFrame, severities: Iterable[str]) -> pd.DataFrame:
    """The alerts worth a creation notice: unsuppressed, of one of ``severities``."""
    if alerts.empty:
        return alerts
    keep = alerts["severity"].isin(list(severities)) & ~alerts["suppressed"].astype(bool)
    return alerts[keep]


# -- errors without secrets -----------------------------------------------------------------


def describe(exc: BaseException) -> str:
    """``ExceptionType: message`` (with the reason of a wrapped URLError)."""
    reason = getattr(exc, "reason", None)
    text = str(exc) or repr(exc)
    if isinstance(reason, BaseException) and str(reason) not in text:
        text = f"{text} ({type(reason).__name__}: {reason})"
    return f"{type(exc).__name__}: {text}"


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
