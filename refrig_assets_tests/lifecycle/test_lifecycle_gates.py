"""Promotion gates and the canary criteria: each passes and fails, each criterion at its edge."""

import numpy as np
import pandas as pd
import pytest
import yaml

from refrig_assets.lifecycle.canary import (
    compare_scores,
    kl_divergence,
    top_k_size,
)
from refrig_assets.lifecycle.gates import (
    GateReport,
    absolute_gates,
    champion_gates,
    judge,
)
from refrig_assets.lifecycle.policy import PolicyError, load_policy

POLICY = load_policy()
CANARY = POLICY["canary"]
T0 = pd.Timestamp("2026-01-01T00:00Z")


def scores(values, flags=None, devices=None) -> pd.DataFrame:
    """Score rows in the model_scores shape: one window per value, one device per window."""
    n = len(values)
    devices = devices if devices is not None else [f"dev-{i:04d}" for i in range(n)]
    return pd.DataFrame(
        {
            "device_id": devices,
            "window_start": [T0] * n,
            "anomaly_score": np.asarray(values, dtype=float),
            "anomaly_flag": np.zeros(n, bool) if flags is None else np.asarray(flags, bool),
        }
    )


def gate_named(gates, name):
    return next(g for g in gates if g.name == name)


def gate(result, name):
    return gate_named(result.gates, name)


# -- the rule words -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule, value, passed",
    [
        ({"below": 0.05}, 0.05, False),
        ({"below": 0.05}, 0.0499, True),
        ({"at_most": 0.05}, 0.05, True),
        ({"within": 0.02}, -0.02, True),
        ({"within": 0.02}, 0.0201, False),
        ({"at_least": 0.8}, 0.8, True),
        ({"at_least": 0.8}, 0.7999, False),
        ({"above": 1.0}, 1.0, False),
    ],
)
def test_a_rule_word_decides_whether_its_edge_passes(rule, value, passed):
    assert judge("x", "canary", value, rule).passed is passed


def test_a_failed_gate_says_by_how_much():
    result = judge("mean_abs_score_diff", "canary", 0.08, {"below": 0.05})
    assert not result.passed
    assert result.margin == pytest.approx(-0.03)
    assert "FAILED by 0.03" in result.detail


def test_an_unmeasurable_value_fails_and_a_switched_off_gate_passes():
    assert not judge("x", "absolute", float("nan"), {"below": 1}).passed
    assert judge("x", "absolute", None, None).passed


def test_an_unknown_rule_word_is_an_error_naming_the_gate():
    with pytest.raises(ValueError, match="max_flag_rate.*unknown comparison 'under'"):
        judge("max_flag_rate", "absolute", 0.1, {"under": 0.2})


# -- canary criteria at their edges (thresholds from config/lifecycle.yaml) ---------------------


def test_identical_scores_pass_every_canary_criterion():
    champion = scores(np.linspace(0, 1, 200))
    result = compare_scores(champion, champion, CANARY)
    assert result.passed
    assert result.metrics["mean_abs_score_diff"] == 0
    assert result.metrics["score_kl_divergence"] == pytest.approx(0)


@pytest.mark.parametrize("shift, passed", [(0.049, True), (0.05, False), (0.051, False)])
def test_mean_abs_score_diff_must_stay_below_its_threshold(shift, passed):
    assert CANARY["criteria"]["mean_abs_score_diff"] == {"below": 0.05}
    # 0.25 + shift keeps every window inside one histogram bin: only this criterion moves.
    champion = scores(np.full(100, 0.26))
    candidate = scores(np.full(100, 0.26 + shift))
    result = compare_scores(candidate, champion, CANARY)
    assert result.metrics["mean_abs_score_diff"] == pytest.approx(shift)
    assert gate(result, "mean_abs_score_diff").passed is passed


@pytest.mark.parametrize("extra_flags, passed", [(2, True), (-2, True), (3, False), (-3, False)])
def test_contamination_rate_may_change_by_two_percent_either_way(extra_flags, passed):
    base = np.zeros(100, bool)
    base[:10] = True
    moved = np.zeros(100, bool)
    moved[: 10 + extra_flags] = True
    values = np.full(100, 0.3)
    result = compare_scores(scores(values, moved), scores(values, base), CANARY)
    assert result.metrics["contamination_rate_change"] == pytest.approx(extra_flags / 100)
    assert gate(result, "contamination_rate_change").passed is passed


@pytest.mark.parametrize("shared, passed", [(80, True), (79, False)])
def test_top_100_overlap_must_be_at_least_80_percent(shared, passed):
    devices = 1000  # K = min(100, 20 % of devices) = 100
    assert top_k_size(devices, CANARY) == 100
    champ = np.linspace(0.0, 0.5, devices)
    champ[:100] = np.linspace(0.9, 0.99, 100)  # champion's top 100: devices 0..99
    cand = champ.copy()
    # the candidate swaps (100 - shared) of them for devices 100.. at the same scores
    swap = 100 - shared
    cand[100 - swap : 100], cand[100 : 100 + swap] = (
        champ[100 : 100 + swap],
        champ[100 - swap : 100],
    )
    result = compare_scores(scores(cand), scores(champ), CANARY)
    assert result.metrics["top_k_overlap"] == pytest.approx(shared / 100)
    assert gate(result, "top_k_overlap").passed is passed


def test_top_k_is_capped_at_a_share_of_a_small_fleet():
    assert top_k_size(30, CANARY) == 6
    assert top_k_size(3, CANARY) == 1


def test_score_kl_divergence_blocks_a_shifted_distribution_but_not_a_similar_one():
    rng = np.random.default_rng(0)
    champion = rng.beta(2, 8, 5000)
    similar = rng.beta(2, 8, 5000)
    shifted = rng.beta(5, 5, 5000)
    kl_similar = kl_divergence(similar, champion, CANARY["histogram_bins"], CANARY["kl_epsilon"])
    kl_shifted = kl_divergence(shifted, champion, CANARY["histogram_bins"], CANARY["kl_epsilon"])
    assert kl_similar < 0.1 < kl_shifted
    same = compare_scores(scores(similar), scores(champion), CANARY)
    moved = compare_scores(scores(shifted), scores(champion), CANARY)
    assert gate(same, "score_kl_divergence").passed
    assert not gate(moved, "score_kl_divergence").passed


def test_score_kl_divergence_at_its_threshold_fails():
    assert CANARY["criteria"]["score_kl_divergence"] == {"below": 0.1}
    assert not judge("score_kl_divergence", "canary", 0.1, {"below": 0.1}).passed
    assert judge("score_kl_divergence", "canary", 0.0999, {"below": 0.1}).passed


def test_too_few_shared_windows_block_the_canary_with_a_reason():
    few = scores(np.full(CANARY["min_windows"] - 1, 0.2))
    result = compare_scores(few, few, CANARY)
    assert not result.passed
    assert "need 50" in result.gates[0].detail


# -- absolute thresholds and the comparison with the champion -----------------------------------


def test_absolute_gates_pass_and_fail_on_their_thresholds():
    rules = POLICY["promotion"]["absolute"]
    good = {"training_windows": 5000, "flag_rate": 0.01, "invalid_score_share": 0.0}
    assert all(g.passed for g in absolute_gates(good, rules))
    bad = {"training_windows": 12, "flag_rate": 0.3, "invalid_score_share": 0.01}
    failed = {g.name for g in absolute_gates(bad, rules) if not g.passed}
    assert failed == {"min_training_windows", "max_flag_rate", "invalid_score_share"}


def test_backtest_thresholds_apply_only_where_labels_exist():
    rules = {"min_recall": {"at_least": 0.9}}
    without_labels = gate_named(absolute_gates({}, rules), "min_recall")
    assert without_labels.passed and "no labels" in without_labels.detail
    assert not gate_named(absolute_gates({"recall": 0.5}, rules), "min_recall").passed


@pytest.mark.parametrize(
    "candidate, passed",
    [
        ({"recall": 0.86, "precision": 0.95}, True),  # recall 0.04 worse: within 0.05
        ({"recall": 0.80, "precision": 0.95}, False),  # recall 0.10 worse
        ({"recall": 0.95, "precision": 0.80}, False),  # precision 0.15 worse
    ],
)
def test_candidate_may_not_be_worse_than_the_champion_beyond_the_tolerance(candidate, passed):
    champion = {"recall": 0.90, "precision": 0.95}
    results = champion_gates(candidate, champion, POLICY["promotion"]["vs_champion"])
    assert all(g.passed for g in results) is passed
    for g in results:
        if not g.passed:
            assert "FAILED by" in g.detail


def test_a_report_lists_the_failed_gates_and_round_trips():
    report = GateReport("m", "2", "1", [judge("a", "canary", 0.2, {"below": 0.1})])
    assert report.summary().startswith("blocked: a = 0.2")
    assert GateReport.from_dict(report.to_dict()) == report


def test_a_detector_file_may_override_its_own_thresholds_and_canary_criteria(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "det.yaml").write_text(
        yaml.safe_dump(
            {"model_id": "det", "promotion": {"absolute": {"max_flag_rate": {"at_most": 0.2}}}}
        )
    )
    policy = load_policy(models, "det")
    assert policy["promotion"]["absolute"]["max_flag_rate"] == {"at_most": 0.2}
    assert policy["promotion"]["absolute"]["min_training_windows"] == {"at_least": 100}
    (models / "det.yaml").write_text(
        yaml.safe_dump(
            {"promotion": {"canary": {"criteria": {"top_k_overlap": {"at_least": 0.6}}}}}
        )
    )
    policy = load_policy(models, "det")
    assert policy["canary"]["criteria"]["top_k_overlap"] == {"at_least": 0.6}
    assert policy["canary"]["criteria"]["score_kl_divergence"] == {"below": 0.1}
    (models / "det.yaml").write_text(yaml.safe_dump({"promotion": {"staleness": {}}}))
    with pytest.raises(PolicyError, match="det.yaml: promotion overrides may only set"):
        load_policy(models, "det")
