"""A range rerun never makes a device silent before its first reading.

A device that reported for the first time at hour H, then went silent, has an open
communications ticket from its silence. When the range is built again with that ticket open,
the device is silent only from where its ticket began (or its first reading): the hours before
it ever reported are not a silence, and no ticket closes before its last window ends.
"""

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


def _build(quality: list[dict], policy, open_incidents=None) -> pd.DataFrame:
    return build_incidents(
        None,
        diagnoses(()),
        quality=pd.DataFrame(quality),
        policy=policy,
        open_incidents=open_incidents,
        as_of=feature_window("D2", 11)["window_end"],
        causes=CAUSES,
    ).incidents


def test_a_rerun_with_the_ticket_open_finds_no_silence_before_the_first_reading(policy):
    # D2 reports all 12 windows; D1 first reports in window 4 and 5, then nothing
    quality = [feature_window("D2", i) for i in range(12)]
    quality += [feature_window("D1", i) for i in (4, 5)]
    first = _build(quality, policy)
    ticket = first[first["device_id"].eq("D1")]
    assert ticket["first_window_start"].tolist() == [feature_window("D1", 6)["window_start"]]

    again = _build(quality, policy, open_incidents=first)

    d1 = again[again["device_id"].eq("D1")]
    assert d1["first_window_start"].min() >= feature_window("D1", 4)["window_start"]
    assert d1["incident_id"].tolist() == ticket["incident_id"].tolist()
    closed = again.dropna(subset=["closed_at"])
    assert (closed["closed_at"] >= closed["last_window_end"]).all()
