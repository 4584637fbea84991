"""The probable-cause signature table (``config/causes.yaml``), typed and validated.

A :class:`SignatureTable` holds the signatures in the order they are tried, the baseline
settings and the derived-feature settings. :func:`load_signatures` reads it and raises
:class:`~refrig_assets.core.config.ConfigError` naming the file, the signature and the key for
anything it cannot use, so an engineer adding a signature learns at load time, not at 3 a.m.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refrig_assets.core.config import ConfigError, config_path, read_yaml

KINDS = ("refrigeration", "operational", "sensor", "site")
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
REFERENCES = ("baseline", "cohort", "limit", "flags")
DIRECTIONS = ("up", "down")
UNKNOWN = "unknown"
DEFROST_KEYS = {"lookback_hours", "min_defrosts", "min_share_of_longest"}
STOP_KEYS = {"lookback_hours", "min_observed_hours"}


@dataclass(frozen=True)
class Condition:
    """One test of a feature against a reference (see the header of ``config/causes.yaml``)."""

    feature: str
    reference: str
    direction: str = "up"
    sigma: float | None = None
    ratio: float | None = None
    limit: dict[str, float] = field(default_factory=dict)  # cohort -> limit, "default"
    flags: tuple[str, ...] = ()
    of: str | None = None
    required: bool = False
    id: str | None = None
    any_of: tuple[Condition, ...] = ()
    # A window shorter than this many minutes is judged on its device's windows of the last
    # this many minutes, time-weighted (a rate per hour read from a window shorter than a few
    # events at that rate is noise); unevaluated where they cover less.
    min_window_minutes: float | None = None
    # A limit in minutes spans at least this many reading intervals of the fleet: a state read
    # every 5 minutes is seen on in a chance run of readings far more often than every minute.
    min_readings: float | None = None
    # A sigma condition also holds where the device's last ``persistent_samples`` stretches of
    # ``persistent_minutes`` (see causes._persistent) all lie beyond the deviation that many
    # independent stretches pass together as rarely as one window passes ``sigma``.
    persistent_samples: int | None = None
    persistent_minutes: float | None = None

    @property
    def features(self) -> set[str]:
        """Features this condition reads (its members' for an ``any_of``)."""
        if self.any_of:
            return {f for c in self.any_of for f in c.features}
        return {self.feature}

    @property
    def baseline_feature(self) -> str:
        """The feature whose baseline this condition compares with."""
        return self.of or self.feature

    def limit_for(self, cohort: str) -> float | None:
        """The limit of ``cohort`` (its own, else ``default``), at least ``min_readings``
        reading intervals of the fleet's cadence."""
        limit = self.limit.get(cohort, self.limit.get("default"))
        if limit is None or self.min_readings is None:
            return limit
        from refrig_assets.features.windows import fleet_cadence_seconds

        return max(limit, self.min_readings * fleet_cadence_seconds() / 60.0)


@dataclass(frozen=True)
class Signature:
    """One probable cause: what it is, how bad it is, and the conditions that reveal it."""

    name: str
    kind: str
    severity: str
    standalone: bool
    conditions: tuple[Condition, ...]
    min_conditions: int
    requires: tuple[str, ...] = ()
    streaming_rules: tuple[str, ...] = ()
    description: str = ""
    hint: str = ""
    escalate_severity: str | None = None
    escalate_when: tuple[str, ...] = ()
    # The cause a window it matches is named after, where that is another signature's (a
    # second way of telling the same fault); None: its own name.
    names_cause: str | None = None

    @property
    def cause(self) -> str:
        """The cause its windows are named after."""
        return self.names_cause or self.name

    @property
    def features(self) -> set[str]:
        """Every feature this signature reads."""
        return {f for c in self.conditions for f in c.features} | set(self.requires)


@dataclass(frozen=True)
class SignatureTable:
    """The signatures in evaluation order plus the settings of baselines and derived features."""

    signatures: tuple[Signature, ...]
    baseline: dict[str, float]
    derived: dict[str, dict[str, float]]
    path: Path

    def __iter__(self):
        return iter(self.signatures)

    def __len__(self) -> int:
        return len(self.signatures)

    def get(self, name: str) -> Signature:
        """The signature called ``name`` (KeyError names the known ones)."""
        for s in self.signatures:
            if s.name == name:
                return s
        raise KeyError(f"no signature {name!r}; known: {[s.name for s in self.signatures]}")

    def baseline_features(self) -> list[str]:
        """Features whose device and cohort baselines the conditions compare with."""
        out: list[str] = []
        for s in self.signatures:
            for c in (m for cond in s.conditions for m in (cond.any_of or (cond,))):
                if c.reference in ("baseline", "cohort") and c.baseline_feature not in out:
                    out.append(c.baseline_feature)
        return out

    def cause_for_streaming_rule(self, rule_name: str) -> str | None:
        """The cause whose ``streaming_rules`` list ``rule_name`` (None: no cause claims it)."""
        for s in self.signatures:
            if rule_name in s.streaming_rules:
                return s.cause
        return None


def _fail(path: Path, where: str, rule: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {rule}")


def _number(path: Path, where: str, raw: Any, *, positive: bool = True) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _fail(path, where, f"must be a number, not {raw!r}")
    if positive and raw <= 0:
        raise _fail(path, where, f"must be positive, not {raw!r}")
    return float(raw)


def _condition(path: Path, where: str, raw: Any) -> Condition:
    if not isinstance(raw, dict):
        raise _fail(path, where, "must be a mapping")
    if "any_of" in raw:
        members = raw["any_of"]
        if (
            set(raw) - {"any_of", "required", "id"}
            or not isinstance(members, list)
            or len(members) < 2
        ):
            raise _fail(
                path, where, "any_of takes a list of at least two conditions (and required, id)"
            )
        any_of = tuple(_condition(path, f"{where}.any_of[{j}]", m) for j, m in enumerate(members))
        if any(m.any_of for m in any_of):
            raise _fail(path, where, "any_of cannot nest")
        return Condition(
            feature="any_of(" + ", ".join(m.feature for m in any_of) + ")",
            reference="any_of",
            required=bool(raw.get("required", False)),
            id=raw.get("id"),
            any_of=any_of,
        )
    known = {
        "feature",
        "reference",
        "direction",
        "sigma",
        "ratio",
        "limit",
        "flags",
        "of",
        "min_window_minutes",
        "min_readings",
        "persistent",
    }
    unknown = set(raw) - known - {"required", "id"}
    if unknown:
        raise _fail(path, where, f"unknown keys {sorted(unknown)}")
    if not isinstance(raw.get("feature"), str):
        raise _fail(path, f"{where}.feature", "missing (a device_features column)")
    reference = raw.get("reference")
    if reference not in REFERENCES:
        raise _fail(path, f"{where}.reference", f"must be one of {list(REFERENCES)}")
    direction = raw.get("direction", "up")
    if direction not in DIRECTIONS:
        raise _fail(path, f"{where}.direction", f"must be one of {list(DIRECTIONS)}")
    sigma = ratio = None
    limit: dict[str, float] = {}
    flags: tuple[str, ...] = ()
    if reference in ("baseline", "cohort"):
        if ("sigma" in raw) == ("ratio" in raw):
            raise _fail(path, where, f"reference {reference} needs exactly one of sigma, ratio")
        if "sigma" in raw:
            sigma = _number(path, f"{where}.sigma", raw["sigma"])
        else:
            ratio = _number(path, f"{where}.ratio", raw["ratio"])
    elif reference == "limit":
        raw_limit = raw.get("limit")
        if isinstance(raw_limit, dict):
            if "default" not in raw_limit:
                raise _fail(path, f"{where}.limit", "a per-cohort mapping needs a default")
            limit = {
                str(k): _number(path, f"{where}.limit.{k}", v, positive=False)
                for k, v in raw_limit.items()
            }
        else:
            limit = {"default": _number(path, f"{where}.limit", raw_limit, positive=False)}
    else:
        raw_flags = raw.get("flags")
        if not isinstance(raw_flags, list) or not raw_flags:
            raise _fail(path, f"{where}.flags", "must be a non-empty list of quality flags")
        flags = tuple(str(f) for f in raw_flags)
    samples, minutes = _persistent(path, where, raw.get("persistent"), sigma)
    return Condition(
        feature=raw["feature"],
        reference=reference,
        direction=direction,
        sigma=sigma,
        ratio=ratio,
        limit=limit,
        flags=flags,
        of=raw.get("of"),
        required=bool(raw.get("required", False)),
        id=raw.get("id"),
        min_window_minutes=(
            _number(path, f"{where}.min_window_minutes", raw["min_window_minutes"])
            if "min_window_minutes" in raw
            else None
        ),
        min_readings=(
            _number(path, f"{where}.min_readings", raw["min_readings"])
            if "min_readings" in raw
            else None
        ),
        persistent_samples=samples,
        persistent_minutes=minutes,
    )


def _persistent(
    path: Path, where: str, raw: Any, sigma: float | None
) -> tuple[int | None, float | None]:
    """``persistent: {samples, minutes}`` of a sigma condition (None, None without it)."""
    if raw is None:
        return None, None
    if sigma is None:
        raise _fail(path, f"{where}.persistent", "applies to a sigma condition only")
    if not isinstance(raw, dict) or set(raw) != {"samples", "minutes"}:
        raise _fail(path, f"{where}.persistent", "takes samples and minutes")
    samples = raw["samples"]
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise _fail(path, f"{where}.persistent.samples", "must be a whole number of at least 2")
    return samples, _number(path, f"{where}.persistent.minutes", raw["minutes"])


def _signature(path: Path, i: int, raw: Any) -> Signature:
    where = f"signatures[{i}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise _fail(path, where, "must be a mapping with a name")
    where = f"signatures.{raw['name']}"
    for key, allowed in (("kind", KINDS), ("severity", SEVERITIES)):
        if raw.get(key) not in allowed:
            raise _fail(path, f"{where}.{key}", f"must be one of {list(allowed)}")
    raw_conditions = raw.get("conditions")
    if not isinstance(raw_conditions, list) or not raw_conditions:
        raise _fail(path, f"{where}.conditions", "must be a non-empty list")
    conditions = tuple(
        _condition(path, f"{where}.conditions[{j}]", c) for j, c in enumerate(raw_conditions)
    )
    minimum = raw.get("min_conditions", len(conditions))
    if not isinstance(minimum, int) or not 1 <= minimum <= len(conditions):
        raise _fail(path, f"{where}.min_conditions", f"must be 1..{len(conditions)}")
    escalate = raw.get("escalate") or {}
    ids = {c.id for c in conditions if c.id}
    when = tuple(escalate.get("when", ()))
    if escalate and (
        escalate.get("severity") not in SEVERITIES or not set(when) <= ids or not when
    ):
        raise _fail(path, f"{where}.escalate", "needs a severity and `when`: ids of its conditions")
    cause = raw.get("cause")
    if cause is not None and not isinstance(cause, str):
        raise _fail(path, f"{where}.cause", "must be the name of another signature")
    return Signature(
        name=raw["name"],
        kind=raw["kind"],
        severity=raw["severity"],
        standalone=bool(raw.get("standalone", False)),
        conditions=conditions,
        min_conditions=minimum,
        requires=tuple(raw.get("requires") or ()),
        streaming_rules=tuple(raw.get("streaming_rules") or ()),
        description=" ".join(str(raw.get("description", "")).split()),
        hint=" ".join(str(raw.get("hint", "")).split()),
        escalate_severity=escalate.get("severity"),
        escalate_when=when,
        names_cause=cause,
    )


def load_signatures(path: Path | str | None = None) -> SignatureTable:
    """The signature table from ``path`` (default ``config/causes.yaml`` of the config folder).

    Raises :class:`ConfigError` for a missing file, an unknown kind, severity, reference or
    direction, a condition without its threshold, duplicate names, or a streaming rule claimed
    by two causes."""
    file = Path(path) if path is not None else config_path("causes")
    raw = read_yaml(file)
    raw_signatures = raw.get("signatures")
    if not isinstance(raw_signatures, list) or not raw_signatures:
        raise _fail(file, "signatures", "must be a non-empty list")
    signatures = tuple(_signature(file, i, s) for i, s in enumerate(raw_signatures))
    names = [s.name for s in signatures]
    if len(set(names)) != len(names) or UNKNOWN in names:
        raise _fail(file, "signatures", f"names must be unique and not {UNKNOWN!r}: {names}")
    for s in signatures:
        if s.names_cause is None:
            continue
        named = [o for o in signatures if o.name == s.names_cause and o.names_cause is None]
        if not named or (named[0].kind, named[0].severity) != (s.kind, s.severity):
            raise _fail(
                file,
                f"signatures.{s.name}.cause",
                "must name another signature (not itself another's) of the same kind and severity",
            )
    rules = [r for s in signatures for r in s.streaming_rules]
    if len(set(rules)) != len(rules):
        raise _fail(file, "streaming_rules", "each streaming rule may mean one cause only")
    baseline = raw.get("baseline")
    if not isinstance(baseline, dict):
        raise _fail(file, "baseline", "must be a mapping")
    settings = {}
    for key in (
        "lookback_hours",
        "refresh_hours",
        "min_history_hours",
        "min_device_windows",
        "min_scale_share_of_fleet",
        "running_min_duty",
        "fallback_between_sigma",
        "min_cohort_devices",
    ):
        if key not in baseline:
            raise _fail(file, f"baseline.{key}", "missing")
        settings[key] = _number(file, f"baseline.{key}", baseline[key], positive=False)
    derived = raw.get("derived") or {}
    defrost = derived.get("defrost") if isinstance(derived, dict) else None
    if not isinstance(defrost, dict) or DEFROST_KEYS - set(defrost):
        raise _fail(file, "derived.defrost", f"needs {', '.join(sorted(DEFROST_KEYS))}")
    derived_settings = {
        "defrost": {k: _number(file, f"derived.defrost.{k}", v) for k, v in defrost.items()}
    }
    # The compressor stop features (refrig_assets/incidents/stops.py); without their settings
    # they are not derived and conditions on them stay unevaluated.
    stop = derived.get("stops")
    if stop is not None:
        if not isinstance(stop, dict) or set(stop) != STOP_KEYS:
            raise _fail(file, "derived.stops", f"needs {', '.join(sorted(STOP_KEYS))}")
        derived_settings["stops"] = {
            k: _number(file, f"derived.stops.{k}", v) for k, v in stop.items()
        }
    return SignatureTable(
        signatures=signatures,
        baseline=settings,
        derived=derived_settings,
        path=file,
    )
