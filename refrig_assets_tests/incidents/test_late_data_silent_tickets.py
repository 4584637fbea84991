"""A device's hour of readings that arrives after the hour was processed (a late file): the
communications ticket its silence opened is closed when the hour is built again with the
readings, the note saying the data arrived late; late readings of a silence's last windows
only end the ticket where they begin; a device still silent keeps its ticket."""

from datetime import timedelta

import pandas as pd
import pytest
from support.incident_world import CAUSES, T0, diagnoses, feature_window
from support.operator_world import Clock

from refrig_assets.alerts.store import AlertStore
from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.repository import IncidentStore

HOUR = timedelta(hours=1)


@pytest.fixture
def incidents(tmp_path, monkeypatch):
    monkeypatch.setattr("refrig_assets.incidents.build.cause_table", lambda: CAUSES)
    store = AlertStore(
        f"sqlite:///{tmp_path / 'alerts.db'}", clock=Clock((T0 + 2 * HOUR).to_pydatetime())
    )
    yield IncidentStore(store)
    store.close()


def hour(devices: list[str], hour_index: int) -> list[dict]:
    """The four 15-minute windows of hour ``hour_index`` of each of ``devices``."""
    return [
        feature_window(d, i) for d in devices for i in range(4 * hour_index, 4 * hour_index + 4)
    ]


def run_second_hour(incidents: IncidentStore, reporting: list[str]) -> None:
    """The second hour's step (windows 4-7, the first hour read again for the look-back) with
    ``reporting`` devices in it, against the stored incidents."""
    build = build_incidents(
        None,
        diagnoses(()),
        quality=pd.DataFrame(hour(["D1", "D2", "D3"], 0) + hour(reporting, 1)),
        causes=CAUSES,
        open_incidents=incidents.open_incidents(closed_since=(T0 - HOUR).to_pydatetime()),
        as_of=T0 + 2 * HOUR,
    )
    incidents.apply(build)


def tickets(incidents: IncidentStore) -> dict[str, str]:
    every, _ = incidents.list()
    sensor = every[every["cause"].eq("communications_loss")]
    return dict(zip(sensor["device_id"], sensor["status"], strict=True))


def test_a_silent_hour_whose_readings_arrive_late_closes_its_ticket(incidents):
    # D1 and D3 sent nothing in the second hour: a communications ticket each
    run_second_hour(incidents, ["D2"])
    assert tickets(incidents) == {"D1": "OPEN", "D3": "OPEN"}
    (d1,) = incidents.list()[0].query("device_id == 'D1'")["incident_id"]

    # D1's file for that hour arrives late and the hour is built again; D3 is still silent
    run_second_hour(incidents, ["D1", "D2"])

    assert tickets(incidents) == {"D1": "RESOLVED", "D3": "OPEN"}
    closing = incidents.history(d1)[-1]
    assert closing["to_status"] == "RESOLVED" and "arrived late" in closing["note"]
    assert incidents.get(d1)["paged_severity"] is None

    # built once more: nothing changes, the ticket is not reopened nor closed twice
    run_second_hour(incidents, ["D1", "D2"])
    assert tickets(incidents) == {"D1": "RESOLVED", "D3": "OPEN"}
    assert [h["to_status"] for h in incidents.history(d1)] == ["OPEN", "RESOLVED"]


def test_the_same_hour_built_again_without_the_readings_keeps_the_ticket(incidents):
    run_second_hour(incidents, ["D2"])
    run_second_hour(incidents, ["D2"])

    assert tickets(incidents) == {"D1": "OPEN", "D3": "OPEN"}


def test_late_readings_for_part_of_a_silence_leave_the_ticket_open(incidents):
    # D1 sent nothing in the second hour; its late file covers only the first half of it
    run_second_hour(incidents, ["D2"])
    late_half = [w for w in hour(["D1"], 1) if w["window_start"] < T0 + 1.5 * HOUR]
    build = build_incidents(
        None,
        diagnoses(()),
        quality=pd.DataFrame(hour(["D1", "D2", "D3"], 0) + hour(["D2"], 1) + late_half),
        causes=CAUSES,
        open_incidents=incidents.open_incidents(closed_since=(T0 - HOUR).to_pydatetime()),
        as_of=T0 + 2 * HOUR,
    )
    incidents.apply(build)

    assert tickets(incidents) == {"D1": "OPEN", "D3": "OPEN"}


def test_a_ticket_with_windows_the_rebuilt_hours_do_not_hold_is_not_withdrawn(incidents):
    # the rebuilt hour holds the ticket's last half-hour only (no window of the fleet before):
    # the silence is known to end there, not to have been none
    run_second_hour(incidents, ["D2"])
    last_half = [w for w in hour(["D1", "D2"], 1) if w["window_start"] >= T0 + 1.5 * HOUR]
    build = build_incidents(
        None,
        diagnoses(()),
        quality=pd.DataFrame(hour(["D1", "D2", "D3"], 0) + last_half),
        causes=CAUSES,
        open_incidents=incidents.open_incidents(closed_since=(T0 - HOUR).to_pydatetime()),
        as_of=T0 + 2 * HOUR,
    )
    incidents.apply(build)

    (ticket,) = incidents.list()[0].query("device_id == 'D1'").itertuples()
    assert pd.to_datetime(ticket.last_window_end, utc=True) == T0 + 1.5 * HOUR
    assert "arrived late" not in incidents.history(ticket.incident_id)[-1]["note"]


def test_late_readings_for_the_end_of_a_real_silence_end_its_ticket_there(incidents):
    # D1 was silent from the first hour's second half on; its second hour arrives late
    first_hour = [w for w in hour(["D1"], 0) if w["window_start"] < T0 + 0.5 * HOUR]
    earlier = pd.DataFrame(first_hour + hour(["D2", "D3"], 0))
    for quality in (
        pd.concat([earlier, pd.DataFrame(hour(["D2", "D3"], 1))]),
        pd.concat([earlier, pd.DataFrame(hour(["D1", "D2", "D3"], 1))]),
    ):
        build = build_incidents(
            None,
            diagnoses(()),
            quality=quality,
            causes=CAUSES,
            open_incidents=incidents.open_incidents(closed_since=(T0 - HOUR).to_pydatetime()),
            as_of=T0 + 2 * HOUR,
        )
        incidents.apply(build)

    (ticket,) = incidents.list()[0].query("device_id == 'D1'").itertuples()
    assert ticket.status == "RESOLVED"
    assert pd.to_datetime(ticket.first_window_start, utc=True) == T0 + 0.5 * HOUR
    assert pd.to_datetime(ticket.last_window_end, utc=True) == T0 + HOUR
    assert "back to normal" in incidents.history(ticket.incident_id)[-1]["note"]
