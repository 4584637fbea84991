"""How the scored features follow the context features (site ambient, ...), per cohort.

A detector that conditions on the context (``features.context`` in ``models/``) must not take a
move of the context beyond what training saw for a fault. The coupling (the slope of each
feature on each context feature, in the features' prepared units) is learned from two sources:

* **within devices**: each window's deviation from its device's training median against its
  context's deviation, pooled over the cohort's devices. Precise when the context moved during
  training (a day of weather), empty when it barely did (a short training range);
* **between devices**: each device's median against its context's median. Devices of one cohort
  stand at sites of different ambient, so the slope shows even when no device's ambient moved.

Both are robust (Huber) regressions; they are combined by their information (inverse variance),
as a random-effects estimator combines its within and between estimators, so whichever the
training data can tell more precisely dominates. Where the two disagree beyond their variances
(devices' offsets that happen to follow their ambients: a few devices at one site), the between
estimate is trusted that much less. A context with no spread at all in a cohort (nor in the
fleet) is not learned: its slopes are 0 and :meth:`ContextCoupling.unlearned_outside` reports
the windows whose context lies outside the range training saw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.detectors.normalise import MAD_TO_SIGMA

# Huber's tuning constant (95 % efficiency under normal errors) and the reweighting passes.
HUBER_K = 1.345
HUBER_STEPS = 4
FLEET = "__fleet__"


def _spread_tolerance(values: np.ndarray) -> float:
    """Below this a context's spread is rounding, not information (relative to its size)."""
    finite = values[np.isfinite(values)]
    size = float(np.max(np.abs(finite))) if len(finite) else 0.0
    return float(np.sqrt(np.finfo(float).eps)) * max(1.0, size)


def _huber_slopes(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slopes of ``y`` on the columns of ``design`` (with an intercept), Huber-weighted, and
    their information matrix (inverse covariance); zeros when too few rows."""
    m = design.shape[1]
    ok = np.isfinite(y) & np.isfinite(design).all(axis=1)
    if ok.sum() <= m + 2:
        return np.zeros(m), np.zeros((m, m))
    x, y = design[ok], y[ok]
    w = np.ones(len(y))
    for _ in range(HUBER_STEPS):
        xc = x - (w @ x) / w.sum()
        yc = y - (w @ y) / w.sum()
        gram = (xc.T * w) @ xc
        slopes = np.linalg.pinv(gram) @ ((xc.T * w) @ yc)
        r = yc - xc @ slopes
        scale = float(np.median(np.abs(r))) * MAD_TO_SIGMA
        if not scale > 0:
            scale = float(np.sqrt(np.mean(r**2)))
        if not scale > 0:  # an exact fit: as informative as the data can be
            return slopes, np.full((m, m), np.inf)
        w = np.minimum(1.0, HUBER_K * scale / np.maximum(np.abs(r), 1e-300))
    return slopes, gram / scale**2


def _combined(
    within: tuple[np.ndarray, np.ndarray], between: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The information-weighted combination of two slope estimates, and its information.

    The between-device estimate is consistent only while what sets devices apart (their
    installation, their load) is unrelated to their context; a few devices at one site can line
    their offsets up with their ambients by chance. Where both estimates are informative, their
    disagreement measured against their own variances (a Hausman statistic ``q`` on the
    contexts' degrees of freedom) inflates the between estimate's variance by ``q / contexts``
    when above 1 (a Birge ratio), so a confounded between slope no longer outweighs a precise
    within slope; estimates that agree are combined as before."""
    (b_w, info_w), (b_b, info_b) = within, between
    for b, info in ((b_w, info_w), (b_b, info_b)):
        if np.isinf(info).any():
            return b, info
    info_b = info_b / _heterogeneity(b_w - b_b, info_w, info_b)
    information = info_w + info_b
    return np.linalg.pinv(information) @ (info_w @ b_w + info_b @ b_b), information


def _heterogeneity(difference: np.ndarray, info_w: np.ndarray, info_b: np.ndarray) -> float:
    """How much more the two estimates differ than their variances allow (at least 1; 1 when
    either estimate carries no information of its own)."""
    m = len(difference)
    for info in (info_w, info_b):
        if not np.isfinite(info).all() or np.linalg.matrix_rank(info) < m:
            return 1.0
    variance = np.linalg.inv(info_w) + np.linalg.inv(info_b)
    q = float(difference @ np.linalg.solve(variance, difference))
    return max(1.0, q / m) if np.isfinite(q) else 1.0


class ContextCoupling:
    """Per-cohort slopes (contexts × features) of the scored features on the context features."""

    def fit(
        self,
        deviation: np.ndarray,
        context_deviation: np.ndarray,
        cohorts: np.ndarray,
        device_median: np.ndarray,
        device_context: np.ndarray,
        device_cohorts: np.ndarray,
        context: np.ndarray,
    ) -> ContextCoupling:
        """``deviation``/``context_deviation``: each training window's features and context
        minus its device's medians (rows × features / contexts, NaN where unknown), ``cohorts``
        per window; ``device_median``/``device_context``/``device_cohorts``: one row per device
        with enough history; ``context``: the windows' context values (the range trained)."""
        self.slopes: dict[object, np.ndarray] = {}
        # Per group: each feature's covariance of its slopes (features x contexts x contexts).
        self.slope_covariance: dict[object, np.ndarray] = {}
        self.learned: dict[object, np.ndarray] = {}
        self.low: dict[object, np.ndarray] = {}
        self.high: dict[object, np.ndarray] = {}
        # The fleet: devices' medians against the means of their cohorts (the between-cohort
        # differences are a different machine, not a different context).
        centred_median = device_median.copy()
        centred_context = device_context.copy()
        for cohort in _unique(device_cohorts):
            rows = device_cohorts == cohort
            with np.errstate(all="ignore"):
                centred_median[rows] -= np.nanmean(device_median[rows], axis=0)
                centred_context[rows] -= np.nanmean(device_context[rows], axis=0)
        self._fit_group(
            FLEET, deviation, context_deviation, centred_median, centred_context, context
        )
        for cohort in _unique(cohorts):
            rows, devices = cohorts == cohort, device_cohorts == cohort
            self._fit_group(
                cohort,
                deviation[rows],
                context_deviation[rows],
                device_median[devices],
                device_context[devices],
                context[rows],
            )
            # A context the cohort never varied in takes the fleet's slope, if the fleet has one.
            borrowed = ~self.learned[cohort] & self.learned[FLEET]
            self.slopes[cohort][borrowed] = self.slopes[FLEET][borrowed]
            self.slope_covariance[cohort][:, borrowed] = self.slope_covariance[FLEET][:, borrowed]
            self.learned[cohort] = self.learned[cohort] | borrowed
        return self

    def _fit_group(
        self,
        group: object,
        deviation: np.ndarray,
        context_deviation: np.ndarray,
        device_median: np.ndarray,
        device_context: np.ndarray,
        context: np.ndarray,
    ) -> None:
        k, m = deviation.shape[1], context_deviation.shape[1]
        with np.errstate(all="ignore"):
            self.low[group] = np.nanmin(np.where(np.isfinite(context), context, np.inf), axis=0)
            self.high[group] = np.nanmax(np.where(np.isfinite(context), context, -np.inf), axis=0)
        learned = np.zeros(m, dtype=bool)
        for i in range(m):
            for values in (context_deviation[:, i], device_context[:, i]):
                finite = values[np.isfinite(values)]
                if len(finite) > 2 and np.std(finite) > _spread_tolerance(context[:, i]):
                    learned[i] = True
        slopes = np.zeros((m, k))
        covariance = np.zeros((k, m, m))
        if learned.any():
            both = np.ix_(learned, learned)
            for j in range(k):
                within = _huber_slopes(context_deviation[:, learned], deviation[:, j])
                between = _huber_slopes(device_context[:, learned], device_median[:, j])
                slopes[learned, j], information = _combined(within, between)
                if np.isfinite(information).all():
                    covariance[j][both] = np.linalg.pinv(information)
        self.slopes[group] = slopes
        self.slope_covariance[group] = covariance
        self.learned[group] = learned

    def slopes_of(self, cohorts: np.ndarray) -> np.ndarray:
        """Slopes per cohort of ``cohorts`` (cohorts × contexts × features); the fleet's for a
        cohort training did not see."""
        fleet = self.slopes[FLEET]
        return np.stack([self.slopes.get(c, fleet) for c in cohorts])

    def extrapolation_variance(self, shift: np.ndarray, cohorts: np.ndarray) -> np.ndarray:
        """Variance (rows x features, in the features' units²) of the adjustment of rows whose
        context moved by ``shift`` (rows x contexts) from the device's usual one: the slopes'
        own uncertainty, which grows with how far the context moved. Adjusting a window far
        beyond the training range by a slope known only roughly is judged by that much less."""
        fleet = self.slope_covariance[FLEET]
        out = np.zeros((len(shift), fleet.shape[0]))
        for cohort in _unique(cohorts):
            rows = cohorts == cohort
            covariance = self.slope_covariance.get(cohort, fleet)
            out[rows] = np.einsum("rm,kmn,rn->rk", shift[rows], covariance, shift[rows])
        return out

    def unlearned_outside(self, context: np.ndarray, cohorts: np.ndarray) -> np.ndarray:
        """Per row and context: the value lies outside the range its cohort's training saw and
        the coupling to it could not be learned (the adjustment is missing, not just
        extrapolated)."""
        out = np.zeros(context.shape, dtype=bool)
        for cohort in _unique(cohorts):
            rows = cohorts == cohort
            group = cohort if cohort in self.slopes else FLEET
            with np.errstate(invalid="ignore"):
                beyond = (context[rows] < self.low[group]) | (context[rows] > self.high[group])
            out[rows] = beyond & ~self.learned[group]
        return out


def _unique(values: np.ndarray) -> list:
    """Distinct values in order of first occurrence (NaN cohorts dropped)."""
    return [v for v in pd.unique(values) if v == v]
