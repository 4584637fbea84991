"""One fault that shows two causes in turn (a door left open on a compressor drawing twice its
current: the diagnosis names one, then the other, then the first again) is two incidents, one
per cause, not a new incident at every change back; built at once or hour by hour."""

from support.incident_world import CAUSES, alert, alerts, diagnoses, diagnosis

from refrig_assets.incidents.build import build_incidents
from refrig_assets_tests.incidents import test_grouping

# Two normal windows close an episode, a cause holding two signals changes it, no reopening.
policy = test_grouping.policy

TURNS = ["compressor_overload"] * 2 + ["door_ajar"] * 2
CAUSE_OF = TURNS * 2  # eight windows, each cause holding two of them, twice


def build(windows, policy, **kwargs):
    rows = [alert("D1", i) for i in windows]
    dx = [diagnosis("D1", i, CAUSE_OF[i]) for i in windows]
    return build_incidents(alerts(rows), diagnoses(dx), policy=policy, causes=CAUSES, **kwargs)


def test_a_cause_returning_in_its_episode_continues_its_incident(policy):
    result = build(range(8), policy)

    by_cause = result.incidents.set_index("cause")
    assert sorted(by_cause.index) == ["compressor_overload", "door_ajar"]
    assert by_cause["alert_count"].to_dict() == {"compressor_overload": 4, "door_ajar": 4}
    incident_cause = result.evidence["incident_id"].map(
        by_cause.reset_index().set_index("incident_id")["cause"]
    )
    assert result.evidence.groupby(incident_cause)["alert_id"].count().to_dict() == {
        "compressor_overload": 4,
        "door_ajar": 4,
    }


def test_hour_by_hour_the_returning_cause_joins_the_stored_incident(policy):
    first = build(range(4), policy)
    second = build(range(4, 8), policy, open_incidents=first.incidents)

    assert set(second.incidents["incident_id"]) == set(first.incidents["incident_id"])
    by_cause = second.incidents.set_index("cause")
    assert by_cause["alert_count"].to_dict() == {"compressor_overload": 4, "door_ajar": 4}
    ids = set(first.evidence["incident_id"]) | set(second.evidence["incident_id"])
    assert len(ids) == 2


def test_a_cause_returning_after_its_episode_closed_is_another_incident(policy):
    # Two normal windows (the hysteresis) between the turns close the episode.
    rows = [alert("D1", i) for i in (0, 1, 2, 3, 6, 7)]
    dx = [diagnosis("D1", i, c) for i, c in zip((0, 1, 2, 3, 6, 7), CAUSE_OF, strict=False)]

    result = build_incidents(alerts(rows), diagnoses(dx), policy=policy, causes=CAUSES)

    assert sorted(result.incidents["cause"]) == [
        "compressor_overload",
        "compressor_overload",
        "door_ajar",
    ]
