"""The feedback loop: operator labels on alerts teach the alerting what is not a fault.

* **Labels.** An alert an operator marks FALSE_POSITIVE is a false-positive label; one they
  RESOLVE is a confirmed incident. Both are read from the alert database itself
  (:func:`operator_labels`), whichever way the operator acted (console, API or CLI).
* **Rules.** When ``feedback.false_positive_threshold`` false positives (``config/operations.yaml``)
  pile up for the same device and top contributor, :meth:`FeedbackLoop.evaluate` proposes a
  per-device rule: ``raise_threshold`` (later alerts of that device and contributor are
  suppressed unless their score beats the strongest one operators called false) or ``suppress``
  (all of them are). With ``auto_apply`` the rule is applied at once; otherwise an operator
  approves or rejects it. A rule covers alerts from the end of its last false-positive window for
  ``rule_days`` (data time, so re-running old hours gives the same answer).
* **Audit.** Every proposal and decision is appended to ``feedback_audit``, which the database
  itself keeps append-only (triggers refuse UPDATE and DELETE), like the model lifecycle trail.
* **Backtest.** :func:`incident_labels` turns confirmed incidents into the label frame
  ``refrig_assets.evaluation.backtest.backtest`` reads; :func:`judge_on_operator_labels` says how a candidate's
  alerts fare on operator-confirmed incidents and false positives.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from refrig_assets.alerts.operator_tables import OperatorTables, as_utc, id_column
from refrig_assets.alerts.store import FALSE_POSITIVE, RESOLVED, AlertStore, UTCDateTime
from refrig_assets.core.append_only import make_append_only
from refrig_assets.operations.settings import OperationsSettings, load_operations_settings

PROPOSED = "PROPOSED"
ACTIVE = "ACTIVE"
REJECTED = "REJECTED"
REVOKED = "REVOKED"
SUPERSEDED = "SUPERSEDED"
RULE_STATUSES = (PROPOSED, ACTIVE, REJECTED, REVOKED, SUPERSEDED)
FEEDBACK_ACTOR = "feedback-loop"

CONFIRMED = "confirmed_incident"
FALSE_POSITIVE_LABEL = "false_positive"
LABEL_COLUMNS = [
    "alert_id",
    "label",
    "device_id",
    "site_id",
    "window_start",
    "window_end",
    "contributor",
    "max_score",
    "severity",
    "source",
    "model_versions",
    "labelled_by",
    "labelled_at",
    "note",
]
RULE_COLUMNS = [
    "rule_id",
    "device_id",
    "contributor",
    "kind",
    "min_score",
    "status",
    "false_positives",
    "evidence",
    "effective_from",
    "expires_at",
    "proposed_at",
    "decided_by",
    "decided_at",
    "note",
]
AUDIT_TABLE = "feedback_audit"
APPEND_ONLY_MESSAGE = "feedback audit records are append-only"

metadata = sa.MetaData()
feedback_rules = sa.Table(
    "feedback_rules",
    metadata,
    sa.Column("rule_id", sa.String(40), primary_key=True),
    sa.Column("device_id", sa.String(), nullable=False),
    sa.Column("contributor", sa.String(), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("min_score", sa.Float(), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("false_positives", sa.Integer(), nullable=False),
    sa.Column("evidence", sa.Text(), nullable=False),
    sa.Column("effective_from", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("proposed_at", UTCDateTime(), nullable=False),
    sa.Column("decided_by", sa.String(), nullable=True),
    sa.Column("decided_at", UTCDateTime(), nullable=True),
    sa.Column("note", sa.Text(), nullable=False, default=""),
    sa.Index("ix_feedback_rules_device", "device_id", "contributor", "status"),
)
feedback_audit = sa.Table(
    AUDIT_TABLE,
    metadata,
    id_column(),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(), nullable=False),
    sa.Column("event", sa.String(20), nullable=False),
    sa.Column("rule_id", sa.String(40), nullable=False, index=True),
    sa.Column("device_id", sa.String(), nullable=False),
    sa.Column("contributor", sa.String(), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False),
)


class RuleNotFound(KeyError):
    """No feedback rule with this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "feedback rule not found"


class RuleDecisionError(ValueError):
    """The rule is not in a state that allows this decision."""


def top_contributor(top_contributors: pd.Series) -> pd.Series:
    """The first (most important) of each comma-separated ``top_contributors``."""
    return top_contributors.fillna("").astype(str).str.split(",").str[0].str.strip()


def _labels_query(store: AlertStore, statuses: tuple[str, ...]) -> sa.Select:
    """Labelled alerts with the transition that labelled them."""
    a, tr = store.alerts, store.transitions
    return (
        sa.select(
            a.c.alert_id,
            a.c.status,
            a.c.device_id,
            a.c.site_id,
            a.c.window_start,
            a.c.window_end,
            a.c.top_contributors,
            a.c.max_score,
            a.c.severity,
            a.c.source,
            a.c.model_versions,
            tr.c.actor.label("labelled_by"),
            tr.c.at.label("labelled_at"),
            tr.c.note,
        )
        .join(tr, sa.and_(tr.c.alert_id == a.c.alert_id, tr.c.to_status == a.c.status))
        .where(a.c.status.in_(statuses), tr.c.event == "status")
        .order_by(tr.c.at, tr.c.id)
    )


def read_labels(store: AlertStore, statuses: tuple[str, ...] = (RESOLVED, FALSE_POSITIVE)):
    """Operator labels in ``store`` as a frame with :data:`LABEL_COLUMNS` (oldest first)."""
    rows: list[dict[str, Any]] = []
    if sa.inspect(store.engine).has_table(store.alerts.name):
        with store.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(_labels_query(store, statuses)).mappings()]
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=[*LABEL_COLUMNS, "status", "top_contributors"])
    frame["label"] = frame["status"].map(
        {RESOLVED: CONFIRMED, FALSE_POSITIVE: FALSE_POSITIVE_LABEL}
    )
    frame["contributor"] = top_contributor(frame["top_contributors"])
    for column in ("window_start", "window_end", "labelled_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["max_score"] = frame["max_score"].astype("float64")
    return frame[LABEL_COLUMNS].reset_index(drop=True)


def operator_labels(alerts_db_url: str | None = None) -> pd.DataFrame:
    """Confirmed incidents (resolved alerts) and false positives from the alert database.

    One row per labelled alert: :data:`LABEL_COLUMNS`, ``label`` being ``confirmed_incident`` or
    ``false_positive``. Defaults to the configured database (``get_settings().alerts_db_url``).
    """
    from refrig_assets.core.settings import get_settings

    store = AlertStore(alerts_db_url or get_settings().alerts_db_url)
    try:
        return read_labels(store)
    finally:
        store.close()


def incident_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """Operator-confirmed incidents in the label shape ``backtest.backtest`` reads.

    ``device_id, fault_type, category, onset, end, sensor``: onset and end are the confirmed
    alert's window, ``fault_type``/``category`` are ``operator_confirmed``, ``sensor`` the top
    contributor.
    """
    confirmed = labels[labels["label"] == CONFIRMED]
    return pd.DataFrame(
        {
            "device_id": confirmed["device_id"].to_numpy(),
            "fault_type": "operator_confirmed",
            "category": "operator_confirmed",
            "onset": pd.to_datetime(confirmed["window_start"], utc=True).to_numpy(),
            "end": pd.to_datetime(confirmed["window_end"], utc=True).to_numpy(),
            "sensor": confirmed["contributor"].to_numpy(),
        }
    ).astype({"onset": "datetime64[ns, UTC]", "end": "datetime64[ns, UTC]"})


def judge_on_operator_labels(
    alerts: pd.DataFrame, labels: pd.DataFrame, grace: pd.Timedelta | None = None
) -> dict[str, float]:
    """How a candidate's alerts fare on what operators already said.

    An operator-labelled window is *hit* when one of ``alerts`` (device_id, window_start,
    window_end) of the same device overlaps it (widened by ``grace``). Returns the number of
    confirmed incidents and false positives, how many of each the candidate hits, and
    ``confirmed_recall`` and ``false_positive_repeat_rate`` (share of operator false positives
    the candidate would raise again; lower is better). Rates are NaN without labels of that kind.
    """
    grace = pd.Timedelta(0) if grace is None else grace
    out: dict[str, float] = {}
    by_device = {d: g for d, g in alerts.groupby("device_id")} if len(alerts) else {}
    for label, name in ((CONFIRMED, "confirmed"), (FALSE_POSITIVE_LABEL, "false_positives")):
        subset = labels[labels["label"] == label]
        hits = 0
        for row in subset.itertuples():
            candidate = by_device.get(row.device_id)
            if candidate is None:
                continue
            start = pd.Timestamp(row.window_start) - grace
            end = pd.Timestamp(row.window_end) + grace
            overlap = (candidate["window_start"] < end) & (candidate["window_end"] > start)
            hits += bool(overlap.any())
        out[name] = float(len(subset))
        out[f"{name}_hit"] = float(hits)
    out["confirmed_recall"] = (
        out["confirmed_hit"] / out["confirmed"] if out["confirmed"] else float("nan")
    )
    out["false_positive_repeat_rate"] = (
        out["false_positives_hit"] / out["false_positives"]
        if out["false_positives"]
        else float("nan")
    )
    return out


def rule_matches(alerts: pd.DataFrame, rules: pd.DataFrame) -> pd.Series:
    """Per alert, the id of the first active rule that suppresses it (else None). Pure.

    A rule matches an alert of its device whose top contributor is the rule's, whose window
    starts in ``[effective_from, expires_at)``, and — for ``raise_threshold`` rules — whose
    ``max_score`` does not exceed the rule's ``min_score``.
    """
    out = pd.Series([None] * len(alerts), index=alerts.index, dtype=object)
    if alerts.empty or rules.empty:
        return out
    active = rules[rules["status"] == ACTIVE]
    contributors = top_contributor(alerts["top_contributors"])
    starts = pd.to_datetime(alerts["window_start"], utc=True)
    for rule in active.sort_values("effective_from").itertuples():
        hit = (
            (alerts["device_id"] == rule.device_id)
            & (contributors == rule.contributor)
            & (starts >= pd.Timestamp(rule.effective_from))
            & (starts < pd.Timestamp(rule.expires_at))
            & out.isna()
        )
        if rule.kind == "raise_threshold" and pd.notna(rule.min_score):
            hit &= alerts["max_score"].astype(float) <= float(rule.min_score)
        out[hit] = rule.rule_id
    return out


def describe_rule(rule: dict[str, Any] | Any) -> str:
    """One line an operator can read: what the rule does and why."""
    get = rule.get if isinstance(rule, dict) else lambda k: getattr(rule, k)
    what = (
        f"suppress alerts of {get('device_id')} led by {get('contributor')} "
        f"with max score ≤ {get('min_score'):.2f}"
        if get("kind") == "raise_threshold" and get("min_score") is not None
        else f"suppress every alert of {get('device_id')} led by {get('contributor')}"
    )
    return (
        f"{what} from {pd.Timestamp(get('effective_from')):%Y-%m-%d %H:%M} until "
        f"{pd.Timestamp(get('expires_at')):%Y-%m-%d %H:%M} UTC "
        f"({get('false_positives')} false positives)"
    )


class FeedbackLoop(OperatorTables):
    """Labels → rule proposals → applied rules, with the audit trail (see the module docstring)."""

    metadata = metadata

    def __init__(self, alerts, *, clock=None, settings: OperationsSettings | None = None):
        super().__init__(alerts, clock=clock)
        self.settings = settings or load_operations_settings()

    def _ensure_tables(self) -> None:
        if self._ready:
            return
        super()._ensure_tables()
        with self._writer.begin() as conn:
            make_append_only(conn, AUDIT_TABLE, APPEND_ONLY_MESSAGE)

    # -- labels -----------------------------------------------------------------------------

    def mark_false_positive(self, alert_id: str, actor: str, note: str = "") -> dict[str, Any]:
        """Mark an alert FALSE_POSITIVE and see whether its device now earns a rule.

        Returns ``{"alert": ..., "false_positives": n, "rules": [new rules]}`` where ``n`` counts
        the unruled false positives of the same device and top contributor. Raises the store's
        ``AlertNotFound``/``InvalidTransition`` unchanged.
        """
        alert = self.alerts.mark_false_positive(alert_id, actor, note)
        contributor = top_contributor(pd.Series([alert["top_contributors"]])).iat[0]
        rules = self.evaluate(device_id=alert["device_id"], contributor=contributor)
        pending = self._pending_false_positives(alert["device_id"], contributor)
        return {"alert": alert, "false_positives": len(pending), "rules": rules}

    def labels(self) -> pd.DataFrame:
        """Operator labels in this database (see :func:`operator_labels`)."""
        return read_labels(self.alerts)

    # -- rules ------------------------------------------------------------------------------

    def _false_positives(self) -> pd.DataFrame:
        return read_labels(self.alerts, (FALSE_POSITIVE,))

    def _used_evidence(self, conn: sa.Connection) -> set[str]:
        used: set[str] = set()
        for (evidence,) in conn.execute(sa.select(feedback_rules.c.evidence)):
            used.update(e for e in evidence.split(",") if e)
        return used

    def _pending_false_positives(self, device_id: str, contributor: str) -> pd.DataFrame:
        fps = self._false_positives()
        with self.begin(write=False) as conn:
            used = self._used_evidence(conn)
        keep = (
            (fps["device_id"] == device_id)
            & (fps["contributor"] == contributor)
            & ~fps["alert_id"].isin(used)
        )
        return fps[keep]

    def evaluate(
        self, device_id: str | None = None, contributor: str | None = None
    ) -> list[dict[str, Any]]:
        """Propose (or, with ``auto_apply``, apply) rules for repeated false positives.

        Counts, per device and top contributor, the false positives not yet used as evidence by
        an earlier rule, within ``lookback_days`` of the newest one. Reaching
        ``false_positive_threshold`` proposes a rule, unless one for the same device and
        contributor is already waiting for a decision. Returns the rules created (idempotent: a
        second call with no new false positives creates none).
        """
        fb = self.settings.feedback
        fps = self._false_positives()
        if device_id is not None:
            fps = fps[fps["device_id"] == device_id]
        if contributor is not None:
            fps = fps[fps["contributor"] == contributor]
        if fps.empty:
            return []
        created = []
        with self.begin() as conn:
            used = self._used_evidence(conn)
            fps = fps[~fps["alert_id"].isin(used)]
            waiting = {
                (r.device_id, r.contributor)
                for r in conn.execute(
                    sa.select(feedback_rules.c.device_id, feedback_rules.c.contributor).where(
                        feedback_rules.c.status == PROPOSED
                    )
                )
            }
            for (device, contrib), group in fps.groupby(["device_id", "contributor"]):
                if (device, contrib) in waiting:
                    continue
                newest = group["window_end"].max()
                recent = group[group["window_end"] >= newest - timedelta(days=fb.lookback_days)]
                if len(recent) < fb.false_positive_threshold:
                    continue
                rule = self._propose(conn, device, contrib, recent)
                if fb.auto_apply:
                    rule = self._decide(conn, rule["rule_id"], ACTIVE, FEEDBACK_ACTOR, "auto_apply")
                created.append(rule)
        return created

    def _propose(
        self, conn: sa.Connection, device: str, contributor: str, evidence: pd.DataFrame
    ) -> dict[str, Any]:
        fb = self.settings.feedback
        ids = sorted(evidence["alert_id"])
        rule_id = (
            "fr-"
            + hashlib.sha1(f"{device}|{contributor}|{','.join(ids)}".encode()).hexdigest()[:12]
        )
        effective_from = as_utc(evidence["window_end"].max())
        min_score = None
        if fb.action == "raise_threshold":
            min_score = min(1.0, float(evidence["max_score"].max()) + fb.threshold_margin)
        row = {
            "rule_id": rule_id,
            "device_id": device,
            "contributor": contributor,
            "kind": fb.action,
            "min_score": min_score,
            "status": PROPOSED,
            "false_positives": len(ids),
            "evidence": ",".join(ids),
            "effective_from": effective_from,
            "expires_at": effective_from + timedelta(days=fb.rule_days),
            "proposed_at": self.now(),
            "note": "",
        }
        conn.execute(feedback_rules.insert().values(row))
        self._audit(
            conn, FEEDBACK_ACTOR, "proposed", row, {"evidence": ids, "rule": describe_rule(row)}
        )
        return self._rule(conn, rule_id)

    def _audit(
        self, conn: sa.Connection, actor: str, event: str, rule: dict[str, Any], detail: dict
    ) -> None:
        conn.execute(
            feedback_audit.insert().values(
                at=self.now(),
                actor=actor,
                event=event,
                rule_id=rule["rule_id"],
                device_id=rule["device_id"],
                contributor=rule["contributor"],
                detail=json.dumps(detail, default=str),
            )
        )

    def _rule(self, conn: sa.Connection, rule_id: str) -> dict[str, Any]:
        row = (
            conn.execute(sa.select(feedback_rules).where(feedback_rules.c.rule_id == rule_id))
            .mappings()
            .first()
        )
        if row is None:
            raise RuleNotFound(f"no feedback rule with id {rule_id!r}")
        return dict(row)

    def _decide(
        self, conn: sa.Connection, rule_id: str, to_status: str, actor: str, note: str
    ) -> dict[str, Any]:
        allowed = {ACTIVE: (PROPOSED,), REJECTED: (PROPOSED,), REVOKED: (ACTIVE,)}[to_status]
        rule = self._rule(conn, rule_id)
        if rule["status"] not in allowed:
            raise RuleDecisionError(
                f"rule {rule_id} is {rule['status']}; only a {' or '.join(allowed)} rule can "
                f"become {to_status}"
            )
        now = self.now()
        t = feedback_rules
        if to_status == ACTIVE:
            replaced = conn.execute(
                sa.select(t.c.rule_id).where(
                    t.c.device_id == rule["device_id"],
                    t.c.contributor == rule["contributor"],
                    t.c.status == ACTIVE,
                )
            ).scalars()
            for old_id in list(replaced):
                conn.execute(
                    t.update()
                    .where(t.c.rule_id == old_id)
                    .values(status=SUPERSEDED, decided_by=actor, decided_at=now)
                )
                old = self._rule(conn, old_id)
                self._audit(conn, actor, "superseded", old, {"by": rule_id})
        conn.execute(
            t.update()
            .where(t.c.rule_id == rule_id, t.c.status == rule["status"])
            .values(status=to_status, decided_by=actor, decided_at=now, note=note or "")
        )
        event = {ACTIVE: "applied", REJECTED: "rejected", REVOKED: "revoked"}[to_status]
        self._audit(conn, actor, event, rule, {"note": note or "", "rule": describe_rule(rule)})
        return self._rule(conn, rule_id)

    def decide(self, rule_id: str, to_status: str, actor: str, note: str = "") -> dict[str, Any]:
        """Apply (``ACTIVE``) or reject a proposed rule, or revoke an active one."""
        if to_status not in (ACTIVE, REJECTED, REVOKED):
            raise RuleDecisionError(
                f"a rule can be made ACTIVE, REJECTED or REVOKED, not {to_status!r}"
            )
        if not isinstance(actor, str) or not actor.strip():
            raise RuleDecisionError("the operator deciding on a rule must be named")
        with self.begin() as conn:
            return self._decide(conn, rule_id, to_status, actor.strip(), note)

    def get(self, rule_id: str) -> dict[str, Any]:
        """One rule; raises :class:`RuleNotFound`."""
        with self.begin(write=False) as conn:
            return self._rule(conn, rule_id)

    def rules(self, status: str | None = None, device_id: str | None = None) -> pd.DataFrame:
        """Rules (newest proposal first) as a frame with :data:`RULE_COLUMNS`."""
        t = feedback_rules
        query = sa.select(t).order_by(t.c.proposed_at.desc(), t.c.rule_id)
        if status is not None:
            query = query.where(t.c.status == status)
        if device_id is not None:
            query = query.where(t.c.device_id == device_id)
        with self.begin(write=False) as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        frame = pd.DataFrame(rows, columns=RULE_COLUMNS)
        for column in ("effective_from", "expires_at", "proposed_at", "decided_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def active_rules(self, device_ids: Any = None) -> pd.DataFrame:
        """Applied rules (optionally for some devices), for suppression."""
        rules = self.rules(status=ACTIVE)
        if device_ids is not None:
            rules = rules[rules["device_id"].isin(set(device_ids))]
        return rules.reset_index(drop=True)

    def audit_log(self, rule_id: str | None = None) -> pd.DataFrame:
        """The feedback audit trail, oldest first."""
        t = feedback_audit
        query = sa.select(t).order_by(t.c.id)
        if rule_id is not None:
            query = query.where(t.c.rule_id == rule_id)
        with self.begin(write=False) as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        columns = ["id", "at", "actor", "event", "rule_id", "device_id", "contributor", "detail"]
        frame = pd.DataFrame(rows, columns=columns)
        frame["at"] = pd.to_datetime(frame["at"], utc=True)
        return frame
