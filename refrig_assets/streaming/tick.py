"""One pass of the streaming path: new landing files → rule firings → alerts in the store.

Order matters for crash safety: alerts are upserted (deterministic ids) before the state is
saved, and the state before the caller stores the cursor. Whatever step a crash interrupts,
the next pass either re-creates the same alert ids (no duplicate) or finds the readings
already behind the device's watermark (no firing).

A pass never talks to a notification endpoint: new alerts' notifications are queued in the
alert database's outbox in the same transaction as the alerts, and delivered by the
``alert_notification_delivery`` sensor (or ``refrig alerts deliver``). A broken or slow
endpoint can therefore neither fail a pass before it saves its state nor stall it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from refrig_assets.alerts.severity import alert_policy
from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.contracts import Contract, load_contract
from refrig_assets.core.settings import Settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.ingestion import landing as landing_zone
from refrig_assets.ingestion.device_registry import load_device_registry
from refrig_assets.streaming.alerts import firings_to_alerts
from refrig_assets.streaming.config import StreamingSettings, load_streaming_settings
from refrig_assets.streaming.cursor import LandingCursor
from refrig_assets.streaming.engine import DeviceThresholds, StreamingEngine
from refrig_assets.streaming.state import NO_TIME, StreamState

log = logging.getLogger(__name__)


def state_path(settings: Settings) -> Path:
    """Where the streaming rules keep their per-device state."""
    return settings.home / "state" / "streaming_rules.state"


@dataclass
class TickReport:
    """What one pass read and raised; ``cursor`` is the cursor to store for the next pass."""

    cursor: str
    files: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    readings: int = 0
    late_readings: int = 0
    firing_readings: dict[str, int] = field(default_factory=dict)
    alerts: int = 0
    inserted: int = 0
    suppressed: int = 0
    notifications_queued: int = 0
    pending_files: int = 0
    seconds: float = 0.0
    alert_ids: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def _add(self, stage: str, since: float) -> float:
        now = time.monotonic()
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + now - since
        return now

    def metadata(self) -> dict:
        """JSON-friendly summary for logs and Dagster metadata."""
        return {
            "files": self.files,
            "rejected_files": self.rejected,
            "readings": self.readings,
            "late_readings": self.late_readings,
            "firing_readings": self.firing_readings,
            "alerts": self.alerts,
            "inserted": self.inserted,
            "suppressed": self.suppressed,
            "notifications_queued": self.notifications_queued,
            "files_left_for_next_tick": self.pending_files,
            "seconds": round(self.seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
        }


# A long-lived process (the Dagster code server) keeps the state it saved last and reuses it
# while the file is unchanged; taken out while a tick works on it, so a failed tick re-reads.
_state_cache: dict[str, tuple[tuple, StreamState]] = {}


def _stamp(path: Path, rules: StreamingSettings) -> tuple | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, rules.version)


def load_state(path: Path, rules: StreamingSettings) -> StreamState:
    """The saved streaming state (from memory when this process wrote the current file)."""
    cached = _state_cache.pop(str(path), None)
    stamp = _stamp(path, rules)
    if cached is not None and stamp is not None and cached[0] == stamp:
        return cached[1]
    return StreamState.load(path, rules)


def save_state(state: StreamState, path: Path, rules: StreamingSettings) -> None:
    """Write the state file and remember it in memory for the next tick."""
    state.save(path)
    _state_cache[str(path)] = (_stamp(path, rules), state)


_registry_cache: dict[str, tuple[tuple[int, ...], pd.DataFrame, DeviceThresholds]] = {}


def device_registry_for(
    settings: Settings, rules: StreamingSettings
) -> tuple[pd.DataFrame | None, DeviceThresholds]:
    """The materialised ``device_registry`` asset if there is one, else the registry file, else
    nothing (every device gets the contract defaults). Which thresholds a device's row leaves
    empty (both fill in the contract's defaults) is read from the registry file. Cached while
    the files are unchanged."""
    path = ParquetStore(settings.data_dir).path("device_registry")
    source = path if path.exists() else settings.registry_path
    if not source.exists():
        return None, DeviceThresholds(None, rules)
    file = settings.registry_path
    stamps = [(f.stat().st_mtime_ns, f.stat().st_size) for f in (source, file) if f.exists()]
    stamp = tuple(v for s in stamps for v in s)
    cached = _registry_cache.get(str(source))
    if cached and cached[0] == stamp and cached[2].settings == rules:
        return cached[1], cached[2]
    registry = pd.read_parquet(source) if source == path else load_device_registry(source)
    given = load_device_registry(file, fill_defaults=False) if file.exists() else registry
    thresholds = DeviceThresholds(registry, rules, given)
    _registry_cache[str(source)] = (stamp, registry, thresholds)
    return registry, thresholds


def read_readings(
    con, path: Path, landing_dir: Path, contract: Contract, sensors: list[str]
) -> tuple[pa.Table | None, str | None]:
    """The rows of one landing file (device_id, ts, ``sensors``) typed the way the batch path
    types them, on the DuckDB connection ``con``; or (None, reason) for a file the landing rules
    reject. Values that cannot be parsed, and measurements the file lacks, are null, so they
    never fire a rule."""
    layout, rejection = landing_zone.open_file(con, path, landing_dir, contract, "stream")
    if rejection is not None:
        return None, rejection.message
    columns = ["device_id", "ts", *sensors]
    if layout.kind == "parquet" and all(
        c in layout.types and _stored_as(layout.types[c], contract.column(c).type) for c in columns
    ):
        # Already stored in the contract's types: nothing to parse, read the columns directly.
        return pq.read_table(path, columns=columns), None
    received = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    sql = landing_zone.file_select_sql(layout, contract, received, False)
    return con.sql(f"SELECT {', '.join(columns)} FROM ({sql})").to_arrow_table(), None


def _stored_as(duck_type: str, contract_type: str) -> bool:
    """Whether a Parquet column of this DuckDB type already holds the contract type."""
    if contract_type == "timestamp":
        return duck_type.startswith("TIMESTAMP")
    return duck_type == {"string": "VARCHAR", "float": "DOUBLE", "bool": "BOOLEAN"}.get(
        contract_type
    )


def batch_arrays(
    table: pa.Table, sensors: list[str], contract: Contract
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """device_id (object), ts (int64 ns UTC, NO_TIME where missing) and float sensor arrays.
    A value outside its contract range (a sensor glitch, the quality step's OUT_OF_RANGE) is
    treated as missing, so it can neither fire a rule nor feed a moving average."""
    ids = table.column("device_id").to_numpy(zero_copy_only=False)
    ts = pc.cast(table.column("ts"), pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    ts = ts.fill_null(NO_TIME).to_numpy(zero_copy_only=False)
    values = {}
    for s in sensors:
        # Cast in Arrow: nulls become NaN and a state column (door_open) 1.0 / 0.0.
        v = table.column(s).cast(pa.float64()).to_numpy(zero_copy_only=False).copy()
        bounds = contract.column(s).range
        if bounds is not None:
            with np.errstate(invalid="ignore"):
                v[(v < bounds[0]) | (v > bounds[1])] = np.nan
        values[s] = v
    return ids, ts, values


@dataclass
class EvaluatedPass:
    """A pass whose firings are evaluated but not yet stored: ``alerts`` (None when nothing
    fired) still to upsert, then ``state`` to save (:meth:`finish`), in that order."""

    report: TickReport
    alerts: pd.DataFrame | None
    state: StreamState
    rules: StreamingSettings
    path: Path

    def store(self, store: AlertStore, alerts: pd.DataFrame, notify: bool) -> None:
        """Upsert ``alerts`` (a part or all of :attr:`alerts`) and count them in the report."""
        mark = time.monotonic()
        counts = store.upsert(alerts, notify=notify)
        self.report.inserted += counts["inserted"]
        self.report.notifications_queued += counts["queued"]
        self.report._add("store", mark)

    def finish(self) -> TickReport:
        """Save the state (once every alert is stored) and return the report."""
        mark = time.monotonic()
        save_state(self.state, self.path, self.rules)
        self.report._add("save_state", mark)
        return self.report


def evaluate_landed_files(
    settings: Settings,
    cursor: str | None,
    store: AlertStore,
    run_id_prefix: str = "streaming",
    now_ns: int | None = None,
) -> EvaluatedPass | TickReport:
    """The rules over every new or changed landing file (oldest first, within the tick budget):
    the alerts they raise, not yet stored, with the state to save after them; or the finished
    report when no file is pending."""
    started = time.monotonic()
    rules = load_streaming_settings()
    landing = settings.landing_dir
    now_ns = time.time_ns() if now_ns is None else now_ns
    landing_cursor = LandingCursor.from_json(cursor)
    landing_cursor.forget_older_than(now_ns - rules.lookback_ns)
    pending = landing_cursor.pending(landing, now_ns, rules.lookback_ns)
    report = TickReport(cursor=landing_cursor.to_json())
    if not pending:
        report.seconds = time.monotonic() - started
        return report

    contract = load_contract("sensor_readings")
    mark = time.monotonic()
    registry, thresholds = device_registry_for(settings, rules)
    path = state_path(settings)
    engine = StreamingEngine(rules, load_state(path, rules), thresholds)
    mark = report._add("load", mark)
    firings, run_ids = [], []
    con = landing_zone.connect()
    for i, file in enumerate(pending):
        if time.monotonic() - started > rules.tick_budget_seconds:
            report.pending_files = len(pending) - i
            break
        rel = str(file.relative_to(landing))
        table, rejection = read_readings(con, file, landing, contract, rules.sensors)
        landing_cursor.mark(file, landing)
        report.files.append(rel)
        if rejection is not None:
            # The batch path quarantines the file with its reason; streaming just skips it.
            # The landing rules' reasons name the file already.
            reason = rejection if rejection.startswith(rel) else f"{rel}: {rejection}"
            log.warning("streaming rules skip %s", reason)
            report.rejected.append(rel)
            mark = report._add("read", mark)
            continue
        arrays = batch_arrays(table, rules.sensors, contract)
        mark = report._add("read", mark)
        result = engine.process(*arrays)
        mark = report._add("evaluate", mark)
        report.readings += result.readings
        report.late_readings += result.late
        for rule, count in result.firing_readings.items():
            report.firing_readings[rule] = report.firing_readings.get(rule, 0) + count
        if len(result.firings):
            firings.append(result.firings)
            run_ids.append(pd.Series(f"{run_id_prefix}:{rel}", index=result.firings.index))

    con.close()
    alerts = None
    if firings:
        frame = pd.concat(firings, ignore_index=True)
        run_id = pd.concat(run_ids, ignore_index=True)
        dedup = alert_policy().dedup_window
        since = (frame["ts"].min() - dedup).to_pydatetime()
        previous = store.recent_alerts(frame["device_id"].unique(), since=since)
        alerts = firings_to_alerts(frame, registry, rules, run_id="", previous=previous)
        alerts["run_id"] = run_id.to_numpy()
        report.alerts = len(alerts)
        report.suppressed = int(alerts["suppressed"].sum())
        report.alert_ids = alerts["alert_id"].tolist()
    report.cursor = landing_cursor.to_json()
    report.seconds = time.monotonic() - started
    return EvaluatedPass(report, alerts, engine.state, rules, path)


def process_landed_files(
    settings: Settings,
    cursor: str | None,
    store: AlertStore,
    notify: bool = False,
    run_id_prefix: str = "streaming",
    now_ns: int | None = None,
) -> TickReport:
    """Evaluate the streaming rules on every new or changed landing file (oldest first, within
    the tick budget), store the alerts (with ``notify``, their notifications queued in the same
    transaction), and return the report with the next cursor."""
    started = time.monotonic()
    evaluated = evaluate_landed_files(settings, cursor, store, run_id_prefix, now_ns)
    if isinstance(evaluated, TickReport):
        return evaluated
    if evaluated.alerts is not None:
        evaluated.store(store, evaluated.alerts, notify)
    report = evaluated.finish()
    report.seconds = time.monotonic() - started
    return report


def run_once(settings: Settings | None = None, run_id_prefix: str = "cli") -> TickReport:
    """One pass over every landing file of the lookback with a fresh cursor (what the sensor
    does, without the daemon). Readings already evaluated are skipped by the watermarks, so
    repeating a pass raises nothing twice. Once the pass has saved its state, one delivery pass
    of the outbox follows (what ``alert_notification_delivery`` does under the daemon); it
    cannot change the pass's outcome."""
    from refrig_assets.alerts.delivery import deliver_due
    from refrig_assets.alerts.notify import notifier_from_env
    from refrig_assets.core.settings import get_settings

    settings = settings or get_settings()
    store = AlertStore(settings.alerts_db_url)
    try:
        report = process_landed_files(
            settings, None, store, notify=True, run_id_prefix=run_id_prefix
        )
        try:
            deliver_due(store, notifier_from_env())
        except Exception as exc:  # noqa: BLE001 - queued notifications wait for the next pass
            log.warning("notification delivery after the streaming pass failed: %s", exc)
        return report
    finally:
        store.close()
