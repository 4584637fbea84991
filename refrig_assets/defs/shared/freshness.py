"""Freshness policies from the contracts' SLAs, attached to every asset that has a contract.

An asset is fresh while it was updated within its contract's ``freshness_sla_minutes``; the UI
shows each asset's freshness state (the Dagster daemon evaluates the policies, no sensor needed).
"""

from datetime import timedelta

import dagster as dg

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import all_model_ids

FIXED_ASSET_CONTRACTS: dict[str, str] = {
    "device_registry": "device_registry",
    "sensor_readings": "sensor_readings",
    "clean_readings": "clean_readings",
    "quarantined_readings": "quarantined_readings",
    "device_features": "device_features",
    "device_alerts": "device_alerts",
    "device_incidents": "device_incidents",
}


def asset_contracts() -> dict[str, str]:
    """Asset -> the contract whose SLA it follows (every detector's scores follow model_scores)."""
    return {**FIXED_ASSET_CONTRACTS, **{f"{m}_scores": "model_scores" for m in all_model_ids()}}


def contract_freshness_policy(contract: str) -> dg.FreshnessPolicy:
    """Fail when the asset was not updated within the contract's SLA; warn at half of it."""
    sla = timedelta(minutes=load_contract(contract).freshness_sla_minutes)
    return dg.FreshnessPolicy.time_window(fail_window=sla, warn_window=sla / 2)


def with_contract_freshness(defs: dg.Definitions) -> dg.Definitions:
    """``defs`` with a freshness policy on every asset that has a contract."""
    contracts = asset_contracts()

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        contract = contracts.get(spec.key.to_user_string())
        if contract is None:
            return spec
        return spec.replace_attributes(freshness_policy=contract_freshness_policy(contract))

    return defs.map_asset_specs(func=attach)
