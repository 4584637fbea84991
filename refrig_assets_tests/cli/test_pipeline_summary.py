"""The summary of ``refrig pipeline run`` counts the incidents as the commands it names list
them: all of the hours' incidents, and the ones ``refrig incidents list`` shows by default."""

import json
import re

import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.cli.pipeline import COMMANDS_HINT, summarise
from refrig_assets.cli.runner import run_pipeline
from refrig_assets.core.partition_range import hour_keys
from refrig_assets_tests.conftest import START

pytestmark = pytest.mark.fault_injection


def _listed(*options: str) -> int:
    result = CliRunner().invoke(
        app, ["incidents", "list", "--format", "json", "--limit", "10000", *options]
    )
    assert result.exit_code == 0, result.output
    return len(json.loads(result.output))


def test_the_summary_counts_the_incidents_the_named_commands_list(small_fleet):
    run_pipeline(START, 3, 2, log=lambda _line: None)
    summary = summarise(hour_keys(START, 3))

    assert "incidents (as the console lists them)" not in summary
    total = re.search(r"^incidents: (\d+)  \(", summary, re.M)
    listed = re.search(
        r"the console lists the (\d+) still open or acknowledged: refrig incidents list"
        r"  \(--status ALL for all (\d+)\)",
        summary,
    )
    assert total is not None and listed is not None, summary
    assert int(total[1]) == int(listed[2]) == _listed("--status", "ALL") > 0
    assert int(listed[1]) == _listed()
    assert summary.rstrip().endswith(COMMANDS_HINT)
