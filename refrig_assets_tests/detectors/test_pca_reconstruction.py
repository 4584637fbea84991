"""The PCA reconstruction detector (T² + Q) on small fleets of feature windows: it finds two
sensors that stop moving together while each stays inside its usual range (which a threshold
per sensor cannot see), names them, stays quiet on healthy devices, works on a
temperature-and-door fleet and survives the model registry."""

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import Detector, build_detector
from refrig_assets.detectors.normalise import MAD_TO_SIGMA

MODEL = "pca_reconstruction"
START = pd.Timestamp("2026-01-01T00:00Z")
WINDOW = pd.Timedelta(minutes=15)
TRAIN_HOURS, HOURS, BREAK_HOUR = 6, 10, 7
BROKEN = "dev-003"
# Healthy physics: one shared load moves the evaporator temperature and the suction pressure
# up together (and the condensing side with them); the broken device's suction pressure goes
# the other way, as much as it used to go with it.
LOADINGS = {
    "temperature_evaporator_running_mean": (-20.0, 1.5, 0.15),
    "pressure_low_side_running_mean": (np.log(150.0), 0.08, 0.008),
    "temperature_condenser_running_mean": (40.0, 2.0, 0.2),
    "pressure_high_side_running_mean": (np.log(1200.0), 0.06, 0.006),
    "current_compressor_running_mean": (np.log(8.0), 0.05, 0.005),
    "vibration_compressor_running_mean": (np.log(3.0), 0.0, 0.02),
}
LOGGED = {c for c in LOADINGS if not c.startswith("temperature")}


def windows(devices: int, seed: int, broken: str | None = None) -> pd.DataFrame:
    """Feature windows of ``devices`` devices over ``HOURS`` hours (two cohorts); ``seed``
    draws the period (load and noise), the devices themselves are always the same."""
    rng = np.random.default_rng(seed)
    n = HOURS * 4
    rows = []
    for d in range(devices):
        load = np.zeros(n)  # a slowly wandering load, unit spread
        for i in range(1, n):
            load[i] = 0.5 * load[i - 1] + 0.87 * rng.normal()
        starts = START + WINDOW * np.arange(n)
        frame = pd.DataFrame(
            {
                "device_id": f"dev-{d:03d}",
                "cohort": "reach_in" if d % 2 else "walk_in",
                "window_start": starts,
                "window_end": starts + WINDOW,
                "sensor_completeness": 1.0,
                "quality_mask": 0,
                "duty_cycle": np.clip(0.55 + 0.02 * rng.normal(size=n), 0, 1),
                "ambient_temperature_mean": 20 + rng.normal(size=n),
                "door_open_longest_minutes": np.where(
                    rng.random(n) < 0.3, rng.uniform(0.5, 2.0, n), 0.0
                ),
            }
        )
        for k, (column, (level, loading, noise)) in enumerate(LOADINGS.items()):
            sign = np.ones(n)
            if f"dev-{d:03d}" == broken and column == "pressure_low_side_running_mean":
                sign[starts >= START + pd.Timedelta(hours=BREAK_HOUR)] = -1.0
            # Devices differ a little from each other (the same devices in every period).
            offset = 3 * noise * np.random.default_rng([d, k]).normal()
            value = level + offset + sign * loading * load + noise * rng.normal(size=n)
            frame[column] = np.exp(value) if column in LOGGED else value
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def fleet() -> pd.DataFrame:
    return windows(devices=30, seed=1, broken=BROKEN)


@pytest.fixture(scope="module")
def trained(fleet) -> Detector:
    train = fleet[fleet["window_start"] < START + pd.Timedelta(hours=TRAIN_HOURS)]
    return build_detector(load_model_config(MODEL)).fit(train)


def univariate_z(train: pd.DataFrame, frame: pd.DataFrame, column: str) -> pd.Series:
    """A threshold per sensor: each device's value against its own training median, in MADs."""
    values = np.log(frame[column]) if column in LOGGED else frame[column]
    base = np.log(train[column]) if column in LOGGED else train[column]
    median = base.groupby(train["device_id"]).median()
    mad = (base - train["device_id"].map(median)).abs().groupby(train["device_id"]).median()
    centre, spread = frame["device_id"].map(median), frame["device_id"].map(mad) * MAD_TO_SIGMA
    return (values - centre).abs() / spread


def test_a_correlated_sensor_break_flags_where_per_sensor_thresholds_see_nothing(fleet, trained):
    train = fleet[fleet["window_start"] < START + pd.Timedelta(hours=TRAIN_HOURS)]
    after = fleet["window_start"] >= START + pd.Timedelta(hours=BREAK_HOUR)
    broken = fleet[after & (fleet["device_id"] == BROKEN)]
    healthy = fleet[after & (fleet["device_id"] != BROKEN)]
    # Every sensor of the broken device stays inside the range healthy devices show.
    for column in LOADINGS:
        assert (
            univariate_z(train, broken, column).max() <= univariate_z(train, healthy, column).max()
        )

    scores = trained.score(fleet)
    late = scores[scores["window_start"] >= START + pd.Timedelta(hours=BREAK_HOUR)]
    on_broken = late[late["device_id"] == BROKEN]
    # The break shows whenever the load moves the sensors (not in windows at the mean load).
    assert on_broken["anomaly_flag"].mean() >= 1 / 3
    assert not late.loc[late["device_id"] != BROKEN, "anomaly_flag"].any()
    # The flags name the sensor that broke away from the others first.
    assert (
        on_broken.loc[on_broken["anomaly_flag"], "top_contributors"]
        .str.startswith("pressure_low_side,")
        .all()
    )
    detail = on_broken.loc[on_broken["anomaly_flag"], "contributor_detail"]
    assert detail.str.contains("% of the T²+Q surprise", regex=False).all()


def test_the_same_healthy_devices_on_another_day_raise_no_flag(trained):
    scores = trained.score(windows(devices=30, seed=2))
    assert len(scores) == 30 * HOURS * 4
    assert scores["anomaly_score"].between(0, 1).all()
    assert not scores["anomaly_flag"].any()


def test_contributions_split_the_raw_score_between_the_features(trained, fleet):
    frame = trained.rows(trained.prepare(fleet)).reset_index(drop=True)
    raw, shares, templates = trained.raw_scores(frame)
    assert len(templates) == len(trained.feature_columns)
    # Shares are percentages of the row's T²/T²_limit + Q/Q_limit; T² parts can be negative,
    # so their absolute values add up to at least the whole.
    assert (np.abs(shares).sum(axis=1)[raw > 0] >= 100.0 - 1e-6).all()
    assert trained.describe()["components"] >= 1


def test_a_saved_and_registered_model_scores_exactly_like_the_original(trained, fleet, refrig_home):
    from refrig_assets.core.settings import get_settings
    from refrig_assets.training.fit import train_detector
    from refrig_assets.training.registry import ModelRegistry

    settings = get_settings()
    registry = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir)
    train = fleet[fleet["window_start"] < START + pd.Timedelta(hours=TRAIN_HOURS)]
    detector, lineage, metrics = train_detector(load_model_config(MODEL), train, "h0..h5", "r1")
    version = registry.register(detector, lineage, metrics)
    loaded = ModelRegistry(registry.tracking_uri, registry.artifacts_dir).load(MODEL, version)
    pd.testing.assert_frame_equal(detector.score(fleet), loaded.score(fleet))
    pd.testing.assert_frame_equal(trained.score(fleet), loaded.score(fleet))


def test_a_temperature_and_door_fleet_finds_lost_cooling(monkeypatch):
    monkeypatch.setenv("REFRIG_SENSORS", "temperature_evaporator,door_open")
    detector = build_detector(load_model_config(MODEL))
    # Without the compressor current there is no running state: the plain mean is used. One
    # feature: no residual space, so the score is T² alone.
    assert detector.feature_columns == ["temperature_evaporator_mean"]
    frame = windows(devices=20, seed=3)
    rng = np.random.default_rng(3)
    offsets = frame["device_id"].map({d: rng.normal() for d in frame["device_id"].unique()})
    # The feature step still writes the running-state columns, empty.
    frame = frame[frame.columns[:6]].assign(
        temperature_evaporator_mean=-20 + offsets + 0.3 * rng.normal(size=len(frame)),
        duty_cycle=np.nan,
    )
    late = frame["window_start"] >= START + pd.Timedelta(hours=BREAK_HOUR)
    warm = frame["device_id"] == "dev-005"
    frame.loc[late & warm, "temperature_evaporator_mean"] += 8.0  # the cooling is gone
    detector.fit(frame[frame["window_start"] < START + pd.Timedelta(hours=TRAIN_HOURS)])
    assert detector.describe()["components"] == 1
    scores = detector.score(frame)
    after = scores[scores["window_start"] >= START + pd.Timedelta(hours=BREAK_HOUR + 1)]
    caught = after[after["device_id"] == "dev-005"]
    assert caught["anomaly_flag"].all()
    assert (caught["top_contributors"] == "temperature_evaporator").all()
    assert not scores.loc[scores["device_id"] != "dev-005", "anomaly_flag"].any()
