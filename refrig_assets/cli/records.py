"""What the record-keeping commands (``refrig alerts``, ``refrig incidents``) share: output
formats, one-line errors, a store opened for one command, option checks and how one record and
its history are printed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import pandas as pd
import typer


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class _Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def opened_store(factory: Callable[[], S], expected: tuple[type[Exception], ...]) -> Iterator[S]:
    """The store ``factory`` makes, closed afterwards; ``expected`` errors (lookups, refused
    transitions) and any other failure become one line on stderr and exit 1."""
    store = None
    try:
        store = factory()
        yield store
    except expected as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - a CLI reports, it does not dump tracebacks
        if isinstance(exc, typer.Exit | typer.Abort):
            raise
        fail(f"{type(exc).__name__}: {exc}")
    finally:
        if store is not None:
            store.close()


def choice(value: str | None, allowed: tuple[str, ...], option: str) -> str | None:
    """``value`` upper-cased when it is one of ``allowed``; otherwise fail naming ``option``."""
    if value is None:
        return None
    upper = value.upper()
    if upper not in allowed:
        fail(f"{option} must be one of {', '.join(allowed)}; got {value!r}")
    return upper


def iso(value: Any) -> Any:
    """Timestamps as ISO 8601 text; anything else unchanged."""
    return value.isoformat() if isinstance(value, datetime | pd.Timestamp) else value


def echo_fields(record: Mapping[str, Any]) -> None:
    """Every field of one record, one per line, names aligned."""
    width = max(len(k) for k in record)
    for key, value in record.items():
        typer.echo(f"{key:<{width}}  {iso(value)}")


def echo_history(history: Iterable[Mapping[str, Any]]) -> None:
    """The transitions of one record: when, what, status change, who and the note."""
    typer.echo("\nhistory:")
    for t in history:
        change = f"{t['from_status'] or '-'} -> {t['to_status']}"
        note = f"  {t['note']}" if t["note"] else ""
        typer.echo(
            f"  {t['at']:%Y-%m-%d %H:%M:%S}  {t['event']:<12} {change:<28} {t['actor']}{note}"
        )
