"""The pipeline exporter reads its figures where they live: alerts, incidents and the outbox from
the alert database, step outcomes, durations and rows from the Dagster instance's run records."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.operator_world import T0, Clock, seed_store, standard_alerts

from refrig_assets.alerts.store import AlertStore
from refrig_assets.alerts.store.outbox import enqueue, notification
from refrig_assets.cli.metrics import dagster_steps
from refrig_assets.monitoring.exporter import pipeline_registry


def scrape(registry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_alert_pipeline_figures_come_from_the_alert_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    seed_store(url)
    store = AlertStore(url, clock=Clock())
    rows = store.outbox.list()
    store.close()

    found = scrape(pipeline_registry(url))

    opened = {
        dict(labels)["severity"]: v
        for (name, labels), v in found.items()
        if name == "refrig_alerts_opened_total"
    }
    assert opened == {"CRITICAL": 2, "HIGH": 1, "LOW": 1, "MEDIUM": 2}
    assert found[("refrig_outbox_depth", ())] == sum(r["status"] == "pending" for r in rows)
    assert found[("refrig_notifications_total", (("status", "dead"),))] == 0


def test_delivered_failing_and_dead_notifications_are_told_apart(tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    store = AlertStore(url, clock=Clock())
    store.upsert(standard_alerts())
    items = [notification("alert.created", f"key-{i}", {"n": i}, None) for i in range(4)]
    with store._begin() as conn:
        enqueue(conn, store.outbox_table, items, T0)
    pending = store.outbox.list(status="pending")
    assert len(pending) == 4
    now = T0 + timedelta(minutes=1)
    store.outbox.delivered(pending[0]["id"], now)
    store.outbox.failed(pending[1]["id"], now, "HTTP 503", retry_at=now + timedelta(minutes=5))
    store.outbox.failed(pending[2]["id"], now, "HTTP 410", retry_at=None)
    store.close()

    found = scrape(pipeline_registry(url))

    assert found[("refrig_notifications_total", (("status", "delivered"),))] == 1
    assert found[("refrig_notifications_total", (("status", "dead"),))] == 1
    assert found[("refrig_notifications_failing", ())] == 1
    assert found[("refrig_outbox_depth", ())] == len(pending) - 2


def test_batch_steps_report_outcomes_durations_and_rows_per_step(tmp_path):
    @dg.asset
    def windows_asset() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"windows_scored": 42})

    @dg.asset
    def broken_asset() -> None:
        raise RuntimeError("bad input")

    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([windows_asset], instance=instance).success
    assert not dg.materialize([broken_asset], instance=instance, raise_on_error=False).success

    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    AlertStore(url).close()
    found = scrape(pipeline_registry(url, lambda: dagster_steps(instance, 10)))

    assert found[("refrig_batch_last_rows", (("step", "windows_asset"),))] == 42
    assert found[("refrig_batch_step_failures", (("step", "broken_asset"),))] == 1
    assert found[("refrig_batch_step_failures", (("step", "windows_asset"),))] == 0
    assert found[("refrig_batch_steps", (("status", "SUCCESS"), ("step", "windows_asset")))] == 1
    assert found[("refrig_batch_last_duration_seconds", (("step", "windows_asset"),))] >= 0
