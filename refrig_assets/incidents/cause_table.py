"""What the incident layer needs from the probable-cause signature table (config/causes.yaml):
each cause's class (``kind``) and base severity, and the cause a streaming rule stands for."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from refrig_assets.core.config import config_path
from refrig_assets.incidents.signatures import SignatureTable, load_signatures


@dataclass(frozen=True)
class CauseTable:
    """Cause name → kind and base severity; streaming rule → cause name."""

    kinds: dict[str, str] = field(default_factory=dict)
    severities: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)

    def kind(self, cause: str) -> str | None:
        """The cause class (refrigeration, operational, sensor, site), None if not listed."""
        return self.kinds.get(cause)

    def severity(self, cause: str) -> str | None:
        """The cause class's base severity, None if not listed."""
        return self.severities.get(cause)

    def for_streaming_rule(self, rule: str) -> str | None:
        """The cause whose signature claims streaming rule ``rule``."""
        return self.rules.get(rule)


def from_signatures(table: SignatureTable) -> CauseTable:
    """The incident layer's view of a loaded signature table."""
    rules: dict[str, str] = {}
    for s in table:
        for rule in s.streaming_rules:
            rules.setdefault(rule, s.cause)
    # A signature naming another's cause has its kind and severity (load_signatures checks).
    return CauseTable(
        kinds={s.cause: s.kind for s in table},
        severities={s.cause: s.severity for s in table},
        rules=rules,
    )


def cause_table() -> CauseTable:
    """The signature table of config/causes.yaml as a :class:`CauseTable`, built once per
    version of the file (the alert store asks for it with every stored alert)."""
    path = config_path("causes")
    try:
        stat = path.stat()
        version = (str(path), stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        version = (str(path), 0, 0)  # load_signatures names the missing file
    return _cause_table(version)


@lru_cache(maxsize=8)
def _cause_table(version: tuple[str, int, int]) -> CauseTable:
    return from_signatures(load_signatures(version[0]))
