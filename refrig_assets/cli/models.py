"""``refrig models``: versions, gated promotion and progressive rollout, pinning, rollback,
pause and audit history.

Every change is written to the lifecycle audit trail (``REFRIG_LIFECYCLE_DB_URL``, else the alert
database) with who did it (``--by``, default ``REFRIG_ACTOR`` or the login name) and why.
Errors print one line on stderr and exit with status 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import typer

from refrig_assets.core.settings import get_settings

app = typer.Typer(
    help="Model versions: list, promote through the gates, pin, roll back, pause, history.",
    no_args_is_help=True,
    add_completion=False,
)

BY = typer.Option(None, "--by", help="Who acts (default: REFRIG_ACTOR or the login name).")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def _lifecycle() -> Iterator:
    """The lifecycle service over the configured registry, audit trail and models/ folder."""
    from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url
    from refrig_assets.lifecycle.promotion import ModelLifecycle
    from refrig_assets.training.registry import ModelRegistry

    s = get_settings()
    audit = None
    try:
        audit = AuditTrail(lifecycle_db_url(s.alerts_db_url))
        registry = ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir)
        yield ModelLifecycle(registry, audit, s.models_dir)
    except Exception as exc:  # noqa: BLE001 - a CLI reports, it does not dump tracebacks
        if isinstance(exc, typer.Exit | typer.Abort):
            raise
        _fail(f"{type(exc).__name__}: {exc}" if not _is_lifecycle_error(exc) else str(exc))
    finally:
        if audit is not None:
            audit.close()


def _is_lifecycle_error(exc: Exception) -> bool:
    from refrig_assets.lifecycle.promotion import LifecycleError
    from refrig_assets.training.registry import RegistryError

    return isinstance(exc, LifecycleError | RegistryError | FileNotFoundError)


def _actor(by: str | None) -> str:
    from refrig_assets.lifecycle.promotion import default_actor

    return by or default_actor()


def _model(model_id: str) -> str:
    from refrig_assets.core.model_config import all_model_ids

    known = all_model_ids(get_settings().models_dir)
    if model_id not in known:
        _fail(f"unknown model {model_id!r} (models/: {', '.join(known)})")
    return model_id


def _event_line(e) -> str:
    forced = "  FORCED" if e.forced else ""
    return (
        f"{e.event}: {e.from_version or '-'} -> {e.to_version or '-'}; scoring now uses "
        f"version {e.serving_version or '-'}{forced}\n  {e.reason}"
    )


@app.command("list")
def list_models() -> None:
    """Every detector: production, pinned and serving version, pause, and its versions. The
    serving version is the one that really serves: artifacts are verified against their sha256,
    a corrupt version is marked CORRUPT, and an alias moved outside the gates is refused."""
    from refrig_assets.core.model_config import all_model_ids
    from refrig_assets.lifecycle.integrity import not_trained_reason, resolve_serving
    from refrig_assets.lifecycle.promotion import GATE_STATUS_TAG
    from refrig_assets.training.registry import CorruptArtifactError, RegistryError

    with _lifecycle() as lc:
        for model_id in all_model_ids(lc.models_dir):
            lc.sync_file_pin(model_id)
            st = lc.state(model_id)
            versions = lc.registry.versions(model_id)
            serving, problems = st.serving, []
            corrupt: dict[str, str] = {}
            if versions:
                try:
                    resolution = resolve_serving(
                        lc.registry,
                        lc.audit.events(model_id),
                        model_id,
                        st.pinned,
                        probe=lambda v, m=model_id: lc.registry.check(m, v),
                    )
                    serving = resolution.version or "- (no version loads: rules-based fallback)"
                    problems, corrupt = resolution.problems, dict(resolution.corrupt)
                except RegistryError:
                    pass  # nothing in production yet, or a pin naming an unknown version
            typer.echo(
                f"{model_id}: serving {serving or '-'} (production {st.production or '-'}, "
                f"pinned {st.pinned or '-'}){'  PAUSED' if st.paused else ''}"
            )
            for problem in problems:
                typer.echo(f"  ! {problem}")
            if not versions and (refused := not_trained_reason(lc.audit.events(model_id))):
                typer.echo(f"  not trained: {refused}")
            for v in versions:
                if v["version"] not in corrupt:
                    try:
                        lc.registry.verify(model_id, v["version"])
                    except CorruptArtifactError as exc:
                        corrupt[v["version"]] = str(exc)
                marks = [
                    m
                    for m, on in (
                        ("production", v["version"] == st.production),
                        ("pinned", v["version"] == st.pinned),
                        ("CORRUPT", v["version"] in corrupt),
                    )
                    if on
                ]
                typer.echo(
                    f"  v{v['version']:<4} {v['semver']:<9} {v['created_at']:%Y-%m-%d %H:%M}  "
                    f"{v['tags'].get(GATE_STATUS_TAG, '-'):<14} {' '.join(marks)}"
                )


@app.command("promote")
def promote(
    model_id: str = typer.Argument(..., help="Detector (a file in models/)."),
    version: str = typer.Argument(..., help="Registry version (3, v3) or semver (1.2.0)."),
    force: bool = typer.Option(False, "--force", help="Promote even if gates fail (recorded)."),
    now: bool = typer.Option(
        False, "--now", help="Skip the progressive rollout: production moves at once."
    ),
    reason: str = typer.Option("", "--reason", help="Why (required with --force)."),
    by: str | None = BY,
) -> None:
    """Evaluate a version against production on recent features; if every gate passes, start
    its progressive rollout (or, with --now or the rollout switched off, promote it at once).
    A blocked promotion is recorded with the failing gates (exit status 1)."""
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.lifecycle.policy import load_policy
    from refrig_assets.lifecycle.promotion import (
        evaluate_candidate,
        read_labels,
        recent_features,
        unreadable_champion_report,
    )
    from refrig_assets.lifecycle.rollout import RolloutManager
    from refrig_assets.training.registry import CorruptArtifactError

    _model(model_id)
    s = get_settings()
    with _lifecycle() as lc:
        version = lc.registry.find_version(model_id, version)
        champion = lc.registry.production_version(model_id)
        if champion is None:
            event = lc.after_training(model_id, version, _actor(by))
            typer.echo(_event_line(event))
            return
        if champion == version:
            _fail(f"{model_id} version {version} is already production")
        policy = load_policy(s.models_dir, model_id)
        store = ParquetStore(s.data_dir)
        features, stems = recent_features(store, int(policy["canary"]["recent_hours"]))
        typer.echo(
            f"Evaluating {model_id} v{version} against production v{champion} on "
            f"{stems[0]}..{stems[-1]} ({len(features):,} windows) ..."
        )
        try:
            report = evaluate_candidate(
                lc.registry,
                model_id,
                version,
                champion,
                features,
                store.read("device_registry"),
                read_labels(s.labels_path),
                policy,
            ).report
        except CorruptArtifactError as exc:
            if exc.version != champion:
                raise  # the candidate itself: refused as before
            report = unreadable_champion_report(model_id, version, champion, exc)
        for g in report.gates:
            typer.echo(f"  [{'pass' if g.passed else 'FAIL'}] {g.detail}")
        rollout = RolloutManager(lc)
        if report.passed and not now and rollout.policy(model_id).enabled:
            event = rollout.start(report, _actor(by), reason=reason)
        else:
            event = lc.apply(report, _actor(by), force=force, reason=reason)
        typer.echo(_event_line(event))
    if event.event == "promotion_blocked":
        raise typer.Exit(1)


@app.command("pin")
def pin(
    model_id: str = typer.Argument(..., help="Detector (a file in models/)."),
    version: str = typer.Argument(..., help="Registry version (3, v3) or semver (1.2.0)."),
    force: bool = typer.Option(
        False, "--force", help="Pin a version that has not passed the gates (recorded)."
    ),
    reason: str = typer.Option("", "--reason", help="Why."),
    by: str | None = BY,
) -> None:
    """Pin a version in models/<id>.yaml: the next scoring run uses it (no retraining)."""
    _model(model_id)
    with _lifecycle() as lc:
        typer.echo(_event_line(lc.pin(model_id, version, _actor(by), reason, force=force)))


@app.command("unpin")
def unpin(
    model_id: str = typer.Argument(..., help="Detector (a file in models/)."),
    reason: str = typer.Option("", "--reason", help="Why."),
    by: str | None = BY,
) -> None:
    """Clear the pin: scoring follows the production version again."""
    _model(model_id)
    with _lifecycle() as lc:
        typer.echo(_event_line(lc.unpin(model_id, _actor(by), reason)))


@app.command("rollback")
def rollback(
    model_id: str = typer.Argument(..., help="Detector (a file in models/)."),
    to: str | None = typer.Option(
        None, "--to", help="Version to roll back to (default: the previous good one)."
    ),
    reason: str = typer.Option("", "--reason", help="Why."),
    force: bool = typer.Option(
        False, "--force", help="Allow a version that has not passed the gates (recorded)."
    ),
    by: str | None = BY,
) -> None:
    """Pin the previous version that served and passed its gates (or --to)."""
    _model(model_id)
    with _lifecycle() as lc:
        typer.echo(_event_line(lc.rollback(model_id, _actor(by), reason, to=to, force=force)))


@app.command("pause")
def pause(
    model_id: str = typer.Argument(..., help="Detector (a file in models/)."),
    reason: str = typer.Option(..., "--reason", help="Why scoring stops."),
    by: str | None = BY,
) -> None:
    """Stop scoring this model (rules-based fallback covers it) until resumed."""
    _model(model_id)
    with _lifecycle() as lc:
        lc.pause(model_id, _actor(by), reason)
    typer.echo(f"{model_id}: scoring paused.")


@app.command("resume")
def resume(
    model_id: str = typer.Argument(..., help="Detector (a file in models/)."),
    reason: str = typer.Option("", "--reason", help="Why scoring may run again."),
    by: str | None = BY,
) -> None:
    """Let a paused model score again."""
    _model(model_id)
    with _lifecycle() as lc:
        lc.resume(model_id, _actor(by), reason)
    typer.echo(f"{model_id}: scoring resumed.")


@app.command("history")
def history(
    model_id: str = typer.Argument(..., help="Detector (a file in models/)."),
    at: str | None = typer.Option(
        None, "--at", help="Only say which version served at this UTC time (ISO 8601)."
    ),
) -> None:
    """The audit trail of a model, and which version served when."""
    from refrig_assets.lifecycle.history import serving_version_at, timeline_frame

    _model(model_id)
    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            _fail(f"--at is not an ISO 8601 time: {at!r}")
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    with _lifecycle() as lc:
        lc.sync_file_pin(model_id)
        if when is not None:
            version = serving_version_at(lc.audit, model_id, when)
            typer.echo(
                f"{model_id} at {when.isoformat()}: "
                + (f"version {version}" if version else "no version in production")
            )
            return
        events = lc.audit.events(model_id)
        timeline = timeline_frame(lc.audit, model_id)
    if not events:
        typer.echo(f"{model_id}: no lifecycle events recorded.")
        return
    typer.echo(f"{model_id} — audit trail ({len(events)} records):")
    for e in events:
        typer.echo(
            f"  {e.at:%Y-%m-%d %H:%M:%S}  {e.event:<18} {e.from_version or '-':>4} -> "
            f"{e.to_version or '-':<4} serving {e.serving_version or '-':<4} "
            f"{'FORCED ' if e.forced else ''}{'PAUSED ' if e.paused else ''}by {e.actor}"
        )
        typer.echo(f"      {e.reason}")
    typer.echo("\nserved versions:")
    for row in timeline.to_dict("records"):
        until = "now" if row["until"] is None or row["until"] != row["until"] else row["until"]
        flags = (" (pinned)" if row["pinned"] else "") + (" (forced)" if row["forced"] else "")
        typer.echo(f"  v{row['version']}{flags}: {row['from']} .. {until}")


rollout_app = typer.Typer(
    help="Progressive rollout of a promoted candidate: status, advance, abort.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(rollout_app, name="rollout")


def _rollout_lines(rollout, decision) -> list[str]:
    lines = [
        f"{rollout.model_id}: rollout of v{rollout.candidate} against v{rollout.champion} "
        f"{rollout.status.upper()} — step {rollout.step + 1}/{len(rollout.steps)} "
        f"({' → '.join(f'{s:.0%}' for s in rollout.steps)}): "
        f"{rollout.share:.0%} of devices on v{rollout.candidate}",
        f"  started {rollout.started_at:%Y-%m-%d %H:%M} by {rollout.started_by}; "
        f"step since {rollout.step_started_at:%Y-%m-%d %H:%M}"
        + (f"; ended {rollout.ended_at:%Y-%m-%d %H:%M}" if rollout.ended_at else ""),
    ]
    if decision is not None:
        lines.append(
            f"  gates ({decision.partitions} healthy partitions): {decision.action} — "
            f"{decision.reason}"
        )
        lines += [f"  [{'pass' if g.passed else 'FAIL'}] {g.detail}" for g in decision.gates]
    return lines


@rollout_app.command("status")
def rollout_status(model_id: str = typer.Argument(..., help="Detector (a file in models/).")):
    """The rollout in progress (or the last one): share, step and the step's gate values."""
    from refrig_assets.lifecycle.rollout import ACTIVE, RolloutManager

    _model(model_id)
    with _lifecycle() as lc:
        manager = RolloutManager(lc)
        rollout = manager.store.latest(model_id)
        if rollout is None:
            typer.echo(f"{model_id}: no rollout recorded.")
            return
        decision = manager.judge(rollout) if rollout.status == ACTIVE else None
        for line in _rollout_lines(rollout, decision):
            typer.echo(line)


@rollout_app.command("advance")
def rollout_advance(
    model_id: str = typer.Argument(..., help="Detector (a file in models/)."),
    by: str | None = BY,
) -> None:
    """Advance to the next share now (refused while a health gate fails); the last step moves
    production to the candidate."""
    from refrig_assets.lifecycle.rollout import RolloutManager

    _model(model_id)
    with _lifecycle() as lc:
        typer.echo(_event_line(RolloutManager(lc).advance(model_id, _actor(by))))


@rollout_app.command("abort")
def rollout_abort(
    model_id: str = typer.Argument(..., help="Detector (a file in models/)."),
    reason: str = typer.Option("", "--reason", help="Why."),
    by: str | None = BY,
) -> None:
    """End the rollout: every device back on the champion (no retraining)."""
    from refrig_assets.lifecycle.rollout import RolloutManager

    _model(model_id)
    with _lifecycle() as lc:
        typer.echo(_event_line(RolloutManager(lc).abort(model_id, _actor(by), reason)))
