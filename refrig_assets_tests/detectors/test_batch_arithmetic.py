"""The batch path's arithmetic is the reference arithmetic: the isolation forest scored in row
blocks on several threads gives scikit-learn's own scores bit for bit, and the conditional
Gaussian scores every block of (cohort, missing-value pattern) as the row-mask form did."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest

from refrig_assets.detectors import forest_arrays
from refrig_assets.detectors.forest_arrays import ForestArrays
from refrig_assets.detectors.normalise import ConditionalGaussian


@pytest.mark.parametrize("max_features", [1.0, 0.5])
def test_forest_scores_in_row_blocks_equal_scikit_learns(monkeypatch, max_features):
    rng = np.random.default_rng(7)
    forest = IsolationForest(
        n_estimators=20, max_samples=128, max_features=max_features, random_state=0, n_jobs=1
    ).fit(rng.normal(size=(2000, 6)))
    rows = rng.normal(scale=1.5, size=(5000, 6))
    monkeypatch.setattr(forest_arrays, "_BLOCK_ROWS", 700)  # 8 blocks, the last one short
    monkeypatch.setattr(forest_arrays, "_cores", lambda: 2)
    blocked = ForestArrays.from_forest(forest).anomaly_scores(rows)
    assert np.array_equal(blocked, -forest.score_samples(rows))


def _row_mask_evaluate(model, z, groups, n_scored, joint):
    """The conditional z-scores as computed before blocks: one row mask per (group, pattern)."""
    from scipy.stats import chi2

    out, surprise = np.zeros_like(z), np.zeros(len(z))
    k = z.shape[1]
    weights = 1 << np.arange(k, dtype=np.int64)
    pattern = np.isfinite(z) @ weights
    is_context = np.arange(k) >= n_scored
    for g in pd.unique(groups):
        in_group = groups == g
        cov = model.cov.get(g, model.fleet_cov)
        for key in np.unique(pattern[in_group]):
            rows = in_group & (pattern == key)
            obs = (int(key) & weights) > 0
            dof = int((obs & ~is_context).sum())
            if dof == 0:
                continue
            zo = np.nan_to_num(z[np.ix_(rows, obs)])
            precision = np.linalg.inv(cov[np.ix_(obs, obs)])
            w = zo @ precision
            block = np.zeros((int(rows.sum()), k))
            block[:, obs] = w / np.sqrt(np.diag(precision))
            out[rows] = block
            if joint:
                d2 = np.einsum("ij,ij->i", w, zo)
                ctx = is_context[obs]
                if ctx.any():
                    zc = zo[:, ctx]
                    inv = np.linalg.inv(cov[np.ix_(obs, obs)][np.ix_(ctx, ctx)])
                    d2 = d2 - np.einsum("ij,ij->i", zc @ inv, zc)
                surprise[rows] = -chi2.logsf(np.maximum(d2, 0.0), dof) / np.log(10)
    return np.clip(out, -50.0, 50.0), surprise


@pytest.mark.parametrize("joint", [False, True])
def test_conditional_scores_by_blocks_equal_the_row_mask_form(joint):
    rng = np.random.default_rng(11)
    z = rng.normal(size=(3000, 5))
    z[rng.random(z.shape) < 0.15] = np.nan  # many patterns of missing values
    z[:50] = np.nan  # rows with nothing observed
    groups = rng.choice(np.array(["a", "b", "c"], dtype=object), size=len(z))
    model = ConditionalGaussian(0.05).fit(np.where(np.isnan(z), 0.0, z), groups)
    out, surprise = model.evaluate(z, groups, n_scored=3, joint=joint)
    expected_out, expected_surprise = _row_mask_evaluate(model, z, groups, 3, joint)
    assert np.array_equal(out, expected_out)
    assert np.array_equal(surprise, expected_surprise)
