"""The one Definitions object of the project: the ``defs`` of every domain under ``defs/``.

Each ``refrig_assets/defs/<domain>/`` package exports its own ``defs``; a new domain is picked up
by being there. ``defs/shared`` holds what domains share (resources, partitions, checks, jobs) and
is not a domain itself."""

from __future__ import annotations

import importlib
import pkgutil

import dagster as dg

import refrig_assets.defs as defs_package
from refrig_assets.defs.shared.freshness import with_contract_freshness
from refrig_assets.defs.shared.resources import RefrigResource

SHARED = "shared"


def domain_names() -> list[str]:
    """The domain packages under ``refrig_assets/defs``, in name order."""
    return sorted(
        m.name for m in pkgutil.iter_modules(defs_package.__path__) if m.ispkg and m.name != SHARED
    )


def build_definitions() -> dg.Definitions:
    """Merge every domain's ``defs`` with the shared resource and executor; contracts then set
    each asset's freshness SLA (see ``defs/shared/freshness``)."""
    domains = [importlib.import_module(f"{defs_package.__name__}.{n}").defs for n in domain_names()]
    merged = dg.Definitions.merge(
        *domains,
        dg.Definitions(resources={"refrig": RefrigResource()}, executor=dg.in_process_executor),
    )
    return with_contract_freshness(merged)


defs = build_definitions()
