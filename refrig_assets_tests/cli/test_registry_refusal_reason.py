"""A registry without a required column (`site_id`): `refrig pipeline run` printed two Dagster
stack traces and ended with "device registry refused ... Execution of step "device_registry"
failed.", the reason only inside the traces. It now says the reason in one line, no trace."""

import pandas as pd
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.settings import get_settings


def test_a_registry_missing_a_required_column_is_refused_with_the_reason(refrig_home):
    registry = get_settings().registry_path
    registry.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"device_id": ["a", "b"], "cohort": ["c", "c"]}).to_csv(registry, index=False)

    result = CliRunner().invoke(app, ["pipeline", "run", "--hours", "1"])

    assert result.exit_code == 1
    said = result.output.splitlines()
    at = said.index("device registry refused, nothing was run on it")
    assert said[at + 1] == (
        f"ValueError: {registry}: required registry column 'site_id' is missing"
    )
    assert "Stack Trace" not in result.output
