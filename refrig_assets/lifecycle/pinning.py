"""Pin a registry version in a detector's ``models/<id>.yaml`` (the ``pinned_version`` line).

Only that line changes; comments, order and every other setting stay as written. The file is
replaced atomically (temporary file + rename), so a scoring run never reads half a file.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import yaml

PIN_KEY = "pinned_version"
_PIN_LINE = re.compile(rf"^{PIN_KEY}[ \t]*:[^\n#]*?(?P<comment>[ \t]*#[^\n]*)?$", re.MULTILINE)


def model_file(models_dir: Path, model_id: str) -> Path:
    path = Path(models_dir) / f"{model_id}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no detector config {path}")
    return path


def file_pin(path: Path) -> str | None:
    """The version pinned in this file itself (None when unset or set to null)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    value = raw.get(PIN_KEY)
    return None if value is None else str(value)


def write_pin(path: Path, version: str | None) -> None:
    """Set (or with None, clear) ``pinned_version`` in ``path``, keeping the rest of the file."""
    path = Path(path)
    text = path.read_text()
    value = "null" if version is None else f'"{version}"'
    matches = list(_PIN_LINE.finditer(text))
    if len(matches) > 1:
        raise ValueError(f"{path}: more than one top-level {PIN_KEY} line")
    if matches:
        m = matches[0]
        line = f"{PIN_KEY}: {value}{m.group('comment') or ''}"
        new = text[: m.start()] + line + text[m.end() :]
    elif version is None:
        return
    else:
        sep = "" if text.endswith("\n") or not text else "\n"
        new = (
            f"{text}{sep}# Registry version scoring uses instead of the production alias "
            f"(rollback); null = production.\n{PIN_KEY}: {value}\n"
        )
    parsed = yaml.safe_load(new) or {}
    if (None if parsed.get(PIN_KEY) is None else str(parsed[PIN_KEY])) != version:
        raise ValueError(f"{path}: could not set {PIN_KEY} to {version!r} without breaking YAML")
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(new)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
