"""Work-order hand-off: an acknowledged alert becomes a work order in the maintenance system.

:func:`work_order_payload` turns an alert into a JSON document (device, site, what is wrong and
why, severity, when the work is due). :class:`WorkOrderExporter` delivers it to the configured
webhook (``work_orders.url`` in ``config/operations.yaml`` or ``REFRIG_WORKORDER_URL``: an HTTP
POST with an ``Idempotency-Key`` header, retried ``attempts`` times) or, with no URL, writes it
as a JSON file under ``$REFRIG_HOME/work_orders/``. Each delivery is recorded in the
``work_orders`` table and in the alert's history; an alert is handed off once (sending again
returns the first record), a failed delivery can be retried.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import sqlalchemy as sa

from refrig_assets.alerts.operator_tables import OperatorTables, as_utc
from refrig_assets.alerts.store import ACKNOWLEDGED, AlertNotFound, UTCDateTime
from refrig_assets.core.grants import DELETES_ROWS
from refrig_assets.core.secrets import mask_secrets, masked_url, url_secrets
from refrig_assets.core.settings import get_settings
from refrig_assets.operations.settings import OperationsSettings, load_operations_settings

SENT = "sent"
FAILED = "failed"

metadata = sa.MetaData()
work_orders = sa.Table(
    "work_orders",
    metadata,
    sa.Column("alert_id", sa.String(), primary_key=True),
    sa.Column("work_order_id", sa.String(), nullable=False, unique=True),
    sa.Column("destination", sa.String(), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("response_code", sa.Integer(), nullable=True),
    sa.Column("error", sa.Text(), nullable=False, default=""),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("requested_by", sa.String(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    info={DELETES_ROWS: True},  # each request replaces the row of its alert
)


class WorkOrderError(ValueError):
    """The alert cannot be handed off (for example, it is not acknowledged)."""


class WorkOrderDeliveryError(RuntimeError):
    """The work order could not be delivered; the failure is recorded and can be retried."""


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else as_utc(value).isoformat()


def work_order_payload(
    alert: dict[str, Any], settings: OperationsSettings, requested_by: str
) -> dict[str, Any]:
    """The work order for an acknowledged alert (a plain JSON-able dict).

    ``deadline`` is the acknowledgement time plus ``work_orders.due_hours`` of the severity.
    """
    work = settings.work_orders
    severity = alert["severity"]
    if severity not in work.due_hours:
        raise WorkOrderError(
            f"work_orders.due_hours in {settings.path} has no entry for severity {severity}"
        )
    acknowledged = alert.get("acknowledged_at")
    if acknowledged is None:
        raise WorkOrderError(f"alert {alert['alert_id']} has not been acknowledged")
    contributors = [c for c in str(alert["top_contributors"]).split(",") if c]
    lead = contributors[0] if contributors else "unknown sensor"
    return {
        "work_order_id": f"wo-{alert['alert_id']}",
        "alert_id": alert["alert_id"],
        "title": f"{severity}: {lead} anomaly on {alert['device_id']} at {alert['site_id']}",
        "device_id": alert["device_id"],
        "site_id": alert["site_id"],
        "cohort": alert.get("cohort"),
        "severity": severity,
        "explanation": alert["explanation"],
        "top_contributors": contributors,
        "models": [m for m in str(alert["model_versions"]).split(",") if m],
        "window_start": _iso(alert["window_start"]),
        "window_end": _iso(alert["window_end"]),
        "detected_at": _iso(alert["alert_created_at"]),
        "acknowledged_by": alert.get("acknowledged_by"),
        "acknowledged_at": _iso(acknowledged),
        "deadline": as_utc(acknowledged + timedelta(hours=work.due_hours[severity])).isoformat(),
        "requested_by": requested_by,
        "link": f"{work.console_url.rstrip('/')}/alerts/{alert['alert_id']}"
        if work.console_url
        else None,
    }


class WorkOrderExporter(OperatorTables):
    """Delivers work orders and records each delivery (see the module docstring).

    ``client`` is the ``httpx.Client`` used for webhooks (one is created when needed).
    """

    metadata = metadata

    def __init__(
        self,
        alerts,
        *,
        clock=None,
        settings: OperationsSettings | None = None,
        client: httpx.Client | None = None,
    ):
        super().__init__(alerts, clock=clock)
        self.settings = settings or load_operations_settings()
        self._client = client

    @property
    def destination(self) -> str:
        """The webhook URL (its secrets masked: it is stored and shown), or the directory work
        orders are written to."""
        url = self.settings.work_orders.url
        return masked_url(url) if url else str(get_settings().home / "work_orders")

    def get(self, alert_id: str) -> dict[str, Any] | None:
        """The recorded delivery of an alert's work order, with its payload, if any."""
        with self.begin(write=False) as conn:
            row = (
                conn.execute(sa.select(work_orders).where(work_orders.c.alert_id == alert_id))
                .mappings()
                .first()
            )
        if row is None:
            return None
        record = dict(row)
        record["payload"] = json.loads(record["payload"])
        return record

    def send(self, alert_id: str, requested_by: str) -> dict[str, Any]:
        """Hand an ACKNOWLEDGED alert off as a work order; returns the delivery record.

        Raises ``AlertNotFound``, :class:`WorkOrderError` (not acknowledged, or no actor) or
        :class:`WorkOrderDeliveryError` (the webhook kept failing; recorded as ``failed``).
        An alert already handed off returns its first record unchanged.
        """
        if not isinstance(requested_by, str) or not requested_by.strip():
            raise WorkOrderError("the operator requesting a work order must be named")
        requested_by = requested_by.strip()
        alert = self.alerts.get(alert_id)
        if alert is None:
            raise AlertNotFound(f"no alert with id {alert_id!r}")
        previous = self.get(alert_id)
        if previous is not None and previous["status"] == SENT:
            return previous
        if alert["status"] != ACKNOWLEDGED:
            raise WorkOrderError(
                f"alert {alert_id} is {alert['status']}; only an ACKNOWLEDGED alert becomes a "
                "work order"
            )
        payload = work_order_payload(alert, self.settings, requested_by)
        attempts = (previous or {}).get("attempts", 0)
        code, error = None, ""
        if self.settings.work_orders.url:
            code, error, tries = self._post(payload)
            attempts += tries
        else:
            attempts += 1
            self._write_file(payload)
        status = SENT if not error else FAILED
        record = {
            "alert_id": alert_id,
            "work_order_id": payload["work_order_id"],
            "destination": self.destination,
            "status": status,
            "attempts": attempts,
            "response_code": code,
            "error": error,
            "payload": json.dumps(payload),
            "requested_by": requested_by,
            "updated_at": self.now(),
        }
        note = (
            f"work order {payload['work_order_id']} sent to {self.destination}"
            if status == SENT
            else f"work order {payload['work_order_id']} failed: {error}"
        )
        with self.begin() as conn:
            conn.execute(work_orders.delete().where(work_orders.c.alert_id == alert_id))
            conn.execute(work_orders.insert().values(record))
            conn.execute(
                self.alerts.transitions.insert().values(
                    alert_id=alert_id,
                    event="work_order",
                    from_status=alert["status"],
                    to_status=alert["status"],
                    actor=requested_by,
                    at=record["updated_at"],
                    note=note,
                )
            )
        if status == FAILED:
            raise WorkOrderDeliveryError(note)
        return self.get(alert_id) or record

    def _post(self, payload: dict[str, Any]) -> tuple[int | None, str, int]:
        """POST with retries; returns (last status code, error or "", attempts made)."""
        work = self.settings.work_orders
        url = work.url or ""  # only called when a URL is configured
        client = self._client or httpx.Client(timeout=work.timeout_seconds)
        code, error = None, ""
        try:
            for attempt in range(1, work.attempts + 1):
                try:
                    response = client.post(
                        url,
                        json=payload,
                        headers={"Idempotency-Key": payload["work_order_id"]},
                        timeout=work.timeout_seconds,
                    )
                    code = response.status_code
                    if response.is_success:
                        return code, "", attempt
                    error = f"HTTP {code} from {url}: {response.text[:200]}"
                    if 400 <= code < 500 and code not in (408, 429):
                        # the receiver refuses it: retrying won't help
                        return code, mask_secrets(error, url_secrets(url)), attempt
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__} posting to {url}: {exc}"
            return code, mask_secrets(error, url_secrets(url)), work.attempts
        finally:
            if self._client is None:
                client.close()

    def _write_file(self, payload: dict[str, Any]) -> Path:
        folder = Path(self.destination)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{payload['work_order_id']}.json"
        tmp = folder / f".{final.stem}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(payload, indent=2))
        os.replace(tmp, final)
        return final
