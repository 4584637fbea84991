"""Robust baselines shared by the detectors.

* :class:`CohortScaler` — each feature scaled by its cohort's median and robust spread.
* :class:`DeviceBaseline` — each feature relative to the device's own median over its training
  windows (devices with too little history use their cohort's), in units of the cohort's typical
  within-device spread. What stays is how far a device moved from *its own* normal, which is
  what a gradual fault changes; the spread between devices of one type is removed.
* :class:`ConditionalGaussian` — the joint distribution of those residuals in one group
  (a cohort): each feature's residual is judged *given the other features observed in the same
  window*. Normal operating modes that move several features together (a defrost, a pull-down,
  a hot afternoon) stay unremarkable; a combination the group never shows does not.
"""

from __future__ import annotations

import warnings
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from refrig_assets.detectors.value_runs import factorize_runs, per_run

if TYPE_CHECKING:
    from refrig_assets.detectors.context import ContextCoupling

MAD_TO_SIGMA = 1.4826
# Mean absolute deviation to standard deviation (normal data): sqrt(pi / 2).
MEAN_AD_TO_SIGMA = float(np.sqrt(np.pi / 2))
CLIP = 50.0
# Variance of a sample median relative to a sample mean's (normal data): pi / 2.
MEDIAN_VARIANCE_FACTOR = np.pi / 2
# Devices looked up in a dict made once per baseline (get_indexer's answer) up to this many rows.
FEW_ROWS = 64

# What scoring derives from a fitted model's state alone (a covariance block's inverse, the
# regression on the observed context features, the device positions), made once per model and
# block pattern instead of once per call: a request's few windows paid more for them than for
# their own arithmetic. Held beside the model, never saved with it, dropped with it (a reload
# loads new objects) and when it is fitted again.
_DERIVED: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()


# Up to this many cohorts a request's cohort centres are looked up per cohort.
_FEW_COHORTS = 64


def _derived(model: Any) -> dict[Any, Any]:
    found = _DERIVED.get(model)
    if found is None:
        found = _DERIVED[model] = {}
    return found


def out_of_sample_factor(n: np.ndarray) -> np.ndarray:
    """How much wider a residual from a median of ``n`` values is for a new value than for one
    of the ``n`` it was computed from: sqrt((1 + (π/2)/n) / (1 - 1/n)). Training residuals are
    widened by it, so baselines, covariances and calibration fitted on them hold for the data
    that is scored later (about 17 % for eight windows, under 1 % for a day of them)."""
    n = np.maximum(np.asarray(n, dtype=float), 2.0)
    return np.sqrt((1 + MEDIAN_VARIANCE_FACTOR / n) / (1 - 1 / n))


def robust_scale(values: np.ndarray, floor: np.ndarray | float = 1e-6) -> np.ndarray:
    """Per-column MAD·1.4826 around 0 (columns of residuals), NaN ignored, floored.

    Never below half the spread the mean absolute deviation gives (``MEAN_AD_TO_SIGMA``): a
    feature whose values mostly repeat one number (the duty cycle of one-minute windows is 0 or
    1, a door fraction is mostly 0) has a MAD of 0, and every other value would then sit at the
    clip as if it were a fault."""
    with np.errstate(all="ignore"):
        magnitude = np.abs(values)
        mad = np.nanmedian(magnitude, axis=0) * MAD_TO_SIGMA
        mean_ad = np.nanmean(magnitude, axis=0) * MEAN_AD_TO_SIGMA
    spread = np.maximum(np.nan_to_num(mad, nan=0.0), 0.5 * np.nan_to_num(mean_ad, nan=0.0))
    return np.maximum(spread, floor)


def _float_columns(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """``np.array(frame[columns], dtype=float)`` (column-major, as pandas builds it), filled
    column by column: selecting the columns first would copy and merge them once more. A
    request's :class:`~refrig_assets.detectors.base.FewRows` holds numpy arrays only."""
    if isinstance(frame, pd.DataFrame) and (
        not frame.columns.is_unique
        or not all(isinstance(frame[c].dtype, np.dtype) for c in columns)
    ):
        return np.array(frame[columns], dtype=float)
    out = np.empty((len(frame), len(columns)), order="F")
    for j, column in enumerate(columns):
        out[:, j] = frame[column].to_numpy()
    return out


class CohortScaler:
    """Scale each feature by its cohort's median and robust spread; unknown cohorts use the fleet."""

    def fit(self, frame: pd.DataFrame, columns: list[str]) -> CohortScaler:
        self.columns = list(columns)
        values = frame[self.columns].astype(float)
        self.fleet_center = values.median().to_numpy()
        fleet_mad = (values - self.fleet_center).abs().median().to_numpy() * MAD_TO_SIGMA
        self.fleet_scale = np.where(fleet_mad > 0, fleet_mad, values.std().fillna(1.0).to_numpy())
        self.fleet_scale = np.maximum(np.nan_to_num(self.fleet_scale, nan=1.0), 1e-6)
        self.center: dict[str, np.ndarray] = {}
        self.scale: dict[str, np.ndarray] = {}
        for cohort, group in values.groupby(frame["cohort"].to_numpy()):
            med = group.median().to_numpy()
            mad = (group - med).abs().median().to_numpy() * MAD_TO_SIGMA
            # A spread far below the fleet's would turn noise into huge z-scores.
            self.center[cohort] = np.where(np.isnan(med), self.fleet_center, med)
            self.scale[cohort] = np.maximum(np.nan_to_num(mad, nan=0.0), 0.1 * self.fleet_scale)
        return self

    def transform(self, frame: pd.DataFrame, fill: bool = True) -> np.ndarray:
        """Scaled features; missing values become 0 (the cohort median) unless ``fill=False``."""
        x = frame[self.columns].to_numpy(dtype=float, copy=True)
        cohorts = frame["cohort"].to_numpy()
        out = np.empty_like(x)
        for cohort in pd.unique(cohorts):
            idx = cohorts == cohort
            center = self.center.get(cohort, self.fleet_center)
            scale = self.scale.get(cohort, self.fleet_scale)
            out[idx] = (x[idx] - center) / scale
        out = np.clip(out, -CLIP, CLIP)
        return np.nan_to_num(out, nan=0.0) if fill else out


class DeviceBaseline:
    """Features relative to each device's own training median, in cohort within-device units.

    ``min_device_windows``: fewer training windows (with a value) than this and a device's
    feature is centred on its cohort's median of device medians instead. ``known`` tells, per
    scored row, whether the device had its own baseline (new devices are judged more loosely by
    the callers, which use the spread between devices for them).
    """

    def __init__(self, min_device_windows: int = 4):
        self.min_device_windows = min_device_windows

    def fit(
        self, frame: pd.DataFrame, columns: list[str], n_scored: int | None = None
    ) -> DeviceBaseline:
        """Baselines of ``columns``. With ``n_scored`` (fewer than the columns), the columns
        from ``n_scored`` on are context: the scored features' coupling to them
        (:class:`~refrig_assets.detectors.context.ContextCoupling`) is learned and removed from
        the residuals, so a move of the context is not a move away from the baseline."""
        _DERIVED.pop(self, None)
        self.columns = list(columns)
        self.coupling: ContextCoupling | None = None
        values = frame[self.columns].astype(float)
        devices = frame["device_id"].to_numpy()
        grouped = values.groupby(devices)
        med = grouped.median()
        enough = grouped.count() >= self.min_device_windows
        cohort_of = frame.groupby("device_id")["cohort"].first().reindex(med.index)
        self.cohort_center = med.where(enough).groupby(cohort_of.to_numpy()).median()
        self.fleet_center = med.where(enough).median().fillna(values.median())
        # A device has its own baseline when most of its features have enough history; a
        # feature without enough history stays unjudged for it (NaN) until the next training.
        own = enough.mean(axis=1) >= 0.5
        self.device_center = med.where(enough)[own]
        self.device_count = grouped.count()[own]
        residual = values.to_numpy() - self.device_center.reindex(devices).to_numpy()
        cohorts = frame["cohort"].to_numpy()
        if n_scored is not None and n_scored < len(self.columns):
            from refrig_assets.detectors.context import ContextCoupling

            medians = med.where(enough).to_numpy()
            self.coupling = ContextCoupling().fit(
                residual[:, :n_scored],
                residual[:, n_scored:],
                cohorts,
                medians[:, :n_scored],
                medians[:, n_scored:],
                cohort_of.to_numpy(),
                values.to_numpy()[:, n_scored:],
            )
            self._decouple(residual, *pd.factorize(cohorts))
        residual *= out_of_sample_factor(self.device_count.reindex(devices).to_numpy())
        fleet_scale = robust_scale(residual)
        # A feature that never varies inside a device still needs a unit: a tenth of the
        # spread between devices keeps constant features from dividing by zero.
        between = robust_scale(med.to_numpy() - self.fleet_center.to_numpy(), floor=1e-6)
        self.fleet_scale = np.maximum(fleet_scale, 0.1 * between)
        self.scale: dict[str, np.ndarray] = {}
        for cohort in pd.unique(cohorts):
            self.scale[cohort] = np.maximum(
                robust_scale(residual[cohorts == cohort]), 0.25 * self.fleet_scale
            )
        return self

    def _decouple(self, residual: np.ndarray, codes: np.ndarray, cohorts: Any) -> np.ndarray | None:
        """Remove from the scored columns of ``residual`` (values minus their centres, in
        place) what the context columns' departure from the device's usual context predicts
        for them (a missing context predicts nothing). Returns the variance of that
        adjustment per row and scored column (None without a coupling, or one saved without
        the slopes' uncertainty)."""
        coupling = getattr(self, "coupling", None)  # None in baselines saved before it
        if coupling is None:
            return None
        slopes = coupling.slopes_of(cohorts)  # cohorts x contexts x scored features
        k = slopes.shape[2]
        shift = np.nan_to_num(residual[:, k:], nan=0.0)
        if len(slopes) == 1 and (codes == 0).all():
            residual[:, :k] -= shift @ slopes[0]
        else:
            for code in range(len(slopes)):
                rows = codes == code
                residual[rows, :k] -= shift[rows] @ slopes[code]
        if not hasattr(coupling, "slope_covariance"):
            return None
        names = np.asarray(cohorts, dtype=object)
        return coupling.extrapolation_variance(shift, np.where(codes >= 0, names[codes], None))

    def positions(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's device among those with their own baseline (-1: none)."""
        devices = frame["device_id"].to_numpy()
        if len(devices) <= FEW_ROWS and all(isinstance(d, str) for d in devices):
            derived = _derived(self)
            found = derived.get("positions")
            if found is None:
                index = self.device_center.index
                plain = index.is_unique and all(isinstance(d, str) for d in index)
                found = derived["positions"] = (
                    plain,
                    {d: i for i, d in enumerate(index)} if plain else {},
                )
            plain, where = found
            if plain:
                return np.array([where.get(d, -1) for d in devices], dtype=np.intp)
        return per_run(devices, self.device_center.index.get_indexer)

    def known(self, frame: pd.DataFrame) -> np.ndarray:
        """True for rows whose device has its own baseline."""
        return self.positions(frame) >= 0

    def _cohort_centers(self, cohorts: np.ndarray) -> np.ndarray:
        """The centre of each of ``cohorts`` (rows in that order; the fleet's where a cohort has
        none): for a request's few cohorts each cohort's row is made once per model (a reindex
        per request cost more than its rows' arithmetic)."""
        if not 0 < len(cohorts) <= _FEW_COHORTS:
            return self._reindexed_centers(cohorts)
        known = _derived(self).setdefault("cohort_centers", {})
        rows = []
        for i, cohort in enumerate(cohorts.tolist()):
            row = known.get(cohort)
            if row is None:
                row = self._reindexed_centers(cohorts[i : i + 1])[0]
                if len(known) < _FEW_COHORTS * 16:
                    known[cohort] = row
            rows.append(row)
        return np.stack(rows)

    def _reindexed_centers(self, cohorts: np.ndarray) -> np.ndarray:
        fallback = self.cohort_center.reindex(cohorts).to_numpy()
        return np.where(np.isnan(fallback), self.fleet_center.to_numpy(), fallback)

    def transform(
        self,
        frame: pd.DataFrame,
        as_new: bool = False,
        in_sample: bool = False,
        at: np.ndarray | None = None,
    ) -> np.ndarray:
        """Residuals in units of the cohort's within-device spread (NaN where a value is
        missing). Devices without their own baseline — or every device with ``as_new`` — are
        centred on their cohort. ``in_sample``: the rows are the training rows the baselines
        came from; their residuals are widened to what a new window would show
        (:func:`out_of_sample_factor`). ``at``: the rows' :meth:`positions`, when known."""
        # One rows x features array, changed in place: on a day of a large fleet each extra
        # temporary of this size costs more than the arithmetic.
        residual = _float_columns(frame, self.columns)
        at = self.positions(frame) if at is None else at
        new = np.ones(len(frame), dtype=bool) if as_new else at < 0
        codes, cohorts = factorize_runs(frame["cohort"].to_numpy())
        if len(self.device_center):
            center = self.device_center.to_numpy()[np.maximum(at, 0)]
        else:  # no device has a baseline of its own yet: every row is centred on its cohort
            center = np.full(residual.shape, np.nan)
        if new.any():
            center[new] = self._cohort_centers(cohorts)[codes[new]]
        residual -= center
        del center
        uncertain = self._decouple(residual, codes, cohorts)
        if in_sample and not as_new:
            counts = (
                self.device_count.to_numpy(dtype=float)[np.maximum(at, 0)]
                if len(self.device_count)
                else np.full((len(frame), *self.device_count.shape[1:]), np.nan)
            )
            counts[at < 0] = np.nan
            residual *= np.where(np.isnan(counts), 1.0, out_of_sample_factor(counts))
        scale = np.stack([self.scale.get(c, self.fleet_scale) for c in cohorts])
        if len(scale) == 1:
            residual /= scale[0]
        else:
            residual /= scale[codes]
        if uncertain is not None:
            # A residual's spread grows by the adjustment's own: sqrt(1 + var / unit²).
            k = uncertain.shape[1]
            unit = scale[0, :k] if len(scale) == 1 else scale[codes, :k]
            residual[:, :k] /= np.sqrt(1.0 + uncertain / unit**2)
        return np.clip(residual, -CLIP, CLIP, out=residual)


def _blocks(groups: np.ndarray, pattern: np.ndarray):
    """(group, pattern, rows) for every group and pattern of missing values that occurs: the
    rows' positions in ascending order (each row in exactly one block), by group as
    ``pd.unique`` orders them, then by pattern. One sort per group instead of a pass over
    every row per block. Groups are compared by their codes: comparing every row's name
    with each group's cost more than the blocks' arithmetic."""
    codes, names = factorize_runs(groups)  # pd.unique's order; a NaN group holds no row
    for code, g in enumerate(names):
        members = np.flatnonzero(codes == code)
        keys = pattern[members]
        order = np.argsort(keys, kind="stable")  # ties keep their ascending positions
        bounds = np.flatnonzero(np.diff(keys[order])) + 1
        for part in np.split(order, bounds):
            yield g, int(keys[part[0]]), members[part]


class ConditionalGaussian:
    """Per-group covariance of standardised residuals; scores each feature given the others.

    For row ``z`` with observed features ``o`` and precision ``P = inv(Σ_oo)``, the conditional
    z-score of feature ``j`` is ``(P z)_j / sqrt(P_jj)``: its residual from what the other
    observed features predict, in units of the conditional spread. ``shrinkage`` blends the
    covariance towards its diagonal (stable with few training rows).
    """

    def __init__(self, shrinkage: float = 0.05):
        self.shrinkage = shrinkage

    @staticmethod
    def _covariance(z: np.ndarray, shrinkage: float) -> np.ndarray:
        k = z.shape[1]
        complete = z[np.isfinite(z).all(axis=1)]
        if len(complete) >= max(10, 2 * k):
            cov = np.cov(complete, rowvar=False)
        else:  # too few complete rows: pairwise-complete covariance
            cov = pd.DataFrame(z).cov(min_periods=2).fillna(0.0).to_numpy()
        cov = np.atleast_2d(np.nan_to_num(cov, nan=0.0))
        # Each variance also from every row the feature is observed in: when the complete rows
        # are a special state (one-minute windows: running features exist only while the
        # compressor ran, and then the duty cycle is always 1) a feature's spread is not 0.
        # Only ever raised, so the matrix stays positive semi-definite.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            observed = np.nan_to_num(np.nanvar(z, axis=0, ddof=1), nan=0.0)
        diag = np.maximum(np.maximum(np.diag(cov), observed), 1e-3)
        cov = (1 - shrinkage) * cov + shrinkage * np.diag(diag)
        cov[np.diag_indices(k)] = diag
        return cov

    def fit(self, z: np.ndarray, groups: np.ndarray) -> ConditionalGaussian:
        _DERIVED.pop(self, None)
        self.fleet_cov = self._covariance(z, self.shrinkage)
        self.cov = {
            g: self._covariance(z[groups == g], self.shrinkage)
            if (groups == g).sum() >= 10
            else self.fleet_cov
            for g in pd.unique(groups)
        }
        return self

    def evaluate(
        self, z: np.ndarray, groups: np.ndarray, n_scored: int, joint: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Conditional z-scores (rows × features, 0 where missing) and the surprise of each row:
        ``-log10`` of the chi-square tail probability of the Mahalanobis distance of its
        observed scored features given its observed context features (columns from
        ``n_scored`` on). The surprise catches shifts that keep features' usual relations
        (several move together, each as expected given the others, but far too far)."""
        out = np.zeros_like(z)
        surprise = np.zeros(len(z))
        observed = np.isfinite(z)
        k = z.shape[1]
        weights = 1 << np.arange(k, dtype=np.int64)
        pattern = observed @ weights
        is_context = np.arange(k) >= n_scored
        derived = _derived(self)
        for g, key, rows in _blocks(groups, pattern):
            cov = self.cov.get(g, self.fleet_cov)
            obs = (key & weights) > 0
            dof = int((obs & ~is_context).sum())
            if dof == 0:
                continue
            # The block's rows have exactly these features finite (their pattern): nothing to
            # fill, and with every feature observed (most rows) a plain row selection.
            every = bool(obs.all())
            zo = z[rows] if every else z[np.ix_(rows, obs)]
            inverse = derived.get(("precision", g, key))
            if inverse is None:
                precision = np.linalg.inv(cov[np.ix_(obs, obs)])
                inverse = derived[("precision", g, key)] = (
                    precision,
                    np.sqrt(np.diag(precision)),
                )
            precision, spread = inverse
            w = zo @ precision
            conditional = w / spread
            if every:
                out[rows] = conditional
            else:
                out[np.ix_(rows, obs)] = conditional  # the rest stays 0
            if not joint:
                continue
            # Imported only here: scipy.stats costs a conditional-only score step (no joint
            # surprise) a fraction of a CPU second it would never use.
            from scipy.stats import chi2

            d2 = np.einsum("ij,ij->i", w, zo)
            ctx = is_context[obs]
            if ctx.any():
                zc = zo[:, ctx]
                d2 = d2 - np.einsum(
                    "ij,ij->i", zc @ np.linalg.inv(cov[np.ix_(obs, obs)][np.ix_(ctx, ctx)]), zc
                )
            surprise[rows] = -chi2.logsf(np.maximum(d2, 0.0), dof) / np.log(10)
        return np.clip(out, -CLIP, CLIP, out=out), surprise

    def standardised(self, z: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Residuals in units of their group's spread (NaN stays NaN)."""
        out = np.empty_like(z)
        codes, names = factorize_runs(groups)
        for code, g in enumerate(names):
            rows = codes == code
            out[rows] = z[rows] / np.sqrt(np.diag(self.cov.get(g, self.fleet_cov)))
        out[codes < 0] = z[codes < 0] / np.sqrt(np.diag(self.fleet_cov))
        return np.clip(out, -CLIP, CLIP, out=out)

    def context_adjusted(self, z: np.ndarray, groups: np.ndarray, n_scored: int) -> np.ndarray:
        """Scored residuals minus what the observed context features predict for them, in
        units of their spread given the context (NaN stays NaN)."""
        out = z[:, :n_scored].copy()
        k = z.shape[1]
        if k == n_scored:
            return out
        ctx_obs = np.isfinite(z[:, n_scored:])
        weights = 1 << np.arange(k - n_scored, dtype=np.int64)
        pattern = ctx_obs @ weights
        s = np.arange(n_scored)
        derived = _derived(self)
        for g, key, rows in _blocks(groups, pattern):
            c = n_scored + np.flatnonzero((key & weights) > 0)
            if not len(c):
                continue
            regression = derived.get(("context", g, key, n_scored))
            if regression is None:
                cov = self.cov.get(g, self.fleet_cov)
                beta = np.linalg.solve(cov[np.ix_(c, c)], cov[np.ix_(c, s)])
                resid_var = np.diag(cov[np.ix_(s, s)] - cov[np.ix_(s, c)] @ beta)
                regression = derived[("context", g, key, n_scored)] = (
                    beta,
                    np.sqrt(np.maximum(resid_var, 1e-6)),
                )
            beta, spread = regression
            out[rows] = (z[np.ix_(rows, s)] - z[np.ix_(rows, c)] @ beta) / spread
        return np.clip(out, -CLIP, CLIP, out=out)


class DeviceResiduals:
    """Device baselines plus per-cohort covariance: what every device-relative model starts
    from. Devices with their own baseline are judged against the within-device spread of their
    cohort; new devices against their cohort's baseline and the spread between devices."""

    def __init__(self, min_device_windows: int = 4, shrinkage: float = 0.05):
        self.baseline = DeviceBaseline(min_device_windows)
        self.shrinkage = shrinkage

    def fit(self, frame: pd.DataFrame, columns: list[str], n_scored: int) -> DeviceResiduals:
        """Baselines and covariances of ``columns``; those from ``n_scored`` on are context:
        their coupling to the scored features is removed from the residuals by the baseline,
        and the covariances are of the scored residuals alone (a context far beyond the
        training range would otherwise weigh in through whatever correlation is left)."""
        self.n_scored = n_scored
        self.baseline.fit(frame, columns, n_scored)
        self.context_in_covariance = False
        cohorts = frame["cohort"].to_numpy()
        own = self.baseline.transform(frame, in_sample=True)[:, :n_scored]
        self.own = ConditionalGaussian(self.shrinkage).fit(own, cohorts)
        as_new = self.baseline.transform(frame, as_new=True)[:, :n_scored]
        self.new = ConditionalGaussian(self.shrinkage).fit(as_new, cohorts)
        return self

    def unlearned_context(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Per row and context column: outside the range training saw, with no coupling
        learned to adjust for it (None: no context, or residuals saved before the coupling)."""
        coupling = getattr(self.baseline, "coupling", None)
        if coupling is None:
            return None
        context = _float_columns(frame, self.baseline.columns[self.n_scored :])
        return coupling.unlearned_outside(context, frame["cohort"].to_numpy())

    def _parts(self, frame: pd.DataFrame, in_sample: bool, at: np.ndarray | None = None):
        at = self.baseline.positions(frame) if at is None else at
        known = at >= 0
        cohorts = frame["cohort"].to_numpy()
        z = self.baseline.transform(frame, in_sample=in_sample, at=at)  # new: cohort-centred
        if not getattr(self, "context_in_covariance", True):  # saved before: context in Σ
            z = z[:, : self.n_scored]
        if known.all():  # the usual case: no copy of the rows
            yield slice(None), self.own, z, cohorts
            return
        for rows, model in ((known, self.own), (~known, self.new)):
            if rows.any():
                yield rows, model, z[rows], cohorts[rows]

    def evaluate(
        self, frame: pd.DataFrame, joint: bool = True, in_sample: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Conditional z-scores of the scored features and (``joint``) the joint surprise per
        row (zeros otherwise). ``in_sample``: ``frame`` is the training data."""
        cz = np.zeros((len(frame), self.n_scored))
        surprise = np.zeros(len(frame))
        for rows, model, z, groups in self._parts(frame, in_sample):
            full, surprise[rows] = model.evaluate(z, groups, self.n_scored, joint)
            cz[rows] = full[:, : self.n_scored]
        return cz, surprise

    def residuals(
        self,
        frame: pd.DataFrame,
        in_sample: bool = False,
        as_new: bool = False,
        at: np.ndarray | None = None,
    ) -> np.ndarray:
        """Context-adjusted residuals of the scored features (NaN where missing). ``as_new``:
        every row as if its device had no baseline of its own (centred on its cohort, in
        between-device units), as a device without one is scored. ``at``: the rows'
        :meth:`DeviceBaseline.positions`, when known."""
        out = np.full((len(frame), self.n_scored), np.nan)
        decoupled = not getattr(self, "context_in_covariance", True)
        parts: Any
        if as_new:
            z = self.baseline.transform(frame, as_new=True, at=at)
            z = z[:, : self.n_scored] if decoupled else z
            parts = [(slice(None), self.new, z, frame["cohort"].to_numpy())]
        else:
            parts = self._parts(frame, in_sample, at)
        for rows, model, z, groups in parts:
            if decoupled:  # the baseline removed the context: only the group's units remain
                out[rows] = model.standardised(z, groups)
            else:
                out[rows] = model.context_adjusted(z, groups, self.n_scored)
        return out
