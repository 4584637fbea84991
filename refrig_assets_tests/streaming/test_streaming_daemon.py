"""The streaming path with a real ``dagster-daemon`` on loopback and temporary homes: a file
dropped into the landing directory becomes a CRITICAL alert in the alert database without any
run being launched. Latency numbers are the benchmark's business (``bench_streaming``); here the
alert only has to arrive within the seed's end-to-end bound."""

import pytest

from tools.benchmarks.streaming import measure_landing_to_alert


@pytest.mark.slow
def test_a_dropped_file_becomes_an_alert_through_the_running_daemon():
    result = measure_landing_to_alert(drops=2, gap_s=0.5)

    # measure_landing_to_alert raises if an alert does not arrive within the seed's 2 minutes
    assert len(result["latencies_s"]) == 2
    print(f"landing → alert with dagster-daemon: {result}")
