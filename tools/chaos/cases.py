"""The fault cases: each breaks one thing in a fresh home and judges what ``refrig`` did."""

from __future__ import annotations

import gzip
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from tools.chaos.harness import HOURS, Home, Outcome

Case = Callable[[Home], Outcome]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


def _tail(done) -> str:
    text = (done.stderr or "") + (done.stdout or "")
    return " ".join(text.strip().splitlines()[-1:])[:160]


@case
def hour_whose_only_file_is_rejected(home: Home) -> Outcome:
    """Hour 01's file arrives `;`-delimited: the hour is empty, the file is quarantined."""
    home.simulate()
    path = home.hour_file(1)
    path.write_text(path.read_text().replace(",", ";"))
    landing = home.count_landing_rows()
    done = home.pipeline()
    rows = home.partition_rows("sensor_readings")
    ok = done.returncode == 0 and len(rows) == 2
    return Outcome(
        "", ok, home.rows_lost(landing), f"exit {done.returncode}; hours ingested {len(rows)}/2"
    )


@case
def gateway_outage_no_file_for_an_hour(home: Home) -> Outcome:
    """No file at all for hour 01: an empty hour, not a crash."""
    home.simulate()
    home.hour_file(1).unlink()
    landing = home.count_landing_rows()
    done = home.pipeline()
    rows = home.partition_rows("clean_readings")
    ok = done.returncode == 0 and rows.get("2026-01-01T01") == 0
    return Outcome("", ok, home.rows_lost(landing), f"exit {done.returncode}; clean rows {rows}")


@case
def landing_files_archived_after_ingest(home: Home) -> Outcome:
    """Retention moves the landing files away; a re-run must not empty the history."""
    home.simulate()
    landing = home.count_landing_rows()
    first = home.pipeline()
    before = home.partition_rows("clean_readings")
    archive = home.root / "archive"
    home.landing.rename(archive)
    home.landing.mkdir()
    second = home.pipeline()
    after = home.partition_rows("clean_readings")
    shrunk = {k: (before[k], after.get(k, 0)) for k in before if after.get(k, 0) < before[k]}
    ok = first.returncode == 0 and not shrunk
    lost = sum(b - a for b, a in shrunk.values())
    home.landing.rmdir()
    archive.rename(home.landing)
    lost = max(lost, home.rows_lost(landing))
    return Outcome("", ok, lost, f"exits {first.returncode}/{second.returncode}; shrunk {shrunk}")


@case
def compressed_csv_file(home: Home) -> Outcome:
    """Hour 01 lands gzip-compressed (.csv.gz): read like any CSV."""
    home.simulate()
    path = home.hour_file(1)
    with gzip.open(path.with_suffix(".csv.gz"), "wt") as fh:
        fh.write(path.read_text())
    path.unlink()
    landing = home.count_landing_rows()
    done = home.pipeline()
    clean = home.partition_rows("clean_readings").get("2026-01-01T01", 0)
    ok = done.returncode == 0 and clean > 0
    return Outcome("", ok, home.rows_lost(landing), f"exit {done.returncode}; clean rows {clean}")


@case
def timestamps_from_a_clock_reset(home: Home) -> Outcome:
    """Two rows dated 1970 and 2099 in hour 00's file: quarantined as implausible."""
    home.simulate()
    path = home.hour_file(0)
    frame = pd.read_csv(path)
    odd = frame.head(2).copy()
    odd["ts"] = ["1970-01-01T00:00:07Z", "2099-06-01T00:00:00Z"]
    pd.concat([frame, odd]).to_csv(path, index=False)
    landing = home.count_landing_rows()
    done = home.pipeline()
    quarantine = pd.concat(
        [pd.read_parquet(p) for p in (home.data / "quarantined_readings").glob("*.parquet")]
    )
    rules = sorted(set(quarantine["rule"])) if len(quarantine) else []
    ok = done.returncode == 0 and "implausible_timestamp" in rules
    return Outcome("", ok, home.rows_lost(landing), f"exit {done.returncode}; rules {rules}")


@case
def device_listed_twice_in_the_registry(home: Home) -> Outcome:
    """The registry names a device twice: refused with the rows named, nothing scored on it."""
    home.simulate()
    registry = home.root / "reference" / "device_registry.csv"
    frame = pd.read_csv(registry)
    pd.concat([frame, frame.head(1)]).to_csv(registry, index=False)
    done = home.pipeline()
    said = (done.stderr or "") + (done.stdout or "")
    device = frame["device_id"].iloc[0]
    ok = done.returncode != 0 and f"device_id '{device}' is on rows" in said
    named = next((line for line in said.splitlines() if "is on rows" in line), _tail(done))
    return Outcome("", ok, 0, f"exit {done.returncode}; {named.split(': ', 1)[-1][:120]}")


@case
def two_pipeline_runs_at_once(home: Home) -> Outcome:
    """A second `refrig pipeline run` on the same home while the first runs: refused."""
    home.simulate()
    landing = home.count_landing_rows()
    first = home.start("pipeline", "run", "--hours", "2", "--train-hours", "1")
    lock = home.root / ".pipeline.lock"
    for _ in range(200):
        if lock.exists() and lock.read_text():
            break
        time.sleep(0.1)
    second = home.pipeline()
    first.wait(timeout=600)
    ok = first.returncode == 0 and second.returncode == 75 and "in use by pid" in second.stderr
    return Outcome(
        "",
        ok,
        home.rows_lost(landing),
        f"exits {first.returncode}/{second.returncode}; {_tail(second)}",
    )


@case
def pipeline_run_killed_midway(home: Home) -> Outcome:
    """`kill -9` during a run: the next run marks the orphaned Dagster run failed, completes."""
    home.simulate()
    landing = home.count_landing_rows()
    victim = home.start("pipeline", "run", "--hours", "2", "--train-hours", "1")
    runs = home.root / "dagster" / "history" / "runs.db"
    for _ in range(600):
        if home.partition_rows("clean_readings"):
            break
        time.sleep(0.1)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    done = home.pipeline()
    said = done.stdout + done.stderr
    ok = done.returncode == 0 and "marked failed" in said and runs.exists()
    return Outcome(
        "", ok, home.rows_lost(landing), f"exit {done.returncode}; orphan reported: {ok}"
    )


@case
def device_sending_psi(home: Home) -> Outcome:
    """One device reports its pressures in psi in hour 01: a data-quality finding (UNIT_SUSPECT),
    never a refrigeration fault alert."""
    home.simulate()
    path = home.hour_file(1)
    frame = pd.read_csv(path)
    device = sorted(frame["device_id"].unique())[0]
    mine = frame["device_id"] == device
    for column in ("pressure_low_side", "pressure_high_side"):
        frame.loc[mine, column] = frame.loc[mine, column] * 0.1450377
    frame.to_csv(path, index=False)
    landing = home.count_landing_rows()
    done = home.pipeline()
    alerts_file = home.data / "device_alerts" / "2026-01-01T01.parquet"
    alerts = pd.read_parquet(alerts_file) if alerts_file.exists() else pd.DataFrame()
    paged = len(alerts) and bool((alerts["device_id"] == device).any())
    flagged = pd.read_parquet(home.data / "clean_readings" / "2026-01-01T01.parquet")
    unit = flagged.loc[flagged["device_id"] == device, "quality_flags"].str.contains(
        "UNIT_SUSPECT", na=False
    )
    ok = done.returncode == 0 and not paged and bool(unit.any())
    return Outcome(
        "",
        ok,
        home.rows_lost(landing),
        f"exit {done.returncode}; UNIT_SUSPECT {bool(unit.any())}; alerted {bool(paged)}",
    )


def _versions(home: Home) -> dict[str, list[str]]:
    """Registered versions per detector, from the home's MLflow store."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home.root / 'mlflow' / 'mlflow.db'}")
    out: dict[str, list[str]] = {}
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name='{model.name}'")
        out[model.name] = sorted(str(v.version) for v in versions)
    return out


def _production_artifact(home: Home, model_id: str):
    """The production version of ``model_id`` and its detector artifact file."""
    from refrig_assets.training.registry import ModelRegistry

    mlflow_dir = home.root / "mlflow"
    registry = ModelRegistry(f"sqlite:///{mlflow_dir / 'mlflow.db'}", mlflow_dir / "artifacts")
    version = registry.production_version(model_id)
    location = registry.artifact_location(model_id, version).removeprefix("file://")
    return version, next(p for p in Path(location).rglob("*") if p.is_file())


@case
def rerun_on_the_same_data(home: Home) -> Outcome:
    """The same `refrig pipeline run` twice: the second registers no new model version."""
    home.simulate()
    landing = home.count_landing_rows()
    first = home.pipeline()
    before = _versions(home)
    second = home.pipeline()
    after = _versions(home)
    ok = first.returncode == 0 and second.returncode == 0 and before == after
    return Outcome(
        "",
        ok,
        home.rows_lost(landing),
        f"exits {first.returncode}/{second.returncode}; versions before {before}, after {after}",
    )


@case
def corrupt_production_model(home: Home) -> Outcome:
    """The production isolation_forest artifact is truncated: scoring names model@version, the
    hour's alerts are still built."""
    home.simulate()
    landing = home.count_landing_rows()
    home.pipeline()
    version, artifact = _production_artifact(home, "isolation_forest")
    artifact.write_bytes(artifact.read_bytes()[:64])
    for alerts in (home.data / "device_alerts").glob("*.parquet"):
        alerts.unlink()
    done = home.pipeline()
    listing = home.refrig("models", "list")
    alerts = home.partition_rows("device_alerts")
    named = f"isolation_forest@{version}" in (listing.stdout + done.stdout + done.stderr)
    ok = len(alerts) == 2 and "CORRUPT" in listing.stdout and named
    return Outcome(
        "",
        ok,
        home.rows_lost(landing),
        f"exit {done.returncode}; alert hours {len(alerts)}/2; models list flags it: "
        f"{'CORRUPT' in listing.stdout}",
    )


@case
def webhook_failing_then_recovering(home: Home) -> Outcome:
    """The webhook answers 500, then garbage, then recovers: every queued notification is
    delivered once (dedup key), none lost, none twice."""
    import shutil

    import yaml

    from refrig_assets.core.config import CONFIG_DIR
    from tools.chaos.webhook import start_webhook, stop_webhook

    config = home.root / "config"
    shutil.copytree(CONFIG_DIR, config)
    policy = yaml.safe_load((config / "alerts.yaml").read_text())
    # The simulated fleet lives in January 2026: page about it as if it were live data.
    policy["notifications"].update(
        base_delay_seconds=0, max_delay_seconds=0, historic_cutoff_hours=10**6
    )
    (config / "alerts.yaml").write_text(yaml.safe_dump(policy))
    hook = start_webhook(hang_seconds=0.5)
    env = {**home.env, "REFRIG_CONFIG_DIR": str(config), "REFRIG_WEBHOOK_URL": hook.url}
    try:
        home.simulate()
        hook.mode = "fail"
        done = home.refrig("pipeline", "run", "--hours", "2", "--train-hours", "1", env=env)
        hook.mode = "garbage"
        home.refrig("alerts", "deliver", env=env)
        hook.mode = "ok"
        counts = {}
        for _ in range(20):
            home.refrig("alerts", "deliver", env=env)
            summary = home.refrig("alerts", "outbox", env=env).stdout
            counts = {k: int(n) for n, k in re.findall(r"(\d+) (pending|delivered|dead)", summary)}
            if not counts.get("pending"):
                break
        keys = hook.keys()
    finally:
        stop_webhook(hook)
    twice = len(keys) - len(set(keys))
    delivered = counts.get("delivered", 0)
    ok = (
        done.returncode == 0
        and len(keys) > 0
        and twice == 0
        and len(set(keys)) == delivered
        and not counts.get("pending")
        and not counts.get("dead")
        and hook.requests > len(keys)
    )
    return Outcome(
        "",
        ok,
        0,
        f"exit {done.returncode}; {hook.requests} POSTs, {len(set(keys))} notifications "
        f"delivered, {twice} twice; outbox {counts}",
    )


__all__ = ["CASES", "HOURS"]
