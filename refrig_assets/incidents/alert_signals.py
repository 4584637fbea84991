"""Signals of a device's alerts and of its diagnosed windows without an alert, and the
evaporator temperature of each signal's window."""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.incidents.cause_table import CauseTable
from refrig_assets.incidents.policy import SeverityPolicy
from refrig_assets.incidents.signal_frame import UNKNOWN, device_places, empty_signals, hashes, utc


def alert_signals(
    alerts: pd.DataFrame, diagnoses: pd.DataFrame | None, causes: CauseTable
) -> pd.DataFrame:
    """Every alert as a signal, with the probable cause of its window (or of its streaming rule)."""
    if alerts is None or alerts.empty:
        return empty_signals()
    a = alerts.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "device_id": a["device_id"].astype(str),
            "site_id": a["site_id"].astype(str) if "site_id" in a else UNKNOWN,
            "cohort": a["cohort"].astype(str) if "cohort" in a else UNKNOWN,
            "window_start": utc(a["window_start"]),
            "window_end": utc(a["window_end"]),
            "evidence_id": a["alert_id"].astype(str),
            "evidence_type": "alert",
            "alert_id": a["alert_id"].astype(str),
            "source": a["source"].astype(str),
            "severity": a["severity"].astype(str),
            "max_score": a["max_score"].astype(float),
            "models_flagging": a["models_flagging"].fillna(0).astype("int64"),
            "cause": UNKNOWN,
            "confidence": 0.0,
            "cause_evidence": "[]",
            "base": None,
            "detail": a["explanation"].astype(str) if "explanation" in a else "",
        }
    )
    streaming = out["source"].eq("streaming")
    if streaming.any():
        rules = out.loc[streaming, "detail"].str.split(":", n=1).str[0].str.strip()
        mapped = rules.map(causes.for_streaming_rule)
        out.loc[streaming, "cause"] = mapped.fillna(UNKNOWN).to_numpy()
        out.loc[streaming & out["cause"].ne(UNKNOWN), "confidence"] = 1.0
        out.loc[streaming, "base"] = out.loc[streaming, "cause"].map(causes.severity).to_numpy()
    if diagnoses is not None and len(diagnoses):
        # Only the alerted devices' windows (a fleet's hour has 100K devices' diagnoses).
        diagnoses = diagnoses[diagnoses["device_id"].isin(set(out["device_id"]))]
        d = diagnoses[
            [
                "device_id",
                "window_start",
                "cause",
                "confidence",
                "evidence",
                "base_severity",
            ]
        ].copy()
        d["window_start"] = utc(d["window_start"])
        d = d.drop_duplicates(["device_id", "window_start"], keep="last")
        merged = out[["device_id", "window_start"]].merge(
            d, on=["device_id", "window_start"], how="left"
        )
        use = (~streaming).to_numpy() & merged["cause"].notna().to_numpy()
        out.loc[use, "cause"] = merged.loc[use, "cause"].astype(str).to_numpy()
        out.loc[use, "confidence"] = merged.loc[use, "confidence"].astype(float).to_numpy()
        out.loc[use, "cause_evidence"] = merged.loc[use, "evidence"].astype(str).to_numpy()
        out.loc[use, "base"] = merged.loc[use, "base_severity"].to_numpy()
    return out


def diagnosis_signals(
    diagnoses: pd.DataFrame | None,
    alerts: pd.DataFrame | None,
    devices: pd.DataFrame | None,
) -> pd.DataFrame:
    """Standalone probable causes (door ajar, short cycling …) of windows without an alert."""
    if diagnoses is None or diagnoses.empty:
        return empty_signals()
    d = diagnoses[diagnoses["standalone"].astype(bool) & diagnoses["cause"].ne(UNKNOWN)]
    if d.empty:
        return empty_signals()
    d = d.assign(window_start=utc(d["window_start"]), window_end=utc(d["window_end"]))
    if alerts is not None and len(alerts):
        alerted = pd.MultiIndex.from_arrays(
            [alerts["device_id"].astype(str), utc(alerts["window_start"])]
        )
        d = d[~pd.MultiIndex.from_arrays([d["device_id"], d["window_start"]]).isin(alerted)]
    site, cohort = device_places(d["device_id"], devices, d)
    return pd.DataFrame(
        {
            "device_id": d["device_id"].astype(str).to_numpy(),
            "site_id": site,
            "cohort": cohort,
            "window_start": d["window_start"].values,
            "window_end": d["window_end"].values,
            "evidence_id": hashes("dx-", d["device_id"], d["window_start"]),
            "evidence_type": "diagnosis",
            "alert_id": None,
            "source": "diagnosis",
            "severity": d["base_severity"].astype(str).to_numpy(),
            "max_score": 0.0,
            "models_flagging": np.int64(0),
            "cause": d["cause"].astype(str).to_numpy(),
            "confidence": d["confidence"].astype(float).to_numpy(),
            "cause_evidence": d["evidence"].astype(str).to_numpy(),
            "base": d["base_severity"].astype(str).to_numpy(),
            "detail": "",
        }
    ).assign(
        window_start=lambda f: utc(f["window_start"]),
        window_end=lambda f: utc(f["window_end"]),
    )


def evaporator_temperatures(
    signals: pd.DataFrame, quality: pd.DataFrame | None, severity: SeverityPolicy
) -> np.ndarray:
    """The evaporator temperature of each signal's window, where the window was measured and
    held no defrost (``severity.defrost_feature`` above 0): a defrost heats the coil on purpose,
    it is no excursion of the cabinet."""
    feature = severity.evaporator_feature
    if quality is None or quality.empty or feature not in quality or signals.empty:
        return np.full(len(signals), np.nan)
    defrost = severity.defrost_feature
    columns = ["device_id", "window_start", feature]
    if defrost in quality:
        columns.append(defrost)
    q = quality.loc[quality["device_id"].isin(set(signals["device_id"].dropna())), columns].copy()
    q["window_start"] = utc(q["window_start"])
    q = q.drop_duplicates(["device_id", "window_start"])
    if defrost in q:
        heated = pd.to_numeric(q[defrost], errors="coerce").fillna(0.0).to_numpy() > 0
        q[feature] = q[feature].astype(float).where(~heated)
    merged = signals[["device_id", "window_start"]].merge(
        q, on=["device_id", "window_start"], how="left"
    )
    return merged[feature].to_numpy(dtype=float)
