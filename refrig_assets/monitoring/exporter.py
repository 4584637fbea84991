"""Prometheus exporter of the batch path and the alert pipeline, read where the facts live.

Nothing is counted twice: every scrape reads the alert database (alerts, incidents, the
notification outbox) and the batch runs' own records, so the figures are the ones the console
and the Dagster UI show.

* Alert pipeline: ``refrig_alerts_opened_total{severity}`` (alerts ever opened),
  ``refrig_alerts{severity,status}``, ``refrig_incidents_opened_total{severity}`` and
  ``refrig_incidents{severity,status}`` when the incidents table exists,
  ``refrig_notifications_total{status}`` (delivered, dead: dead-lettered, pending),
  ``refrig_notifications_failing`` (pending after a failed attempt), ``refrig_outbox_depth`` and
  ``refrig_outbox_oldest_pending_seconds``.
* Batch path (over the most recent runs a :data:`StepSource` returns):
  ``refrig_batch_steps{step,status}``, ``refrig_batch_step_failures{step}``,
  ``refrig_batch_last_duration_seconds{step}``, ``refrig_batch_last_rows{step}`` (rows or
  windows the last successful materialization reported) and
  ``refrig_batch_last_success_timestamp_seconds{step}``.

The Dagster reader lives with the command that serves this (``refrig metrics serve``): this
module imports no Dagster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from refrig_assets.alerts.store.engine import make_engine

# Metadata keys a step's materialization reports its size under, in order of preference.
ROW_KEYS = ("windows_scored", "rows_clean", "rows", "windows", "rows_read")


@dataclass(frozen=True)
class BatchStep:
    """One execution of one step of a batch run."""

    step: str
    status: str  # SUCCESS, FAILURE, SKIPPED, ...
    started_at: float | None  # epoch seconds
    duration_s: float | None
    rows: float | None = None  # what its materialization reported (ROW_KEYS)


StepSource = Callable[[], list[BatchStep]]


def _utc_seconds(value) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class PipelineCollector:
    """Collects the alert-pipeline and batch figures at scrape time."""

    def __init__(
        self,
        alerts_db_url: str,
        steps: StepSource | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.engine = make_engine(alerts_db_url)
        self.steps = steps
        self.clock = clock or (lambda: datetime.now(UTC))

    def close(self) -> None:
        self.engine.dispose()

    # -- alert pipeline -----------------------------------------------------------------------
    def _grouped(self, conn: sa.Connection, table: str, columns: list[str]) -> list[tuple]:
        t = sa.Table(table, sa.MetaData(), autoload_with=conn)
        cols = [t.c[c] for c in columns]
        return list(conn.execute(sa.select(*cols, sa.func.count()).group_by(*cols)).all())

    def alert_metrics(self) -> Iterator[Metric]:
        with self.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            for name, noun in (("alerts", "alerts"), ("incidents", "incidents")):
                if name not in tables:
                    continue
                rows = self._grouped(conn, name, ["severity", "status"])
                opened = CounterMetricFamily(
                    f"refrig_{noun}_opened",
                    f"{noun.capitalize()} ever opened, by severity (rows of the {name} table)",
                    labels=["severity"],
                )
                current = GaugeMetricFamily(
                    f"refrig_{noun}",
                    f"{noun.capitalize()} by severity and status",
                    labels=["severity", "status"],
                )
                by_severity: dict[str, int] = {}
                for severity, status, count in rows:
                    current.add_metric([str(severity), str(status)], count)
                    by_severity[str(severity)] = by_severity.get(str(severity), 0) + count
                for severity, count in sorted(by_severity.items()):
                    opened.add_metric([severity], count)
                yield opened
                yield current
            if "notification_outbox" in tables:
                yield from self._outbox(conn)

    def _outbox(self, conn: sa.Connection) -> Iterator[Metric]:
        t = sa.Table("notification_outbox", sa.MetaData(), autoload_with=conn)
        by_status: dict[str, int] = dict(
            conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status)).all()
        )
        total = CounterMetricFamily(
            "refrig_notifications",
            "Notifications by outcome: delivered, dead (dead-lettered after its last attempt), "
            "pending",
            labels=["status"],
        )
        for status in sorted(set(by_status) | {"delivered", "dead", "pending"}):
            total.add_metric([status], by_status.get(status, 0))
        yield total
        failing, oldest = conn.execute(
            sa.select(
                sa.func.count().filter(t.c.last_error.is_not(None)),
                sa.func.min(t.c.created_at),
            ).where(t.c.status == "pending")
        ).one()
        yield GaugeMetricFamily(
            "refrig_notifications_failing",
            "Pending notifications whose last delivery attempt failed (retrying)",
            value=failing or 0,
        )
        yield GaugeMetricFamily(
            "refrig_outbox_depth",
            "Notifications waiting in the outbox",
            value=by_status.get("pending", 0),
        )
        oldest_s = _utc_seconds(oldest)
        yield GaugeMetricFamily(
            "refrig_outbox_oldest_pending_seconds",
            "Age of the oldest pending notification (0 when none)",
            value=max(0.0, self.clock().timestamp() - oldest_s) if oldest_s else 0.0,
        )

    # -- batch path ---------------------------------------------------------------------------
    def batch_metrics(self, steps: list[BatchStep]) -> Iterator[Metric]:
        counts = GaugeMetricFamily(
            "refrig_batch_steps",
            "Step executions in the most recent batch runs, by outcome",
            labels=["step", "status"],
        )
        failures = GaugeMetricFamily(
            "refrig_batch_step_failures",
            "Failed executions of a step in the most recent batch runs",
            labels=["step"],
        )
        duration = GaugeMetricFamily(
            "refrig_batch_last_duration_seconds",
            "Duration of the newest successful execution of a step",
            labels=["step"],
        )
        rows = GaugeMetricFamily(
            "refrig_batch_last_rows",
            "Rows (or windows) the newest successful execution of a step reported",
            labels=["step"],
        )
        last_ok = GaugeMetricFamily(
            "refrig_batch_last_success_timestamp_seconds",
            "When the newest successful execution of a step started (epoch seconds)",
            labels=["step"],
        )
        tally: dict[tuple[str, str], int] = {}
        newest: dict[str, BatchStep] = {}
        for s in steps:
            tally[(s.step, s.status)] = tally.get((s.step, s.status), 0) + 1
            if s.status == "SUCCESS" and (
                s.step not in newest or (s.started_at or 0) > (newest[s.step].started_at or 0)
            ):
                newest[s.step] = s
        for (step, status), n in sorted(tally.items()):
            counts.add_metric([step, status], n)
        for step in sorted({s.step for s in steps}):
            failures.add_metric([step], tally.get((step, "FAILURE"), 0))
        for step, s in sorted(newest.items()):
            if s.duration_s is not None:
                duration.add_metric([step], s.duration_s)
            if s.rows is not None:
                rows.add_metric([step], s.rows)
            if s.started_at is not None:
                last_ok.add_metric([step], s.started_at)
        yield from (counts, failures, duration, rows, last_ok)

    def collect(self) -> Iterator[Metric]:
        yield from self.alert_metrics()
        if self.steps is not None:
            yield from self.batch_metrics(self.steps())


def pipeline_registry(alerts_db_url: str, steps: StepSource | None = None) -> CollectorRegistry:
    """A registry holding only the pipeline collector (what ``/metrics`` of the exporter serves)."""
    registry = CollectorRegistry()
    registry.register(PipelineCollector(alerts_db_url, steps))  # type: ignore[arg-type]
    return registry
