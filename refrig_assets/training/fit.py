"""Training: fit a detector on a range of feature partitions and describe its lineage."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import ModelConfig
from refrig_assets.core.storage import partition_file_name
from refrig_assets.detectors.base import Detector, build_detector
from refrig_assets.training.registry import Lineage, code_version


def data_hash(frame: pd.DataFrame) -> str:
    """Content hash of a training frame (order-independent over rows)."""
    if frame.empty:
        return "empty"
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(np.sort(row_hashes).tobytes())
    digest.update(",".join(frame.columns).encode())
    return digest.hexdigest()[:16]


def read_columns(detector: Detector) -> list[str]:
    """The feature columns a fit reads (after :meth:`Detector.choose_columns`: plain statistics
    where the data never ran), hashed as its training data."""
    plain = [p for _, p in getattr(detector, "plain_of", ())]
    return list(dict.fromkeys([*detector.input_columns, *plain]))


def training_fingerprint(config: ModelConfig, features: pd.DataFrame) -> dict[str, str]:
    """What identifies a training before fitting: code version, config hash, training-data hash
    and feature schema (the registry's ``FINGERPRINT_TAGS``). Equal fingerprints train the same
    model, so a registered version with it is reused instead of registering a copy."""
    columns = read_columns(build_detector(config).choose_columns(features))
    return {
        "code_version": code_version(),
        "config_hash": config.config_hash,
        "training_data_hash": data_hash(
            features[["device_id", "window_start", "cohort", *columns]]
        ),
        "feature_schema": load_contract("device_features").schema_fingerprint,
    }


def train_detector(
    config: ModelConfig, features: pd.DataFrame, partitions: str, run_id: str
) -> tuple[Detector, Lineage, dict[str, float]]:
    """Fit ``config``'s detector on ``features`` (with cohort); returns it, its lineage, metrics."""
    detector = build_detector(config).fit(features)
    scored = detector.score(features)
    metrics = {
        "training_rows": float(detector.training_rows),
        "training_flag_rate": float(scored["anomaly_flag"].mean()) if len(scored) else 0.0,
        "training_score_p99": float(np.quantile(scored["anomaly_score"], 0.99))
        if len(scored)
        else 0.0,
        **{k: float(v) for k, v in detector.describe().items()},
    }
    lineage = Lineage(
        training_partitions=partitions,
        training_data_hash=data_hash(
            features[["device_id", "window_start", "cohort", *read_columns(detector)]]
        ),
        config_hash=config.config_hash,
        feature_schema=load_contract("device_features").schema_fingerprint,
        code_version=code_version(),
        run_id=run_id,
        training_rows=detector.training_rows,
    )
    return detector, lineage, metrics


def training_partitions(store, start: str | None, end: str | None) -> list[str]:
    """Feature partition files in the requested range (file stems sort chronologically)."""
    stems = store.partitions("device_features")
    lo = partition_file_name(start) if start else None
    hi = partition_file_name(end) if end else None
    return [p for p in stems if (lo is None or p >= lo) and (hi is None or p <= hi)]
