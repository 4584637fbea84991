"""The HTTP face of the online scoring service (FastAPI).

* ``POST /v1/score`` — readings (``sensor_readings``) or precomputed windows
  (``device_features``): a JSON object ``{"readings": [...]}`` / ``{"windows": [...]}``, or a
  Parquet file / Arrow IPC stream body with ``?input=readings|windows``. Needs
  ``Authorization: Bearer <token>`` (an API token of ``refrig tokens create``) unless the
  service runs in single-user mode on loopback. 422 names the contract rule and row of each
  violation; 401 without a valid token; 413 over the configured limits.
* ``GET /health`` — model versions loaded and the seed 002 thresholds against what the service
  saw (503 when no model serves).
* ``GET /metrics`` — Prometheus exposition of the service's metrics.
"""

from __future__ import annotations

import gc
import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from refrig_assets.access import AccessError
from refrig_assets.access.resolve import bearer_token
from refrig_assets.serving.finite import non_finite
from refrig_assets.serving.inputs import RequestRejected
from refrig_assets.serving.scorer import ScoreResult
from refrig_assets.serving.service import ScoringService, TooLarge

SCORE = "/v1/score"


class NonFiniteAnswer(ValueError):
    """An answer holding NaN or an infinity, which JSON cannot write (HTTP 500)."""


_NULL = b"null"
_JSON = "application/json"


def _finite(value: Any, where: str = "answer") -> None:
    """Raise :class:`NonFiniteAnswer` naming the first NaN or infinity in ``value``."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NonFiniteAnswer(f"the answer holds {value!r} at {where}: JSON has no such number")
    elif isinstance(value, dict):
        for key, item in value.items():
            _finite(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _finite(item, f"{where}[{i}]")


def answer_json(content: Any, finite: bool = False) -> bytes:
    """The JSON text of an answer: the values the standard library's encoder writes (what
    Starlette's JSONResponse sends: UTF-8, NaN refused), written by orjson, which takes a
    100-device answer in a tenth of the time. orjson writes NaN and the infinities as ``null``:
    an answer with a ``null`` in it is searched for them, and one found raises
    :class:`NonFiniteAnswer` (the request fails with 500) instead of reaching the client as a
    missing value. ``finite``: the caller made every number of ``content`` and found them all
    finite where it made them (:attr:`~refrig_assets.serving.scorer.ScoreResult.finite`), so
    the search is left out. What orjson cannot write the same way (an integer beyond 64 bits, a
    key that is not text, a type of its own) is written by the standard library as before."""
    try:
        text = orjson.dumps(content)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        try:
            return json.dumps(
                content, ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ).encode("utf-8")
        except ValueError:
            _finite(content)  # names where
            raise
    if not finite and _NULL in text and non_finite(content):
        _finite(content)  # raises, naming where
    return text


def _score_body(
    service: ScoringService, body: bytes, content_type: str, kind: str | None, cause: bool
) -> tuple[ScoreResult, bytes]:
    """Parse and score one request body; the result and its answer's JSON."""
    kind, table = service.parse(body, content_type, kind)
    result = service.score(kind, table, None, cause)
    return result, answer_json(result.as_dict(), finite=result.finite)


def create_app(
    service: ScoringService | None = None, *, start: bool = True, freeze_gc: bool = False
) -> FastAPI:
    """The app over ``service`` (default: one from the configured settings). With ``start`` the
    models load when the app starts and a watcher reloads them on lifecycle changes.

    ``freeze_gc`` (a serving process of its own, ``refrig serve``): once the models are loaded,
    the objects alive then (the libraries, models, contracts: several hundred thousand) are
    left out of the garbage collector's full passes. Those passes otherwise walk all of them
    again and again while a large request allocates, costing it tens of milliseconds now and
    then (the latency's tail) for nothing: they are not garbage. Objects that die later are
    freed as before."""
    service = service or ScoringService()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start:
            await run_in_threadpool(service.start)
        if freeze_gc:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="refrig-assets scoring",
        description="Online scoring of refrigeration devices with the batch path's detectors.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service

    @app.post(SCORE)
    async def score(
        request: Request,
        input: str | None = None,  # noqa: A002 - the query parameter's public name
        cause: bool = True,
    ) -> Response:
        """Score readings or windows of one or more devices (see the module docstring);
        ``cause=false`` leaves out the probable cause (its diagnosis reads the baselines)."""
        started = time.perf_counter()
        status, rendered = 200, None
        content: dict[str, Any] | None = None
        received = request.headers
        try:
            if service.single_user:  # nothing to look up
                service.authenticate(None)
            else:
                await run_in_threadpool(service.authenticate, bearer_token(received))
            length = int(received.get("content-length") or 0)
            if length > service.serving.max_body_bytes:
                raise TooLarge(
                    f"the body has {length} bytes, more than service.max_body_bytes "
                    f"({service.serving.max_body_bytes}) in config/serving.yaml"
                )
            body = await request.body()
            # parsing, scoring and the answer in one worker thread: each hand-over between the
            # event loop and a thread costs a small request a measurable share of its time
            result, rendered = await run_in_threadpool(
                _score_body, service, body, received.get("content-type", ""), input, cause
            )
            if result.all_failed:
                status = 500
        except AccessError as exc:
            status, content = exc.status, {"detail": str(exc)}
        except RequestRejected as exc:
            status = 422
            content = {
                "detail": str(exc),
                "violations": [v.as_dict() for v in exc.violations],
            }
        except TooLarge as exc:
            status, content = 413, {"detail": str(exc)}
        except Exception as exc:  # noqa: BLE001 - counted as an error, reported without a trace
            status, content = 500, {"detail": f"{type(exc).__name__}: {exc}"}
        service.metrics.request_done(
            SCORE,
            status,
            time.perf_counter() - started,
            scored=status not in (401, 403),
        )
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if rendered is None:
            rendered = answer_json(content)
        return Response(rendered, status_code=status, headers=headers, media_type=_JSON)

    @app.get("/health")
    def health() -> JSONResponse:
        """Versions loaded, latency, error rate, data freshness and drift against thresholds."""
        status, report = service.health()
        return JSONResponse(report, status_code=status)

    @app.get("/metrics")
    def metrics() -> Response:
        """The service's metrics in the Prometheus exposition format."""
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
