"""A stopped compressor's current repeating its idle value is not a stuck sensor.

At or below the contract's ``running_above`` of current_compressor the compressor is stopped:
0 A, or the flat draw of a controller or heater, may repeat for hours. A current repeating a
value above it (a running compressor whose reading does not move) is still STUCK_SENSOR. The
threshold is the contract's, read here, not restated.
"""

from datetime import timedelta

import numpy as np
import pytest
from support.quality_helpers import CONTRACT, HOUR, good_rows, run_hour

from refrig_assets.quality.steady import steady_mask, steady_sql

CURRENT = "current_compressor"
RUNNING_ABOVE = float(CONTRACT.column(CURRENT).extra["running_above"])


def _two_hours_at(tmp_path, value: float):
    """dev-1's current held at ``value`` for two hours (the other sensors move); both hours'
    results, the second carrying the first's stuck-run tails."""
    landing = tmp_path / "landing"
    landing.mkdir()
    rows = good_rows(120)
    rows[CURRENT] = value
    rows.to_parquet(landing / "two_hours.parquet")
    tails0, tails1 = tmp_path / "tails0.parquet", tmp_path / "tails1.parquet"
    _, first = run_hour(landing, tails=(None, tails0))
    _, second = run_hour(
        landing, key="2026-01-01-01:00", start=HOUR + timedelta(hours=1), tails=(tails0, tails1)
    )
    return first, second


@pytest.mark.parametrize("idle", [RUNNING_ABOVE, RUNNING_ABOVE / 4, 0.0])
def test_a_current_repeating_an_idle_value_for_two_hours_is_not_stuck(tmp_path, idle):
    for result in _two_hours_at(tmp_path, idle):
        assert result.sensor_flag_counts[("STUCK_SENSOR", CURRENT)] == 0
        assert result.flag_counts["STUCK_SENSOR"] == 0


def test_a_current_repeating_a_running_value_is_still_stuck(tmp_path):
    first, second = _two_hours_at(tmp_path, RUNNING_ABOVE * 4)
    assert first.sensor_flag_counts[("STUCK_SENSOR", CURRENT)] == 60
    assert second.sensor_flag_counts[("STUCK_SENSOR", CURRENT)] == 60


def test_the_sql_and_the_array_form_agree_on_which_values_are_steady():
    from refrig_assets.core.duck import connect

    column = CONTRACT.column(CURRENT)
    values = np.array([0.0, RUNNING_ABOVE / 2, RUNNING_ABOVE, RUNNING_ABOVE + 0.01, 9.0, np.nan])
    con = connect()
    try:
        rows = con.execute(
            f"SELECT coalesce({steady_sql(column, 'v')}, FALSE) FROM unnest(?) AS t(v)",
            [[None if np.isnan(v) else float(v) for v in values]],
        ).fetchall()
    finally:
        con.close()
    assert [r[0] for r in rows] == steady_mask(column, values).tolist()
    assert steady_mask(column, values).tolist() == [True, True, True, False, False, False]
    # a column declaring neither has no steady value
    assert steady_sql(CONTRACT.column("vibration_compressor"), "v") is None
