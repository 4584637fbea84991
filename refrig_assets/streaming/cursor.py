"""Which landing files the streaming rules have already read: path → (mtime, size).

A file is pending when it is new or its modification time or size changed. Files last modified
more than ``lookback`` before now are left to the batch path (and forgotten), which keeps the
cursor small however long the landing zone's history is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from refrig_assets.ingestion.landing.discovery import discover_files


@dataclass
class LandingCursor:
    """Processed files by path relative to the landing directory."""

    files: dict[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str | None) -> LandingCursor:
        """Parse a cursor written by :meth:`to_json` (None or empty: nothing processed yet)."""
        if not text:
            return cls()
        raw = json.loads(text)
        return cls({path: (int(m), int(s)) for path, (m, s) in raw.get("files", {}).items()})

    def to_json(self) -> str:
        return json.dumps({"files": {p: list(v) for p, v in sorted(self.files.items())}})

    def pending(self, landing_dir: Path, now_ns: int, lookback_ns: int) -> list[Path]:
        """New or changed files modified within the lookback, oldest first."""
        out = []
        for path in discover_files(landing_dir):
            try:
                st = path.stat()
            except FileNotFoundError:  # removed between listing and stat
                continue
            if st.st_mtime_ns < now_ns - lookback_ns:
                continue
            rel = str(path.relative_to(landing_dir))
            if self.files.get(rel) != (st.st_mtime_ns, st.st_size):
                out.append((st.st_mtime_ns, rel, path))
        return [p for _, _, p in sorted(out)]

    def mark(self, path: Path, landing_dir: Path) -> None:
        """Remember ``path`` as processed in its current version."""
        st = path.stat()
        self.files[str(path.relative_to(landing_dir))] = (st.st_mtime_ns, st.st_size)

    def forget_older_than(self, cutoff_ns: int) -> None:
        """Drop files last modified before ``cutoff_ns`` (outside the lookback)."""
        self.files = {p: v for p, v in self.files.items() if v[0] >= cutoff_ns}
