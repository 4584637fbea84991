"""What alerting does when models fail (seed 001 failure-mode table).

* scoring crashes → the last good score partition stays (writes are atomic) and is used until
  its age makes it very stale;
* NaN/null scores → the scoring asset's blocking contract check writes nothing;
* anomalous score distribution → :func:`distribution_shift` pauses the model's scoring;
* stale features → :func:`scoring_hold_reason` holds scoring;
* score age → :mod:`staleness` bands; when no batch model has usable scores,
  :func:`rules_fallback_alerts` raises conservative alerts from feature thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.alerts.generation import alert_id
from refrig_assets.alerts.severity import alert_policy, mark_suppressed, sla_deadline
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.lifecycle.canary import histogram_kl
from refrig_assets.lifecycle.gates import COMPARISONS
from refrig_assets.lifecycle.staleness import ACTION, Action, Staleness, classify_age
from refrig_assets.lifecycle.staleness import schedule_allowance as _allowance
from refrig_assets.scoring.summary import score_counts

FALLBACK_SOURCE = "fallback"
FALLBACK_PROVENANCE = "fallback_rules"
# The serving state of a model whose training fitted nothing (see ModelStatus.not_trained).
NOT_TRAINED = "NOT_TRAINED"


def partition_start(stem: str) -> pd.Timestamp:
    """Start of a stored partition from its file stem (``2026-01-01T05`` or ``2026-01-01``)."""
    if "T" in stem:
        return pd.Timestamp(f"{stem[:10]} {stem[11:13]}:00", tz="UTC")
    return pd.Timestamp(stem, tz="UTC")


def newest_window_end(store: ParquetStore, dataset: str, as_of: datetime) -> pd.Timestamp | None:
    """End of the newest window of ``dataset`` at or before ``as_of`` (None: nothing yet)."""
    as_of = pd.Timestamp(as_of)
    stems = [s for s in store.partitions(dataset) if s != "all" and partition_start(s) < as_of]
    for stem in reversed(stems):
        ends = pq.read_table(
            store.root / dataset / f"{stem}.parquet", columns=["window_end"]
        ).column("window_end")
        values = pd.Series(ends.to_pandas())
        values = values[values <= as_of]
        if len(values):
            return pd.Timestamp(values.max())
    return None


@dataclass(frozen=True)
class ModelStatus:
    """One model's serving state at ``as_of``."""

    model_id: str
    schedule: str
    as_of: datetime
    newest_scores_end: datetime | None
    score_age: timedelta | None
    staleness: Staleness
    action: Action
    paused: bool
    production: str | None
    pinned: str | None
    features_stale: bool
    message: str
    # What serving found wrong (corrupt artifact, alias moved outside the gates); "" when none.
    problem: str = ""
    # The version that really serves when known (the last good one after a corrupt artifact);
    # None with ``unservable``: no version loads.
    served: str | None = None
    resolved: bool = False
    unservable: bool = False
    # Why the model has no version: its training fitted nothing (a small fleet); "" otherwise.
    not_trained: str = ""

    @property
    def serving(self) -> str | None:
        if self.resolved:
            return self.served
        return self.pinned or self.production

    @property
    def state(self) -> str:
        if self.paused:
            return "PAUSED"
        if self.not_trained:
            return NOT_TRAINED
        if self.unservable:
            return "UNSERVABLE"
        return str(self.staleness)

    def row(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "schedule": self.schedule,
            "as_of": pd.Timestamp(self.as_of),
            "state": self.state,
            "action": str(self.action),
            "score_age_hours": None
            if self.score_age is None
            else round(self.score_age.total_seconds() / 3600, 3),
            "newest_scores_end": None
            if self.newest_scores_end is None
            else pd.Timestamp(self.newest_scores_end),
            "serving_version": self.serving,
            "production_version": self.production,
            "pinned_version": self.pinned,
            "paused": self.paused,
            "features_stale": self.features_stale,
            "message": self.message,
            "serving_problem": self.problem,
        }


def model_status(
    model_id: str,
    schedule: str,
    as_of: datetime,
    newest_scores_end: datetime | None,
    staleness_policy: dict[str, Any],
    *,
    paused: bool = False,
    production: str | None = None,
    pinned: str | None = None,
    features_stale: bool = False,
    served: str | None = None,
    resolved: bool = False,
    problem: str = "",
    not_trained: str = "",
) -> ModelStatus:
    """Classify one model: staleness band of its newest scores and what alerting does.

    ``resolved`` says ``served`` is the version that really serves (see
    :mod:`refrig_assets.lifecycle.integrity`); resolved with none served, no version loads and
    the model is left to the rules-based fallback, like a paused one. ``problem`` is what
    serving found wrong (a corrupt artifact, a refused alias). ``not_trained`` is why a model
    has no version because its training fitted nothing (a small fleet): a known state, shown as
    such, whose hours are left to the rules-based fallback like an unservable model's."""
    age = None
    if newest_scores_end is not None:
        age = max(timedelta(0), pd.Timestamp(as_of) - pd.Timestamp(newest_scores_end))
    counted = None if age is None else max(timedelta(0), age - _allowance(schedule))
    staleness = classify_age(counted, staleness_policy)
    unservable = resolved and served is None
    action = Action.RULES_FALLBACK if paused or unservable else ACTION[staleness]
    if paused:
        message = "scoring paused: rules-based fallback until resumed"
    elif not_trained:
        message = f"not trained ({not_trained}): rules-based fallback"
    elif unservable:
        message = "no version of the model loads: rules-based fallback"
    elif staleness is Staleness.NO_SCORES:
        message = "no scores yet: streaming rules only"
    else:
        hours = age.total_seconds() / 3600 if age is not None else 0.0
        message = f"newest scores {hours:.2f} h old: {action}"
    if features_stale:
        message += "; features stale: scoring held"
    if problem:
        message += f"; {problem}"
    return ModelStatus(
        model_id,
        schedule,
        as_of,
        newest_scores_end,
        age,
        staleness,
        action,
        paused,
        production,
        pinned,
        features_stale,
        message,
        problem=problem,
        served=served,
        resolved=resolved,
        unservable=unservable,
        not_trained=not_trained,
    )


def fleet_action(states: pd.DataFrame) -> Action:
    """What batch alerting does for the fleet, from model state rows (``schedule``, ``action``;
    see :meth:`ModelStatus.row`): normal while any model alerting on the current hour (hourly
    models, or all when none is hourly) has usable scores; else rules-based fallback while any
    is very stale or paused; else streaming rules only."""
    if states.empty:
        return Action.STREAMING_ONLY
    hourly = states[states["schedule"] == "hourly"]
    actions = set((hourly if len(hourly) else states)["action"])
    if actions & {Action.NORMAL, Action.DELAYED}:
        return Action.NORMAL
    if Action.RULES_FALLBACK in actions:
        return Action.RULES_FALLBACK
    return Action.STREAMING_ONLY


# -- holds and pauses ---------------------------------------------------------------------------


def scoring_hold_reason(
    paused: bool, features: pd.DataFrame, partition_end: datetime, sla_minutes: float
) -> str | None:
    """Why scoring must not run for this partition (None: score it). Stale features — the
    newest window ends more than the features' freshness SLA before the partition's end —
    produce misleading scores, so they are not scored."""
    if paused:
        return "scoring paused for this model (resume with `refrig models resume`)"
    end = pd.Timestamp(partition_end)
    newest = pd.Timestamp(features["window_end"].max()) if len(features) else None
    if newest is None or end - newest > timedelta(minutes=float(sla_minutes)):
        seen = "no feature windows" if newest is None else f"newest window ends {newest}"
        return (
            f"features stale: {seen}, more than the {sla_minutes:g} min freshness SLA before "
            f"the partition end {end}"
        )
    return None


def distribution_shift(
    new_scores: np.ndarray,
    reference_scores: np.ndarray,
    pause_policy: dict[str, Any],
    bins: int,
    epsilon: float,
) -> tuple[bool, float | None, str]:
    """Whether newly scored windows diverge from the version's reference scores enough to pause
    scoring: (anomalous, KL or None when too few windows to judge, explanation)."""
    new = np.asarray(new_scores, dtype=float)
    return histogram_shift(
        score_counts(new, bins), len(new), reference_scores, pause_policy, bins, epsilon
    )


def histogram_shift(
    new_counts: np.ndarray,
    new_windows: int,
    reference_scores: np.ndarray,
    pause_policy: dict[str, Any],
    bins: int,
    epsilon: float,
) -> tuple[bool, float | None, str]:
    """:func:`distribution_shift` of new scores known only by their histogram (``bins`` counts,
    :func:`~refrig_assets.scoring.summary.score_counts`) and how many windows they cover: a
    partition written piece by piece never holds all its scores."""
    need = int(pause_policy["min_windows"])
    ref = np.asarray(reference_scores, dtype=float)
    if new_windows < need or len(ref) < need:
        return (
            False,
            None,
            f"too few windows to judge ({new_windows} new, {len(ref)} reference; need {need})",
        )
    kl = histogram_kl(np.asarray(new_counts), score_counts(ref, bins), epsilon)
    limit = float(pause_policy["when_kl_above"])
    if kl > limit:
        return (
            True,
            kl,
            f"score distribution diverged from the previous scores: KL {kl:.3f} > {limit:g}",
        )
    return False, kl, f"score distribution KL {kl:.3f} <= {limit:g}"


# -- rules-based fallback -----------------------------------------------------------------------


@dataclass(frozen=True)
class FallbackRule:
    feature: str
    word: str
    threshold: float
    unit: str
    why: str

    def fires(self, values: pd.Series) -> np.ndarray:
        passes, _ = COMPARISONS[self.word]
        v = values.to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            return np.where(np.isnan(v), False, passes(v, self.threshold))

    def describe(self, value: float) -> str:
        symbol = COMPARISONS[self.word][1]
        return f"{self.feature} {value:.2f} {self.unit} {symbol} {self.threshold:g} {self.unit} ({self.why})"


def fallback_rules(
    fallback_policy: dict[str, Any], where: str = "fallback.rules"
) -> list[FallbackRule]:
    """The rules of the policy, checked against the device_features contract."""
    contract = load_contract("device_features")
    rules = []
    for i, raw in enumerate(fallback_policy["rules"]):
        words = [w for w in ("above", "below", "at_least", "at_most") if w in raw]
        if "feature" not in raw or len(words) != 1:
            raise ValueError(
                f"{where}[{i}]: needs a feature and one of above/below/at_least/at_most"
            )
        try:
            contract.column(raw["feature"])
        except KeyError:
            raise ValueError(
                f"{where}[{i}]: {raw['feature']!r} is not a device_features column"
            ) from None
        rules.append(
            FallbackRule(
                raw["feature"],
                words[0],
                float(raw[words[0]]),
                raw.get("unit", ""),
                raw.get("why", ""),
            )
        )
    return rules


def rules_fallback_alerts(
    features: pd.DataFrame,
    device_registry: pd.DataFrame,
    previous_alerts: pd.DataFrame,
    fallback_policy: dict[str, Any],
    feature_partition: str,
    run_id: str,
) -> pd.DataFrame:
    """Conservative alerts in the device_alerts contract (``source = 'fallback'``) for every
    window where a threshold rule fires. No model is involved: max_score is 0 and the severity is
    the policy's; top contributors are the sensors whose rules fired."""
    contract = load_contract("device_alerts")
    severity = fallback_policy["severity"]
    if severity not in (contract.column("severity").allowed or ()):
        raise ValueError(f"fallback.severity {severity!r} is not a device_alerts severity")
    rules = fallback_rules(fallback_policy)
    if features.empty:
        return contract.empty_frame()
    fired = np.column_stack([r.fires(features[r.feature]) for r in rules])
    rows = np.flatnonzero(fired.any(axis=1))
    if not len(rows):
        return contract.empty_frame()
    features_contract = load_contract("device_features")
    reg = device_registry.set_index("device_id")
    out = []
    for i in rows:
        window = features.iloc[i]
        hits = [r for r, f in zip(rules, fired[i], strict=True) if f]
        sensors = list(
            dict.fromkeys(
                features_contract.column(r.feature).extra.get("sensor", r.feature) for r in hits
            )
        )
        out.append(
            {
                "device_id": window["device_id"],
                "window_start": window["window_start"],
                "window_end": window["window_end"],
                "top_contributors": ",".join(sensors),
                "explanation": "Rules-based fallback (model scores unavailable): "
                + "; ".join(r.describe(float(window[r.feature])) for r in hits),
            }
        )
    alerts = pd.DataFrame(out)
    alerts["site_id"] = alerts["device_id"].map(reg["site_id"]).fillna("unknown")
    alerts["cohort"] = alerts["device_id"].map(reg["cohort"]).fillna("unknown")
    alerts["source"] = FALLBACK_SOURCE
    alerts["alert_type"] = "ANOMALY_DETECTED"
    alerts["severity"] = severity
    alerts["max_score"] = 0.0
    alerts["models_flagging"] = np.int64(0)
    alerts["model_versions"] = FALLBACK_PROVENANCE
    alerts["alert_created_at"] = alerts["window_end"]
    alerts["sla_deadline"] = sla_deadline(alerts["alert_created_at"], alerts["severity"])
    alerts["escalation_level"] = alert_policy().escalation_levels[0]
    alerts["suppressed"] = mark_suppressed(alerts, previous_alerts)
    alerts["feature_partition"] = feature_partition
    alerts["run_id"] = run_id
    alerts["alert_id"] = [
        alert_id(d, w, FALLBACK_SOURCE)
        for d, w in zip(alerts["device_id"], alerts["window_start"], strict=True)
    ]
    alerts["models_flagging"] = alerts["models_flagging"].astype(np.int64)
    return alerts[contract.column_names].reset_index(drop=True)
