"""The online scoring service without its HTTP layer: authentication, limits, one request end to
end, and the health report.

:class:`ScoringService` is what ``refrig serve`` runs (through :func:`refrig_assets.serving.app.create_app`);
tests use it directly as well. It reads the device registry, the model registry, the lifecycle
audit trail and the access tables; it writes nothing.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from refrig_assets.access import VIEWER, Identity, Unauthenticated, require_role
from refrig_assets.access.identity import VIA_LOCAL
from refrig_assets.access.resolve import token_identity
from refrig_assets.access.store import AccessStore
from refrig_assets.core.duck import connect
from refrig_assets.core.settings import Settings, get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.serving.batching import Batcher
from refrig_assets.serving.causes import CauseDiagnosis
from refrig_assets.serving.inputs import (
    RequestRejected,
    readings_features_many,
    reject,
    small_batch_windows,
    table_from_bytes,
    table_from_records,
    windows_frame,
)
from refrig_assets.serving.metrics import ServingMetrics
from refrig_assets.serving.models import ModelSet, ModelSnapshot
from refrig_assets.serving.scorer import (
    ScoreResult,
    newest_window_end,
    score_many,
    score_pass,
    score_request,
)
from refrig_assets.serving.settings import (
    SINGLE_USER,
    ServingSettings,
    load_serving_settings,
)

READINGS, WINDOWS = "readings", "windows"
OK, DEGRADED, DOWN = "ok", "degraded", "down"
DRIFT_COLUMNS = ["partition", "model_id", "model_version", "cohort", "feature", "psi"]


def _newest_window_ends(
    features: pd.DataFrame, owner: np.ndarray, count: int
) -> list[float | None]:
    """:func:`newest_window_end` of each of ``count`` requests whose windows are ``features``
    (``owner``: the request of each row)."""
    newest: list[float | None] = [None] * count
    if features.empty:
        return newest
    if count == 1:  # a lone request: no grouping
        return [newest_window_end(features)]
    ends = features["window_end"].groupby(owner).max()
    for i, end in ends.items():
        newest[int(i)] = float(pd.Timestamp(end).timestamp())
    return newest


# Python writes a float of 1e16 or more with an exponent ("1.2e+29").
_EXPONENT = "e+"
_BEYOND_64_BITS = 2.0**64


def _beyond_64_bits(table: pa.Table) -> bool:
    """Whether a JSON column of ``table`` may hold a number of 2**64 or more: orjson reads such
    an integer as a float, where ``json`` keeps an integer. Floats that large land in a float
    column or, mixed with other kinds, as text with an exponent in a text column."""
    for column in table.columns:
        if pa.types.is_floating(column.type):
            largest = pc.max(pc.abs(column)).as_py()
            if largest is not None and largest >= _BEYOND_64_BITS:
                return True
        elif pa.types.is_string(column.type):
            if pc.any(pc.match_substring(column, _EXPONENT)).as_py():
                return True
    return False


def _json_rows(body: bytes) -> tuple[str, pa.Table]:
    """(``readings`` or ``windows``, the rows) of a JSON body. orjson reads a 100-device request
    in a quarter of the standard library's time, to the same Python values; what it refuses
    (NaN or Infinity literals, invalid UTF-8, deep nesting) or may read otherwise (an integer of
    2**64 or more) is read by ``json`` as before, so every body gets the answer or the 422 it
    always got."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        kind, table = _records_of(payload)
        if not _beyond_64_bits(table):
            return kind, table
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise reject("request", "malformed_body", f"not valid JSON: {exc}") from None
    return _records_of(payload)


def _records_of(payload: Any) -> tuple[str, pa.Table]:
    if not isinstance(payload, dict):
        raise reject("request", "malformed_body", "the JSON body must be an object")
    found = [k for k in (READINGS, WINDOWS) if k in payload]
    if len(found) != 1:
        raise reject(
            "request",
            "malformed_body",
            "the JSON body needs exactly one of 'readings' (sensor_readings rows) or "
            "'windows' (device_features rows)",
        )
    dataset = "sensor_readings" if found[0] == READINGS else "device_features"
    return found[0], table_from_records(payload[found[0]], dataset)


class TooLarge(ValueError):
    """A request over the configured limits (HTTP 413)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Registry:
    """The device registry's ``device_id`` and ``cohort``, re-read when its file changes."""

    path: Path
    stamp: tuple[int, int] | None = None
    frame: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"device_id": [], "cohort": []})
    )
    ids: pa.Table = field(
        default_factory=lambda: pa.table({"device_id": pa.array([], pa.string())})
    )

    def current(self) -> tuple[pd.DataFrame, pa.Table]:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self.stamp:
            if stamp is None:
                self.frame = pd.DataFrame({"device_id": [], "cohort": []})
            else:
                self.frame = pq.read_table(self.path, columns=["device_id", "cohort"]).to_pandas()
            self.ids = pa.table({"device_id": pa.array(self.frame["device_id"], pa.string())})
            self.stamp = stamp
        return self.frame, self.ids


class ScoringService:
    """One serving process: models (hot reloaded), metrics, authentication and scoring."""

    def __init__(
        self,
        settings: Settings | None = None,
        serving: ServingSettings | None = None,
        *,
        single_user: bool | None = None,
        host: str | None = None,
    ):
        self.settings = settings or get_settings()
        self.serving = serving or load_serving_settings()
        self.host = host or self.serving.host
        self.single_user = (
            self.serving.auth == SINGLE_USER if single_user is None else bool(single_user)
        )
        if self.single_user and not is_loopback(self.host):
            raise ValueError(
                f"single-user mode (no token) serves loopback only; {self.host} is not a loopback "
                "address: use token authentication (config/serving.yaml service.auth: token)"
            )
        self.metrics = ServingMetrics(
            self.serving.latency_buckets_ms, self.serving.rate_window_seconds
        )
        self.store = ParquetStore(self.settings.data_dir)
        self.models = ModelSet(
            self.settings, self.serving.reload_check_seconds, on_reload=self._loaded
        )
        self.access = None if self.single_user else AccessStore(self.settings.alerts_db_url)
        self._registry = _Registry(self.store.path("device_registry"))
        self._registry_lock = threading.Lock()
        self._local = threading.local()
        self.diagnosis = CauseDiagnosis(self.settings.data_dir)
        self.newest_reading: float | None = None
        self.metrics.watch_drift(self.drift_by_version)
        self.batcher = Batcher(
            self._score_pass, self.serving.batch_max_requests, self.serving.batch_runners
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def _loaded(self, snapshot: ModelSnapshot) -> None:
        self.metrics.models_now(
            [
                (m.model_id, s.version, s.deployment)
                for m in snapshot.models.values()
                for s in m.sides
            ]
        )

    def start(self) -> None:
        """Load the models now and start watching for alias, pin and rollout changes."""
        self.models.refresh()
        self.models.start_watching()

    def close(self) -> None:
        self.models.stop()
        if self.access is not None:
            self.access.alerts.close()

    # -- authentication -----------------------------------------------------------------------
    def authenticate(self, token: str | None) -> Identity:
        """Who may score: a valid API token of any role (viewer and up), or the single local
        user in single-user mode. Raises :class:`Unauthenticated` (401)."""
        if self.single_user:
            return Identity("local", VIEWER, VIA_LOCAL)
        assert self.access is not None
        if not token:
            raise Unauthenticated(
                "scoring needs an API token: send 'Authorization: Bearer <token>' "
                "(refrig tokens create <user>)"
            )
        return require_role(token_identity(self.access, token), VIEWER, "scoring")

    # -- scoring ------------------------------------------------------------------------------
    def _connection(self) -> duckdb.DuckDBPyConnection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = connect()
            con.execute("SET threads = 1")  # one small request per connection: no fan-out
            self._local.con = con
        return con

    def _registry_now(self) -> tuple[pd.DataFrame, pa.Table]:
        with self._registry_lock:
            return self._registry.current()

    def parse(self, body: bytes, content_type: str, kind: str | None) -> tuple[str, pa.Table]:
        """(``readings`` or ``windows``, the rows) of a request body: JSON with a ``readings``
        or ``windows`` list, or a Parquet / Arrow IPC body whose kind is ``kind``."""
        if len(body) > self.serving.max_body_bytes:
            raise TooLarge(
                f"the body has {len(body)} bytes, more than service.max_body_bytes "
                f"({self.serving.max_body_bytes}) in config/serving.yaml"
            )
        if "json" in content_type:
            return _json_rows(body)
        kind = kind or READINGS
        if kind not in (READINGS, WINDOWS):
            raise reject(
                "request",
                "malformed_body",
                f"input must be readings or windows, not {kind!r}",
            )
        dataset = "sensor_readings" if kind == READINGS else "device_features"
        return kind, table_from_bytes(body, content_type, dataset)

    def _check_limits(self, table: pa.Table, dataset: str) -> None:
        if table.num_rows > self.serving.max_rows:
            raise TooLarge(
                f"{table.num_rows} rows, more than service.max_rows ({self.serving.max_rows}) in "
                "config/serving.yaml; larger batches belong in the landing zone"
            )
        if "device_id" in table.column_names:
            devices = len(pa.compute.unique(table.column("device_id")))
            if devices > self.serving.max_devices:
                raise TooLarge(
                    f"{devices} devices, more than service.max_devices "
                    f"({self.serving.max_devices}) in config/serving.yaml"
                )
        if table.num_rows == 0:
            raise reject(dataset, "empty_request", f"no {dataset} rows in the request")

    def score(
        self,
        kind: str,
        table: pa.Table,
        snapshot: ModelSnapshot | None = None,
        cause: bool = True,
    ) -> ScoreResult:
        """Score parsed rows with ``snapshot`` (default: the models serving now, taken once, so
        a reload while this runs does not change the versions it uses); ``cause`` adds each
        window's probable cause."""
        snapshot = snapshot or self.models.current()
        dataset = "sensor_readings" if kind == READINGS else "device_features"
        self._check_limits(table, dataset)
        if kind == READINGS:
            # requests scored together share the snapshot and the options
            result, newest = self.batcher.submit(
                table, key=(id(snapshot), cause), context=(snapshot, cause)
            )
        else:
            needed = sorted(
                {
                    c
                    for m in snapshot.models.values()
                    for s in m.sides
                    for c in s.detector.required_columns
                }
            )
            features = windows_frame(table, needed)
            registry, _ = self._registry_now()
            result = score_request(
                features,
                snapshot,
                registry,
                self.metrics,
                settings=self.settings if cause else None,
                diagnosis=self.diagnosis,
            )
            newest = newest_window_end(features)
        if newest is not None:
            self.newest_reading = max(newest, self.newest_reading or newest)
            self.metrics.freshness.set(time.time() - self.newest_reading)
        return result

    def _score_pass(
        self, tables: list[pa.Table], context: tuple[ModelSnapshot, bool]
    ) -> list[tuple[ScoreResult, float | None] | RequestRejected]:
        """Several requests' readings in one pass (see :mod:`.batching`): their feature windows
        together, then each model over all of them, then the diagnosis; per request its
        (answer, newest window end) or the :class:`RequestRejected` naming its violations."""
        snapshot, cause = context
        self.metrics.pass_requests.observe(len(tables))
        registry, ids = self._registry_now()
        con, now = self._connection(), datetime.now(UTC)
        together = small_batch_windows(
            con,
            tables,
            ids,
            now,
            cadence_seconds=self.settings.cadence_seconds,
            in_memory_max_rows=self.serving.features_in_memory_max_rows,
        )
        if together is not None:  # every request kept whole: score the pass's frame as it is
            features, owner = together
            answers = score_pass(
                features,
                owner,
                len(tables),
                snapshot,
                registry,
                self.metrics,
                settings=self.settings if cause else None,
                diagnosis=self.diagnosis,
            )
            newest = _newest_window_ends(features, owner, len(tables))
            return list(zip(answers, newest, strict=True))
        found = readings_features_many(
            con,
            tables,
            ids,
            now,
            cadence_seconds=self.settings.cadence_seconds,
            small=False,
        )
        valid = [i for i, f in enumerate(found) if not isinstance(f, RequestRejected)]
        frames = [found[i] for i in valid]
        if not frames:
            return found
        answers = score_many(
            frames,  # type: ignore[arg-type]
            snapshot,
            registry,
            self.metrics,
            settings=self.settings if cause else None,
            diagnosis=self.diagnosis,
        )
        out: list[Any] = list(found)
        for i, answer in zip(valid, answers, strict=True):
            out[i] = (answer, newest_window_end(found[i]))  # type: ignore[arg-type]
        return out

    # -- health -------------------------------------------------------------------------------
    def _serving_drift(self, versions: dict[str, set[str]]) -> pd.DataFrame:
        """Rows of the newest feature_drift partition about versions serving now."""
        partitions = self.store.partitions("feature_drift")
        if not partitions:
            return pd.DataFrame(columns=DRIFT_COLUMNS)
        frame = pq.read_table(
            self.store.root / "feature_drift" / f"{partitions[-1]}.parquet", columns=DRIFT_COLUMNS
        ).to_pandas()
        keep = [
            str(v) in versions.get(m, set())
            for m, v in zip(frame["model_id"], frame["model_version"], strict=True)
        ]
        return frame[keep]

    def serving_versions(self) -> dict[str, set[str]]:
        """model_id → the versions serving now (both sides of a rollout)."""
        snapshot = self.models.current()
        return {m.model_id: {s.version for s in m.sides} for m in snapshot.models.values()}

    def drift(self, versions: dict[str, set[str]]) -> dict[str, Any] | None:
        """The largest feature PSI of a serving version in the newest feature_drift partition."""
        serving = self._serving_drift(versions)
        if serving.empty:
            return None
        worst = serving.loc[serving["psi"].idxmax()]
        return {c: (float(worst[c]) if c == "psi" else str(worst[c])) for c in DRIFT_COLUMNS}

    def drift_by_version(self) -> dict[tuple[str, str], float]:
        """Largest feature PSI per serving (model_id, model_version) (the drift gauge)."""
        serving = self._serving_drift(self.serving_versions())
        if serving.empty:
            return {}
        worst = serving.groupby(["model_id", "model_version"])["psi"].max()
        return {(str(m), str(v)): float(p) for (m, v), p in worst.items()}

    def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, report): the versions loaded and each seed 002 threshold against what
        the service saw. 503 when no model serves."""
        limits = self.serving.thresholds
        try:
            snapshot: ModelSnapshot | None = self.models.current()
            models: dict[str, Any] = snapshot.describe() if snapshot else {}
            problem = None
        except Exception as exc:  # noqa: BLE001 - health reports what is wrong, it never raises
            snapshot, models, problem = None, {}, f"{type(exc).__name__}: {exc}"
        service = self.metrics.rates.service()
        p99 = service["p99_latency_ms"]
        age = None if self.newest_reading is None else (time.time() - self.newest_reading) / 60.0
        versions = (
            {m.model_id: {s.version for s in m.sides} for m in snapshot.models.values()}
            if snapshot
            else {}
        )
        try:
            drift = self.drift(versions)
        except (OSError, KeyError, pa.ArrowException) as exc:
            drift = {"error": str(exc)}
        psi = drift.get("psi") if drift else None
        checks: dict[str, dict[str, Any]] = {
            "latency": {
                "p99_ms": p99,
                "threshold_ms": limits.latency_ms,
                "breached": p99 is not None and p99 > limits.latency_ms,
                "requests": service["requests"],
            },
            "error_rate": {
                "value": service["error_rate"],
                "threshold": limits.error_rate,
                "breached": float(service["error_rate"] or 0.0) > limits.error_rate,
            },
            "data_freshness": {
                "newest_window_end": (
                    datetime.fromtimestamp(self.newest_reading, UTC).isoformat()
                    if self.newest_reading
                    else None
                ),
                "age_minutes": age,
                "threshold_minutes": limits.freshness_minutes,
                "breached": age is not None and age > limits.freshness_minutes,
            },
            "drift": {
                **(drift or {}),
                "threshold_psi": limits.drift_psi,
                "breached": psi is not None and psi > limits.drift_psi,
            },
        }
        serving_any = bool(snapshot and snapshot.models)
        status = (
            DOWN
            if not serving_any
            else (DEGRADED if any(c["breached"] for c in checks.values()) else OK)
        )
        report = {
            "status": status,
            "window_seconds": self.serving.rate_window_seconds,
            "models": models,
            "checks": checks,
        }
        if problem:
            report["problem"] = problem
        return (200 if serving_any else 503), report


__all__ = [
    "RequestRejected",
    "ScoringService",
    "TooLarge",
    "Unauthenticated",
    "is_loopback",
]
