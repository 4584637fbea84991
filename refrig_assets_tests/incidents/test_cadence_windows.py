"""Incidents of a fleet whose feature window is not the contract's default (a 1 Hz fleet's
one-minute windows): hysteresis counts the fleet's windows, a site power loss needs the
compressors stopped for longer than an ordinary thermostat off-cycle, and a per-hour rate is not
judged on a window far shorter than the hour."""

import pandas as pd
import pytest
from incidents.test_causes import window_for
from support.cause_world import history
from support.incident_world import T0, diagnoses, feature_window, registry

from refrig_assets.incidents.baselines import build_baselines
from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.causes import diagnose
from refrig_assets.incidents.policy import incident_policy
from refrig_assets.incidents.signatures import load_signatures

MINUTE = pd.Timedelta(minutes=1)
SITE = {"S1": ["D1", "D2", "D3", "D4", "D5"]}
CUT = range(60, 90)  # minutes without power at the whole site


@pytest.fixture
def one_hz_fleet(monkeypatch):
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "1")
    monkeypatch.delenv("REFRIG_WINDOW_SECONDS", raising=False)


def test_hysteresis_counts_the_fleets_own_windows(monkeypatch, one_hz_fleet):
    assert incident_policy().window == MINUTE
    assert incident_policy().hysteresis == incident_policy().hysteresis_windows * MINUTE
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "60")
    assert incident_policy().window == pd.Timedelta(minutes=15)
    monkeypatch.setenv("REFRIG_WINDOW_SECONDS", "300")
    assert incident_policy().window == pd.Timedelta(minutes=5)


def minute_windows(minutes: int) -> pd.DataFrame:
    """One-minute windows of every device of SITE. The compressors cycle in step, 6 minutes on
    and 4 off (the whole site idle together for 4 minutes in every 10), except during CUT."""
    rows = []
    for devices in SITE.values():
        for d in devices:
            idle_since = None
            for m in range(minutes):
                off = m in CUT or m % 10 >= 6
                idle_since = (idle_since if idle_since is not None else m) if off else None
                row = feature_window(
                    d, 0, duty=0.0 if off else 1.0, current=0.0 if off else 8.0, readings=60
                )
                row["window_start"], row["window_end"] = T0 + m * MINUTE, T0 + (m + 1) * MINUTE
                row["compressor_idle_longest_minutes"] = (m + 1 - idle_since) if off else 0.0
                rows.append(row)
    return pd.DataFrame(rows)


def test_a_site_idle_between_cycles_is_no_power_loss_but_a_real_cut_is_one_short_incident(
    one_hz_fleet,
):
    policy = incident_policy()
    result = build_incidents(
        None,
        diagnoses(()),
        quality=minute_windows(180),
        devices=registry(SITE),
        policy=policy,
        as_of=T0 + 180 * MINUTE,
    )

    site = result.incidents[result.incidents["scope"].eq("site")]
    assert site["cause"].tolist() == ["power_loss"]
    cut = site.iloc[0]
    # Stopped since the off-cycle before the cut (minute 56): min_off_minutes later.
    stopped_long_enough = T0 + (56 + policy.site_events.min_off_minutes - 1) * MINUTE
    assert cut["first_window_start"] == stopped_long_enough
    assert cut["last_window_end"] == T0 + CUT.stop * MINUTE  # not the rest of the day
    assert cut["status"] == "RESOLVED"
    assert cut["closed_at"] == cut["last_window_end"] + policy.hysteresis


def test_without_the_stop_streak_a_window_counts_its_own_length(one_hz_fleet):
    quality = minute_windows(180).drop(columns="compressor_idle_longest_minutes")

    result = build_incidents(
        None, diagnoses(()), quality=quality, devices=registry(SITE), policy=incident_policy()
    )

    assert not result.incidents["scope"].eq("site").any()


def test_a_start_in_a_one_minute_window_is_no_short_cycling_but_a_quarter_hours_starts_are():
    table = load_signatures()
    quarter = window_for("short_cycling")
    minute = {**quarter, "window_end": quarter["window_start"] + MINUTE}
    minute["compressor_starts_per_hour"] = 60.0  # one ordinary start in the minute

    found = diagnose(pd.DataFrame([quarter, minute]), build_baselines(history(), table), table)

    assert found["cause"].tolist()[0] == "short_cycling"
    assert found["cause"].tolist()[1] != "short_cycling"


def minutes_of_starts(every: int, minutes: int = 40) -> pd.DataFrame:
    """One device's one-minute windows with a compressor start every ``every`` minutes (each
    such window reads 60 starts per hour, the others 0), short runs as short cycling has."""
    quarter = window_for("short_cycling")
    rows = []
    for m in range(minutes):
        row = dict(quarter)
        row["window_start"] = quarter["window_start"] + m * MINUTE
        row["window_end"] = row["window_start"] + MINUTE
        row["compressor_starts_per_hour"] = 60.0 if m % every == 0 else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("every", "short_cycling"), [(3, True), (10, False)])
def test_one_minute_windows_judge_starts_per_hour_on_the_last_quarter_hour(every, short_cycling):
    table = load_signatures()
    windows = minutes_of_starts(every)

    found = diagnose(windows, build_baselines(history(), table), table)

    cycling = found["cause"].eq("short_cycling").to_numpy()
    assert not cycling[:14].any()  # less than a quarter hour of windows seen yet
    assert cycling[14:].any() == short_cycling  # 20 starts an hour is too many; 6 is not


@pytest.mark.parametrize(
    ("cadence", "streak", "door_ajar"),
    [(60, 25.0, True), (300, 25.0, False), (300, 35.0, False), (300, 45.0, True)],
)
def test_a_door_read_every_five_minutes_needs_eight_open_readings_to_be_ajar(
    monkeypatch, cadence, streak, door_ajar
):
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", str(cadence))
    table = load_signatures()
    window = {**window_for("door_ajar"), "door_open_longest_minutes": streak}

    found = diagnose(pd.DataFrame([window]), build_baselines(history(), table), table)

    assert (found["cause"].iloc[0] == "door_ajar") == door_ajar
