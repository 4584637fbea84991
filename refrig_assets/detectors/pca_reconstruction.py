"""PCA reconstruction detector: Hotelling's T² and the Q residual (squared prediction error).

Inputs are device-relative residuals adjusted for the context features
(:class:`~refrig_assets.detectors.normalise.DeviceResiduals`: each device against its own
baseline, devices without one against their cohort's). Per cohort (and once for the fleet, for
cohorts with too few training windows or unknown ones) a principal component analysis of those
residuals learns the few directions in which healthy devices move their sensors together (the
weather, the load, a defrost). A device without a baseline of its own sits where its cohort's
devices differ from one another, which is not how one device moves in time: its windows are
judged by a second set of subspaces, fitted on every training window centred on its cohort
(in the spread between devices). A window is then judged twice:

* **T²** — how far it lies *along* those directions, each in units of its own spread: a large,
  familiar kind of change (everything shifted as in a hot afternoon, only much further);
* **Q** — how much of it lies *outside* them, the part the components cannot reconstruct: the
  sensors no longer move together as they do on healthy devices (a correlated-sensor break),
  even when every sensor on its own stays inside its usual range.

The raw score is ``T²/T²_limit + Q/Q_limit``, each statistic over its training quantile
(``control_quantile``), so neither dominates by its units; the shared calibration turns it into
the anomaly score. A feature's contribution is its share of that sum (its squared prediction
error in Q plus its part of T²), so the contributors name the sensors that broke the pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from refrig_assets.detectors.base import Detector, register_detector
from refrig_assets.detectors.blas_threads import one_blas_thread
from refrig_assets.detectors.normalise import DeviceResiduals
from refrig_assets.detectors.value_runs import factorize_runs

FLEET = "__fleet__"
# A component with less variance than this (in residual units²) carries no direction to score.
MIN_EIGENVALUE = 1e-6


@dataclass
class PrincipalSubspace:
    """One group's principal components of the residuals and the control limits of T² and Q."""

    mean: np.ndarray  # (features,)
    components: np.ndarray  # (features, retained): orthonormal columns
    eigenvalues: np.ndarray  # (retained,)
    t2_limit: float
    q_limit: float  # 0 when every direction is retained (no residual space: Q is always 0)

    @classmethod
    def fit(
        cls, x: np.ndarray, variance_explained: float, quantile: float, clip: float
    ) -> PrincipalSubspace:
        """Components explaining ``variance_explained`` of the (clipped) training residuals,
        at most all but one, so a residual space remains for Q whenever there are two or more
        features; limits are the ``quantile`` of each statistic over the training rows."""
        k = x.shape[1]
        fitted = np.clip(x, -clip, clip)
        mean = fitted.mean(axis=0)
        cov = np.atleast_2d(np.cov(fitted - mean, rowvar=False)) if len(x) > 1 else np.eye(k)
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1]
        values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
        total = values.sum()
        share = np.cumsum(values) / total if total > 0 else np.ones(k)
        retained = int(np.searchsorted(share, variance_explained - 1e-12) + 1)
        retained = max(1, min(retained, k - 1 if k > 1 else 1))
        space = cls(
            mean=mean,
            components=vectors[:, :retained],
            eigenvalues=np.maximum(values[:retained], MIN_EIGENVALUE),
            t2_limit=1.0,
            q_limit=1.0 if retained < k else 0.0,
        )
        t2, q, _, _ = space.statistics(x)
        space.t2_limit = max(float(np.quantile(t2, quantile)), MIN_EIGENVALUE)
        if retained < k:
            space.q_limit = max(float(np.quantile(q, quantile)), MIN_EIGENVALUE)
        return space

    def statistics(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(T², Q, centred rows, prediction errors) of rows ``x``."""
        t2, q, centred, errors, _, _ = self._statistics(x)
        return t2, q, centred, errors

    def _statistics(
        self, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`statistics`, the rows' coordinates on the components and the squared
        prediction errors (None without a residual space)."""
        centred = x - self.mean
        scores = centred @ self.components
        t2 = (scores**2 / self.eigenvalues).sum(axis=1)
        errors = centred - scores @ self.components.T
        squared = errors**2 if self.q_limit > 0 else None
        q = squared.sum(axis=1) if squared is not None else np.zeros(len(x))
        return t2, q, centred, errors, scores, squared

    def evaluate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw score ``T²/T²_limit + Q/Q_limit`` per row and each feature's signed share of it
        in percent (the sign: above or below the baseline)."""
        t2, q, centred, _, scores, squared = self._statistics(x)
        raw = t2 / self.t2_limit
        # T² splits exactly over the features as centred_j · (P Λ⁻¹ Pᵀ centred)_j.
        # The same operations as written out, in place: the (rows × features) temporaries
        # cost more than the arithmetic.
        share = (scores / self.eigenvalues) @ self.components.T
        share *= centred
        share /= self.t2_limit
        if squared is not None:
            raw = raw + q / self.q_limit
            squared /= self.q_limit
            share += squared
        np.abs(share, out=share)
        with np.errstate(invalid="ignore", divide="ignore"):
            share /= raw[:, None]
        share *= 100.0
        share[~(raw > 0)] = 0.0
        share *= np.sign(centred)
        return raw, share


@register_detector
class PcaReconstructionDetector(Detector):
    """Per-cohort PCA of device-relative residuals: T² along the components, Q outside them."""

    kind = "pca_reconstruction"

    def _inputs(self, frame: pd.DataFrame, at: np.ndarray | None = None) -> np.ndarray:
        """Context-adjusted residuals; a missing value is read as the baseline itself (0).
        ``at``: the rows' device positions among those with a baseline, when known."""
        return np.nan_to_num(self.residuals.residuals(frame, self.fitting, at=at), nan=0.0)

    def fit_raw(self, frame: pd.DataFrame) -> np.ndarray:
        self.residuals = DeviceResiduals(
            int(self.config.hyperparameter("min_device_windows")),
            float(self.config.hyperparameter("covariance_shrinkage")),
        ).fit(frame, self.input_columns, len(self.feature_columns))
        x = self._inputs(frame)
        cohorts = frame["cohort"].to_numpy()
        settings = (
            float(self.config.hyperparameter("variance_explained")),
            float(self.config.hyperparameter("control_quantile")),
            float(self.config.hyperparameter("input_clip")),
        )
        min_rows = int(self.config.hyperparameter("min_cohort_rows"))
        self.subspaces = self._fit_subspaces(x, cohorts, settings, min_rows)
        # Devices without a baseline of their own sit where their cohort's devices differ from
        # one another, not where one device moves in time: the directions and limits they are
        # judged by are learned from every training row taken that way.
        as_new = np.nan_to_num(self.residuals.residuals(frame, as_new=True), nan=0.0)
        self.new_subspaces = self._fit_subspaces(as_new, cohorts, settings, min_rows)
        raw, _, _ = self.raw_scores(frame)
        return raw

    @staticmethod
    def _fit_subspaces(
        x: np.ndarray, cohorts: np.ndarray, settings: tuple[float, float, float], min_rows: int
    ) -> dict[str, PrincipalSubspace]:
        """The fleet's subspace and one per cohort with at least ``min_rows`` training rows."""
        subspaces = {FLEET: PrincipalSubspace.fit(x, *settings)}
        for cohort in sorted(pd.unique(cohorts)):
            rows = cohorts == cohort
            if rows.sum() >= min_rows:
                subspaces[cohort] = PrincipalSubspace.fit(x[rows], *settings)
        return subspaces

    @one_blas_thread
    def raw_scores(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        at = self.residuals.baseline.positions(frame)
        x = self._inputs(frame, at)  # rows of devices without a baseline: as in fitting's as_new
        # Those rows are judged by their own subspaces where the model has them (models saved
        # before them judge every row by one).
        new_subspaces = getattr(self, "new_subspaces", None)
        new = at < 0 if new_subspaces is not None else None
        # Each cohort's rows in ascending order, found by one stable sort of the cohorts'
        # codes (a NaN cohort's rows are not scored: code -1, first, skipped).
        codes, cohorts = factorize_runs(frame["cohort"].to_numpy())
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(cohorts) + 1))
        raw = np.zeros(len(x))
        shares = np.zeros_like(x)
        for code, cohort in enumerate(cohorts):
            rows = order[bounds[code] : bounds[code + 1]]
            groups = [(rows, self.subspaces)]
            if new is not None and new_subspaces is not None and new[rows].any():
                groups = [(rows[~new[rows]], self.subspaces), (rows[new[rows]], new_subspaces)]
            for part, subspaces in groups:
                space = subspaces.get(cohort, subspaces[FLEET])
                raw[part], shares[part] = space.evaluate(x[part])
        template = "{value}% of the T²+Q surprise, {direction} this device's baseline"
        return raw, shares, [template] * len(self.feature_columns)

    def describe(self) -> dict[str, float]:
        """Components retained by the fleet subspace and how many cohorts have their own."""
        return {
            "components": float(self.subspaces[FLEET].components.shape[1]),
            "cohort_subspaces": float(len(self.subspaces) - 1),
        }
