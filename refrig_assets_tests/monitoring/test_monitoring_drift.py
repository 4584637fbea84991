"""Drift statistics: PSI against hand-computed values, the seed's bands, cohort drift, KL."""

import math

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.monitoring.drift import (
    FLEET,
    MODERATE,
    NONE,
    SIGNIFICANT,
    bin_shares,
    feature_drift_table,
    kl_divergence,
    psi,
    psi_band,
    psi_bin_edges,
)
from refrig_assets.monitoring.settings import load_monitoring_settings

SETTINGS = load_monitoring_settings().drift
SCORE_RANGE = load_contract("model_scores").column("anomaly_score").range


def test_psi_bins_are_the_reference_quantiles():
    edges = psi_bin_edges(np.arange(100), bins=4)
    np.testing.assert_allclose(edges, [24.75, 49.5, 74.25])
    # four value bins, then the missing-value bin
    np.testing.assert_allclose(bin_shares(np.arange(100), edges), [0.25, 0.25, 0.25, 0.25, 0.0])


def test_psi_matches_the_hand_computed_value():
    reference = np.arange(100)  # quartile bins: 25 % of the reference in each
    current = np.concatenate(
        [
            np.linspace(0, 20, 10),  # 10 % in the first quartile bin
            np.linspace(26, 45, 20),  # 20 %
            np.linspace(51, 70, 30),  # 30 %
            np.linspace(76, 99, 40),  # 40 %
        ]
    )
    by_hand = sum(
        (c - 0.25) * math.log(c / 0.25) for c in (0.1, 0.2, 0.3, 0.4)
    )  # = 0.15 ln 2.5 + 0.05 ln 1.25 + 0.05 ln 1.2 + 0.15 ln 1.6
    assert by_hand == pytest.approx(0.228217, abs=1e-6)
    assert psi(reference, current, bins=4, epsilon=1e-4) == pytest.approx(by_hand, abs=1e-12)


def test_identical_samples_have_zero_psi():
    x = np.random.default_rng(0).normal(size=5000)
    assert psi(x, x, SETTINGS.psi_bins, SETTINGS.psi_epsilon) == 0.0


def test_missing_values_are_a_bin_of_their_own_so_a_dropout_is_drift():
    reference = np.arange(100, dtype=float)
    current = np.concatenate([reference, np.full(100, np.nan)])  # half the values missing
    # value bins hold 12.5 % each instead of 25 %; the missing bin 50 % instead of 0 (floored)
    eps = 1e-4
    by_hand = 4 * (0.125 - 0.25) * math.log(0.125 / 0.25) + (0.5 - eps) * math.log(0.5 / eps)
    assert psi(reference, current, bins=4, epsilon=eps) == pytest.approx(by_hand, abs=1e-9)


@pytest.mark.parametrize(
    ("value", "band"),
    [(0.0, NONE), (0.0999, NONE), (0.1, MODERATE), (0.25, MODERATE), (0.2501, SIGNIFICANT)],
)
def test_psi_bands_follow_the_seed(value, band):
    # < 0.1 none, 0.1-0.25 moderate, > 0.25 significant (config/monitoring.yaml)
    assert (SETTINGS.psi_moderate, SETTINGS.psi_significant) == (0.1, 0.25)
    assert psi_band(value, SETTINGS) == band


def _fleet(rng, shifted_cohort=None, shift=0.0, cohorts=10, windows=2000) -> pd.DataFrame:
    frames = []
    for c in range(cohorts):
        x = rng.normal(size=windows)
        if f"c{c}" == shifted_cohort:
            x = x + shift
        frames.append(pd.DataFrame({"x": x, "y": rng.normal(size=windows), "cohort": f"c{c}"}))
    return pd.concat(frames, ignore_index=True)


def test_a_drifting_cohort_is_found_while_the_fleet_wide_psi_stays_low():
    rng = np.random.default_rng(3)
    reference = _fleet(rng)
    current = _fleet(rng, shifted_cohort="c9", shift=1.0)  # one cohort in ten moves by 1 sigma

    table = feature_drift_table(reference, current, ["x", "y"], SETTINGS)

    fleet = table[table["scope"] == FLEET].set_index("feature")
    assert fleet.loc["x", "band"] == NONE  # diluted by the nine stable cohorts
    assert fleet.loc["x", "psi"] < SETTINGS.psi_moderate
    drifting = table[table["band"] == SIGNIFICANT]
    assert drifting[["scope", "cohort", "feature"]].values.tolist() == [["cohort", "c9", "x"]]
    assert set(table[table["feature"] == "y"]["band"]) == {NONE}


def test_slices_with_too_few_windows_are_not_compared():
    rng = np.random.default_rng(4)
    reference = _fleet(rng, cohorts=2, windows=SETTINGS.min_windows)
    current = pd.concat(
        [
            _fleet(rng, cohorts=1, windows=SETTINGS.min_windows),  # c0: enough
            _fleet(rng, cohorts=2, windows=SETTINGS.min_windows - 1).query("cohort == 'c1'"),
        ],
        ignore_index=True,
    )
    table = feature_drift_table(reference, current, ["x"], SETTINGS)
    assert sorted(table["cohort"]) == ["*", "c0"]


def test_missing_feature_columns_are_named():
    frame = pd.DataFrame({"x": [1.0], "cohort": ["a"]})
    with pytest.raises(KeyError, match="not_there"):
        feature_drift_table(frame, frame, ["x", "not_there"], SETTINGS)


def test_kl_is_zero_for_identical_scores():
    scores = np.random.default_rng(1).beta(1, 12, size=4000)
    assert kl_divergence(scores, scores, SETTINGS.kl_bins, SETTINGS.kl_epsilon, SCORE_RANGE) == 0.0


def test_kl_matches_the_hand_computed_value():
    current = [0.1, 0.1, 0.1, 0.9]  # two bins over [0, 1]: p = (0.75, 0.25)
    reference = [0.1, 0.9]  # q = (0.5, 0.5)
    by_hand = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kl_divergence(current, reference, 2, 1e-4, (0.0, 1.0)) == pytest.approx(by_hand)


def test_kl_flags_shifted_scores_and_not_resampled_ones():
    rng = np.random.default_rng(2)
    reference = rng.beta(1, 12, size=20000)
    same_shape = rng.beta(1, 12, size=20000)
    shifted = rng.beta(2, 6, size=20000)  # scores pushed up: the model sees more anomalies
    kl = lambda cur: kl_divergence(  # noqa: E731
        cur, reference, SETTINGS.kl_bins, SETTINGS.kl_epsilon, SCORE_RANGE
    )
    assert kl(same_shape) < SETTINGS.kl_threshold / 10
    assert kl(shifted) > SETTINGS.kl_threshold


def test_the_evidently_report_leaves_out_a_feature_without_values_instead_of_failing(tmp_path):
    """A feature with no value on one side (an hour without readings, a sensor the fleet lacks)
    has no drift to show; the report covers the others."""
    from refrig_assets.monitoring.evidently_report import write_drift_report

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    current = pd.DataFrame({"a": rng.normal(size=300), "b": np.nan})
    path = tmp_path / "drift.html"
    psi = write_drift_report(reference, current, ["a", "b"], path, SETTINGS)
    assert set(psi) == {"a"} and path.stat().st_size > 0

    nothing = write_drift_report(reference, current.assign(a=np.nan), ["a", "b"], path, SETTINGS)
    assert nothing == {} and "nothing to compare" in path.read_text()


def test_the_report_and_the_project_give_one_psi_and_the_report_says_what_it_compares(tmp_path):
    """The PSI in the Evidently report is the project's: same bins, same figure (within 10 %,
    the difference sampling may make on large inputs), on features that drift and one that
    does not, with some missing values."""
    from refrig_assets.monitoring.drift import feature_drift_table
    from refrig_assets.monitoring.evidently_report import ReportHeader, write_drift_report

    rng = np.random.default_rng(3)
    reference = pd.DataFrame(
        {
            "stable": rng.normal(size=800),
            "shifted": rng.normal(size=800),
            "wider": rng.normal(size=800),
        }
    )
    current = pd.DataFrame(
        {
            "stable": rng.normal(size=600),
            "shifted": rng.normal(0.4, 1, size=600),
            "wider": rng.normal(0, 1.5, size=600),
        }
    )
    current.loc[:20, "stable"] = np.nan
    features = list(reference.columns)
    header = ReportHeader("2026-03-03", (("isolation_forest", "2"),), "T00..T05", "T06..T23 (18 h)")
    path = tmp_path / "drift.html"

    in_report = write_drift_report(reference, current, features, path, SETTINGS, header)

    project = feature_drift_table(reference, current, features, SETTINGS).set_index("feature")
    for feature in features:
        assert in_report[feature] == pytest.approx(project.loc[feature, "psi"], rel=0.10), feature
    # Missing values count in both (a bin of their own), not only in the project's figure.
    assert project.loc["stable", "psi"] > SETTINGS.psi_moderate
    page = path.read_text()
    for shown in ("Feature drift 2026-03-03", "isolation_forest v2", "T00..T05", "T06..T23"):
        assert shown in page
