"""A production version whose artifact is corrupt can be replaced from the command line.

``refrig models promote`` evaluates the candidate against production; when production cannot
load, that evaluation raised and even ``--force`` failed, leaving the detector on the
rules-based fallback. Now the promotion is blocked with the reason (exit 1), and ``--force
--reason`` promotes the candidate, recorded as a forced promotion.
"""

import pytest
from support.lifecycle_world import MODEL
from typer.testing import CliRunner

from refrig_assets.cli import app

pytestmark = pytest.mark.fault_injection


@pytest.fixture
def corrupt_production(lc):
    """v1 production with its artifact truncated (restored afterwards: the world is shared)."""
    from pathlib import Path

    lc.after_training(MODEL, "1", "trainer")
    uri = lc.registry.client.get_model_version_download_uri(MODEL, "1")
    path = Path(uri.removeprefix("file://")) / "artifacts" / "detector" / "detector.joblib"
    saved = path.read_bytes()
    path.write_bytes(saved[: len(saved) // 2])
    yield
    path.write_bytes(saved)


def promote(*extra: str):
    return CliRunner().invoke(
        app, ["models", "promote", MODEL, "3", "--now", "--by", "ana", *extra]
    )


def test_promoting_over_a_corrupt_production_is_blocked_with_the_reason(lc, corrupt_production):
    result = promote()

    assert result.exit_code == 1, result.output
    assert "[FAIL] production v1 cannot be compared" in result.output
    assert "--force" in result.output
    assert lc.registry.production_version(MODEL) == "1"


def test_a_forced_promotion_replaces_a_corrupt_production(lc, corrupt_production):
    result = promote("--force", "--reason", "production artifact corrupt")

    assert result.exit_code == 0, result.output
    assert lc.registry.production_version(MODEL) == "3"
    event = lc.audit.latest(MODEL)
    assert event.to_version == "3"
    assert event.forced and "production artifact corrupt" in event.reason
