"""Ingestion policy, read from ``config/ingestion.yaml`` (never written in code)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from refrig_assets.core.config import load_config


@dataclass(frozen=True)
class IngestionSettings:
    """How the landing zone is treated (see config/ingestion.yaml)."""

    path: Path
    # True: removing a landing file removes its readings (the zone is the source of truth).
    authoritative: bool
    # Name endings of uploads in progress, skipped until renamed.
    in_progress_suffixes: tuple[str, ...]
    # `refrig import`: the rows of a source converted at a time (whole devices per part).
    import_chunk_rows: int


def load_ingestion_settings() -> IngestionSettings:
    """The ``landing:`` and ``import:`` policy of config/ingestion.yaml; errors name the file
    and the key."""
    config = load_config("ingestion")
    landing = config.section("landing")
    suffixes = landing.value("in_progress_suffixes")
    if not isinstance(suffixes, list) or not all(isinstance(s, str) and s for s in suffixes):
        raise landing.fail("in_progress_suffixes", f"must be a list of texts, not {suffixes!r}")
    return IngestionSettings(
        path=config.path,
        authoritative=landing.flag("authoritative"),
        in_progress_suffixes=tuple(s.lower() for s in suffixes),
        import_chunk_rows=int(
            config.section("import").number("chunk_rows", minimum=1, integer=True)
        ),
    )
