"""What the console shows and does, independent of HTTP: one object over the alert database
(alerts, maintenance, feedback, work orders) and the Parquet datasets (device history).

The JSON API and the HTML pages both call it, so the page and the API can never disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from refrig_assets.access.four_eyes import check_four_eyes
from refrig_assets.access.identity import ADMIN, Forbidden, Identity
from refrig_assets.access.policy import AccessPolicy, load_access_policy
from refrig_assets.alerts.store import (
    ACKNOWLEDGED,
    FALSE_POSITIVE,
    OPEN,
    RESOLVED,
    STATUSES,
    AlertNotFound,
    AlertStore,
    InvalidTransition,
)
from refrig_assets.console.charts import Chart, Line, Span
from refrig_assets.console.history import (
    device_history,
    newest_window_end,
    oldest_partition_start,
)
from refrig_assets.console.incident_views import IncidentViews, asked_statuses
from refrig_assets.console.paging import decode_cursor, encode_cursor
from refrig_assets.console.silences import SilenceStore, silence_for
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import all_model_ids, load_model_config
from refrig_assets.core.storage import ParquetStore
from refrig_assets.operations.feedback import ACTIVE as ACTIVE_RULE
from refrig_assets.operations.feedback import (
    FeedbackLoop,
    describe_rule,
    top_contributor,
)
from refrig_assets.operations.maintenance import MaintenanceCalendar
from refrig_assets.operations.settings import OperationsSettings
from refrig_assets.operations.suppression import (
    SuppressionLog,
    restore_stored_alerts,
    suppress_stored_alerts,
)
from refrig_assets.operations.workorders import (
    WorkOrderDeliveryError,
    WorkOrderExporter,
)
from refrig_assets.streaming.alerts import SOURCE as STREAMING_SOURCE

ACTIVE_STATUSES = (OPEN, ACKNOWLEDGED)
# Sortable columns of the alert list (``sort=``); severity sorts by rank, most severe first.
SORT_KEYS = ("severity", "sla", "score", "window", "device", "site", "status")
BULK_ACTIONS = ("acknowledge", "resolve")
_SPAN_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
CLOSED_STATUSES = (RESOLVED, FALSE_POSITIVE)


class FilterError(ValueError):
    """A filter or query parameter has a value the console does not know."""


def parse_since(value: str | None, now: datetime) -> datetime | None:
    """``since=``: a span back from now (``30m``, ``24h``, ``7d``, ``2w``) or an ISO time."""
    if not value:
        return None
    text = value.strip().lower()
    try:
        if text[-1:] in _SPAN_UNITS and text[:-1].replace(".", "", 1).isdigit():
            return now - timedelta(**{_SPAN_UNITS[text[-1]]: float(text[:-1])})
        at = _utc(value)
        if pd.isna(at):  # "nan", "NaT": no time at all
            raise ValueError(value)
        return at.to_pydatetime()
    except (ValueError, OverflowError):  # not a time, or a span reaching before year 1
        raise FilterError(
            f"since must be a span like 30m, 24h, 7d or 2w, or an ISO time; got {value!r}"
        ) from None


class DeviceNotFound(KeyError):
    """Neither the registry, the alerts nor the features know this device."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "device not found"


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


def sla_state(alert: dict[str, Any], now: datetime) -> tuple[str, float | None]:
    """(state, seconds left) of an alert's SLA: ``breached``/``due`` while OPEN (seconds left
    negative once breached), ``acknowledged`` or ``closed`` otherwise (no countdown)."""
    if alert["status"] == OPEN:
        left = (pd.Timestamp(alert["sla_deadline"]) - pd.Timestamp(now)).total_seconds()
        return ("breached" if alert["sla_breached"] or left < 0 else "due"), left
    return ("acknowledged" if alert["status"] == ACKNOWLEDGED else "closed"), None


def plain(value: Any) -> Any:
    """A frame value as plain Python: Timestamp → datetime, NaN/NaT → None, numpy → builtin."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    if isinstance(value, float) and pd.isna(value):
        return None
    if value is pd.NaT or value is pd.NA:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame as dicts of plain Python values."""
    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def chartable_columns() -> list[str]:
    """Numeric device_features columns a device page can chart (from the contract)."""
    contract = load_contract("device_features")
    return [c.name for c in contract.columns if c.type == "float"]


def column_for_contributor(contributor: str) -> str | None:
    """The device_features column that shows a contributor: itself, or a sensor's mean."""
    contract = load_contract("device_features")
    if contributor in chartable_columns():
        return contributor
    for c in contract.columns_with_role("feature"):
        if (
            c.extra.get("sensor") == contributor
            and c.extra.get("stat") == "mean"
            and not c.extra.get("condition")
        ):
            return c.name
    return None


@dataclass
class ConsoleService:
    """The console's operations over one alert database and one data directory."""

    alerts_db_url: str
    data_dir: Path
    settings: OperationsSettings
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    work_order_client: Any = None
    access: AccessPolicy = field(default_factory=load_access_policy)

    def __post_init__(self) -> None:
        self.store = AlertStore(self.alerts_db_url, clock=self.clock)
        self.calendar = MaintenanceCalendar(self.store, clock=self.clock, settings=self.settings)
        self.feedback = FeedbackLoop(self.store, clock=self.clock, settings=self.settings)
        self.suppressions = SuppressionLog(self.store, clock=self.clock)
        self.work_orders = WorkOrderExporter(
            self.store,
            clock=self.clock,
            settings=self.settings,
            client=self.work_order_client,
        )
        self.silences = SilenceStore(self.store, clock=self.clock)
        self.incidents = IncidentViews(
            self.store, self.silences, self.access, self.now, FilterError
        )
        self.parquet = ParquetStore(self.data_dir)

    def close(self) -> None:
        self.store.close()

    def now(self) -> datetime:
        return pd.Timestamp(self.clock()).tz_convert(UTC).to_pydatetime()

    # -- reference data ---------------------------------------------------------------------

    def registry(self) -> pd.DataFrame:
        """The device registry dataset (empty when it was never materialized)."""
        if not self.parquet.exists("device_registry"):
            return pd.DataFrame(columns=["device_id", "site_id", "cohort"])
        return self.parquet.read("device_registry", columns=["device_id", "site_id", "cohort"])

    def filter_options(self) -> dict[str, list[str]]:
        """Values the alert filters accept: sites, severities, statuses, models."""
        sites = set(self.registry()["site_id"].dropna())
        self.store.get("")  # the tables exist before the first query
        with self.store.engine.connect() as conn:
            sites |= set(conn.execute(sa.select(self.store.alerts.c.site_id).distinct()).scalars())
        return {
            "sites": sorted(sites),
            "severities": list(self.store.severities),
            "statuses": list(STATUSES),
            "models": all_model_ids(),
        }

    # -- alerts -----------------------------------------------------------------------------

    def _check_choice(self, name: str, value: str | None, allowed: list[str]) -> str | None:
        if value in (None, ""):
            return None
        upper = value if name in ("model",) else value.upper()
        if upper not in allowed:
            raise FilterError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return upper

    def decorate(self, alert: dict[str, Any]) -> dict[str, Any]:
        """An alert with its SLA state, seconds left and lead contributor added."""
        state, left = sla_state(alert, self.now())
        lead = str(alert["top_contributors"] or "").split(",")[0].strip()
        return {
            **alert,
            "sla_state": state,
            "time_left_seconds": left,
            "contributor": lead,
        }

    def list_alerts(
        self,
        *,
        site: str | None = None,
        severity: str | None = None,
        status: list[str] | None = None,
        model: str | None = None,
        device: str | None = None,
        include_suppressed: bool = False,
        q: str | None = None,
        since: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Alerts matching the filters, most severe first, then by SLA deadline (or by
        ``sort``/``order``).

        ``status`` defaults to the active ones (OPEN and ACKNOWLEDGED). ``q`` searches ids,
        device, site, contributors and explanation; ``since`` keeps alerts whose window ends
        after it. Alerts hidden by an active silence are left out unless
        ``include_suppressed``. Returns the page of alerts, the total matching, the cursor of
        the next page, and counts of the active alerts by severity and breached.
        """
        if cursor:
            offset = decode_cursor(cursor)
        severity = self._check_choice("severity", severity, list(self.store.severities))
        model = self._check_choice("model", model, all_model_ids())
        asked = asked_statuses(status) or []
        statuses = [self._check_choice("status", s, list(STATUSES)) for s in asked]
        statuses = [s for s in statuses if s] or list(ACTIVE_STATUSES)
        limit = self.settings.console.page_size if limit is None else limit
        if limit < 1 or offset < 0:
            raise FilterError("limit must be at least 1 and offset at least 0")
        t = self.store.alerts
        conditions = [t.c.status.in_(statuses)]
        if severity:
            conditions.append(t.c.severity == severity)
        if site:
            conditions.append(t.c.site_id == site)
        if device:
            conditions.append(t.c.device_id == device)
        if not include_suppressed:
            conditions.append(t.c.suppressed.is_(False))
        if q and q.strip():
            pattern = (
                "%" + q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            searched = (
                t.c.alert_id,
                t.c.device_id,
                t.c.site_id,
                t.c.top_contributors,
                t.c.explanation,
                t.c.alert_type,
            )
            conditions.append(sa.or_(*(c.ilike(pattern, escape="\\") for c in searched)))
        since_at = parse_since(since, self.now())
        if since_at is not None:
            conditions.append(t.c.window_end >= since_at)
        active_silences = self.silences.active()
        if not include_suppressed:
            conditions += self._unsilenced(active_silences)
        if model:
            # model_versions is "model@version,model@version": match a whole model id
            listed = sa.literal(",") + t.c.model_versions
            literal = model.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(listed.like(f"%,{literal}@%", escape="\\"))
        rank = sa.case(
            {s: i for i, s in enumerate(self.store.severities)},
            value=t.c.severity,
            else_=len(self.store.severities),
        )
        query = (
            sa.select(t)
            .where(*conditions)
            .order_by(*self._order(sort, order, rank), t.c.alert_id)
            .limit(limit)
            .offset(offset)
        )
        with self.store.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
            total = conn.execute(sa.select(sa.func.count()).select_from(t).where(*conditions))
            total = int(total.scalar_one())
        alerts_page = [self.decorate({k: plain(v) for k, v in row.items()}) for row in rows]
        reasons = self.suppressions.reasons([a["alert_id"] for a in alerts_page if a["suppressed"]])
        by_id = dict(zip(reasons["alert_id"], reasons["reason"], strict=True))
        for alert in alerts_page:
            alert["suppression_reason"] = (
                by_id.get(alert["alert_id"]) if alert["suppressed"] else None
            )
            silence = silence_for(alert, active_silences)
            alert["silenced_by"] = silence["id"] if silence else None
            if silence and not alert["suppression_reason"]:
                alert["suppression_reason"] = silence["description"]
        end = offset + len(alerts_page)
        return {
            "alerts": alerts_page,
            "total": total,
            "offset": offset,
            "limit": limit,
            "next_cursor": encode_cursor(end) if end < total else None,
            "summary": self.summary(),
        }

    def _unsilenced(self, active: list[dict[str, Any]]) -> list[Any]:
        """SQL conditions leaving out the alerts ``active`` silences hide."""
        t = self.store.alerts
        out: list[Any] = []
        for silence in active:
            value = silence["value"]
            if silence["matcher"] == "device":
                out.append(t.c.device_id != value)
            elif silence["matcher"] == "site":
                out.append(t.c.site_id != value)
            elif silence["matcher"] == "cause":
                out.append(t.c.alert_type != value)
            else:
                lead = sa.func.trim(t.c.top_contributors)
                literal = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                out.append(
                    sa.not_(
                        sa.or_(
                            lead == value,
                            lead.like(f"{literal},%", escape="\\"),
                            lead.like(f"{literal} ,%", escape="\\"),
                        )
                    )
                )
        return out

    def _order(self, sort: str | None, order: str | None, rank: Any) -> list[Any]:
        """ORDER BY of the alert list for ``sort`` (one of :data:`SORT_KEYS`) and ``order``."""
        t = self.store.alerts
        if order not in (None, "", "asc", "desc"):
            raise FilterError(f"order must be asc or desc; got {order!r}")
        if sort in (None, ""):
            return (
                [rank.desc(), t.c.sla_deadline.desc()]
                if order == "desc"
                else [rank, t.c.sla_deadline]
            )
        columns = {
            "severity": rank,
            "sla": t.c.sla_deadline,
            "score": t.c.max_score,
            "window": t.c.window_start,
            "device": t.c.device_id,
            "site": t.c.site_id,
            "status": t.c.status,
        }
        if sort not in columns:
            raise FilterError(f"sort must be one of {', '.join(SORT_KEYS)}; got {sort!r}")
        first = columns[sort].desc() if order == "desc" else columns[sort].asc()
        return [first, rank, t.c.sla_deadline]

    def summary(self) -> dict[str, Any]:
        """Active, unsuppressed alerts by severity, and how many of the OPEN ones are breached."""
        t = self.store.alerts
        now = self.now()
        breached = sa.and_(
            t.c.status == OPEN,
            sa.or_(t.c.sla_breached.is_(True), t.c.sla_deadline < now),
        )
        query = (
            sa.select(
                t.c.severity,
                t.c.status,
                sa.func.count().label("n"),
                sa.func.sum(sa.case((breached, 1), else_=0)).label("breached"),
            )
            .where(t.c.status.in_(ACTIVE_STATUSES), t.c.suppressed.is_(False))
            .group_by(t.c.severity, t.c.status)
        )
        self.store.get("")  # the tables exist before the first query
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        by_severity = {s: 0 for s in self.store.severities}
        out = {"open": 0, "acknowledged": 0, "breached": 0}
        for severity, status, n, late in rows:
            by_severity[severity] = by_severity.get(severity, 0) + int(n)
            out["open" if status == OPEN else "acknowledged"] += int(n)
            out["breached"] += int(late or 0)
        return {"by_severity": by_severity, **out}

    def get_alert(self, alert_id: str) -> dict[str, Any]:
        alert = self.store.get(alert_id)
        if alert is None:
            raise AlertNotFound(f"no alert with id {alert_id!r}")
        return alert

    def alert_detail(self, alert_id: str) -> dict[str, Any]:
        """An alert with provenance, lifecycle history, suppression reason, work order and the
        feedback state of its device and contributor."""
        alert = self.decorate(self.get_alert(alert_id))
        models = []
        for entry in str(alert["model_versions"]).split(","):
            if entry:
                model_id, _, version = entry.partition("@")
                models.append({"model_id": model_id, "version": version})
        rules = self.feedback.rules(device_id=alert["device_id"])
        rules = rules[rules["contributor"] == alert["contributor"]]
        labels = self.feedback.labels()
        same = labels[
            (labels["device_id"] == alert["device_id"])
            & (labels["contributor"] == alert["contributor"])
            & (labels["label"] == "false_positive")
        ]
        # The device page ends a quarter of its default span after the alert.
        quarter = timedelta(hours=self.settings.console.device_history_hours / 4)
        until = pd.Timestamp(alert["window_end"]) + quarter
        return {
            "alert": alert,
            "chart_until": until.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "provenance": {
                "models": models,
                "source": alert["source"],
                "alert_type": alert["alert_type"],
                "feature_window": {
                    "start": alert["window_start"],
                    "end": alert["window_end"],
                },
                "feature_partition": alert["feature_partition"],
                "run_id": alert["run_id"],
            },
            "links": self.links(alert),
            "history": self.store.history(alert_id),
            "suppression": self.suppressions.reason(alert_id) if alert["suppressed"] else None,
            "work_order": self.work_orders.get(alert_id),
            "feedback": {
                "false_positives_same_contributor": len(same),
                "threshold": self.settings.feedback.false_positive_threshold,
                "rules": [{**r, "description": describe_rule(r)} for r in records(rules)],
            },
        }

    # -- actions ----------------------------------------------------------------------------

    def acknowledge(self, alert_id: str, actor: str, note: str = "") -> dict[str, Any]:
        """OPEN → ACKNOWLEDGED; sends the work order too when ``work_orders.on_acknowledge``."""
        alert = self.store.acknowledge(alert_id, actor.strip(), note)
        out: dict[str, Any] = {"alert": self.decorate(alert), "work_order": None}
        if self.settings.work_orders.on_acknowledge:
            try:
                out["work_order"] = self.work_orders.send(alert_id, actor.strip())
            except WorkOrderDeliveryError as exc:
                out["work_order_error"] = str(exc)
        return out

    def resolve(self, alert_id: str, actor: str, note: str = "") -> dict[str, Any]:
        """OPEN/ACKNOWLEDGED → RESOLVED (a confirmed incident for the backtest)."""
        return {"alert": self.decorate(self.store.resolve(alert_id, actor.strip(), note))}

    def false_positive(self, alert_id: str, actor: str, note: str = "") -> dict[str, Any]:
        """OPEN/ACKNOWLEDGED → FALSE_POSITIVE, then the feedback loop looks for a rule."""
        outcome = self.feedback.mark_false_positive(alert_id, actor.strip(), note)
        return {
            "alert": self.decorate(outcome["alert"]),
            "false_positives": outcome["false_positives"],
            "threshold": self.settings.feedback.false_positive_threshold,
            "rules": [{**r, "description": describe_rule(r)} for r in outcome["rules"]],
        }

    def send_work_order(self, alert_id: str, actor: str) -> dict[str, Any]:
        return self.work_orders.send(alert_id, actor)

    def bulk(self, action: str, alert_ids: list[str], actor: str, note: str = "") -> dict[str, Any]:
        """Acknowledge or resolve many alerts: each one that may change does; the others are
        reported with the reason (unknown id, a state that does not allow it)."""
        if action not in BULK_ACTIONS:
            raise FilterError(f"action must be one of {', '.join(BULK_ACTIONS)}; got {action!r}")
        if len(alert_ids) > self.access.bulk_max:
            raise FilterError(
                f"at most {self.access.bulk_max} alerts per request (triage.bulk_max); got {len(alert_ids)}"
            )
        done: list[str] = []
        failed: list[dict[str, str]] = []
        for alert_id in dict.fromkeys(alert_ids):
            try:
                getattr(self, action)(alert_id, actor, note)
                done.append(alert_id)
            except (AlertNotFound, InvalidTransition) as exc:
                failed.append({"alert_id": alert_id, "detail": str(exc)})
        return {"action": action, "done": done, "failed": failed}

    # -- maintenance ------------------------------------------------------------------------

    def maintenance(
        self,
        device: str | None = None,
        site: str | None = None,
        include_cancelled: bool = False,
    ) -> list[dict[str, Any]]:
        frame = self.calendar.windows(
            device_id=device, site_id=site, include_cancelled=include_cancelled
        )
        return records(frame)

    def add_maintenance(
        self,
        scope: str,
        target: str,
        starts_at: Any,
        ends_at: Any,
        reason: str,
        actor: str | Identity,
    ) -> dict[str, Any]:
        """Declare a window and suppress the stored alerts it covers. A window starting in
        the past (beyond ``backdate_tolerance_minutes``) silences alerts retroactively, so it
        needs an admin."""
        if isinstance(actor, Identity):
            earliest = self.now() - timedelta(minutes=self.access.backdate_tolerance_minutes)
            if _utc(starts_at) < earliest and not actor.can(ADMIN):
                raise Forbidden(
                    f"{actor.name} is a {actor.role}; a maintenance window starting in the "
                    "past (backdated) needs the admin role"
                )
            actor = actor.name
        window = self.calendar.add(scope, target, starts_at, ends_at, reason, actor)
        suppressed = suppress_stored_alerts(self.store, window)
        return {"window": window, "suppressed_alerts": suppressed}

    def cancel_maintenance(self, window_id: int, actor: str) -> dict[str, Any]:
        """Cancel a window and give back the alerts it suppressed."""
        window = self.calendar.cancel(window_id, actor)
        return {
            "window": window,
            "restored_alerts": restore_stored_alerts(self.store, window),
        }

    # -- feedback ---------------------------------------------------------------------------

    def rules(self, status: str | None = None) -> list[dict[str, Any]]:
        frame = self.feedback.rules(status=status)
        return [{**r, "description": describe_rule(r)} for r in records(frame)]

    def decide_rule(self, rule_id: str, to_status: str, actor: str, note: str) -> dict[str, Any]:
        """Apply, reject or revoke a rule. Four eyes: whoever marked one of the false
        positives a rule was proposed from cannot apply it; another admin must."""
        if to_status == ACTIVE_RULE:
            check_four_eyes(self.feedback, rule_id, actor)
        rule = self.feedback.decide(rule_id, to_status, actor, note)
        return {**rule, "description": describe_rule(rule)}

    def audit(self) -> list[dict[str, Any]]:
        return records(self.feedback.audit_log().iloc[::-1])

    def labels(self) -> list[dict[str, Any]]:
        return records(self.feedback.labels())

    # -- silences ---------------------------------------------------------------------------

    def add_silence(
        self,
        matcher: str,
        value: str,
        starts_at: Any,
        minutes: float,
        reason: str,
        actor: str,
        recurrence: str = "none",
        until: Any = None,
    ) -> dict[str, Any]:
        """A silence from ``starts_at`` (default now) for ``minutes``, optionally recurring."""
        return self.silences.create(
            matcher,
            value,
            starts_at if starts_at is not None else self.now(),
            timedelta(minutes=minutes),
            reason,
            actor,
            recurrence=recurrence,
            until=until,
            max_days=self.access.silence_max_days,
        )

    # -- sites and links --------------------------------------------------------------------

    def links(self, alert: dict[str, Any]) -> dict[str, Any]:
        """Where an alert came from: its Dagster run and the MLflow model versions. A
        streaming alert was raised by a streaming pass over a landing file (its ``run_id``
        names the file), not by a Dagster run: it links to no run."""
        dagster, mlflow = self.access.dagster_url, self.access.mlflow_url
        run = alert.get("run_id") if alert.get("source") != STREAMING_SOURCE else None
        models = []
        for entry in str(alert.get("model_versions") or "").split(","):
            model_id, _, version = entry.partition("@")
            if model_id and version:
                url = f"{mlflow}/#/models/{model_id}/versions/{version}" if mlflow else None
                models.append({"model_id": model_id, "version": version, "url": url})
        return {
            "dagster_run": f"{dagster}/runs/{run}" if dagster and run else None,
            "models": models,
        }

    def links_for_incident(self, detail: dict[str, Any]) -> dict[str, Any]:
        """The Dagster runs and MLflow model versions behind an incident's alerts."""
        runs: dict[str, dict[str, Any]] = {}
        models: dict[str, dict[str, Any]] = {}
        for item in detail["timeline"]:
            alert = self.store.get(item["alert_id"]) if item.get("alert_id") else None
            if alert is None:
                continue
            links = self.links(alert)
            if alert["run_id"]:
                runs.setdefault(
                    alert["run_id"],
                    {
                        "run_id": alert["run_id"],
                        "url": links["dagster_run"],
                        "streaming": alert.get("source") == STREAMING_SOURCE,
                    },
                )
            for model in links["models"]:
                models.setdefault(f"{model['model_id']}@{model['version']}", model)
        return {
            "runs": list(runs.values()),
            "models": list(models.values()),
        }

    # -- devices ----------------------------------------------------------------------------

    def device(
        self,
        device_id: str,
        *,
        hours: float | None = None,
        until: datetime | None = None,
        features: list[str] | None = None,
    ) -> dict[str, Any]:
        """A device: registry entry, history (features and scores), alerts, windows, rules."""
        registry = self.registry()
        entry = registry[registry["device_id"] == device_id]
        alerts = self.store.list(
            device_id=device_id, include_suppressed=True, status=list(STATUSES)
        )
        hours = float(hours or self.settings.console.device_history_hours)
        if hours <= 0 or hours > 24 * 31:
            raise FilterError("hours must be between 0 and 744 (31 days)")
        newest = newest_window_end(self.parquet)
        end = _utc(until) if until is not None else newest
        if end is None:
            end = pd.Timestamp(self.now())
        elif newest is not None and end > newest:
            end = newest  # nothing to chart after the newest features
        start = end - timedelta(hours=hours)
        oldest = oldest_partition_start(self.parquet)
        if oldest is not None and oldest > start and oldest < end:
            start = oldest  # nothing to show before the first feature hour
        chartable = chartable_columns()
        unknown = [f for f in features or [] if f not in chartable]
        if unknown:
            raise FilterError(
                f"unknown feature column(s) {unknown}; chartable: {', '.join(chartable)}"
            )
        chosen = list(features or []) or self._default_features(alerts)
        wanted = self._with_bands(chosen)
        history = device_history(self.parquet, device_id, start, end, all_model_ids(), wanted)
        if entry.empty and alerts.empty and history.features.empty:
            raise DeviceNotFound(
                f"no device {device_id!r} in the registry, the alerts or the features"
            )
        site = (
            entry["site_id"].iat[0]
            if len(entry)
            else (alerts["site_id"].iat[0] if len(alerts) else None)
        )
        windows = self.calendar.windows(device_id=device_id, site_id=site)
        return {
            "device_id": device_id,
            "site_id": site,
            "cohort": entry["cohort"].iat[0] if len(entry) else None,
            "registered": bool(len(entry)),
            "period": {
                "start": start.to_pydatetime(),
                "end": end.to_pydatetime(),
                "hours": (end - start).total_seconds() / 3600,
            },
            "features_shown": chosen,
            "features_available": chartable,
            "features": records(history.features),
            "scores": records(history.scores),
            "alerts": [self.decorate(a) for a in records(alerts)],
            "maintenance": records(windows),
            "rules": [
                {**r, "description": describe_rule(r)}
                for r in records(self.feedback.rules(device_id=device_id))
            ],
        }

    def _default_features(self, alerts: pd.DataFrame) -> list[str]:
        """The device's most frequent lead contributors, as feature columns."""
        wanted = self.settings.console.device_chart_features
        counts = Counter(top_contributor(alerts["top_contributors"])) if len(alerts) else Counter()
        chosen = []
        for contributor, _ in counts.most_common():
            column = column_for_contributor(contributor)
            if column and column not in chosen:
                chosen.append(column)
        for sensor in load_contract("sensor_readings").sensor_columns:
            column = column_for_contributor(sensor)
            if column and column not in chosen:
                chosen.append(column)
        return chosen[:wanted]

    @staticmethod
    def _with_bands(columns: list[str]) -> list[str]:
        available = set(chartable_columns())
        out = list(columns)
        for column in columns:
            if column.endswith("_mean"):
                stem = column[: -len("_mean")]
                out += [c for c in (f"{stem}_min", f"{stem}_max") if c in available]
        return out

    def device_charts(self, device: dict[str, Any]) -> list[str]:
        """SVG charts for a device page: scores of every model, then each chosen feature."""
        from refrig_assets.console.charts import render_svg

        start = pd.Timestamp(device["period"]["start"])
        end = pd.Timestamp(device["period"]["end"])
        spans = [
            Span(
                pd.Timestamp(a["window_start"]),
                pd.Timestamp(a["window_end"]),
                "alert",
                f"{a['severity']} alert {a['alert_id']} ({a['status']})",
            )
            for a in device["alerts"]
        ] + [
            Span(
                pd.Timestamp(w["starts_at"]),
                pd.Timestamp(w["ends_at"]),
                "maintenance",
                f"maintenance #{w['id']}: {w['reason']}",
            )
            for w in device["maintenance"]
        ]
        scores = pd.DataFrame(device["scores"])
        score_chart = Chart("Anomaly score by model", start, end, spans=spans, y_range=(0.0, 1.0))
        if len(scores):
            scores["window_start"] = pd.to_datetime(scores["window_start"], utc=True)
            for model_id, group in scores.groupby("model_id"):
                group = group.sort_values("window_start")
                score_chart.lines.append(
                    Line(
                        model_id,
                        group["window_start"],
                        group["anomaly_score"],
                        marked=group["anomaly_flag"].astype(bool),
                    )
                )
            thresholds = {}
            for model_id in scores["model_id"].unique():
                try:
                    thresholds.setdefault(load_model_config(model_id).flag_threshold, []).append(
                        model_id
                    )
                except FileNotFoundError:
                    continue
            score_chart.references = [
                (value, f"flag threshold {value:.2f} ({', '.join(ids)})")
                for value, ids in thresholds.items()
            ]
        charts = [render_svg(score_chart)]
        features = pd.DataFrame(device["features"])
        contract = load_contract("device_features")
        for column in device["features_shown"]:
            chart = Chart(column, start, end, spans=spans, unit=contract.column(column).unit or "")
            if len(features) and column in features:
                times = pd.to_datetime(features["window_start"], utc=True)
                stem = column[: -len("_mean")] if column.endswith("_mean") else None
                low = features.get(f"{stem}_min") if stem else None
                high = features.get(f"{stem}_max") if stem else None
                label = (
                    f"{column} (band: min–max)" if low is not None and high is not None else column
                )
                chart.lines.append(Line(label, times, features[column].astype(float), low, high))
            charts.append(render_svg(chart))
        return charts
