"""Prometheus metrics of the online scoring service (names of seed 004's managed endpoint).

Per model, version and deployment (pinned, production, fallback, rollout_candidate,
rollout_champion): ``request_count_total``, ``request_errors_total``, ``windows_scored_total``,
``empty_predictions_total``, the ``inference_latency_ms`` histogram, and the gauges
``error_rate`` and ``empty_prediction_rate`` over the last ``rate_window_seconds``. Per endpoint:
``http_requests_total{endpoint,status}`` and ``http_request_latency_ms``. ``models_loaded`` is 1
for each version serving now; ``data_freshness_seconds`` is the age of the newest reading scored; ``feature_drift_psi``
the largest feature PSI of each serving version. ``score_pass_requests`` (histogram): readings
requests computed together in one scoring pass.

Each service has its own registry, so two apps in one process (tests) never share counters.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

MODEL_LABELS = ("model_id", "model_version", "deployment")


@dataclass
class _Event:
    at: float
    key: tuple[str, str, str]
    failed: bool
    windows: int
    empty: int


class RollingRates:
    """Requests, errors, windows and empty predictions per model key over a trailing window."""

    def __init__(self, window_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.window = float(window_seconds)
        self.clock = clock
        self._events: deque[_Event] = deque()
        self._latencies: deque[tuple[float, float]] = deque()
        self._http: deque[tuple[float, bool]] = deque()
        self._lock = threading.Lock()

    def _trim(self) -> None:
        since = self.clock() - self.window
        while self._events and self._events[0].at < since:
            self._events.popleft()
        while self._latencies and self._latencies[0][0] < since:
            self._latencies.popleft()
        while self._http and self._http[0][0] < since:
            self._http.popleft()

    def model(self, key: tuple[str, str, str], failed: bool, windows: int, empty: int) -> None:
        with self._lock:
            self._events.append(_Event(self.clock(), key, failed, windows, empty))
            self._trim()

    def request(self, latency_ms: float, failed: bool) -> None:
        with self._lock:
            now = self.clock()
            self._latencies.append((now, latency_ms))
            self._http.append((now, failed))
            self._trim()

    def per_model(self) -> dict[tuple[str, str, str], tuple[float, float]]:
        """(error rate, empty-prediction rate) per model key over the window."""
        with self._lock:
            self._trim()
            totals: dict[tuple[str, str, str], list[int]] = {}
            for e in self._events:
                t = totals.setdefault(e.key, [0, 0, 0, 0])
                t[0] += 1
                t[1] += int(e.failed)
                t[2] += e.windows
                t[3] += e.empty
        return {
            k: (
                errors / requests if requests else 0.0,
                empty / windows if windows else 0.0,
            )
            for k, (requests, errors, windows, empty) in totals.items()
        }

    def service(self) -> dict[str, float | int | None]:
        """Score requests, their error rate and p99 latency (ms) over the window."""
        with self._lock:
            self._trim()
            latencies = sorted(v for _, v in self._latencies)
            failures = sum(1 for _, f in self._http if f)
            count = len(self._http)
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None
        return {
            "requests": count,
            "error_rate": failures / count if count else 0.0,
            "p99_latency_ms": p99,
        }


class _RateCollector:
    """The ``error_rate`` and ``empty_prediction_rate`` gauges, computed when scraped."""

    def __init__(self, rates: RollingRates):
        self.rates = rates

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily(
            "error_rate",
            "Share of score requests whose scoring failed, per model version "
            "(trailing rate window)",
            labels=list(MODEL_LABELS),
        )
        empty = GaugeMetricFamily(
            "empty_prediction_rate",
            "Share of windows a model version returned no score for (not scorable), "
            "trailing rate window",
            labels=list(MODEL_LABELS),
        )
        for key, (error_rate, empty_rate) in sorted(self.rates.per_model().items()):
            errors.add_metric(list(key), error_rate)
            empty.add_metric(list(key), empty_rate)
        service = self.rates.service()
        overall = GaugeMetricFamily(
            "http_error_rate",
            "Share of score requests answered 5xx (trailing rate window)",
        )
        overall.add_metric([], float(service["error_rate"] or 0.0))
        yield errors
        yield empty
        yield overall


class _DriftCollector:
    """``feature_drift_psi{model_id,model_version}``: the largest feature PSI of each serving
    version in the newest feature_drift partition, read when scraped."""

    def __init__(self, source: Callable[[], dict[tuple[str, str], float]]):
        self.source = source

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "feature_drift_psi",
            "Largest feature PSI of a serving version (newest feature_drift partition)",
            labels=["model_id", "model_version"],
        )
        try:
            found = self.source()
        except Exception:  # noqa: BLE001 - a scrape never fails over a missing drift file
            found = {}
        for (model_id, version), psi in sorted(found.items()):
            family.add_metric([model_id, version], psi)
        yield family


class ServingMetrics:
    """The service's metrics in their own registry (exposed at ``/metrics``)."""

    def __init__(self, buckets_ms: tuple[float, ...], rate_window_seconds: float):
        self.registry = CollectorRegistry()
        self.rates = RollingRates(rate_window_seconds)
        r = self.registry
        self.requests = Counter(
            "request_count",
            "Score requests a model version served",
            MODEL_LABELS,
            registry=r,
        )
        self.errors = Counter(
            "request_errors",
            "Score requests whose scoring failed",
            MODEL_LABELS,
            registry=r,
        )
        self.windows = Counter(
            "windows_scored", "Windows a model version scored", MODEL_LABELS, registry=r
        )
        self.empty = Counter(
            "empty_predictions",
            "Windows a model version returned no score for",
            MODEL_LABELS,
            registry=r,
        )
        self.latency = Histogram(
            "inference_latency_ms",
            "Scoring time of one model version for one request (ms)",
            MODEL_LABELS,
            buckets=buckets_ms,
            registry=r,
        )
        self.http = Counter(
            "http_requests",
            "HTTP requests by endpoint and status",
            ("endpoint", "status"),
            registry=r,
        )
        self.http_latency = Histogram(
            "http_request_latency_ms",
            "End-to-end time of a request, parsing and features included (ms)",
            ("endpoint",),
            buckets=buckets_ms,
            registry=r,
        )
        self.loaded = Gauge(
            "models_loaded",
            "1 for each model version serving now",
            MODEL_LABELS,
            registry=r,
        )
        self.reloads = Counter("model_reloads", "Model snapshots loaded", registry=r)
        self.pass_requests = Histogram(
            "score_pass_requests",
            "Readings requests computed together in one scoring pass (batching)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.freshness = Gauge(
            "data_freshness_seconds",
            "Age of the newest reading (window end) the service scored",
            registry=r,
        )
        r.register(_RateCollector(self.rates))  # type: ignore[arg-type]

    def model_scored(
        self, key: tuple[str, str, str], seconds: float, windows: int, empty: int
    ) -> None:
        self.requests.labels(*key).inc()
        self.latency.labels(*key).observe(seconds * 1000.0)
        self.windows.labels(*key).inc(windows)
        self.empty.labels(*key).inc(empty)
        self.rates.model(key, False, windows, empty)

    def model_failed(self, key: tuple[str, str, str]) -> None:
        self.requests.labels(*key).inc()
        self.errors.labels(*key).inc()
        self.rates.model(key, True, 0, 0)

    def request_done(self, endpoint: str, status: int, seconds: float, scored: bool) -> None:
        self.http.labels(endpoint, str(status)).inc()
        self.http_latency.labels(endpoint).observe(seconds * 1000.0)
        if scored:
            self.rates.request(seconds * 1000.0, status >= 500)

    def watch_drift(self, source: Callable[[], dict[tuple[str, str], float]]) -> None:
        """Export the drift of the serving versions (see :class:`_DriftCollector`)."""
        self.registry.register(_DriftCollector(source))  # type: ignore[arg-type]

    def models_now(self, keys: list[tuple[str, str, str]]) -> None:
        self.loaded.clear()
        for key in keys:
            self.loaded.labels(*key).set(1)
            # Series of a serving version exist from the start (0), so rate() sees them.
            for counter in (self.requests, self.errors, self.windows, self.empty):
                counter.labels(*key)
            self.latency.labels(*key)
        self.reloads.inc()
