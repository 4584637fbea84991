"""Finding the reading files in the landing directory: Parquet or CSV, any name, any depth."""

from __future__ import annotations

from pathlib import Path

READING_SUFFIXES = (".parquet", ".csv")


def discover_files(landing_dir: Path) -> list[Path]:
    """All reading files under the landing directory, sorted (hidden and temp files skipped)."""
    if not landing_dir.exists():
        return []
    return sorted(
        p
        for p in landing_dir.rglob("*")
        if p.is_file()
        and p.suffix.lower() in READING_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(landing_dir).parts)
    )
