"""A communications ticket withdrawn because its readings arrived late, then a true silence of
the device within ``reopen_minutes``: the operator sees one live ticket for the silence (the
withdrawn one, reopened), never none and never a second one.

A withdrawn ticket closes at its last window, not a hysteresis later as a quiet incident does,
so a silence that starts right after it continues its episode instead of reopening it.
"""

from datetime import timedelta

import pandas as pd
import pytest
from support.incident_world import CAUSES, T0, diagnoses, feature_window
from support.operator_world import Clock

from refrig_assets.alerts.store import AlertStore
from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.repository import IncidentStore

HOUR = timedelta(hours=1)
DEVICES = ["D1", "D2", "D3"]


@pytest.fixture
def clock():
    return Clock((T0 + 2 * HOUR).to_pydatetime())


@pytest.fixture
def incidents(tmp_path, monkeypatch, clock):
    monkeypatch.setattr("refrig_assets.incidents.build.cause_table", lambda: CAUSES)
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}", clock=clock)
    yield IncidentStore(store)
    store.close()


def hour(devices: list[str], hour_index: int) -> list[dict]:
    """The four 15-minute windows of hour ``hour_index`` of each of ``devices``."""
    return [
        feature_window(d, i) for d in devices for i in range(4 * hour_index, 4 * hour_index + 4)
    ]


def build_hour(incidents: IncidentStore, clock: Clock, hour_index: int, reporting: list[str]):
    """Hour ``hour_index``'s step (the hour before read again for the look-back, every device
    reporting in it) with ``reporting`` devices in it, against the stored incidents."""
    clock.now = (T0 + (hour_index + 1) * HOUR).to_pydatetime()
    build = build_incidents(
        None,
        diagnoses(()),
        quality=pd.DataFrame(hour(DEVICES, hour_index - 1) + hour(reporting, hour_index)),
        causes=CAUSES,
        open_incidents=incidents.open_incidents(
            closed_since=(T0 + (hour_index - 2) * HOUR).to_pydatetime()
        ),
        as_of=T0 + (hour_index + 1) * HOUR,
    )
    incidents.apply(build)


def d1_tickets(incidents: IncidentStore) -> pd.DataFrame:
    every, _ = incidents.list()
    return every[every["cause"].eq("communications_loss") & every["device_id"].eq("D1")]


def withdrawn(incidents: IncidentStore, clock: Clock) -> str:
    """D1 silent in the second hour (a ticket), then its readings arrive late (withdrawn)."""
    build_hour(incidents, clock, 1, ["D2"])
    build_hour(incidents, clock, 1, ["D1", "D2"])
    (ticket,) = d1_tickets(incidents).itertuples()
    assert ticket.status == "RESOLVED"
    assert "arrived late" in incidents.history(ticket.incident_id)[-1]["note"]
    return ticket.incident_id


def assert_one_live_ticket(incidents: IncidentStore, ticket: str, silent_until) -> None:
    """D1 has one communications ticket, the withdrawn one, live again up to ``silent_until``."""
    (live,) = d1_tickets(incidents).itertuples()
    assert live.incident_id == ticket
    assert live.status == "OPEN" and pd.isna(live.closed_at)
    assert live.reopen_count == 1
    assert pd.to_datetime(live.last_window_end, utc=True) == silent_until
    assert [h["to_status"] for h in incidents.history(ticket)] == ["OPEN", "RESOLVED", "OPEN"]


def test_a_true_silence_right_after_a_withdrawn_ticket_is_one_live_ticket(incidents, clock):
    ticket = withdrawn(incidents, clock)
    build_hour(incidents, clock, 2, ["D2"])  # D1 silent again, from the withdrawn end on

    assert_one_live_ticket(incidents, ticket, silent_until=T0 + 3 * HOUR)


def test_a_true_silence_later_within_the_reopen_time_reopens_the_withdrawn_ticket(incidents, clock):
    ticket = withdrawn(incidents, clock)
    build_hour(incidents, clock, 2, ["D1", "D2"])  # D1 reports for an hour
    build_hour(incidents, clock, 3, ["D2"])  # then falls silent

    assert_one_live_ticket(incidents, ticket, silent_until=T0 + 4 * HOUR)
