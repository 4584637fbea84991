"""Typed settings of the online scoring service and the metrics exporter (``config/serving.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from refrig_assets.core.config import load_config

TOKEN, SINGLE_USER = "token", "single_user"


@dataclass(frozen=True)
class Thresholds:
    """The seed 002 alert thresholds /health compares against."""

    latency_ms: float
    error_rate: float
    freshness_minutes: float
    drift_psi: float


@dataclass(frozen=True)
class ServingSettings:
    """``config/serving.yaml`` read once; every default lives in that file."""

    host: str
    port: int
    auth: str
    max_devices: int
    max_rows: int
    max_body_bytes: int
    reload_check_seconds: float
    batch_max_requests: int
    batch_runners: int
    thresholds: Thresholds
    rate_window_seconds: float
    latency_buckets_ms: tuple[float, ...]
    exporter_host: str
    exporter_port: int
    exporter_recent_runs: int
    server_loop: str
    server_http: str
    server_backlog: int
    server_keep_alive_seconds: float
    server_access_log: bool
    features_in_memory_max_rows: int


def load_serving_settings() -> ServingSettings:
    """Read ``config/serving.yaml`` (errors name the file and the key)."""
    cfg = load_config("serving")
    service, models, limits = (
        cfg.section("service"),
        cfg.section("models"),
        cfg.section("thresholds"),
    )
    exporter, batching = cfg.section("exporter"), cfg.section("batching")
    server = cfg.section("server")
    buckets = cfg.items("latency_buckets_ms")
    if any(isinstance(b, bool) or not isinstance(b, int | float) or b <= 0 for b in buckets):
        raise cfg.fail("latency_buckets_ms", f"must be positive numbers, not {buckets!r}")
    return ServingSettings(
        host=service.text("host"),
        port=service.number("port", minimum=1, maximum=65535, integer=True),
        auth=service.choice("auth", (TOKEN, SINGLE_USER)),
        max_devices=service.number("max_devices", minimum=1, integer=True),
        max_rows=service.number("max_rows", minimum=1, integer=True),
        max_body_bytes=service.number("max_body_bytes", minimum=1, integer=True),
        reload_check_seconds=models.number("reload_check_seconds", minimum=0),
        batch_max_requests=batching.number("max_requests", minimum=1, integer=True),
        batch_runners=batching.number("runners", minimum=1, integer=True),
        thresholds=Thresholds(
            latency_ms=limits.number("latency_ms", minimum=0),
            error_rate=limits.number("error_rate", minimum=0, maximum=1),
            freshness_minutes=limits.number("freshness_minutes", minimum=0),
            drift_psi=limits.number("drift_psi", minimum=0),
        ),
        rate_window_seconds=cfg.number("rate_window_seconds", minimum=1),
        latency_buckets_ms=tuple(sorted(float(b) for b in buckets)),
        exporter_host=exporter.text("host"),
        exporter_port=exporter.number("port", minimum=1, maximum=65535, integer=True),
        exporter_recent_runs=exporter.number("recent_runs", minimum=1, integer=True),
        server_loop=server.choice("loop", ("auto", "asyncio", "uvloop")),
        server_http=server.choice("http", ("auto", "h11", "httptools")),
        server_backlog=server.number("backlog", minimum=1, integer=True),
        server_keep_alive_seconds=server.number("keep_alive_seconds", minimum=0),
        server_access_log=server.flag("access_log"),
        features_in_memory_max_rows=cfg.section("features").number(
            "in_memory_max_rows", minimum=0, integer=True
        ),
    )


def uvicorn_options(settings: ServingSettings) -> dict[str, Any]:
    """How ``refrig serve`` runs uvicorn (``server`` in config/serving.yaml). Without the access
    log only warnings and errors are logged; with it, a line per request (uvicorn writes those
    at info level, so the level becomes info)."""
    return {
        "log_level": "info" if settings.server_access_log else "warning",
        "access_log": settings.server_access_log,
        "loop": settings.server_loop,
        "http": settings.server_http,
        "backlog": settings.server_backlog,
        "timeout_keep_alive": int(settings.server_keep_alive_seconds),
    }
