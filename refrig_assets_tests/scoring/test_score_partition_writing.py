"""Score partitions are written run by run: each run of hours is checked against the
model_scores contract and appended to a temporary file renamed into place at the end. The day
written run by run holds exactly the rows scoring the whole day at once gives; a bad run, or a
crash, leaves the last good partition and no temporary file."""

from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.lifecycle.canary import kl_divergence
from refrig_assets.scoring.summary import QUANTILE_BINS, ScoreSummary, score_counts

DAY = "2026-01-01"
DAY_START = pd.Timestamp(DAY, tz="UTC")
DAILY_MODELS = ["autoencoder", "dbscan_cohort"]
RUN_HOURS = 5  # 24 hours in runs of 5, 5, 5, 5 and 4


def scores_piece(hour: int, devices: int = 3, model_id: str = "m") -> pd.DataFrame:
    """Valid model_scores rows of ``devices`` devices for the four windows of one hour."""
    starts = DAY_START + pd.to_timedelta(np.arange(4) * 15 + hour * 60, unit="min")
    ids = [f"dev-{i}" for i in range(devices)]
    frame = pd.DataFrame(
        {
            "device_id": np.repeat(ids, 4),
            "window_start": np.tile(starts, devices),
        }
    )
    n = len(frame)
    frame["window_end"] = frame["window_start"] + pd.Timedelta(minutes=15)
    frame["model_id"] = model_id
    frame["model_version"] = "1"
    frame["granularity"] = "cohort"
    frame["anomaly_score"] = np.linspace(0.0, 1.0, n)
    frame["anomaly_flag"] = frame["anomaly_score"] >= 0.8
    frame["top_contributors"] = "pressure_low_side"
    frame["contributor_detail"] = "pressure_low_side 1.0σ below"
    frame["confidence"] = 1.0
    frame["scored_at"] = pd.Timestamp("2026-01-02", tz="UTC")
    return frame[load_contract("model_scores").column_names]


def leftovers(store: ParquetStore, dataset: str) -> list[str]:
    return sorted(p.name for p in (store.root / dataset).iterdir() if p.name.startswith("."))


# -- the store's streaming writer ---------------------------------------------------------------


def test_pieces_written_through_the_writer_read_back_as_one_partition(tmp_path):
    store = ParquetStore(tmp_path)
    pieces = [scores_piece(h) for h in range(3)]
    with store.writer("s", DAY) as out:
        for piece in pieces:
            out.write(piece)
    store.write("at_once", DAY, pd.concat(pieces, ignore_index=True))
    pd.testing.assert_frame_equal(store.read("s", DAY), store.read("at_once", DAY))
    assert leftovers(store, "s") == []


def test_an_exception_inside_the_writer_leaves_no_partition_and_no_temporary_file(tmp_path):
    store = ParquetStore(tmp_path)
    with pytest.raises(RuntimeError, match="scoring crashed"):
        with store.writer("s", DAY) as out:
            out.write(scores_piece(0))
            raise RuntimeError("scoring crashed")
    assert not store.exists("s", DAY)
    assert leftovers(store, "s") == []


def test_a_crash_or_a_discard_keeps_the_previous_partition(tmp_path):
    store = ParquetStore(tmp_path)
    store.write("s", DAY, scores_piece(0))
    before = store.path("s", DAY).read_bytes()
    with pytest.raises(ValueError):
        with store.writer("s", DAY) as out:
            out.write(scores_piece(1))
            raise ValueError("bad run")
    with store.writer("s", DAY) as out:
        out.write(scores_piece(2))
        out.discard()
    assert store.path("s", DAY).read_bytes() == before
    assert leftovers(store, "s") == []


# -- counters instead of the rows ---------------------------------------------------------------


def test_a_summary_of_pieces_judges_the_distribution_exactly_like_the_whole_sample():
    rng = np.random.default_rng(0)
    scores = np.concatenate([np.zeros(3000), rng.beta(2, 8, 20_000), np.ones(40)])
    rng.shuffle(scores)
    frame = pd.DataFrame(
        {
            "anomaly_score": scores,
            "anomaly_flag": scores >= 0.8,
            "device_id": [f"dev-{i % 500}" for i in range(len(scores))],
        }
    )
    summary = ScoreSummary(histogram_bins=20)
    for piece in np.array_split(np.arange(len(frame)), 7):
        summary.add(frame.iloc[piece])
    assert summary.windows == len(frame)
    assert summary.flag_rate == pytest.approx(frame["anomaly_flag"].mean())
    assert summary.flagged_devices == frame.loc[frame["anomaly_flag"], "device_id"].nunique()
    assert (summary.histogram == score_counts(scores, 20)).all()
    reference = rng.beta(2, 7, 5000)
    from refrig_assets.lifecycle.canary import histogram_kl

    assert histogram_kl(summary.histogram, score_counts(reference, 20), 1e-4) == kl_divergence(
        scores, reference, 20, 1e-4
    )
    for q in (0.01, 0.5, 0.9, 0.99, 0.999):
        exact = frame["anomaly_score"].quantile(q)
        assert summary.quantile(q) == pytest.approx(exact, abs=1 / QUANTILE_BINS), q
    assert summary.quantile(0.05) == 0.0  # a mass of scores at 0 is reported exactly
    assert summary.quantile(1.0) == 1.0


# -- the daily score assets ---------------------------------------------------------------------


@pytest.fixture
def scored_day(refrig_home, monkeypatch):
    """A day of synthetic feature hours for 40 devices, both daily detectors trained on its
    first four hours and in production, scoring in runs of ``RUN_HOURS`` hours."""
    from refrig_assets.core.model_config import load_model_config
    from refrig_assets.core.settings import MODELS_DIR
    from refrig_assets.defs.shared.resources import RefrigResource
    from refrig_assets.training.fit import train_detector
    from tools.benchmarks.scoring import synthetic_features

    models = refrig_home / "models"
    models.mkdir()
    for f in MODELS_DIR.glob("*.yaml"):
        spec = yaml.safe_load(f.read_text())
        if f.stem in DAILY_MODELS:
            spec["scoring_chunk_hours"] = RUN_HOURS
        (models / f.name).write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("REFRIG_MODELS_DIR", str(models))

    refrig = RefrigResource()
    store = refrig.store
    features = synthetic_features(devices=40, hours=24, seed=4)
    features["window_start"] = features["window_start"].dt.tz_convert("UTC")
    features["window_end"] = features["window_end"].dt.tz_convert("UTC")
    store.write("device_registry", None, features[["device_id", "cohort"]].drop_duplicates())
    hour = features["window_start"].dt.floor("h")
    for h, part in features.drop(columns="cohort").groupby(hour):
        store.write("device_features", h.strftime("%Y-%m-%d-%H:00"), part)
    train = features[features["window_start"] < DAY_START + pd.Timedelta(hours=4)]
    for model_id in DAILY_MODELS:
        config = load_model_config(model_id, models)
        detector, lineage, metrics = train_detector(config, train, "first 4 hours", "test")
        version = refrig.registry.register(detector, lineage, metrics)
        refrig.registry.set_production(model_id, version)
    return refrig, features


def materialize_day(assets: list[str]):
    from refrig_assets.definitions import defs

    return dg.materialize(
        [defs.resolve_assets_def(dg.AssetKey(a)) for a in assets],
        partition_key=DAY,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_a_day_written_run_by_run_holds_the_rows_of_scoring_the_day_at_once(scored_day):
    from refrig_assets.scoring.score import score_windows

    refrig, features = scored_day
    assets = [f"{m}_scores" for m in DAILY_MODELS]
    result = materialize_day(assets)
    assert result.success
    key = ["device_id", "window_start"]
    for model_id in DAILY_MODELS:
        version = refrig.registry.production_version(model_id)
        detector = refrig.registry.load(model_id, version)
        at_once = score_windows(detector, version, features, datetime.now(UTC), since=DAY_START)
        written = refrig.store.read(f"{model_id}_scores", DAY)
        assert len(written) == len(at_once) > 0
        at_once = at_once.sort_values(key).reset_index(drop=True).drop(columns="scored_at")
        written = written.sort_values(key).reset_index(drop=True).drop(columns="scored_at")
        pd.testing.assert_frame_equal(written, at_once, check_dtype=False, rtol=0, atol=1e-9)
        (mat,) = result.asset_materializations_for_node(f"{model_id}_scores")
        meta = {k: v.value for k, v in mat.metadata.items()}
        assert meta["written"] is True and meta["windows_scored"] == len(at_once)
        assert meta["flag_rate"] == pytest.approx(at_once["anomaly_flag"].mean())
        assert (
            meta["flagged_devices"] == at_once.loc[at_once["anomaly_flag"], "device_id"].nunique()
        )
        for name, q in (("score_p50", 0.5), ("score_p99", 0.99)):
            assert meta[name] == pytest.approx(at_once["anomaly_score"].quantile(q), abs=1e-4)
        assert leftovers(refrig.store, f"{model_id}_scores") == []


def test_a_run_failing_the_contract_after_good_runs_writes_nothing(refrig_home):
    from refrig_assets.defs.scoring.partition_writer import write_score_partition
    from refrig_assets.defs.shared.resources import RefrigResource

    refrig = RefrigResource()
    store = refrig.store
    last_good = scores_piece(0)
    store.write("m_scores", DAY, last_good)
    before = store.path("m_scores", DAY).read_bytes()
    bad = scores_piece(3)
    bad.loc[5, "anomaly_score"] = 1.5  # out of the contract's [0, 1]
    pieces = [(p[["window_start"]], p) for p in (scores_piece(1), scores_piece(2), bad)]
    context = dg.build_asset_context(partition_key=DAY)
    written = write_score_partition(context, refrig, "m_scores", "m", "1", pieces, DAY_START)
    assert not written.check.passed and written.path is None
    assert store.path("m_scores", DAY).read_bytes() == before
    assert leftovers(store, "m_scores") == []
    meta = written.check.metadata
    assert meta["rows"].value == 36 and meta["failures"].value == 1
    failing_row = meta["sample"].value.splitlines()[-1]
    assert "1.5" in failing_row and failing_row.endswith(" 29 |")  # row 5 of the third run


def test_runs_that_overlap_in_time_fail_the_check(refrig_home):
    from refrig_assets.defs.scoring.partition_writer import ORDER_CHECK, write_score_partition
    from refrig_assets.defs.shared.resources import RefrigResource

    refrig = RefrigResource()
    pieces = [(p[["window_start"]], p) for p in (scores_piece(1), scores_piece(1))]
    context = dg.build_asset_context(partition_key=DAY)
    written = write_score_partition(context, refrig, "m_scores", "m", "1", pieces, DAY_START)
    assert not written.check.passed and written.path is None
    assert ORDER_CHECK in written.check.metadata["failures_by_check"].value
    assert not refrig.store.exists("m_scores", DAY)
