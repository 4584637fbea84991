"""A site whose rooms warm together (a heat wave, an HVAC failure) is one MEDIUM site incident,
never raised and never paged, with the device incidents the warm room explains as its children;
a device fault in the warm room stays its own incident, and one warm device is no site event."""

from dataclasses import replace
from datetime import timedelta

import pytest
from support.incident_world import CAUSES, T0, alert, alerts, diagnoses, diagnosis, registry

from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.hourly import used_diagnoses
from refrig_assets.incidents.policy import incident_policy
from refrig_assets_tests.incidents.test_site_sensor_severity import SITE, fleet

WARM = "high_ambient"
TABLE = replace(
    CAUSES,
    kinds={**CAUSES.kinds, WARM: "site"},
    severities={**CAUSES.severities, WARM: "MEDIUM"},
)
HOURS_3 = range(12)  # 3 hours of 15-minute windows: past every raise of a fault's severity


@pytest.fixture
def policy():
    """The policy as shipped: two windows of hysteresis, sites of three devices or more, half
    of a site's reporting devices warm together."""
    return incident_policy()


def build(rows, dx, policy, quality=None):
    return build_incidents(
        alerts(rows),
        diagnoses(dx),
        quality=fleet(HOURS_3) if quality is None else quality,
        devices=registry(SITE),
        policy=policy,
        causes=TABLE,
    ).incidents


def heat_wave(devices=("D1", "D2", "D3", "D4"), windows=range(2, 11)):
    """The windows the probable-cause step names a warm room for."""
    return [diagnosis(d, i, WARM) for d in devices for i in windows]


def paged(inc, policy):
    seen = inc[~inc["inhibited"]]
    return seen[seen["severity"].isin(policy.notify_severities)]


def test_a_heat_wave_is_one_medium_site_incident_with_the_devices_it_explains_as_children(
    policy,
):
    # D1's and D2's detectors flag for hours (models agree, long enough to raise a fault's
    # severity twice); D1's windows are named the warm room, D2's nothing.
    rows = [alert(d, i, models=3) for d in ("D1", "D2") for i in range(3, 11)]
    dx = heat_wave() + [diagnosis("D2", i, "unknown") for i in range(3, 11)]

    inc = build(rows, dx, policy)

    site = inc[inc["scope"].eq("site")]
    assert site[["site_id", "cause", "kind", "severity"]].values.tolist() == [
        ["S1", WARM, "site", "MEDIUM"]
    ]
    assert "lasting" not in site.iloc[0]["severity_reasons"]
    children = inc[inc["inhibited"]]
    assert children["device_id"].tolist() == ["D1"]
    assert set(children["parent_incident_id"]) == {site.iloc[0]["incident_id"]}
    # D2's alerts in windows that show no warm room are not assumed to be the weather: an
    # unexplained episode of its own (paged when it lasts), not a child
    (own,) = inc[inc["device_id"].eq("D2")].itertuples()
    assert (own.cause, own.inhibited) == ("unknown", False)
    assert paged(inc, policy)["device_id"].tolist() == ["D2"]


def test_a_heat_wave_seen_in_the_alerts_of_three_devices_is_still_medium(policy):
    # Three devices' alerts named the warm room make the site incident on their own (the
    # streaming path's rule for site-class causes); D1's cabinet warms 14 °C meanwhile. The
    # site incident gathers its devices' windows: no evaporator of its own, nothing CRITICAL.
    rows = [alert(d, i) for d in ("D1", "D3", "D4") for i in range(3, 11)]
    quality = fleet(HOURS_3, lambda d, i: {"evaporator": -18.0 + 2 * i} if d == "D1" else None)

    inc = build(rows, heat_wave(), policy, quality=quality)

    site = inc[inc["scope"].eq("site")]
    assert site[["cause", "severity"]].values.tolist() == [[WARM, "MEDIUM"]]
    assert sorted(inc.loc[inc["inhibited"], "device_id"]) == ["D1", "D3", "D4"]


def test_a_door_left_open_in_the_heat_wave_stays_its_own_incident(policy):
    # D3's door is held open inside the heat wave (streaming door rule and the batch windows
    # named door_ajar), ending before the room cools: a fault of its own, not the weather's.
    rows = [alert("D1", i, models=3) for i in range(3, 11)]
    rows += [alert("D3", i, source="streaming", rule="door_ajar") for i in range(4, 8)]
    rows += [alert("D3", i) for i in range(4, 8)]
    dx = [r for r in heat_wave() if not (r["device_id"] == "D3" and 4 <= _index(r) < 8)]
    dx += [diagnosis("D3", i, "door_ajar") for i in range(4, 8)]

    inc = build(rows, dx, policy)

    door = inc[inc["device_id"].eq("D3")]
    assert door[["cause", "inhibited"]].values.tolist() == [["door_ajar", False]]
    assert inc.loc[inc["device_id"].eq("D1"), "inhibited"].tolist() == [True]
    assert inc["scope"].eq("site").sum() == 1


def test_one_warm_device_is_no_site_event(policy):
    rows = [alert("D1", i) for i in range(3, 11)]

    inc = build(rows, heat_wave(devices=("D1",)), policy)

    assert not inc["scope"].eq("site").any()
    (row,) = inc.itertuples()
    assert (row.device_id, row.cause, row.inhibited) == ("D1", WARM, False)
    # the warm room is its context, not a fault: its severity, never raised by the hours
    assert row.severity == "MEDIUM"


def test_a_warm_site_without_an_alert_the_warm_room_explains_is_nobody_s_incident(policy):
    assert build([], heat_wave(), policy).empty
    # D3's door alerts in the heat wave are the door's: no site context to open for them
    rows = [alert("D3", i) for i in range(4, 8)]
    dx = [r for r in heat_wave() if r["device_id"] != "D3"]
    dx += [diagnosis("D3", i, "door_ajar") for i in range(4, 8)]
    inc = build(rows, dx, policy)
    assert inc[["device_id", "cause"]].values.tolist() == [["D3", "door_ajar"]]


def test_a_fault_named_in_the_same_episode_names_it_over_the_warm_room(policy):
    # D1's first windows are only the warm room, then the leak shows: one leak incident.
    rows = [alert("D1", i) for i in range(3, 11)]
    dx = [diagnosis("D1", i, WARM) for i in range(3, 6)]
    dx += [diagnosis("D1", i, "refrigerant_leak") for i in range(6, 11)]

    inc = build(rows, dx, policy)

    assert inc[["device_id", "cause", "inhibited"]].values.tolist() == [
        ["D1", "refrigerant_leak", False]
    ]


def test_the_hour_keeps_the_warm_windows_of_devices_without_an_alert():
    every = diagnoses(
        [diagnosis("D1", 0, "unknown"), diagnosis("D2", 0, WARM), diagnosis("D3", 0, "unknown")]
    )

    kept = used_diagnoses(every, {"D1"}, WARM)

    assert kept["device_id"].tolist() == ["D1", "D2"]
    assert used_diagnoses(every, {"D1"})["device_id"].tolist() == ["D1"]


def _index(row) -> int:
    return int((row["window_start"] - T0) / timedelta(minutes=15))
