"""Scoring one request: feature windows in, per window every hourly detector's score out.

Each model scores with its detector's ``score`` (what the batch path's
:func:`refrig_assets.scoring.score.score_windows` calls, :func:`model_scores`) with the version
(or, during a rollout, the side) the batch path would use for the device. A failing model fails only its own part of the answer, as a failing score asset fails
only itself. Nothing is written anywhere: the answer is the only output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.core.settings import Settings
from refrig_assets.detectors.base import Detector, sorted_rows
from refrig_assets.serving.finite import all_finite, non_finite
from refrig_assets.serving.memo import LastDerived
from refrig_assets.serving.metrics import ServingMetrics
from refrig_assets.serving.models import ModelSnapshot

# The columns an answer reads from a model's scores.
SCORE_FIELDS = (
    "device_id",
    "window_start",
    "anomaly_score",
    "anomaly_flag",
    "top_contributors",
    "contributor_detail",
    "confidence",
)


def _as_list(values: Any) -> list[Any]:
    """``Series(values).tolist()``: Python scalars, Timestamps for times."""
    if isinstance(values, pd.arrays.NumpyExtensionArray):
        values = values.to_numpy()
    return values.tolist()


def _ticks(values: Any) -> list[Any]:
    """Window times as keys: a datetime array's instants as int64 ns (no Timestamp made per
    row), other values as :func:`_as_list` gives them."""
    values = getattr(values, "array", values)
    if isinstance(getattr(values, "dtype", None), pd.DatetimeTZDtype) or (
        isinstance(values, np.ndarray) and values.dtype.kind == "M"
    ):
        return pd.DatetimeIndex(values).as_unit("ns").asi8.tolist()
    return _as_list(values)


def _cohort_index(registry: pd.DataFrame) -> tuple[pd.Series, dict[Any, Any] | None]:
    """The registry's cohort by device, and as a dict where a lookup gives what ``map`` does
    (unique text ids, text cohorts)."""
    index = registry.set_index("device_id")["cohort"]
    plain = (
        index.index.is_unique
        and index.dtype == object
        and all(isinstance(d, str) for d in index.index)
    )
    return index, dict(zip(index.index, index, strict=True)) if plain else None


_COHORT_INDEX: LastDerived[pd.DataFrame, tuple[pd.Series, dict[Any, Any] | None]] = LastDerived(
    _cohort_index
)


def _cohorts(device_ids: pd.Series, registry: pd.DataFrame) -> np.ndarray:
    """:func:`~refrig_assets.scoring.score.cohort_of`, with the registry's device index built
    once per registry frame (indexing a large fleet's registry per request cost more than the
    request); a request's text ids are looked up in a dict."""
    index, lookup = _COHORT_INDEX(registry)
    ids = device_ids.tolist()
    if lookup is None or not all(isinstance(d, str) for d in ids):
        return device_ids.map(index).fillna("unknown").to_numpy()
    found = [lookup.get(d) for d in ids]
    return np.array(["unknown" if pd.isna(c) else c for c in found], dtype=object)


def probable_causes(
    settings: Settings, features: pd.DataFrame, diagnosis: Any = None
) -> dict[tuple, dict[str, Any]]:
    """Probable cause of each window (``(device_id, window_start)`` → cause, kind, confidence,
    evidence) from the incidents package's diagnosis (``diagnose_partition``'s steps, through a
    :class:`refrig_assets.serving.causes.CauseDiagnosis`: nothing written, the hour's baselines
    and defrost state loaded once, the windows diagnosed as arrays) — the diagnosis the batch
    path's incidents use, with the baselines of the hours before each window's hour. Empty when
    the package is not installed."""
    if diagnosis is None:
        try:
            from refrig_assets.serving.causes import CauseDiagnosis
        except ImportError:
            return {}
        diagnosis = CauseDiagnosis(settings.data_dir)
    return diagnosis.probable_causes(features)


@dataclass
class ScoreResult:
    """The answer to one request (see :meth:`as_dict`)."""

    windows: list[dict[str, Any]]
    models: list[dict[str, Any]]
    errors: list[dict[str, str]] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    cause_error: str | None = None
    # every number of the answer was found finite where it was made (its JSON needs no search
    # for NaN and infinities); False: not known
    finite: bool = False

    @property
    def all_failed(self) -> bool:
        return bool(self.errors) and not any(m.get("windows_scored") for m in self.models)

    def as_dict(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "models": self.models,
            "errors": self.errors,
            "unavailable_models": self.unavailable,
            **({"probable_cause_error": self.cause_error} if self.cause_error else {}),
        }


def _iso(ts: Any) -> str:
    return pd.Timestamp(ts).isoformat()


def model_scores(detector: Detector, features: pd.DataFrame) -> dict[str, Any]:
    """One model's scores of ``features`` for an answer, as arrays by column (none: no window
    scored): its detector's own ``score`` (what :func:`refrig_assets.scoring.score.score_windows`
    calls) through :meth:`~refrig_assets.detectors.base.Detector.answer_columns`, without the
    frames the batch path builds around it (the model id and version are the request's; those
    frames cost a small request milliseconds)."""
    return detector.answer_columns(features) or {}


def _score_row(row: dict[str, Any], model_id: str, version: str, deployment: str) -> dict[str, Any]:
    tops = row["top_contributors"]
    return {
        "model_id": model_id,
        "model_version": version,
        "deployment": deployment,
        "anomaly_score": float(row["anomaly_score"]),
        "anomaly_flag": bool(row["anomaly_flag"]),
        "top_contributors": [t for t in str(tops).split(",") if t] if tops else [],
        "contributor_detail": row["contributor_detail"],
        "confidence": float(row["confidence"]),
    }


def _failed(
    errors: list[dict[str, str]],
    metrics: ServingMetrics | None,
    label: tuple[str, str, str],
    exc: Exception,
) -> None:
    """Note that model version ``label`` failed for a request (its ``errors``, the metrics)."""
    errors.append(
        {"model_id": label[0], "model_version": label[1], "error": f"{type(exc).__name__}: {exc}"}
    )
    if metrics is not None:
        metrics.model_failed(label)


def score_request(
    features: pd.DataFrame,
    snapshot: ModelSnapshot,
    registry: pd.DataFrame,
    metrics: ServingMetrics | None = None,
    settings: Settings | None = None,
    diagnosis: Any = None,
) -> ScoreResult:
    """Score feature windows (``device_features`` columns) with every model of ``snapshot``.

    ``registry`` maps ``device_id`` to ``cohort`` (devices it lacks: ``unknown``, as in batch).
    Per window: its key, completeness and quality flags, one entry per model that scored it
    (score, flag, contributors with their σ evidence, confidence, model id, version and
    deployment), the models that returned no score for it, and the probable cause when the
    incidents package provides one (``settings`` locate the baselines it compares with;
    ``diagnosis``, a service's :class:`~refrig_assets.serving.causes.CauseDiagnosis`, keeps them
    loaded between requests)."""
    [result] = score_many([features], snapshot, registry, metrics, settings, diagnosis)
    return result


def score_many(
    requests: list[pd.DataFrame],
    snapshot: ModelSnapshot,
    registry: pd.DataFrame,
    metrics: ServingMetrics | None = None,
    settings: Settings | None = None,
    diagnosis: Any = None,
) -> list[ScoreResult]:
    """:func:`score_request` for several requests with disjoint devices in one pass: each model
    scores all their windows with one call and the diagnosis runs once. Every detector scores a
    device from its own windows only, so each request gets exactly its answer alone (tested);
    the per-model latency is the pass's."""
    if len(requests) == 1:  # sorted only when it is not already (a new frame either way)
        features = sorted_rows(requests[0])
        owner = np.zeros(len(features), np.int64)
    else:
        features = pd.concat(requests, ignore_index=True)
        owner = np.repeat(np.arange(len(requests)), [len(f) for f in requests])
        features = features.assign(_owner=owner).sort_values(
            ["device_id", "window_start"], kind="stable"
        )
        owner = features.pop("_owner").to_numpy()
        features = features.reset_index(drop=True)
    return score_pass(
        features, owner, len(requests), snapshot, registry, metrics, settings, diagnosis
    )


def score_pass(
    features: pd.DataFrame,
    owner: np.ndarray,
    count: int,
    snapshot: ModelSnapshot,
    registry: pd.DataFrame,
    metrics: ServingMetrics | None = None,
    settings: Settings | None = None,
    diagnosis: Any = None,
) -> list[ScoreResult]:
    """:func:`score_many` of ``count`` requests whose windows are already in one frame: rows
    sorted by device and window start with a fresh index (a frame this call may add a column
    to), ``owner`` the request of each row (requests share no device)."""
    features["cohort"] = _cohorts(features["device_id"], registry)
    ids = features["device_id"].to_numpy()
    keys = list(zip(ids.tolist(), _ticks(features["window_start"].array), strict=True))
    request_of = dict(zip(ids.tolist(), owner.tolist(), strict=True))
    # each device's first row (rows are sorted by device; a model's side takes whole devices)
    first_rows = np.ones(len(ids), bool)
    first_rows[1:] = ids[1:] != ids[:-1]
    first_rows &= ~pd.isna(ids)
    per_window: dict[tuple, list[dict[str, Any]]] = {k: [] for k in keys}
    # the answer's numbers are checked here, where they are made (see ScoreResult.finite)
    finite = not non_finite(ids.tolist())
    models_out: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    errors: list[list[dict[str, str]]] = [[] for _ in range(count)]
    for model in snapshot.models.values():
        for side, mask in model.split(features["device_id"]):
            label = (model.model_id, side.version, side.deployment)
            part = features if mask.all() else features[mask]
            if part.empty:
                continue
            mine = owner[np.asarray(mask)]

            started = time.perf_counter()
            try:
                passes = [(np.unique(mine), model_scores(side.detector, part))]
            except Exception as exc:  # noqa: BLE001 - one model failing leaves the others
                passes = []
                if len(np.unique(mine)) == 1:
                    _failed(errors[int(mine[0])], metrics, label, exc)
                else:  # what one request sent must not fail the model for the others
                    for i in np.unique(mine):
                        try:
                            found = model_scores(side.detector, part[mine == i])
                            passes.append((np.array([i]), found))
                        except Exception as alone:  # noqa: BLE001
                            _failed(errors[int(i)], metrics, label, alone)
            seconds = time.perf_counter() - started
            windows_of = np.bincount(mine, minlength=count)
            devices_of = np.bincount(owner[np.asarray(mask) & first_rows], minlength=count)
            for owners, scores in passes:
                scored_ids = _as_list(scores["device_id"]) if scores else []
                scored_by = np.array([request_of[d] for d in scored_ids], np.int64)
                scored_of = np.bincount(scored_by, minlength=count)
                for i in owners:
                    windows_in = int(windows_of[i])
                    windows_scored = int(scored_of[i])
                    if metrics is not None:
                        metrics.model_scored(
                            label, seconds, windows_scored, windows_in - windows_scored
                        )
                    models_out[i].append(
                        {
                            "model_id": model.model_id,
                            "model_version": side.version,
                            "deployment": side.deployment,
                            "devices": int(devices_of[i]),
                            "windows_in": windows_in,
                            "windows_scored": windows_scored,
                            "latency_ms": round(seconds * 1000.0, 3),
                        }
                    )
                model_id, version = side.detector.config.model_id, str(side.version)
                if not scores:
                    continue
                values = [
                    _ticks(scores[c]) if c == "window_start" else _as_list(scores[c])
                    for c in SCORE_FIELDS
                ]
                for fields in zip(*values, strict=True):
                    row = dict(zip(SCORE_FIELDS, fields, strict=True))
                    per_window[(row["device_id"], row["window_start"])].append(
                        _score_row(row, model_id, version, side.deployment)
                    )
                finite = (
                    finite
                    and all_finite(values[SCORE_FIELDS.index("anomaly_score")])
                    and all_finite(values[SCORE_FIELDS.index("confidence")])
                    and not non_finite(values[SCORE_FIELDS.index("contributor_detail")])
                )
    causes: dict[tuple, dict[str, Any]] = {}
    cause_error = None
    if settings is not None and any(models_out):
        try:
            causes = probable_causes(settings, features, diagnosis)
        except Exception as exc:  # noqa: BLE001 - the scores stand without a diagnosis
            cause_error = f"{type(exc).__name__}: {exc}"
    windows: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    starts = features["window_start"].array
    ends = features["window_end"].array
    end_keys = _ticks(ends)
    # A pass's windows share a few starts and ends: each is made a Timestamp and text once.
    start_of: dict[Any, tuple[str, pd.Timestamp]] = {}
    end_of: dict[Any, str] = {}
    completeness = features["sensor_completeness"].tolist()
    finite = finite and all_finite(completeness)
    flags = features["quality_flags"].tolist()
    attached: list[dict[str, Any]] = []
    for i, (device, start) in enumerate(keys):
        entries = per_window[keys[i]]
        served = [m["model_id"] for m in models_out[owner[i]]]
        if start not in start_of:
            start_of[start] = (_iso(starts[i]), pd.Timestamp(starts[i]))
        if end_keys[i] not in end_of:
            end_of[end_keys[i]] = _iso(ends[i])
        start_text, stamp = start_of[start]
        window: dict[str, Any] = {
            "device_id": device,
            "window_start": start_text,
            "window_end": end_of[end_keys[i]],
            "sensor_completeness": float(completeness[i]),
            "quality_flags": [f for f in str(flags[i] or "").split(",") if f],
            "scores": entries,
            "not_scored_by": sorted(set(served) - {e["model_id"] for e in entries}),
        }
        cause = causes.get((device, stamp))
        if cause is not None and served:
            window["probable_cause"] = cause
            attached.append(cause)
        windows[owner[i]].append(window)
    finite = finite and not non_finite(attached)
    return [
        ScoreResult(
            windows[i],
            models_out[i],
            errors[i],
            dict(snapshot.unavailable),
            cause_error if models_out[i] else None,
            finite,
        )
        for i in range(count)
    ]


def newest_window_end(features: pd.DataFrame) -> float | None:
    """Epoch seconds of the newest window end of a request (its data's freshness)."""
    if features.empty:
        return None
    return float(pd.Timestamp(features["window_end"].max()).timestamp())
