"""A device that stops reporting altogether is blind in every sensor: the operator hears of it
(one low-severity communications ticket, never paged) after ``silent_persistence_minutes``,
sooner than of one failing sensor whose device still reports (``persistence_minutes``); a
shorter gap stays quiet."""

from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest
from support.incident_world import CAUSES, diagnoses, feature_window

from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.policy import incident_policy


@pytest.fixture
def policy():
    base = incident_policy()
    return replace(
        base,
        sensor_tickets=replace(
            base.sensor_tickets,
            persistence=timedelta(minutes=60),
            silent_persistence=timedelta(minutes=30),
        ),
    )


def windows(device: str, count: int, quiet: range, **quiet_values) -> list[dict]:
    """``count`` 15-minute windows of ``device``; those in ``quiet`` take ``quiet_values``."""
    return [feature_window(device, i, **(quiet_values if i in quiet else {})) for i in range(count)]


def silent(device: str, count: int, quiet: range) -> list[dict]:
    return windows(device, count, quiet, readings=0, completeness=0.0)


def tickets(quality: list[dict], policy) -> pd.DataFrame:
    return build_incidents(
        None, diagnoses(()), quality=pd.DataFrame(quality), policy=policy, causes=CAUSES
    ).incidents


def test_a_device_silent_for_half_an_hour_is_one_low_communications_ticket(policy):
    result = tickets(silent("D1", 6, range(2, 4)), policy)

    assert result[["device_id", "kind", "cause", "severity"]].values.tolist() == [
        ["D1", "sensor", "communications_loss", "LOW"]
    ]
    ticket = result.iloc[0]
    assert ticket["first_window_start"] == feature_window("D1", 2)["window_start"]
    assert ticket["last_window_end"] == feature_window("D1", 3)["window_end"]
    assert ticket["severity"] not in incident_policy().notify_severities


def test_a_device_silent_for_one_window_raises_nothing(policy):
    assert tickets(silent("D1", 6, range(2, 3)), policy).empty


def test_one_sensor_dropping_out_while_its_device_reports_waits_for_the_longer_persistence(
    policy,
):
    half_hour = windows("D1", 6, range(2, 4), flags="SENSOR_DROPOUT", completeness=0.85)
    hour = windows("D1", 8, range(2, 6), flags="SENSOR_DROPOUT", completeness=0.85)

    assert tickets(half_hour, policy).empty
    assert tickets(hour, policy)["cause"].tolist() == ["sensor_fault"]


def test_a_long_silence_is_still_one_ticket(policy):
    result = tickets(silent("D1", 12, range(2, 10)), policy)

    assert len(result) == 1
    assert result.iloc[0]["cause"] == "communications_loss"


def test_only_the_silent_device_gets_a_ticket(policy):
    quality = silent("D1", 6, range(2, 4)) + silent("D2", 6, range(2, 3))

    assert tickets(quality, policy)["device_id"].tolist() == ["D1"]


def test_the_policy_file_tickets_a_silent_device_no_later_than_a_failing_sensor():
    tickets_policy = incident_policy().sensor_tickets

    assert tickets_policy.silent_persistence <= tickets_policy.persistence
    assert tickets_policy.look_back == tickets_policy.persistence


def test_a_device_that_sends_nothing_has_no_windows_and_is_silent_all_the_same(policy):
    """A silent device has no feature row in the windows the rest of the fleet has."""
    quality = [
        w
        for w in windows("D1", 6, range(0))
        if w["window_start"] not in {feature_window("D1", i)["window_start"] for i in (2, 3)}
    ] + windows("D2", 6, range(0))

    result = tickets(quality, policy)

    assert result[["device_id", "cause"]].values.tolist() == [["D1", "communications_loss"]]
    assert result.iloc[0]["first_window_start"] == feature_window("D1", 2)["window_start"]


def test_a_device_still_silent_at_the_end_of_the_data_is_silent_there(policy):
    quality = windows("D1", 4, range(0)) + windows("D2", 6, range(0))

    assert tickets(quality, policy)["device_id"].tolist() == ["D1"]


def test_windows_before_a_devices_first_reading_are_not_a_silence(policy):
    """A device commissioned after the others started has no windows before its first."""
    quality = windows("D1", 6, range(0)) + windows("D2", 6, range(0))[3:]

    assert tickets(quality, policy).empty


def test_a_device_silent_for_longer_than_the_look_back_keeps_its_ticket_open(policy):
    """Hours later the silent device has no row anywhere in the build's windows: its open
    communications ticket goes on rather than closing as if the device were back."""
    first = build_incidents(
        None,
        diagnoses(()),
        quality=pd.DataFrame(windows("D1", 4, range(0)) + windows("D2", 6, range(0))),
        policy=policy,
        causes=CAUSES,
    ).incidents
    later = [feature_window("D2", i) for i in range(8, 12)]
    end = feature_window("D2", 11)["window_end"]

    result = build_incidents(
        None,
        diagnoses(()),
        quality=pd.DataFrame(later),
        policy=policy,
        open_incidents=first,
        as_of=end,
        causes=CAUSES,
    ).incidents

    ticket = result[result["device_id"].eq("D1")]
    assert ticket["incident_id"].tolist() == first["incident_id"].tolist()
    assert ticket[["status", "cause"]].values.tolist() == [["OPEN", "communications_loss"]]
    assert ticket.iloc[0]["last_window_end"] == end


def test_a_device_back_after_its_silence_closes_its_ticket(policy):
    first = build_incidents(
        None,
        diagnoses(()),
        quality=pd.DataFrame(windows("D1", 4, range(0)) + windows("D2", 6, range(0))),
        policy=policy,
        causes=CAUSES,
    ).incidents
    back = [feature_window(d, i) for d in ("D1", "D2") for i in range(8, 12)]

    result = build_incidents(
        None,
        diagnoses(()),
        quality=pd.DataFrame(back),
        policy=policy,
        open_incidents=first,
        as_of=feature_window("D2", 11)["window_end"],
        causes=CAUSES,
    ).incidents

    assert result.loc[result["device_id"].eq("D1"), "status"].tolist() == ["RESOLVED"]
