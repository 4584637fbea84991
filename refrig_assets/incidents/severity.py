"""An incident's severity: its cause's base, raised by impact, never below what was stored."""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.incidents.cause_table import CauseTable
from refrig_assets.incidents.policy import IncidentPolicy
from refrig_assets.incidents.signal_frame import UNKNOWN


def assign_severity(inc: pd.DataFrame, policy: IncidentPolicy, causes: CauseTable) -> None:
    """Severity by impact (in place): cause class, evaporator excursion, persistence, agreement;
    never below the stored severity of an incident that was already open."""
    sev = policy.severity
    ranks = {s: i for i, s in enumerate(policy.severities)}
    base = inc["signal_base"].where(inc["signal_base"].notna(), inc["cause"].map(causes.severity))
    base = base.where(inc["cause"].ne(UNKNOWN), sev.unknown_cause).fillna(sev.unknown_cause)
    # A ticket of lost data (a sensor's, a silent device's, a whole site's readings stopping)
    # says nothing about the machines: the sensor severity, never raised, never paged.
    data_loss = (
        inc["kind"].eq("sensor") | inc["cause"].eq(policy.site_events.communications_loss_cause)
    ).to_numpy()
    base = base.where(~data_loss, sev.sensor)
    # A warm room is the context of faults, not one: its base severity, never raised; a site's
    # (its signals are its devices' windows) has no evaporator of its own to warm either.
    warm = inc["cause"].eq(policy.site_ambient.cause).to_numpy()
    held = data_loss | warm
    base_rank = base.map(ranks).to_numpy()
    excursion = (inc["evaporator_peak_c"] - inc["evaporator_start_c"]).fillna(0.0).to_numpy()
    duration = (inc["last_window_end"] - inc["first_window_start"]).to_numpy()
    raises = {
        f"evaporator +{sev.excursion_celsius:g} °C": excursion >= sev.excursion_celsius,
        f"lasting {sev.persistence}": duration >= np.timedelta64(sev.persistence),
        f"{sev.agreement_models}+ models agree": inc["max_models_flagging"].to_numpy()
        >= sev.agreement_models,
    }
    count = np.sum(list(raises.values()), axis=0) if len(inc) else np.zeros(0, dtype=int)
    cap = ranks[sev.raise_cap]
    rank = np.minimum(base_rank, np.maximum(base_rank - count, cap))
    rank = np.where(held, base_rank, rank)
    critical = (excursion >= sev.critical_excursion_celsius) & ~(warm & inc["scope"].eq("site"))
    rank = np.where(critical, 0, rank)
    rank = np.where(data_loss, ranks[sev.sensor], rank)
    prior = inc["prior_severity"].map(ranks).to_numpy(dtype=float)
    rank = np.where(np.isnan(prior), rank, np.minimum(rank, np.nan_to_num(prior, nan=99)))
    names = np.array(policy.severities, dtype=object)
    inc["base_severity"] = base.to_numpy()
    inc["severity"] = names[rank.astype(int)]
    # Per incident from plain arrays (a pandas lookup per value was most of the build's
    # severity step at 100K devices).
    cause = inc["cause"].to_numpy(dtype=object)
    base_name = base.to_numpy(dtype=object)
    raised = [(name, hit & ~held) for name, hit in raises.items()]
    told = np.asarray(critical, dtype=bool) & ~data_loss
    reasons = []
    for i in range(len(inc)):
        why = [f"{cause[i]}: {base_name[i]}"]
        why += [name for name, hit in raised if hit[i]]
        if told[i]:
            why.append(f"evaporator +{excursion[i]:.1f} °C: CRITICAL")
        reasons.append("; ".join(why))
    inc["severity_reasons"] = reasons
