"""Operator workflow settings, read from ``models/_operations.yaml`` (never written in code).

``REFRIG_OPERATIONS_FILE`` points to another file (tests use it to switch auto-apply on). Every
value is checked on load; a missing or invalid one raises :class:`OperationsConfigError` naming the
file and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from refrig_assets.core.settings import get_settings

OPERATIONS_FILE = "_operations.yaml"
FEEDBACK_ACTIONS = ("raise_threshold", "suppress")


class OperationsConfigError(ValueError):
    """The operations settings file is missing a value or holds an invalid one."""


@dataclass(frozen=True)
class ConsoleSettings:
    """Limits and defaults of the operator console."""

    note_max_chars: int
    actor_max_chars: int
    page_size: int
    device_history_hours: float
    device_chart_features: int


@dataclass(frozen=True)
class MaintenanceSettings:
    """Bounds on declared maintenance windows."""

    max_window_days: float


@dataclass(frozen=True)
class FeedbackSettings:
    """When repeated false positives turn into a per-device rule, and what the rule does."""

    false_positive_threshold: int
    lookback_days: float
    action: str
    threshold_margin: float
    rule_days: float
    auto_apply: bool


@dataclass(frozen=True)
class WorkOrderSettings:
    """Where and how acknowledged alerts are handed off as work orders."""

    url: str | None
    timeout_seconds: float
    attempts: int
    on_acknowledge: bool
    due_hours: dict[str, float]
    console_url: str | None


@dataclass(frozen=True)
class OperationsSettings:
    """Everything in the operations settings file."""

    console: ConsoleSettings
    maintenance: MaintenanceSettings
    feedback: FeedbackSettings
    work_orders: WorkOrderSettings
    path: Path


def operations_file() -> Path:
    """The settings file in use: ``REFRIG_OPERATIONS_FILE`` or ``<models_dir>/_operations.yaml``."""
    override = os.environ.get("REFRIG_OPERATIONS_FILE")
    return Path(override) if override else get_settings().models_dir / OPERATIONS_FILE


class _Section:
    """Typed reads from one section of the file, with errors that name file and key."""

    def __init__(self, path: Path, name: str, raw: dict[str, Any]):
        self.path, self.name = path, name
        body = raw.get(name)
        if not isinstance(body, dict):
            raise OperationsConfigError(f"{path}: section {name!r} is missing or not a mapping")
        self.body = body

    def _fail(self, key: str, rule: str) -> OperationsConfigError:
        value = self.body.get(key, "<missing>")
        return OperationsConfigError(f"{self.path}: {self.name}.{key} {rule}; got {value!r}")

    def number(self, key: str, *, minimum: float = 0.0, integer: bool = False) -> Any:
        value = self.body.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, "must be a number")
        if integer and int(value) != value:
            raise self._fail(key, "must be a whole number")
        if value < minimum:
            raise self._fail(key, f"must be at least {minimum:g}")
        return int(value) if integer else float(value)

    def flag(self, key: str) -> bool:
        value = self.body.get(key)
        if not isinstance(value, bool):
            raise self._fail(key, "must be true or false")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.body.get(key)
        if value not in allowed:
            raise self._fail(key, f"must be one of {', '.join(allowed)}")
        return str(value)

    def optional_text(self, key: str) -> str | None:
        value = self.body.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self._fail(key, "must be null or a non-empty string")
        return value

    def numbers_by_key(self, key: str) -> dict[str, float]:
        value = self.body.get(key)
        if not isinstance(value, dict) or not value:
            raise self._fail(key, "must map names to numbers")
        out = {}
        for name, number in value.items():
            if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
                raise self._fail(key, f"has a non-numeric or negative value for {name!r}")
            out[str(name)] = float(number)
        return out


def load_operations_settings(path: str | Path | None = None) -> OperationsSettings:
    """Load and check the operations settings (default: :func:`operations_file`)."""
    path = Path(path) if path else operations_file()
    if not path.exists():
        raise OperationsConfigError(f"operations settings file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise OperationsConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise OperationsConfigError(f"{path}: expected a mapping of sections")
    console = _Section(path, "console", raw)
    maintenance = _Section(path, "maintenance", raw)
    feedback = _Section(path, "feedback", raw)
    work = _Section(path, "work_orders", raw)
    return OperationsSettings(
        console=ConsoleSettings(
            note_max_chars=console.number("note_max_chars", minimum=1, integer=True),
            actor_max_chars=console.number("actor_max_chars", minimum=1, integer=True),
            page_size=console.number("page_size", minimum=1, integer=True),
            device_history_hours=console.number("device_history_hours", minimum=1),
            device_chart_features=console.number("device_chart_features", minimum=1, integer=True),
        ),
        maintenance=MaintenanceSettings(
            max_window_days=maintenance.number("max_window_days", minimum=0.001)
        ),
        feedback=FeedbackSettings(
            false_positive_threshold=feedback.number(
                "false_positive_threshold", minimum=1, integer=True
            ),
            lookback_days=feedback.number("lookback_days", minimum=0.001),
            action=feedback.choice("action", FEEDBACK_ACTIONS),
            threshold_margin=feedback.number("threshold_margin"),
            rule_days=feedback.number("rule_days", minimum=0.001),
            auto_apply=feedback.flag("auto_apply"),
        ),
        work_orders=WorkOrderSettings(
            url=os.environ.get("REFRIG_WORKORDER_URL") or work.optional_text("url"),
            timeout_seconds=work.number("timeout_seconds", minimum=0.001),
            attempts=work.number("attempts", minimum=1, integer=True),
            on_acknowledge=work.flag("on_acknowledge"),
            due_hours=work.numbers_by_key("due_hours"),
            console_url=work.optional_text("console_url"),
        ),
        path=path,
    )
