"""An hour is quiet (the incident build is skipped) only when the build would return nothing:
whatever signal the hour holds (an alert, a stored incident within reach, a standalone or
warm-room cause, a sensor-health flag, a silent device, a site power or communications loss,
a lost idle draw), it is not quiet; with none of them, it is, and it names the sensors no device
reported as the build does."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from support.incident_world import CAUSES, alert, alerts, diagnoses, diagnosis, registry

from refrig_assets.core.contracts import load_contract
from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.hourly import quiet_hour, used_diagnoses
from refrig_assets.incidents.policy import incident_policy
from refrig_assets.incidents.signal_frame import DROPOUT_FLAG
from refrig_assets_tests.incidents.test_site_sensor_severity import SITE, fleet, idle_site


@pytest.fixture
def policy():
    base = incident_policy()
    return replace(
        base,
        site_events=replace(
            base.site_events, min_site_devices=3, quorum_share=0.8, current_off_amps=0.5
        ),
    )


def no_alerts() -> pd.DataFrame:
    return load_contract("device_alerts").empty_frame()


def both(policy, quality, *, alert_rows=(), dx=(), prior=None, devices=None):
    """(quiet_hour's answer, what the build returns) for the same hour."""
    frame = alerts(alert_rows) if alert_rows else no_alerts()
    found = diagnoses(dx)
    alerted = set(frame["device_id"].astype(str))
    kept = used_diagnoses(found, alerted, policy.site_ambient.cause) if len(found) else None
    devices = registry(SITE) if devices is None else devices
    never = quiet_hour(frame, kept, quality, devices, prior, policy)
    build = build_incidents(
        frame,
        kept,
        quality=quality,
        devices=devices,
        policy=policy,
        open_incidents=prior,
        causes=CAUSES,
        warn_never_reported=False,
    )
    return never, build


def test_an_hour_without_any_signal_is_quiet_and_names_what_the_build_names(policy):
    quality = fleet(range(4))

    never, build = both(policy, quality)

    assert build.incidents.empty
    assert never == build.never_reported


def test_a_sensor_no_device_reported_is_named_as_the_build_names_it(policy, tmp_path, monkeypatch):
    # A fleet without evaporator probes: every window flagged for it, none reported it.
    monkeypatch.setenv("REFRIG_HOME", str(tmp_path))  # nothing says which sensors it has
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    quality = fleet(range(4), lambda d, i: {"flags": DROPOUT_FLAG}).assign(
        temperature_evaporator_mean=np.nan
    )

    never, build = both(policy, quality)

    assert build.incidents.empty
    assert never == build.never_reported == ["temperature_evaporator"]


def test_a_silent_sites_hour_is_not_quiet(policy):
    silent = fleet(
        range(4), lambda d, i: {"readings": 0, "completeness": 0.0} if d[0] == "E" else None
    )

    never, build = both(policy, silent)

    assert len(build.incidents) and never is None


def test_a_site_whose_compressors_stop_is_not_quiet(policy):
    off = fleet(range(4), lambda d, i: {"duty": 0.0, "current": 0.0} if d[0] == "D" else None)

    never, build = both(policy, off)

    assert (build.incidents["scope"] == "site").any() and never is None


def test_a_site_whose_idle_draw_falls_to_nothing_is_not_quiet(policy):
    cut = idle_site(range(8), lambda i: 0.0 if i >= 5 else 0.4)

    never, build = both(policy, cut)

    assert (build.incidents["scope"] == "site").any() and never is None


def test_a_site_idling_with_its_fans_still_drawing_is_quiet(policy):
    idle = idle_site(range(6), lambda i: 0.4)

    never, build = both(policy, idle)

    assert build.incidents.empty and never == build.never_reported


def test_a_persisting_sensor_flag_is_not_quiet(policy):
    flag = policy.sensor_tickets.flags[0]
    flagged = fleet(range(8), lambda d, i: {"flags": flag} if d == "D1" else None)

    never, build = both(policy, flagged)

    assert len(build.incidents) and never is None


def test_a_device_gone_from_the_later_windows_is_not_quiet(policy):
    # No row at all for D1 in windows 2 and 3 (a device that stopped sending has no window):
    # silent there, which only the signals' missing windows say.
    quality = fleet(range(4))
    starts = sorted(quality["window_start"].unique())
    gone = quality["device_id"].eq("D1") & quality["window_start"].isin(starts[2:])

    never, build = both(policy, quality[~gone].reset_index(drop=True))

    assert never is None
    assert both(policy, quality)[0] is not None


def test_an_hour_with_an_alert_a_standalone_cause_or_a_prior_incident_is_not_quiet(policy):
    quality = fleet(range(4))
    standalone = [diagnosis("D1", 1, "door_ajar", standalone=True)]
    warm = [diagnosis("D1", 1, policy.site_ambient.cause)]

    assert both(policy, quality, alert_rows=[alert("D1", 1)])[0] is None
    assert both(policy, quality, dx=standalone)[0] is None
    assert both(policy, quality, dx=warm)[0] is None
    _, earlier = both(policy, quality, alert_rows=[alert("D1", 1)])
    assert len(earlier.incidents)  # stored incidents carry their track
    assert both(policy, quality, prior=earlier.incidents)[0] is None


def test_a_windowless_hour_without_registry_is_quiet(policy):
    never, build = both(policy, None, devices=pd.DataFrame(columns=["device_id", "site_id"]))

    assert build.incidents.empty and never == build.never_reported == []
