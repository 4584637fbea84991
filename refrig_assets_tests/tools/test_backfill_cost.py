"""The backfill bench splits each hourly run into the steps' own time and the rest, and the
steps it counts are the ones the run executed. Nothing here asserts on time."""

import dagster as dg

from tools.benchmarks.backfill import PREP, RunCost, hourly_run_costs, step_seconds, summarise

HOURS = ["2026-01-01-00:00", "2026-01-01-01:00"]


def test_each_hour_is_one_run_whose_steps_are_part_of_its_wall_time(small_fleet):
    from refrig_assets.definitions import defs

    with dg.instance_for_test() as instance:
        defs.resolve_job_def("refresh_device_registry").execute_in_process(instance=instance)
        costs = hourly_run_costs(defs, instance, HOURS, PREP)
        runs = instance.get_runs()

    assert [c.partition for c in costs] == HOURS
    assert all(c.success for c in costs)
    assert all(0 < c.steps_s <= c.wall_s for c in costs)
    assert all(c.overhead_s == c.wall_s - c.steps_s for c in costs)
    hourly = [r for r in runs if r.tags.get("dagster/partition") in HOURS]
    assert sorted(r.tags["dagster/partition"] for r in hourly) == HOURS


def test_a_result_without_step_events_counts_no_step_time():
    class Result:
        all_node_events = []

    assert step_seconds(Result()) == 0


def test_the_summary_extrapolates_the_median_hour():
    costs = [
        RunCost("a", 6.0, 1.0, True),
        RunCost("b", 8.0, 2.0, True),
        RunCost("c", 7.0, 1.5, True),
    ]
    line = summarise("prep", costs, 600)
    # median 7 s wall × 600 h = 70 min; median steps 1.5 s × 600 h = 15 min
    assert "7.00 s wall = 1.50 s in steps + 5.50 s" in line
    assert "70.0 min (steps alone 15.0 min)" in line


def test_the_summary_names_the_hours_whose_run_failed():
    costs = [
        RunCost("2026-01-01-00:00", 2.0, 1.0, True),
        RunCost("2026-01-01-01:00", 2.0, 1.0, False),
    ]
    line = summarise("scores", costs, 10)
    assert line.endswith("; FAILED run: 2026-01-01-01:00")
    assert "FAILED" not in summarise("scores", costs[:1], 10)
