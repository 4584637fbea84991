"""Operator workflow settings, read from ``config/operations.yaml`` (never written in code).

``REFRIG_OPERATIONS_FILE`` points to another file (tests use it to switch auto-apply on). Every
value is checked on load; a missing or invalid one raises :class:`OperationsConfigError` naming the
file and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refrig_assets.core.config import ConfigError, Section, policy_file, read_yaml
from refrig_assets.core.settings import get_settings

# Where these settings lived before config/ (read for one release, with a warning).
LEGACY_FILE = "_operations.yaml"
FEEDBACK_ACTIONS = ("raise_threshold", "suppress")


class OperationsConfigError(ConfigError):
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
    """The settings file in use: ``REFRIG_OPERATIONS_FILE`` or ``config/operations.yaml``."""
    override = os.environ.get("REFRIG_OPERATIONS_FILE")
    if override:
        return Path(override)
    return policy_file("operations", get_settings().models_dir / LEGACY_FILE)


def load_operations_settings(path: str | Path | None = None) -> OperationsSettings:
    """Load and check the operations settings (default: :func:`operations_file`)."""
    path = Path(path) if path else operations_file()
    try:
        return _operations_settings(path, read_yaml(path))
    except OperationsConfigError:
        raise
    except ConfigError as exc:
        raise OperationsConfigError(str(exc)) from None


def _operations_settings(path: Path, raw: dict[str, Any]) -> OperationsSettings:
    whole = Section(path, raw)
    console = whole.section("console")
    maintenance = whole.section("maintenance")
    feedback = whole.section("feedback")
    work = whole.section("work_orders")
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
            threshold_margin=feedback.number("threshold_margin", minimum=0.0),
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
