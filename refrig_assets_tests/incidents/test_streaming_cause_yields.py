"""A cause named by a streaming rule alone yields to the diagnosis of the same episode: the
incident is renamed, never split in two and never paged twice."""

from dataclasses import replace
from datetime import timedelta

import pytest
from support.incident_world import CAUSES, T0, WINDOW, alert, alerts, diagnoses, diagnosis

from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.hourly import rule_named_devices
from refrig_assets.incidents.policy import incident_policy


@pytest.fixture
def policy():
    return replace(
        incident_policy(), hysteresis_windows=2, reopen=timedelta(0), cause_change_min_signals=2
    )


def leak_rule(i):
    """A streaming acute_pressure_loss (named refrigerant_leak) ending in window ``i``."""
    return alert("D1", i, source="streaming", rule="acute_pressure_loss")


def build(rows, dx=(), policy=None, open_incidents=None):
    return build_incidents(
        alerts(rows), diagnoses(dx), policy=policy, causes=CAUSES, open_incidents=open_incidents
    )


def test_a_held_diagnosis_renames_the_rule_named_incident_instead_of_opening_a_second(policy):
    rows = [leak_rule(0), *(alert("D1", i) for i in range(4))]
    dx = [
        diagnosis("D1", 0, "unknown"),
        *(diagnosis("D1", i, "condenser_fouling") for i in (1, 2, 3)),
    ]

    result = build(rows, dx, policy)

    (incident,) = result.incidents.itertuples()
    assert incident.cause == "condenser_fouling"
    assert incident.sources == "batch,streaming"
    assert (incident.first_window_start, incident.alert_count) == (T0, 5)


def test_the_rule_named_incident_stored_last_hour_is_renamed_in_place(policy):
    first = build([leak_rule(0), alert("D1", 0)], [diagnosis("D1", 0, "unknown")], policy)
    (stored,) = first.incidents.itertuples()
    assert stored.cause == "refrigerant_leak"

    later = [alert("D1", i) for i in (1, 2)]
    result = build(
        later,
        [diagnosis("D1", i, "condenser_fouling") for i in (1, 2)],
        policy,
        open_incidents=first.incidents,
    )

    (incident,) = result.incidents.itertuples()
    assert incident.incident_id == stored.incident_id
    assert incident.cause == "condenser_fouling"
    # never paged again for a rename: the stored severity is kept (HIGH of the leak)
    assert incident.severity == stored.severity == "HIGH"


def test_a_one_window_diagnosis_keeps_the_rule_named_cause(policy):
    rows = [leak_rule(0), *(alert("D1", i) for i in range(3))]
    dx = [diagnosis("D1", 0, "unknown"), diagnosis("D1", 1, "condenser_fouling"),
          diagnosis("D1", 2, "unknown")]  # fmt: skip

    result = build(rows, dx, policy)

    assert result.incidents["cause"].tolist() == ["refrigerant_leak"]


def test_a_diagnosis_agreeing_with_the_rule_changes_nothing(policy):
    rows = [leak_rule(0), *(alert("D1", i) for i in range(3))]
    dx = [diagnosis("D1", i, "refrigerant_leak") for i in range(3)]

    result = build(rows, dx, policy)

    assert result.incidents["cause"].tolist() == ["refrigerant_leak"]


def test_a_diagnosed_cause_still_splits_on_another_held_diagnosis(policy):
    rows = [alert("D1", i) for i in range(4)]
    causes = ["refrigerant_leak"] * 2 + ["condenser_fouling"] * 2
    dx = [diagnosis("D1", i, c) for i, c in enumerate(causes)]

    result = build(rows, dx, policy)

    assert sorted(result.incidents["cause"]) == ["condenser_fouling", "refrigerant_leak"]


def test_a_later_episode_of_the_device_is_not_renamed(policy):
    gap = 4  # more than the hysteresis after the rule-named episode
    rows = [leak_rule(0), *(alert("D1", i) for i in (gap, gap + 1))]
    dx = [diagnosis("D1", i, "condenser_fouling") for i in (gap, gap + 1)]

    result = build(rows, dx, policy)

    by_start = result.incidents.sort_values("first_window_start")
    assert by_start["cause"].tolist() == ["refrigerant_leak", "condenser_fouling"]
    assert by_start["first_window_start"].iloc[1] == T0 + gap * WINDOW


def test_the_rule_named_episode_takes_the_diagnosis_of_its_unalerted_windows(policy):
    # The rule's firing is the episode's only alert; the device's windows from it on are
    # diagnosed with another fault (no batch alert: not evidence of their own).
    dx = [diagnosis("D1", i, "condenser_fouling", confidence=0.4 + 0.1 * i) for i in (0, 1, 2)]

    result = build([leak_rule(0)], dx, policy)

    (incident,) = result.incidents.itertuples()
    assert incident.cause == "condenser_fouling"
    assert incident.cause_confidence == pytest.approx(0.6)  # the most confident window
    assert (incident.alert_count, incident.evidence_count) == (1, 1)
    assert incident.last_window_end == T0 + WINDOW  # the diagnosis adds no window of its own


def test_the_stored_rule_named_incident_takes_the_next_hours_diagnosis(policy):
    first = build([leak_rule(3)], [], policy)
    (stored,) = first.incidents.itertuples()
    assert stored.cause == "refrigerant_leak"

    dx = [diagnosis("D1", i, "condenser_fouling") for i in (4, 5)]  # the next hour, no alert
    result = build([], dx, policy, open_incidents=first.incidents)

    (incident,) = result.incidents.itertuples()
    assert (incident.incident_id, incident.cause) == (stored.incident_id, "condenser_fouling")
    assert incident.severity == "HIGH"


def test_unalerted_windows_beyond_the_episode_or_flickering_keep_the_rule_cause(policy):
    gap = 4  # the hysteresis (2 windows) after the firing has passed
    far = [diagnosis("D1", i, "condenser_fouling") for i in (gap, gap + 1)]
    flicker = [diagnosis("D1", i, c) for i, c in enumerate(["condenser_fouling", "unknown"])]
    sensor = [diagnosis("D1", i, "sensor_fault") for i in (0, 1)]

    for dx in (far, flicker, sensor):
        result = build([leak_rule(0)], dx, policy)
        assert result.incidents["cause"].tolist() == ["refrigerant_leak"]


def test_the_hour_reads_the_diagnosis_of_devices_whose_incident_a_rule_named(policy):
    named = build([leak_rule(0)], [], policy).incidents
    diagnosed = build([alert("D2", 0)], [diagnosis("D2", 0, "condenser_fouling")], policy).incidents
    assert rule_named_devices(named) == {"D1"}
    assert rule_named_devices(diagnosed) == set()


def test_a_power_cut_named_by_its_rule_stays_the_sites_whatever_the_windows_after_it(policy):
    cut = alert("D1", 0, source="streaming", rule="power_loss")
    dx = [diagnosis("D1", i, "condenser_fouling") for i in (0, 1, 2)]

    result = build([cut, alert("D1", 1), alert("D1", 2)], dx, policy)

    assert result.incidents.sort_values("first_window_start")["cause"].iloc[0] == "power_loss"


def test_the_rule_firing_again_joins_the_renamed_incident(policy):
    first = build(
        [leak_rule(0), alert("D1", 1), alert("D1", 2)],
        [diagnosis("D1", i, "condenser_fouling") for i in (1, 2)],
        policy,
    )
    (renamed,) = first.incidents.itertuples()
    assert renamed.cause == "condenser_fouling"

    # the store folds two more firings of the rule (no diagnosis there)
    result = build([leak_rule(3), leak_rule(4)], [], policy, open_incidents=first.incidents)

    (incident,) = result.incidents.itertuples()
    assert (incident.incident_id, incident.cause) == (renamed.incident_id, "condenser_fouling")


def test_the_rule_firing_again_keeps_the_renamed_incident_a_diagnosed_one(policy):
    first = build(
        [leak_rule(0), alert("D1", 1), alert("D1", 2)],
        [diagnosis("D1", i, "condenser_fouling", confidence=0.7) for i in (1, 2)],
        policy,
    )
    (renamed,) = first.incidents.itertuples()
    assert renamed.cause == "condenser_fouling"

    result = build([leak_rule(3), leak_rule(4)], [], policy, open_incidents=first.incidents)

    (incident,) = result.incidents.itertuples()
    assert (incident.incident_id, incident.cause) == (renamed.incident_id, "condenser_fouling")
    # The firings carry the stored diagnosis, not the rule's bare name: the next hour does not
    # read the incident as rule-named (and a later held diagnosis splits it, as any diagnosed one).
    assert incident.cause_evidence == renamed.cause_evidence != "[]"
    assert incident.cause_confidence == pytest.approx(0.7)
    assert rule_named_devices(result.incidents) == set()


def test_a_rule_firing_late_in_a_diagnosed_episode_takes_its_diagnosis(policy):
    # Alerted windows 0-1 diagnosed condenser_fouling, the unalerted window 2 too, then the rule
    # fires in window 3: one episode, one incident named by the diagnosis.
    rows = [alert("D1", 0), alert("D1", 1), leak_rule(3)]
    dx = [diagnosis("D1", i, "condenser_fouling") for i in (0, 1, 2)]

    result = build(rows, dx, policy)

    (incident,) = result.incidents.itertuples()
    assert incident.cause == "condenser_fouling"
    assert incident.cause_evidence != "[]"


def test_a_diagnosis_holding_the_rules_own_cause_keeps_it(policy):
    # The episode's windows hold the leak (agreeing with the rule) before another fault: the
    # rule's name is confirmed; the later fault is a cause change of its own.
    rows = [leak_rule(0), *(alert("D1", i) for i in range(1, 5))]
    dx = [
        *(diagnosis("D1", i, "refrigerant_leak") for i in (0, 1)),
        *(diagnosis("D1", i, "condenser_fouling") for i in (2, 3, 4)),
    ]

    result = build(rows, dx, policy)

    by_start = result.incidents.sort_values("first_window_start")
    assert by_start["cause"].tolist() == ["refrigerant_leak", "condenser_fouling"]


def test_a_rule_cause_the_diagnosis_confirmed_still_splits_on_another_held_diagnosis(policy):
    # The rule and the windows both name the leak: a diagnosed incident, stored with the
    # diagnosis's evidence. Next hour the windows hold another fault: a second incident (a
    # cause change), not a rename of the confirmed leak.
    first = build(
        [leak_rule(0), alert("D1", 0), alert("D1", 1)],
        [diagnosis("D1", i, "refrigerant_leak") for i in (0, 1)],
        policy,
    )
    (leak,) = first.incidents.itertuples()
    assert (leak.cause, leak.cause_confidence) == ("refrigerant_leak", 1.0)
    assert leak.cause_evidence != "[]"

    rows = [alert("D1", i) for i in (2, 3, 4)]
    dx = [diagnosis("D1", i, "condenser_fouling") for i in (2, 3, 4)]
    result = build(rows, dx, policy, open_incidents=first.incidents)

    by_start = result.incidents.sort_values("first_window_start")
    assert by_start["cause"].tolist() == ["refrigerant_leak", "condenser_fouling"]
    assert by_start["incident_id"].iloc[0] == leak.incident_id


def test_the_held_diagnosis_nearest_the_firing_decides(policy):
    # Right after the firing the windows hold condenser_fouling; the leak the rule named is
    # held only an hour later in the same episode: the firing is renamed, not confirmed.
    rows = [leak_rule(0), *(alert("D1", i) for i in range(1, 7))]
    dx = [
        *(diagnosis("D1", i, "condenser_fouling") for i in (1, 2)),
        *(diagnosis("D1", i, "unknown") for i in (3, 4)),
        *(diagnosis("D1", i, "refrigerant_leak") for i in (5, 6)),
    ]

    result = build(rows, dx, policy)

    by_start = result.incidents.sort_values("first_window_start")
    assert by_start["cause"].tolist() == ["condenser_fouling", "refrigerant_leak"]
    assert by_start["first_window_start"].iloc[0] == T0 + timedelta(minutes=12)
