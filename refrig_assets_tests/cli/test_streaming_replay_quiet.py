"""A replay whose streaming rules raise nothing (no landing file new to them, or no reading
crossing a rule: a rerun, a quiet fleet) lets every hour's alert steps run: nothing to store
before an hour is not an error."""

from datetime import UTC, datetime

from refrig_assets.cli.runner import StreamingReplay
from refrig_assets.core.settings import get_settings
from refrig_assets.simulator import SimulationConfig, simulate_fleet


def test_a_replay_without_landing_files_stores_nothing_before_each_hour(refrig_home):
    stream = StreamingReplay(get_settings())
    stream.store_through("2026-01-01-00:00")
    stream.store_through("2026-01-01-01:00")
    assert stream.finish().inserted == 0


def test_a_replay_whose_rules_fire_on_nothing_stores_nothing_before_each_hour(refrig_home):
    s = get_settings()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    config = SimulationConfig(devices=3, hours=1, start=start, seed=3, faults=False)
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    stream = StreamingReplay(s)
    assert stream.report.files
    stream.store_through("2026-01-01-00:00")
    report = stream.finish()
    assert report.readings > 0 and report.inserted == 0
