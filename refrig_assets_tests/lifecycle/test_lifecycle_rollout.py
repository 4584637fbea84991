"""Progressive rollout: a candidate that passed its gates serves 10 % → 50 % → 100 % of the
devices (stable by device hash), advances only while its health gates hold against the
champion's devices, and rolls back automatically — audited — when they do not."""

import dataclasses
import os
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from support.lifecycle_world import HOURS, MODEL, evaluate, use_world
from typer.testing import CliRunner

from refrig_assets.alerts.generation import generate_alerts
from refrig_assets.cli import app
from refrig_assets.console.health_endpoint import scoring_observations
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import load_model_config, resolve_feature_columns
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.scoring.assets import score_hour_by_hour
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle import audit as ev
from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url
from refrig_assets.lifecycle.policy import PolicyError, load_policy
from refrig_assets.lifecycle.promotion import (
    LifecycleError,
    ModelLifecycle,
)
from refrig_assets.lifecycle.rollout import (
    ADVANCE,
    CANDIDATE,
    CHAMPION,
    COMPLETE,
    ROLL_BACK,
    ROLLED_BACK,
    ROLLOUT_FAILED,
    WAIT,
    ArmObservation,
    RolloutManager,
    RolloutPolicy,
    RolloutStore,
    decide,
    device_buckets,
    serve_partition,
    serves_candidate,
)
from refrig_assets.monitoring.service_health import scoring_stats
from refrig_assets.scoring.score import with_cohort
from refrig_assets.training.fit import train_detector
from refrig_assets.training.registry import ModelRegistry

# -- stable assignment --------------------------------------------------------------------------


def test_a_device_on_the_candidate_stays_on_it_as_the_share_grows():
    devices = [f"dev-{i:05d}" for i in range(20_000)]
    buckets = device_buckets(devices, MODEL)
    assert ((buckets >= 0) & (buckets < 1)).all()
    at_10, at_50 = buckets < 0.10, buckets < 0.50
    assert not (at_10 & ~at_50).any()  # monotone: 10 % ⊂ 50 % ⊂ 100 %
    assert abs(at_10.mean() - 0.10) < 0.01 and abs(at_50.mean() - 0.50) < 0.015
    # the same device gets the same answer one at a time, in any order, every time
    assert [serves_candidate(d, 0.10, MODEL) for d in devices[:200]] == list(at_10[:200])
    assert (device_buckets(devices[::-1], MODEL) == buckets[::-1]).all()
    # another model's rollout picks other devices
    assert (device_buckets(devices, "other_model") < 0.10).tolist() != at_10.tolist()


def test_the_rollout_policy_lives_in_the_lifecycle_file_with_per_model_overrides(
    tmp_path, monkeypatch
):
    policy = RolloutPolicy.from_policy(load_policy(model_id=MODEL))
    assert policy.enabled and policy.steps == (0.10, 0.50, 1.00)
    assert set(policy.gates) >= {"error_rate", "flag_rate", "latency_ratio"}
    models = tmp_path / "models"
    models.mkdir()
    (tmp_path / "lifecycle.yaml").write_text(open(load_policy()["path"]).read())
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(tmp_path))
    (models / "det.yaml").write_text(
        yaml.safe_dump({"promotion": {"rollout": {"steps": [0.05, 0.25, 1.0]}}})
    )
    assert RolloutPolicy.load(models, "det").steps == (0.05, 0.25, 1.0)
    (models / "det.yaml").write_text(yaml.safe_dump({"promotion": {"rollout": {"steps": [0.5]}}}))
    with pytest.raises(PolicyError, match=r"lifecycle.yaml: rollout.steps must .* end at 1.0"):
        RolloutPolicy.load(models, "det")
    (models / "det.yaml").write_text(
        yaml.safe_dump({"promotion": {"rollout": {"gates": {"accuracy": {"above": 1}}}}})
    )
    with pytest.raises(PolicyError, match=r"unknown gate\(s\) \['accuracy'\]"):
        RolloutPolicy.load(models, "det")


# -- state ---------------------------------------------------------------------------------------

POSTGRES_URL = os.environ.get("REFRIG_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", *(["postgresql"] if POSTGRES_URL else [])])
def rollout_store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'lifecycle.db'}" if request.param == "sqlite" else POSTGRES_URL
    engine = sa.create_engine(url)
    store = RolloutStore(engine)
    if request.param == "postgresql":  # a shared database may hold a previous test's tables
        store.metadata.drop_all(engine)
    yield store
    engine.dispose()


def test_the_database_holds_one_active_rollout_per_model_and_its_observations(rollout_store):
    first = rollout_store.create(MODEL, "3", "1", (0.1, 0.5, 1.0), "alice")
    with pytest.raises(LifecycleError, match="already in progress"):
        rollout_store.create(MODEL, "4", "1", (0.1, 0.5, 1.0), "bob")
    assert rollout_store.create("other_model", "2", "1", (0.5, 1.0), "bob").share == 0.5
    seen = [ArmObservation(CANDIDATE, "3", 3, 12, 12, 0, 1), ArmObservation(CHAMPION, "1", 27)]
    rollout_store.record(first, HOURS[0], seen)
    rollout_store.record(first, HOURS[0], seen)  # a re-scored partition replaces its rows
    assert len(rollout_store.observations(first.id, step=0)) == 2
    advanced = rollout_store.set_step(first, 1)
    assert rollout_store.active(MODEL) == advanced and advanced.share == 0.5
    rollout_store.finish(advanced, ROLLED_BACK)
    assert rollout_store.active(MODEL) is None
    assert rollout_store.latest(MODEL).status == ROLLED_BACK
    assert rollout_store.create(MODEL, "4", "1", (0.1, 1.0), "bob").candidate == "4"


# -- health gates on recorded observations ------------------------------------------------------


def _obs(partition, arm, windows=1000, flags=10, seconds=1.0, failed=False, invalid=0, step=0):
    return {
        "step": step,
        "partition_key": partition,
        "arm": arm,
        "windows_in": 0 if failed else windows,
        "windows_scored": 0 if failed else windows,
        "invalid_scores": invalid,
        "flags": flags,
        "failed": failed,
        "seconds": seconds,
    }


def _decide(rows, partitions_per_step=2):
    from refrig_assets.lifecycle.rollout import Rollout

    policy = dataclasses.replace(
        RolloutPolicy.from_policy(load_policy(model_id=MODEL)),
        partitions_per_step=partitions_per_step,
        latency_min_windows=5000,
    )
    now = datetime.now(UTC)
    rollout = Rollout(1, MODEL, "3", "1", (0.1, 0.5, 1.0), 0, "active", "t", now, now)
    return decide(rollout, pd.DataFrame(rows), policy)


def test_each_health_gate_compares_the_candidates_devices_with_the_champions():
    healthy = [_obs("h0", CANDIDATE, 6000, 60, 6.0), _obs("h0", CHAMPION, 54000, 500, 50.0)]
    assert _decide(healthy).action == WAIT  # gates hold, one of two partitions
    two = healthy + [_obs("h1", CANDIDATE, 6000, 55, 6.0), _obs("h1", CHAMPION, 54000, 520, 51.0)]
    decision = _decide(two)
    assert decision.action == ADVANCE and decision.partitions == 2
    assert decision.gate_values()["flag_volume_ratio_high"] == pytest.approx(
        (115 / 12000) / (1020 / 108000)
    )
    cases = {
        "error_rate": [_obs("h0", CANDIDATE, failed=True), _obs("h0", CHAMPION)],
        "empty_prediction_rate_increase": [
            _obs("h0", CANDIDATE, 1000, invalid=300),
            _obs("h0", CHAMPION, 9000),
        ],
        "flag_rate": [_obs("h0", CANDIDATE, 1000, flags=1000), _obs("h0", CHAMPION, 9000)],
        "flag_volume_ratio_high": [
            _obs("h0", CANDIDATE, 1000, flags=100),
            _obs("h0", CHAMPION, 9000, flags=90),
        ],
        "flag_volume_ratio_low": [
            _obs("h0", CANDIDATE, 1000, flags=0),
            _obs("h0", CHAMPION, 9000, flags=900),
        ],
        "latency_ratio": [
            _obs("h0", CANDIDATE, 6000, seconds=30.0),
            _obs("h0", CHAMPION, 54000, seconds=50.0),
        ],
    }
    for gate, rows in cases.items():
        decision = _decide(rows)
        assert decision.action == ROLL_BACK, gate
        assert [g.name for g in decision.failed] == [gate]
        assert gate in decision.reason


def test_too_little_evidence_is_not_judged_and_the_step_waits_for_more():
    # 30 windows on the candidate (a few devices' faults are not a verdict on the model)
    rows = [_obs("h0", CANDIDATE, 30, flags=12, seconds=0.1), _obs("h0", CHAMPION, 270, flags=3)]
    decision = _decide(rows, partitions_per_step=1)
    assert decision.action == WAIT and "too little evidence" in decision.reason
    assert all(g.passed and "not judged" in g.detail for g in decision.gates[1:])
    # enough windows, but the champion flags 1 %: 3 flags expected — the band is not judged,
    # flag rate and empty predictions are, and the step advances
    rows = [_obs("h0", CANDIDATE, 300, flags=6), _obs("h0", CHAMPION, 2700, flags=27)]
    decision = _decide(rows, partitions_per_step=1)
    gates = {g.name: g for g in decision.gates}
    assert "not judged" in gates["flag_volume_ratio_high"].detail
    assert "not judged" in gates["latency_ratio"].detail
    assert "not judged" not in gates["flag_rate"].detail
    assert decision.action == ADVANCE


# -- a rollout over real scores -----------------------------------------------------------------


@pytest.fixture
def lc(tmp_path, monkeypatch):
    """The lifecycle world with version 1 in production."""
    use_world(tmp_path, monkeypatch)
    s = get_settings()
    registry = ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir)
    lifecycle = ModelLifecycle(
        registry, AuditTrail(lifecycle_db_url(s.alerts_db_url)), s.models_dir
    )
    lifecycle.after_training(MODEL, "1", "trainer")
    # 30 devices of 4 windows an hour: 10 % is a dozen windows, so the evidence minimum is
    # this small fleet's (the fleet-wide default assumes hundreds of devices per share).
    override_promotion(s.models_dir, rollout={"min_candidate_windows": 10})
    yield lifecycle
    lifecycle.audit.close()


def serve(manager: RolloutManager, hour: str):
    """Serve one hourly partition the way the score asset does (same scoring function)."""
    refrig = RefrigResource()
    rollout = manager.active(MODEL)
    return serve_partition(
        manager,
        rollout,
        hour,
        lambda v: refrig.registry.load(MODEL, v),
        lambda det, v, keep: score_hour_by_hour(refrig, det, v, [hour], devices=keep),
        f"scoring {hour}",
    )


def override_promotion(models_dir, **values):
    """Set keys of this detector's own ``promotion:`` block in its models/ file."""
    path = models_dir / f"{MODEL}.yaml"
    config = yaml.safe_load(path.read_text())
    config["promotion"] = {**(config.get("promotion") or {}), **values}
    path.write_text(yaml.safe_dump(config))


def loose_promotion_gates(models_dir):
    """Promotion gates switched off for this detector: the rollout is the only safeguard."""
    override_promotion(
        models_dir,
        **{
            "absolute": {"min_training_windows": None, "max_flag_rate": None},
            "canary": {
                "criteria": {
                    "mean_abs_score_diff": None,
                    "contamination_rate_change": None,
                    "top_k_overlap": None,
                    "score_kl_divergence": None,
                }
            },
            "vs_champion": {"recall_tolerance": None, "precision_tolerance": None},
        },
    )


def register_variant(lc: ModelLifecycle, name: str, **settings) -> str:
    """v1's detector trained on the same hours with changed settings, as a new candidate."""
    store = ParquetStore(get_settings().data_dir)
    config = load_model_config(MODEL, lc.models_dir)
    config = dataclasses.replace(config, settings={**config.settings, **settings})
    if "features" in settings:
        columns = tuple(resolve_feature_columns(settings["features"]))
        config = dataclasses.replace(config, feature_columns=columns)

    train = with_cohort(
        store.read_many("device_features", HOURS[:2]), store.read("device_registry")
    )
    detector, lineage, metrics = train_detector(config, train, "h0..h1", name)
    version = lc.registry.register(detector, lineage, metrics)
    lc.after_training(MODEL, version, "trainer")
    return version


def test_a_healthy_candidate_advances_10_50_100_and_then_is_production(lc):
    manager = RolloutManager(lc)
    started = manager.start(evaluate(lc, "3").report, "alice")
    assert (started.event, started.from_version, started.to_version) == (
        ev.ROLLOUT_STARTED,
        "1",
        "3",
    )
    assert "10% of devices" in started.reason and started.gates  # the promotion gates it passed
    assert lc.registry.production_version(MODEL) == "1"

    decisions, shares = [], []
    for hour in HOURS[:4]:
        shares.append(manager.active(MODEL).share)
        served = serve(manager, hour)
        decisions.append(served.decision.action)
        scores = served.scores
        on_candidate = serves_candidate_mask(scores["device_id"], shares[-1])
        # each device's rows carry the version that served it
        assert set(scores.loc[on_candidate, "model_version"]) == {"3"}
        assert set(scores.loc[~on_candidate, "model_version"]) == {"1"}
        assert load_contract("model_scores").validate(scores) is not None
    assert shares == [0.10, 0.10, 0.50, 0.50]
    assert decisions == [WAIT, ADVANCE, WAIT, COMPLETE]
    assert manager.active(MODEL) is None
    assert lc.registry.production_version(MODEL) == "3"
    rollout_events = [e for e in lc.audit.events(MODEL) if e.event.startswith("rollout_")]
    assert [e.event for e in rollout_events] == [
        ev.ROLLOUT_STARTED,
        ev.ROLLOUT_ADVANCED,
        ev.ROLLOUT_COMPLETED,
    ]
    advanced, completed = rollout_events[1:]
    assert "50% of devices" in advanced.reason and advanced.actor == f"scoring {HOURS[1]}"
    assert {g["name"] for g in advanced.gates} >= {"error_rate", "flag_rate", "latency_ratio"}
    assert completed.production_version == "3" and completed.serving_version == "3"


def serves_candidate_mask(device_ids: pd.Series, share: float) -> np.ndarray:
    return np.array([serves_candidate(d, share, MODEL) for d in device_ids])


def test_a_candidate_that_flags_everything_is_rolled_back_at_10_percent(lc):
    loose_promotion_gates(lc.models_dir)
    noisy = register_variant(lc, "flags-everything", flag_threshold=0.0)
    manager = RolloutManager(lc)
    manager.start(evaluate(lc, noisy).report, "alice")

    served = serve(manager, HOURS[0])
    assert served.decision.action == ROLL_BACK
    assert [g.name for g in served.decision.failed] == ["flag_rate"]
    # the partition where its gates failed is written with the champion's scores only
    assert set(served.scores["model_version"]) == {"1"}
    assert manager.active(MODEL) is None and lc.registry.production_version(MODEL) == "1"
    rolled = lc.audit.latest(MODEL)
    assert rolled.event == ev.ROLLOUT_ROLLED_BACK
    assert (rolled.from_version, rolled.to_version, rolled.serving_version) == (noisy, "1", "1")
    assert "step 1/3 (10% of devices)" in rolled.reason and "flag_rate = 1" in rolled.reason
    failing = [g for g in rolled.gates if not g["passed"]]
    assert [(g["name"], g["value"]) for g in failing] == [("flag_rate", 1.0)]
    # a rolled-back candidate is no longer deployable
    assert lc.gate_status(MODEL, noisy) == ROLLOUT_FAILED
    with pytest.raises(LifecycleError, match="has not passed the promotion gates"):
        lc.pin(MODEL, noisy, "bob", "")


def test_a_candidate_that_starts_failing_is_rolled_back_at_50_percent(lc):
    # The candidate also reads door_open_fraction; from hour 2 on the feature files no longer
    # carry that column (an upstream schema change) and the candidate's scoring raises.
    loose_promotion_gates(lc.models_dir)
    config = load_model_config(MODEL, lc.models_dir)
    features = {**config.settings["features"], "extra": ["duty_cycle", "door_open_fraction"]}
    fragile = register_variant(lc, "door-aware", features=features)
    manager = RolloutManager(lc)
    manager.start(evaluate(lc, fragile).report, "alice")
    store = ParquetStore(get_settings().data_dir)
    assert [serve(manager, h).decision.action for h in HOURS[:2]] == [WAIT, ADVANCE]
    for hour in HOURS[2:4]:
        store.write(
            "device_features",
            hour,
            store.read("device_features", hour).drop(columns=["door_open_fraction"]),
        )

    served = serve(manager, HOURS[2])
    assert served.decision.action == ROLL_BACK
    assert [g.name for g in served.decision.failed] == ["error_rate"]
    assert "failed" in served.fallback and set(served.scores["model_version"]) == {"1"}
    assert (
        served.scores["device_id"].nunique()
        == store.read("device_features", HOURS[2])["device_id"].nunique()
    )  # every device still scored: the champion covered the candidate's share
    rolled = lc.audit.latest(MODEL)
    assert rolled.event == ev.ROLLOUT_ROLLED_BACK
    assert "step 2/3 (50% of devices)" in rolled.reason and "error_rate" in rolled.reason
    assert lc.registry.production_version(MODEL) == "1"


def test_alerts_of_the_candidates_devices_come_from_the_candidate(lc):
    # half the devices on the candidate: a few faulty devices do not dominate its share
    override_promotion(lc.models_dir, rollout={"steps": [0.5, 1.0], "min_candidate_windows": 10})
    manager = RolloutManager(lc)
    manager.start(evaluate(lc, "3").report, "alice")
    served = serve(manager, HOURS[5])
    assert served.decision.action == WAIT
    store = ParquetStore(get_settings().data_dir)
    alerts = generate_alerts(
        served.scores,
        store.read("device_registry"),
        load_contract("device_alerts").empty_frame(),
        HOURS[5],
        "test",
    )
    on_candidate = serves_candidate_mask(alerts["device_id"], 0.50)
    assert on_candidate.any() and (~on_candidate).any()
    assert set(alerts.loc[on_candidate, "model_versions"]) == {f"{MODEL}@3"}
    assert set(alerts.loc[~on_candidate, "model_versions"]) == {f"{MODEL}@1"}


def test_a_rollout_is_advanced_or_aborted_by_hand_and_refuses_a_second_one(lc):
    manager = RolloutManager(lc)
    report = evaluate(lc, "3").report
    manager.start(report, "alice")
    with pytest.raises(LifecycleError, match="rollout of v3 is in progress"):
        manager.start(report, "bob")
    advanced = manager.advance(MODEL, "bob")
    assert advanced.event == ev.ROLLOUT_ADVANCED and "advanced by hand" in advanced.reason
    assert manager.active(MODEL).share == 0.50
    aborted = manager.abort(MODEL, "bob", "field team asked")
    assert aborted.event == ev.ROLLOUT_ABORTED and "back on v1" in aborted.reason
    assert manager.active(MODEL) is None and lc.registry.production_version(MODEL) == "1"
    with pytest.raises(LifecycleError, match="no rollout in progress"):
        manager.abort(MODEL, "bob", "")


def test_a_pin_wins_over_the_rollout_and_a_production_moved_elsewhere_ends_it(lc):
    manager = RolloutManager(lc)
    manager.start(evaluate(lc, "3").report, "alice")
    assert manager.serving(MODEL, pinned="1") is None  # pinned: no split, the rollout waits
    assert manager.active(MODEL) is not None
    lc.registry.set_production(MODEL, "2")
    assert manager.serving(MODEL, pinned=None) is None
    assert lc.audit.latest(MODEL).event == ev.ROLLOUT_ABORTED


# -- in the asset graph and on the command line -------------------------------------------------


def test_the_score_asset_serves_two_versions_during_a_rollout(lc):
    from refrig_assets.definitions import defs
    from refrig_assets.defs.scoring.assets import scoring_assets

    RolloutManager(lc).start(evaluate(lc, "3").report, "alice")
    (asset,) = [a for a in scoring_assets if a.key == dg.AssetKey(f"{MODEL}_scores")]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [asset], partition_key=HOURS[0], instance=instance, resources=defs.resources
        )
        health_rows = scoring_stats(scoring_observations(instance, [MODEL]))
    assert result.success
    (mat,) = result.asset_materializations_for_node(f"{MODEL}_scores")
    meta = {k: v.value for k, v in mat.metadata.items()}
    written = ParquetStore(get_settings().data_dir).read(f"{MODEL}_scores", HOURS[0])
    assert set(written["model_version"]) == {"1", "3"}
    on_candidate = serves_candidate_mask(written["device_id"], 0.10)
    assert set(written.loc[on_candidate, "model_version"]) == {"3"}
    versions = meta["model_versions"]
    assert versions[CANDIDATE]["version"] == "3" and versions[CHAMPION]["version"] == "1"
    assert versions[CANDIDATE]["windows_scored"] + versions[CHAMPION]["windows_scored"] == len(
        written
    )
    assert {"flags", "failed", "ms_per_1k_windows"} <= set(versions[CANDIDATE])
    assert meta["rollout_step"] == "1/3" and meta["rollout_decision"] == WAIT
    assert "flag_rate" in meta["rollout_gate_values"]
    # /health's scoring latency and error rate are per version, each side on its own.
    assert {(r["model_version"], r["steps"], r["error_rate"]) for r in health_rows} == {
        ("1", 1, 0.0),
        ("3", 1, 0.0),
    }
    assert all(r["latency_p50_s"] > 0 for r in health_rows)


def test_promote_starts_a_rollout_and_the_cli_shows_and_ends_it(lc):
    runner = CliRunner()
    started = runner.invoke(app, ["models", "promote", MODEL, "3", "--by", "alice"])
    assert started.exit_code == 0, started.output
    assert "rollout_started: 1 -> 3" in started.output
    status = runner.invoke(app, ["models", "rollout", "status", MODEL])
    assert status.exit_code == 0, status.output
    assert "step 1/3" in status.output and "10% of devices on v3" in status.output
    advanced = runner.invoke(app, ["models", "rollout", "advance", MODEL])
    assert advanced.exit_code == 0 and "rollout_advanced" in advanced.output
    aborted = runner.invoke(app, ["models", "rollout", "abort", MODEL, "--reason", "enough"])
    assert aborted.exit_code == 0 and "rollout_aborted: 3 -> 1" in aborted.output
    assert "ABORTED" in runner.invoke(app, ["models", "rollout", "status", MODEL]).output
    again = runner.invoke(app, ["models", "rollout", "abort", MODEL])
    assert again.exit_code == 1 and "no rollout in progress" in again.output
    now = runner.invoke(app, ["models", "promote", MODEL, "3", "--now"])
    assert now.exit_code == 0 and "promoted: 1 -> 3" in now.output
