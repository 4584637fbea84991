"""Gated promotion, forced promotion, pinning and rollback on a real MLflow registry, and the
scripted scenario end to end."""

import pandas as pd
import pytest
import yaml
from support.lifecycle_world import MODEL, evaluate

from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.settings import MODELS_DIR
from refrig_assets.lifecycle import audit as ev
from refrig_assets.lifecycle.pinning import file_pin, write_pin
from refrig_assets.lifecycle.promotion import (
    GATE_STATUS_TAG,
    LifecycleError,
)
from refrig_assets.training.registry import ModelRegistry
from tools.demos.lifecycle_demo import run_scenario


@pytest.fixture
def lifecycle(lc):
    """The lifecycle service of the folder's conftest."""
    return lc


def test_the_first_version_becomes_production_and_later_ones_wait_for_the_gates(lifecycle):
    first = lifecycle.after_training(MODEL, "1", "trainer")
    assert first.event == ev.PROMOTED and first.serving_version == "1"
    assert lifecycle.after_training(MODEL, "2", "trainer") is None
    assert lifecycle.registry.production_version(MODEL) == "1"
    assert lifecycle.gate_status(MODEL, "2") == "pending"


def test_a_candidate_that_passes_every_gate_is_promoted_with_its_gate_results(lifecycle):
    lifecycle.after_training(MODEL, "1", "trainer")
    evaluation = evaluate(lifecycle, "3")
    assert evaluation.passed, evaluation.report.summary()
    assert evaluation.backtests["candidate"]["recall"] == evaluation.backtests["champion"]["recall"]
    event = lifecycle.apply(evaluation.report, "alice")
    assert (event.event, event.from_version, event.to_version) == (ev.PROMOTED, "1", "3")
    assert lifecycle.registry.production_version(MODEL) == "3"
    assert lifecycle.gate_status(MODEL, "3") == "passed"
    assert {g["name"] for g in event.gates} >= {"top_k_overlap", "score_kl_divergence"}


def test_a_worse_candidate_is_blocked_saying_which_gate_failed_and_by_how_much(lifecycle):
    lifecycle.after_training(MODEL, "1", "trainer")
    evaluation = evaluate(lifecycle, "2")
    assert not evaluation.passed
    event = lifecycle.apply(evaluation.report, "alice")
    assert event.event == ev.PROMOTION_BLOCKED
    assert lifecycle.registry.production_version(MODEL) == "1"
    assert lifecycle.gate_status(MODEL, "2") == "blocked"
    failed = [g for g in event.gates if not g["passed"]]
    assert failed and all(g["margin"] is None or g["margin"] < 0 for g in failed)
    assert "min_training_windows = 12" in event.reason and "FAILED by 88" in event.reason
    assert any(g["kind"] == "canary" for g in failed)


def test_a_forced_promotion_needs_a_reason_and_is_recorded_as_forced(lifecycle):
    lifecycle.after_training(MODEL, "1", "trainer")
    report = evaluate(lifecycle, "2").report
    with pytest.raises(LifecycleError, match="needs a reason"):
        lifecycle.apply(report, "alice", force=True)
    event = lifecycle.apply(report, "alice", force=True, reason="hotfix for a sensor change")
    assert event.event == ev.PROMOTED_FORCED and event.forced
    assert lifecycle.registry.production_version(MODEL) == "2"
    assert lifecycle.gate_status(MODEL, "2") == "forced"


def test_an_evaluation_against_a_former_champion_cannot_be_applied(lifecycle):
    lifecycle.after_training(MODEL, "1", "trainer")
    report = evaluate(lifecycle, "2").report
    lifecycle.apply(evaluate(lifecycle, "3").report, "alice")
    with pytest.raises(LifecycleError, match="champion is now 3"):
        lifecycle.apply(report, "alice")


def test_only_a_version_that_passed_may_be_pinned_unless_forced(lifecycle):
    lifecycle.after_training(MODEL, "1", "trainer")
    with pytest.raises(LifecycleError, match="version 2 has not passed the promotion gates"):
        lifecycle.pin(MODEL, "2", "alice", "try")
    event = lifecycle.pin(MODEL, "v2", "alice", "debugging a sensor change", force=True)
    assert event.forced and event.serving_version == "2"
    assert load_model_config(MODEL, lifecycle.models_dir).pinned_version == "2"


def test_pin_and_rollback_change_the_version_the_next_scoring_run_resolves(lifecycle):
    lifecycle.after_training(MODEL, "1", "trainer")
    lifecycle.apply(evaluate(lifecycle, "3").report, "alice")

    def next_scoring_version():
        config = load_model_config(MODEL, lifecycle.models_dir)
        return lifecycle.registry.resolve_version(MODEL, config.pinned_version)

    assert next_scoring_version() == "3"
    rolled = lifecycle.rollback(MODEL, "bob", "v3 alerts look wrong")
    assert (rolled.event, rolled.from_version, rolled.to_version) == (ev.ROLLED_BACK, "3", "1")
    assert next_scoring_version() == "1"
    unpinned = lifecycle.unpin(MODEL, "bob")
    assert unpinned.serving_version == "3" and next_scoring_version() == "3"
    # the project's own models/ file is never touched by tests
    assert file_pin(MODELS_DIR / f"{MODEL}.yaml") is None


def test_a_pin_edited_by_hand_in_the_models_file_is_recorded(lifecycle):
    lifecycle.after_training(MODEL, "1", "trainer")
    write_pin(lifecycle.models_dir / f"{MODEL}.yaml", "2")
    event = lifecycle.sync_file_pin(MODEL)
    assert event.event == ev.PINNED and event.actor == f"models/{MODEL}.yaml"
    assert event.forced and "has not passed the promotion gates" in event.reason
    assert lifecycle.sync_file_pin(MODEL) is None  # recorded once


def test_nothing_to_roll_back_to_is_an_error(lifecycle):
    lifecycle.after_training(MODEL, "1", "trainer")
    with pytest.raises(LifecycleError, match="no earlier deployable version"):
        lifecycle.rollback(MODEL, "bob", "")


def test_scripted_scenario_train_block_force_rollback_history(tmp_path):
    outcome = run_scenario(tmp_path / "demo", log=lambda _: None)
    assert [e.event for e in outcome.events] == [
        ev.PROMOTED,
        ev.PROMOTION_BLOCKED,
        ev.PROMOTED_FORCED,
        ev.ROLLED_BACK,
    ]
    blocked = outcome.events[1]
    failed_canary = [g["name"] for g in blocked.gates if g["kind"] == "canary" and not g["passed"]]
    assert failed_canary, "the canary itself must block the worse version"
    assert outcome.events[2].forced and outcome.events[2].production_version == "2"
    assert outcome.events[3].pinned_version == "1"
    assert outcome.scored_version_after_rollback == "1"
    assert outcome.timeline["version"].tolist() == ["1", "2", "1"]
    assert outcome.timeline["forced"].tolist() == [False, True, False]
    pinned = yaml.safe_load((outcome.workdir / "models" / f"{MODEL}.yaml").read_text())
    assert str(pinned["pinned_version"]) == "1"
    assert pd.isna(outcome.timeline["until"].iloc[-1])
    registry = ModelRegistry(
        f"sqlite:///{outcome.workdir / 'mlflow' / 'mlflow.db'}", outcome.workdir / "mlflow"
    )
    assert registry.version_tags(MODEL, "2")[GATE_STATUS_TAG] == "forced"
