"""The fault cases: each breaks one thing in a fresh home and judges what ``refrig`` did."""

from __future__ import annotations

import gzip
import os
import signal
import time
from collections.abc import Callable

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
    return Outcome("", ok, 0, f"exit {done.returncode}; {_tail(done)}")


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
def device_sending_fahrenheit(home: Home) -> Outcome:
    """One device reports °F in hour 01: a data-quality finding, never a fault alert."""
    home.simulate()
    path = home.hour_file(1)
    frame = pd.read_csv(path)
    device = sorted(frame["device_id"].unique())[0]
    mine = frame["device_id"] == device
    for column in ("temperature_evaporator", "temperature_condenser"):
        frame.loc[mine, column] = frame.loc[mine, column] * 1.8 + 32
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


__all__ = ["CASES", "HOURS"]
