"""A CauseStore kept for the hours of a range reads each hour of feature history once for the
baselines it rebuilds, and builds exactly the baselines a fresh store per hour builds, also
after a history partition was rewritten."""

import pandas as pd
import pyarrow.parquet as pq
from support.cause_world import START

from refrig_assets.incidents import causes_store
from refrig_assets.incidents.causes_store import BASELINES, CauseStore
from refrig_assets.incidents.signatures import load_signatures
from refrig_assets_tests.incidents.test_causes_partition import _store_with_history


def _key(hour: int) -> str:
    return (START + pd.Timedelta(hours=hour)).strftime("%Y-%m-%d-%H:%M")


def _reads(monkeypatch) -> list[str]:
    """The device_features files the causes store reads from now on."""
    read: list[str] = []
    plain = causes_store.read_parquet_table

    def spy(path, *args, **kwargs):
        read.append(path.stem)
        return plain(path, *args, **kwargs)

    monkeypatch.setattr(causes_store, "read_parquet_table", spy)
    return read


def test_a_kept_store_reads_each_history_hour_once_and_builds_the_same_baselines(
    tmp_path, monkeypatch
):
    store = _store_with_history(tmp_path, hours=40)
    table = load_signatures()
    hours = range(2, 40)  # fewer than min_history_hours at first: rebuilt every hour
    kept = CauseStore(store)
    reads = _reads(monkeypatch)
    built = {h: kept.baselines(_key(h), table) for h in hours}
    assert len(reads) == len(set(reads))  # each history hour read once
    assert len(reads) > 24  # rebuilt many times over the hours, each hour read once

    for path in (store.root / BASELINES).glob("*.parquet"):
        path.unlink()
    for h in hours:  # a fresh store per hour, as one-hour runs have
        pd.testing.assert_frame_equal(built[h], CauseStore(store).baselines(_key(h), table))


def test_a_rewritten_history_hour_is_read_again(tmp_path, monkeypatch):
    store = _store_with_history(tmp_path, hours=12)
    table = load_signatures()
    kept = CauseStore(store)
    kept.baselines(_key(6), table)
    stem = START.strftime("%Y-%m-%dT%H")
    first = pq.read_table(store.root / "device_features" / f"{stem}.parquet").to_pandas()
    store.write("device_features", stem, first.assign(duty_cycle=first["duty_cycle"] * 0.5))
    reads = _reads(monkeypatch)

    again = kept.baselines(_key(7), table)

    added = (START + pd.Timedelta(hours=6)).strftime("%Y-%m-%dT%H")
    assert sorted(reads) == [stem, added]  # the rewritten hour and the hour new to the history
    pd.testing.assert_frame_equal(again, CauseStore(store).baselines(_key(7), table))


def test_a_baseline_is_reused_for_less_than_refresh_hours(tmp_path):
    store = _store_with_history(tmp_path, hours=30)
    table = load_signatures()
    for refresh, kept in [(6, [12, 18, 24]), (1.5, [12, 14, 16, 18, 20, 22, 24, 26])]:
        for path in (store.root / BASELINES).glob("*.parquet"):
            path.unlink()
        table.baseline["refresh_hours"] = refresh
        cause_store = CauseStore(store)
        for h in range(12, 28):
            cause_store.baselines(_key(h), table)
        built = sorted(p.stem for p in (store.root / BASELINES).glob("*.parquet"))
        assert built == [(START + pd.Timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in kept]
