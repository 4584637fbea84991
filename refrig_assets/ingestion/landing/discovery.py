"""Finding the files in the landing directory: reading files (Parquet, CSV, compressed CSV) at
any depth, and every other file, which is reported rather than ignored."""

from __future__ import annotations

from pathlib import Path

# Name endings of the files read as readings, and their format.
READING_SUFFIXES: dict[str, str] = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".csv.zst": "csv",
}


def file_kind(path: Path) -> str | None:
    """``parquet`` or ``csv`` (plain or gzip/zstd-compressed) by name; None for other files."""
    name = path.name.lower()
    for suffix, kind in READING_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return None


def is_compressed(path: Path) -> bool:
    """A compressed CSV (DuckDB decompresses it by its name ending)."""
    return path.name.lower().endswith((".gz", ".zst"))


def _landed(landing_dir: Path, in_progress: tuple[str, ...]) -> list[Path]:
    if not landing_dir.exists():
        return []
    return sorted(
        p
        for p in landing_dir.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(landing_dir).parts)
        and not p.name.lower().endswith(in_progress)
    )


def discover_files(landing_dir: Path) -> list[Path]:
    """All reading files under the landing directory, sorted (hidden files skipped)."""
    return [p for p in _landed(landing_dir, ()) if file_kind(p) is not None]


def discover_landing(landing_dir: Path, in_progress: tuple[str, ...] = ()) -> list[Path]:
    """Every file under the landing directory, sorted: reading files and any other file (which
    is quarantined as ``unsupported_file``). Hidden files and uploads in progress (names ending
    in one of ``in_progress``) are skipped."""
    return _landed(landing_dir, tuple(in_progress))
