"""Operator suppression: maintenance windows and applied feedback rules silence alerts.

An alert whose window overlaps a maintenance window of its device or site, or that an applied
feedback rule covers, is kept and marked ``suppressed`` — never dropped — and the reason is
recorded in ``alert_suppressions`` (alert id, kind, the window or rule, a sentence for the
operator, and whether the alert was already suppressed as a repeat). The batch path calls
:func:`apply_operator_suppression` on each partition's alerts before writing them; declaring a
window in the console also suppresses the stored alerts it covers
(:func:`suppress_stored_alerts`), and cancelling it restores them (:func:`restore_stored_alerts`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from refrig_assets.alerts.operator_tables import OperatorTables
from refrig_assets.alerts.severity import alert_policy, mark_suppressed
from refrig_assets.alerts.store import AlertStore, UTCDateTime
from refrig_assets.core.grants import DELETES_ROWS
from refrig_assets.operations.feedback import FeedbackLoop, describe_rule, rule_matches
from refrig_assets.operations.maintenance import MaintenanceCalendar, window_matches
from refrig_assets.operations.settings import OperationsSettings, load_operations_settings

MAINTENANCE = "maintenance"
FEEDBACK_RULE = "feedback_rule"
REASON_COLUMNS = ["alert_id", "kind", "ref", "reason", "was_suppressed"]

metadata = sa.MetaData()
alert_suppressions = sa.Table(
    "alert_suppressions",
    metadata,
    sa.Column("alert_id", sa.String(), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("ref", sa.String(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("was_suppressed", sa.Boolean(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    info={DELETES_ROWS: True},  # reasons are replaced when alerts are re-evaluated
)


def _window_reason(window: Any) -> str:
    return (
        f"maintenance window #{window.id} ({window.scope} {window.target}, "
        f"{pd.Timestamp(window.starts_at):%Y-%m-%d %H:%M}–{pd.Timestamp(window.ends_at):%Y-%m-%d %H:%M} "
        f"UTC, declared by {window.created_by}): {window.reason}"
    )


def suppression_reasons(
    alerts: pd.DataFrame, windows: pd.DataFrame, rules: pd.DataFrame
) -> pd.DataFrame:
    """Why each alert is suppressed by operators, one row per suppressed alert. Pure.

    Maintenance windows come first (a device being worked on explains everything), then
    applied feedback rules. Columns: :data:`REASON_COLUMNS`.
    """
    if alerts.empty:
        return pd.DataFrame(columns=REASON_COLUMNS)
    by_window = window_matches(alerts, windows)
    by_rule = rule_matches(alerts, rules)
    window_text = {int(w.id): _window_reason(w) for w in windows.itertuples()}
    rule_text = {
        r.rule_id: f"feedback rule {r.rule_id}: {describe_rule(r)}" for r in rules.itertuples()
    }
    rows = []
    for alert_id, window, rule, was in zip(
        alerts["alert_id"], by_window, by_rule, alerts["suppressed"].astype(bool), strict=True
    ):
        if pd.notna(window):
            rows.append((alert_id, MAINTENANCE, str(int(window)), window_text[int(window)], was))
        elif rule is not None:
            rows.append((alert_id, FEEDBACK_RULE, rule, rule_text[rule], was))
    return pd.DataFrame(rows, columns=REASON_COLUMNS)


def apply_suppression(
    alerts: pd.DataFrame, windows: pd.DataFrame, rules: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``alerts`` with operator-suppressed ones marked, and the reasons. Pure; nothing dropped."""
    reasons = suppression_reasons(alerts, windows, rules)
    out = alerts.copy()
    if len(reasons):
        out.loc[out["alert_id"].isin(reasons["alert_id"]), "suppressed"] = True
    return out, reasons


class SuppressionLog(OperatorTables):
    """The recorded reasons (table ``alert_suppressions``)."""

    metadata = metadata

    def record(self, alert_ids: Any, reasons: pd.DataFrame) -> None:
        """Replace the reasons of ``alert_ids`` (a re-run re-decides them) with ``reasons``."""
        ids = list(dict.fromkeys(alert_ids))
        t = alert_suppressions
        now = self.now()
        with self.begin() as conn:
            for i in range(0, len(ids), 10_000):
                conn.execute(t.delete().where(t.c.alert_id.in_(ids[i : i + 10_000])))
            if len(reasons):
                rows = [
                    {**r, "was_suppressed": bool(r["was_suppressed"]), "recorded_at": now}
                    for r in reasons[REASON_COLUMNS].to_dict("records")
                ]
                conn.execute(t.insert(), rows)

    def reasons(self, alert_ids: Any = None, *, kind: str | None = None, ref: str | None = None):
        """Recorded reasons as a frame (:data:`REASON_COLUMNS` plus ``recorded_at``)."""
        t = alert_suppressions
        query = sa.select(t)
        if alert_ids is not None:
            query = query.where(t.c.alert_id.in_(list(alert_ids)))
        if kind is not None:
            query = query.where(t.c.kind == kind)
        if ref is not None:
            query = query.where(t.c.ref == ref)
        with self.begin(write=False) as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return pd.DataFrame(rows, columns=[*REASON_COLUMNS, "recorded_at"])

    def reason(self, alert_id: str) -> dict[str, Any] | None:
        """The recorded reason of one alert, if operators suppressed it."""
        found = self.reasons([alert_id])
        return found.iloc[0].to_dict() if len(found) else None


def apply_operator_suppression(
    alerts: pd.DataFrame, store: AlertStore, settings: OperationsSettings | None = None
) -> pd.DataFrame:
    """Suppress a batch of new alerts by maintenance windows and applied feedback rules.

    First lets the feedback loop turn any new false-positive marks (console, API or CLI) into
    rules, then marks the alerts and records why. Returns the alerts (same rows, same order).
    """
    if alerts.empty:
        return alerts
    settings = settings or load_operations_settings()
    loop = FeedbackLoop(store, settings=settings)
    loop.evaluate()
    devices = alerts["device_id"].unique()
    rules = loop.active_rules(devices)
    period = (alerts["window_start"].min(), alerts["window_end"].max())
    windows = MaintenanceCalendar(store, settings=settings).windows(overlapping=period)
    out, reasons = apply_suppression(alerts, windows, rules)
    if len(reasons):
        out = _redo_dedup(out, reasons, store)
    SuppressionLog(store).record(alerts["alert_id"], reasons)
    return out


def _redo_dedup(alerts: pd.DataFrame, reasons: pd.DataFrame, store: AlertStore) -> pd.DataFrame:
    """Deduplicate the alerts operators did not suppress again, without the ones they did.

    An alert suppressed by a window or rule must not make the next alert of the same device and
    contributor a "repeat": once the maintenance ends, the first alert after it should show.
    Earlier partitions are read from the store, where operator-suppressed alerts are already
    marked suppressed, so dedup ignores them the same way.
    """
    start = alerts["window_start"].min()
    window = alert_policy().dedup_window
    previous = store.recent_alerts(alerts["device_id"].unique(), since=start - window)
    previous = previous[previous["window_start"] < start]
    rest = alerts[~alerts["alert_id"].isin(reasons["alert_id"])]
    out = alerts.copy()
    out.loc[rest.index, "suppressed"] = mark_suppressed(rest, previous).to_numpy()
    return out


def _stored_alerts(store: AlertStore, window: dict[str, Any]) -> pd.DataFrame:
    key = "device_id" if window["scope"] == "device" else "site_id"
    stored = store.list(include_suppressed=True, **{key: window["target"]})
    inside = (stored["window_start"] < pd.Timestamp(window["ends_at"])) & (
        stored["window_end"] > pd.Timestamp(window["starts_at"])
    )
    return stored[inside]


def suppress_stored_alerts(store: AlertStore, window: dict[str, Any]) -> list[str]:
    """Suppress the alerts already in the database that a new maintenance window covers.

    Alerts an earlier window or rule already suppressed keep that reason; repeats suppressed by
    deduplication get the window as their reason (and keep ``was_suppressed``). Returns the ids
    that now carry this window as their reason.
    """
    log = SuppressionLog(store)
    stored = _stored_alerts(store, window)
    if stored.empty:
        return []
    known = set(log.reasons(stored["alert_id"])["alert_id"])
    stored = stored[~stored["alert_id"].isin(known)]
    windows = pd.DataFrame([window])
    _, reasons = apply_suppression(stored, windows, pd.DataFrame(columns=["status"]))
    if reasons.empty:
        return []
    frame = stored[stored["alert_id"].isin(reasons["alert_id"])].copy()
    frame["suppressed"] = True
    store.upsert(frame[store.contract.column_names])
    _append_reasons(log, reasons)
    return reasons["alert_id"].tolist()


def restore_stored_alerts(store: AlertStore, window: dict[str, Any]) -> list[str]:
    """Undo the suppression a cancelled window caused; returns the ids restored.

    Each alert gets back the ``suppressed`` value it had before (a repeat stays suppressed).
    """
    log = SuppressionLog(store)
    reasons = log.reasons(kind=MAINTENANCE, ref=str(int(window["id"])))
    if reasons.empty:
        return []
    stored = _stored_alerts(store, window)
    stored = stored[stored["alert_id"].isin(reasons["alert_id"])].copy()
    was = reasons.set_index("alert_id")["was_suppressed"].astype(bool)
    stored["suppressed"] = stored["alert_id"].map(was).fillna(False).astype(bool)
    store.upsert(stored[store.contract.column_names])
    t = alert_suppressions
    with log.begin() as conn:
        conn.execute(t.delete().where(t.c.alert_id.in_(reasons["alert_id"].tolist())))
    return reasons["alert_id"].tolist()


def _append_reasons(log: SuppressionLog, reasons: pd.DataFrame) -> None:
    now = log.now()
    rows = [
        {**r, "was_suppressed": bool(r["was_suppressed"]), "recorded_at": now}
        for r in reasons[REASON_COLUMNS].to_dict("records")
    ]
    with log.begin() as conn:
        conn.execute(alert_suppressions.insert(), rows)
