"""Which version may serve: the audited one, with an intact artifact.

The version scoring should use is the pin when set, else the production alias — but only the
alias the audit trail agrees with. An alias moved outside the promotion gates (directly in
MLflow, no audit record) is refused: the last audited promotion serves, and the refusal is
reported.

Every artifact is verified against the sha256 recorded at registration (the registry's tag and,
where training recorded it, the append-only audit trail) before it is loaded. A corrupt,
missing or unloadable artifact is reported with ``model@version`` and its path, and the last good
version serves instead: the previous audited production versions, newest first. When none
loads, nothing serves and the hour is left to the rules-based fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from refrig_assets.lifecycle import audit as events
from refrig_assets.lifecycle.audit import LifecycleEvent
from refrig_assets.training.registry import CorruptArtifactError, ModelRegistry, RegistryError


def audited_production(history: list[LifecycleEvent]) -> str | None:
    """The production version of the last audited promotion (None: no promotion recorded)."""
    for e in reversed(history):
        if e.event in events.PRODUCTION_MOVES and e.to_version:
            return str(e.to_version)
    return None


def audited_productions(history: list[LifecycleEvent]) -> list[str]:
    """Every version the audit trail saw in production, newest first (each once)."""
    seen: list[str] = []
    for e in reversed(history):
        if e.event not in events.PRODUCTION_MOVES:
            continue
        for v in (e.to_version, e.from_version):
            if v and str(v) not in seen:
                seen.append(str(v))
    return seen


def audited_checksums(history: list[LifecycleEvent], version: str) -> dict[str, str] | None:
    """The artifact sha256 the audit trail recorded when ``version`` was registered."""
    for e in reversed(history):
        if e.event == events.REGISTERED and str(e.to_version) == str(version):
            return {g["artifact"]: g["sha256"] for g in e.gates if "sha256" in g}
    return None


def not_trained_reason(history: list[LifecycleEvent]) -> str | None:
    """Why the model's last training fitted nothing, when no version was registered since
    (None: its last training registered a version, or it was never trained)."""
    for e in reversed(history):
        if e.event == events.REGISTERED:
            return None
        if e.event == events.NOT_TRAINED:
            return e.reason
    return None


def not_trained_models(model_ids: list[str], alerts_db_url: str) -> dict[str, str]:
    """Detectors whose last training fitted nothing (model → reason), from the lifecycle audit
    trail (``REFRIG_LIFECYCLE_DB_URL``, else the alert database); none when it cannot be read
    (a report that lists them never fails on it)."""
    from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url

    trail = AuditTrail(lifecycle_db_url(alerts_db_url))
    try:
        reasons = {m: not_trained_reason(trail.events(m)) for m in model_ids}
    except Exception:  # noqa: BLE001 - a report of what it can read
        return {}
    finally:
        trail.close()
    return {m: r for m, r in reasons.items() if r}


@dataclass
class ServingResolution:
    """What serves one model now, and why not what should have."""

    model_id: str
    wanted: str  # the pin, else the audited production version
    version: str | None  # what serves (None: no version loads → rules-based fallback)
    detector: Any = None  # the loaded detector (when the probe loads one)
    alias: str | None = None  # the registry's production alias
    audited: str | None = None  # the production version of the last audited promotion
    corrupt: dict[str, str] = field(default_factory=dict)  # version → why it cannot serve
    problems: list[str] = field(default_factory=list)
    # Why nothing serves when the model has no version because its training fitted nothing.
    not_trained: str | None = None

    @property
    def alias_refused(self) -> bool:
        return self.audited is not None and self.alias != self.audited

    @property
    def degraded(self) -> bool:
        """Something is wrong: an artifact failed, or the alias was refused."""
        return bool(self.problems)

    @property
    def fell_back(self) -> bool:
        return self.version != self.wanted

    def summary(self) -> str:
        if self.not_trained:
            return f"{self.model_id} not trained: {self.not_trained}"
        if not self.problems:
            return f"{self.model_id}@{self.version}: artifact verified"
        outcome = (
            f"serving {self.model_id}@{self.version} instead"
            if self.version is not None
            else "no version loads: the rules-based fallback covers this model"
        )
        return "; ".join(self.problems) + f" — {outcome}"

    def metadata(self) -> dict[str, Any]:
        """Plain values for asset metadata."""
        return {
            "requested_version": self.wanted,
            "served_version": self.version or "",
            "serving_degraded": self.degraded,
            "serving_problems": "; ".join(self.problems) if self.problems else "",
            "corrupt_versions": ", ".join(sorted(self.corrupt)) if self.corrupt else "",
            "production_alias": self.alias or "",
            "audited_production": self.audited or "",
            "not_trained": self.not_trained or "",
        }


def resolve_serving(
    registry: ModelRegistry,
    history: list[LifecycleEvent],
    model_id: str,
    pinned: str | None,
    probe: Callable[[str], Any] | None = None,
) -> ServingResolution:
    """The version that serves ``model_id``: the pin, else the audited production version —
    or, when its artifact fails, the newest earlier audited production version whose artifact
    passes ``probe`` (default: verify and load it; it raises :class:`CorruptArtifactError`).

    ``history`` is the model's audit trail. A pin or alias naming a version the registry does
    not know still raises :class:`RegistryError` (a configuration error, not a corrupt
    artifact). A model whose last training fitted nothing (and that has no version) resolves
    to nothing served, with ``not_trained`` saying why."""
    probe = probe or (lambda v: registry.load(model_id, v))
    alias = registry.production_version(model_id)
    audited = audited_production(history)
    production = audited if audited is not None else alias
    wanted = str(pinned) if pinned else production
    if wanted is None and (reason := not_trained_reason(history)) is not None:
        # Trained, but nothing could be fitted (a small fleet): a known state, not an error.
        return ServingResolution(
            model_id, "", None, alias=alias, audited=audited, not_trained=reason
        )
    if wanted is None:
        raise RegistryError(
            f"{model_id}: no production version in the registry — train it first "
            f"(materialize the {model_id}_model asset)"
        )
    out = ServingResolution(model_id, wanted, None, alias=alias, audited=audited)
    if out.alias_refused:
        out.problems.append(
            f"{model_id}: the production alias points at v{alias or '-'} but the last audited "
            f"promotion is v{audited} (moved outside the promotion gates, no audit record): "
            "refused"
        )
    candidates = [wanted, *[v for v in audited_productions(history) if v != wanted]]
    for i, version in enumerate(candidates):
        try:
            _check_audited_checksums(registry, history, model_id, version)
            out.detector = probe(version)
        except CorruptArtifactError as exc:
            out.corrupt[version] = str(exc)
            out.problems.append(str(exc))
            continue
        except RegistryError:
            if i == 0:
                raise
            continue  # an earlier production version no longer registered
        out.version = version
        return out
    return out


def _check_audited_checksums(
    registry: ModelRegistry, history: list[LifecycleEvent], model_id: str, version: str
) -> None:
    """The registry's checksum tag must be the one the audit trail recorded (a tag edited to
    match a replaced artifact is caught here)."""
    recorded = audited_checksums(history, version)
    if recorded is None:
        return
    if registry.recorded_checksums(model_id, version) != recorded:
        raise CorruptArtifactError(
            model_id,
            version,
            registry.artifact_location(model_id, version),
            "has a sha256 tag that differs from the one in the audit trail (tag edited)",
        )
