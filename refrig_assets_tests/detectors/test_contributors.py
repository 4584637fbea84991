"""Contributors (top sensors and the evidence text of the strongest feature) are exactly those
of the specification below: sensors ranked by their strongest feature with a stable descending
sort (ties to the earlier sensor), evidence from the feature with the largest contribution."""

import numpy as np
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import build_detector, feature_sensor

TEMPLATE = "{value}σ {direction} this device's baseline"
# Several features of one sensor: a sensor counts once, by its strongest feature.
FEATURES = [
    "pressure_low_side_running_mean",
    "pressure_low_side_mean",
    "temperature_condenser_mean",
    "duty_cycle",
    "current_compressor_running_mean",
    "temperature_condenser_max",
    "vibration_compressor_max",
]


def specification(features: list[str], contrib: np.ndarray, templates, top_k: int):
    """The contributors as the detectors first computed them (per-row sort and sorted uniques)."""
    n = contrib.shape[0]
    sensors = [feature_sensor(f) for f in features]
    names = list(dict.fromkeys(sensors))
    magnitude = np.nan_to_num(np.abs(contrib), nan=0.0)
    per_sensor = np.zeros((n, len(names)))
    for j, sensor in enumerate(sensors):
        k = names.index(sensor)
        per_sensor[:, k] = np.maximum(per_sensor[:, k], magnitude[:, j])
    k = min(top_k, len(names))
    order = np.argsort(-per_sensor, axis=1, kind="stable")[:, :k]
    tops = np.array([",".join(names[c] for c in row) for row in order], dtype=object)
    best = np.argmax(magnitude, axis=1)
    values = np.nan_to_num(contrib[np.arange(n), best])
    sizes = np.round(np.abs(values), 1).astype(str)
    details = np.empty(n, dtype=object)
    for i in range(n):
        j = best[i]
        head, _, tail = templates[j].partition("{value}")
        pre, has_direction, post = tail.partition("{direction}")
        direction = ("below" if values[i] < 0 else "above") + post if has_direction else ""
        details[i] = f"{features[j]} {head}{sizes[i]}{pre}{direction}"
    return tops, details


def contributions(seed: int, rows: int = 4_000) -> np.ndarray:
    """Contributions with ties (rounded values, zeros), missing and infinite values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 2, (rows, len(FEATURES))).round(int(rng.integers(0, 3)))
    x[rng.random(x.shape) < 0.1] = 0.0
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.01] = np.inf
    x[rng.random(x.shape) < 0.01] = -np.inf
    x[:50] = 1.5  # every feature tied
    x[50:60] = np.nan  # nothing known
    return x


@pytest.mark.parametrize("top_k", [1, 3, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contributors_follow_the_specification(seed, top_k):
    detector = build_detector(load_model_config("autoencoder"))
    detector.feature_columns = FEATURES
    contrib = contributions(seed)
    with np.errstate(over="ignore"):  # rounding the largest finite value overflows to inf
        tops, details = detector._contributors(contrib, [TEMPLATE] * len(FEATURES), top_k)
        expected_tops, expected_details = specification(
            FEATURES, contrib, [TEMPLATE] * len(FEATURES), top_k
        )
    assert np.array_equal(tops, expected_tops)
    assert np.array_equal(details, expected_details)
    # A row where every feature ties ranks the sensors in feature order.
    names = list(dict.fromkeys(feature_sensor(f) for f in FEATURES))
    assert tops[0] == ",".join(names[:top_k])
