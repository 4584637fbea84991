"""A replay (``refrig pipeline run``) stores the streaming rules' alerts in time order with the
hourly steps, as they arrive in live operation: a fault that a streaming rule and the batch
detectors both see is one incident, paged once, not a batch incident beside a streaming one
that every earlier hour's incident step already found."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from support.pipeline_world import train

from refrig_assets.alerts.store import AlertStore
from refrig_assets.cli.runner import StreamingReplay, prepare_hours, score_hours
from refrig_assets.core.partition_range import hour_keys
from refrig_assets.core.settings import get_settings
from refrig_assets.incidents.repository import IncidentStore

START = datetime(2026, 1, 1, tzinfo=UTC)
HOURS, TRAIN_HOURS = 6, 3
MODELS = ["isolation_forest", "statistical_baseline"]
SCORES = [f"{m}_scores" for m in MODELS]


def simulate(home, monkeypatch, devices: int, seed: int = 11):
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    monkeypatch.setenv("REFRIG_HOME", str(home))
    s = get_settings()
    config = SimulationConfig(
        devices=devices, hours=HOURS, start=START, seed=seed, fault_fraction=0.5
    )
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    return s


def replay(home, monkeypatch, seed: int, devices: int, per_run: int) -> dict:
    """Simulate a fleet with faults into ``home`` and run it as ``refrig pipeline run`` does:
    readings, streaming rules, training, then scores and alerts → incidents in runs of hours."""
    from refrig_assets.definitions import defs

    s = simulate(home, monkeypatch, devices, seed)
    keys = hour_keys(START, HOURS)
    with dg.instance_for_test() as instance:
        defs.resolve_job_def("refresh_device_registry").execute_in_process(instance=instance)
        failures = prepare_hours(defs, instance, keys, per_run, print)
        stream = StreamingReplay(s)
        train(defs, instance, MODELS, keys[:TRAIN_HOURS])
        failures += score_hours(defs, instance, keys, per_run, SCORES, print, stream)
        report = stream.finish()
    assert failures == []
    store = AlertStore(get_settings().alerts_db_url)
    try:
        incidents, _ = IncidentStore(store).list()
        alerts = store.overlapping(START, START + pd.Timedelta(hours=HOURS + 1))
    finally:
        store.close()
    labels = pd.read_parquet(s.labels_path)
    return {"incidents": incidents, "alerts": alerts, "labels": labels, "stream": report}


def incidents_of_machine_faults_both_paths_saw(outcome: dict) -> pd.DataFrame:
    """The incidents (sensor tickets aside) of every device whose labelled machine fault raised
    both streaming and batch alerts."""
    alerts, incidents, labels = outcome["alerts"], outcome["incidents"], outcome["labels"]
    by_source = alerts.groupby("device_id")["source"].agg(set)
    both = {d for d, sources in by_source.items() if {"streaming", "batch"} <= sources}
    machine = set(labels.loc[labels["category"].isin(["gradual", "acute"]), "device_id"])
    return incidents[incidents["device_id"].isin(machine & both) & incidents["kind"].ne("sensor")]


def test_a_fault_seen_by_a_streaming_rule_and_the_batch_detectors_is_one_incident_paged_once(
    tmp_path, monkeypatch
):
    # Storing every streaming alert before the hourly steps gave 11 of these devices a second
    # incident (e.g. a refrigerant leak: batch incident from 03:45, streaming one from 05:07).
    outcome = replay(tmp_path / "home", monkeypatch, seed=7, devices=40, per_run=4)
    found = incidents_of_machine_faults_both_paths_saw(outcome)

    assert found["device_id"].nunique() >= 5  # the fleet has such faults
    per_device = found.groupby("device_id")
    shown = ["device_id", "kind", "cause", "first_window_start", "severity", "status"]
    assert per_device.size().max() == 1, found[shown]
    assert per_device["paged_severity"].count().max() <= 1
    # every streaming alert was stored, and the rules' state saved after them
    assert outcome["stream"].inserted == outcome["alerts"]["source"].eq("streaming").sum()
    assert (get_settings().home / "state" / "streaming_rules.state").exists()
