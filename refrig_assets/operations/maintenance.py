"""Maintenance windows: periods when a device or a whole site is being worked on.

An operator declares a window in the console, over the API, with ``refrig maintenance add`` or
from a file. During a window the readings say more about the technician than about the machine,
so:

* alerts of windows that overlap it are suppressed (kept and marked with the reason, see
  ``refrig_assets/operations/suppression.py``);
* feature windows that overlap it are left out of training (:func:`maintenance_mask`), so a
  device's statistical baseline is never learned from maintenance.

Windows live in the alert database (table ``maintenance_windows``). They are never deleted:
cancelling one stamps ``cancelled_at``/``cancelled_by`` and it stops applying.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
import yaml

from refrig_assets.alerts.operator_tables import OperatorTables, as_utc, id_column
from refrig_assets.alerts.store import UTCDateTime
from refrig_assets.operations.settings import OperationsSettings, load_operations_settings

DEVICE = "device"
SITE = "site"
SCOPES = (DEVICE, SITE)
WINDOW_COLUMNS = [
    "id",
    "scope",
    "target",
    "starts_at",
    "ends_at",
    "reason",
    "created_by",
    "created_at",
    "cancelled_by",
    "cancelled_at",
]

metadata = sa.MetaData()
maintenance_windows = sa.Table(
    "maintenance_windows",
    metadata,
    id_column(),
    sa.Column("scope", sa.String(10), nullable=False),
    sa.Column("target", sa.String(), nullable=False),
    sa.Column("starts_at", UTCDateTime(), nullable=False),
    sa.Column("ends_at", UTCDateTime(), nullable=False),
    sa.Column("reason", sa.String(), nullable=False),
    sa.Column("created_by", sa.String(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("cancelled_by", sa.String(), nullable=True),
    sa.Column("cancelled_at", UTCDateTime(), nullable=True),
    sa.Index("ix_maintenance_target", "scope", "target", "starts_at"),
)


class MaintenanceError(ValueError):
    """A maintenance window was declared with invalid values."""


class WindowCancelled(MaintenanceError):
    """The window was already cancelled."""


class WindowNotFound(KeyError):
    """No maintenance window with this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "maintenance window not found"


@dataclass(frozen=True)
class WindowRequest:
    """A checked maintenance window, ready to store."""

    scope: str
    target: str
    starts_at: datetime
    ends_at: datetime
    reason: str


def check_window(
    scope: str,
    target: str,
    starts_at: Any,
    ends_at: Any,
    reason: str,
    settings: OperationsSettings,
) -> WindowRequest:
    """Validate one window; raises :class:`MaintenanceError` naming the rule that failed."""
    if scope not in SCOPES:
        raise MaintenanceError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}")
    if not isinstance(target, str) or not target.strip():
        raise MaintenanceError(f"a {scope} window needs the {scope} id it applies to")
    try:
        start, end = as_utc(starts_at), as_utc(ends_at)
    except (TypeError, ValueError) as exc:
        raise MaintenanceError(f"starts_at/ends_at must be ISO 8601 times: {exc}") from None
    if end <= start:
        raise MaintenanceError(
            f"ends_at {end.isoformat()} must be after starts_at {start.isoformat()}"
        )
    longest = timedelta(days=settings.maintenance.max_window_days)
    if end - start > longest:
        raise MaintenanceError(
            f"window of {end - start} is longer than maintenance.max_window_days "
            f"({settings.maintenance.max_window_days:g} days, {settings.path})"
        )
    reason = (reason or "").strip()
    if not reason:
        raise MaintenanceError("a reason is required (what is being done)")
    if len(reason) > settings.console.note_max_chars:
        raise MaintenanceError(
            f"reason is {len(reason)} characters; at most {settings.console.note_max_chars}"
        )
    return WindowRequest(scope, target.strip(), start, end, reason)


class MaintenanceCalendar(OperatorTables):
    """Maintenance windows in the alert database (see the module docstring)."""

    metadata = metadata

    def __init__(self, alerts, *, clock=None, settings: OperationsSettings | None = None):
        super().__init__(alerts, clock=clock)
        self.settings = settings or load_operations_settings()

    def add(
        self,
        scope: str,
        target: str,
        starts_at: Any,
        ends_at: Any,
        reason: str,
        actor: str,
    ) -> dict[str, Any]:
        """Declare a window for one device (``scope="device"``) or a site; returns it."""
        request = check_window(scope, target, starts_at, ends_at, reason, self.settings)
        actor = _actor(actor)
        with self.begin() as conn:
            return self._insert(conn, request, actor)

    def _insert(self, conn: sa.Connection, request: WindowRequest, actor: str) -> dict[str, Any]:
        row = {
            "scope": request.scope,
            "target": request.target,
            "starts_at": request.starts_at,
            "ends_at": request.ends_at,
            "reason": request.reason,
            "created_by": actor,
            "created_at": self.now(),
        }
        window_id = conn.execute(maintenance_windows.insert().values(row)).inserted_primary_key[0]
        return self._row(conn, window_id)

    def _row(self, conn: sa.Connection, window_id: int) -> dict[str, Any]:
        t = maintenance_windows
        row = conn.execute(sa.select(t).where(t.c.id == window_id)).mappings().first()
        if row is None:
            raise WindowNotFound(f"no maintenance window with id {window_id}")
        return dict(row)

    def get(self, window_id: int) -> dict[str, Any]:
        """One window (cancelled ones too); raises :class:`WindowNotFound`."""
        with self.begin(write=False) as conn:
            return self._row(conn, int(window_id))

    def cancel(self, window_id: int, actor: str) -> dict[str, Any]:
        """Stop a window from applying (it stays on record); returns it."""
        actor = _actor(actor)
        t = maintenance_windows
        with self.begin() as conn:
            row = self._row(conn, int(window_id))
            if row["cancelled_at"] is not None:
                raise WindowCancelled(
                    f"maintenance window {window_id} was already cancelled by "
                    f"{row['cancelled_by']} at {row['cancelled_at'].isoformat()}"
                )
            conn.execute(
                t.update()
                .where(t.c.id == int(window_id))
                .values(cancelled_by=actor, cancelled_at=self.now())
            )
            return self._row(conn, int(window_id))

    def windows(
        self,
        *,
        device_id: str | None = None,
        site_id: str | None = None,
        overlapping: tuple[Any, Any] | None = None,
        include_cancelled: bool = False,
    ) -> pd.DataFrame:
        """Windows, earliest first, as a frame with :data:`WINDOW_COLUMNS`.

        ``device_id``/``site_id`` keep the windows that apply to that device or site (a device
        window of the device, or a site window of the site); ``overlapping=(start, end)`` keeps
        those overlapping that period.
        """
        t = maintenance_windows
        query = sa.select(t)
        targets = []
        if device_id is not None:
            targets.append(sa.and_(t.c.scope == DEVICE, t.c.target == device_id))
        if site_id is not None:
            targets.append(sa.and_(t.c.scope == SITE, t.c.target == site_id))
        if targets:
            query = query.where(sa.or_(*targets))
        if overlapping is not None:
            start, end = (as_utc(v) for v in overlapping)
            query = query.where(t.c.starts_at < end, t.c.ends_at > start)
        if not include_cancelled:
            query = query.where(t.c.cancelled_at.is_(None))
        with self.begin(write=False) as conn:
            rows = [dict(r) for r in conn.execute(query.order_by(t.c.starts_at, t.c.id)).mappings()]
        frame = pd.DataFrame(rows, columns=WINDOW_COLUMNS)
        for column in ("starts_at", "ends_at", "created_at", "cancelled_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def import_file(self, path: str | Path, actor: str) -> dict[str, Any]:
        """Declare every window of a CSV or YAML file, all or nothing.

        Rows need ``scope, target, starts_at, ends_at, reason`` (or ``device_id`` / ``site_id``
        instead of scope and target). A bad row raises :class:`MaintenanceError` naming the file,
        the row and the rule, and nothing is stored. Windows already declared identically (same
        scope, target, start and end, not cancelled) are skipped, so a file can be re-imported.
        Returns ``{"added": [...], "skipped": n}``.
        """
        path = Path(path)
        actor = _actor(actor)
        requests = []
        errors = []
        for number, raw in _read_rows(path):
            try:
                requests.append(self._request_from_row(raw))
            except MaintenanceError as exc:
                errors.append(f"{path} row {number}: {exc}")
        if errors:
            raise MaintenanceError("; ".join(errors))
        existing = self.windows()
        known = {
            (s, t, as_utc(a), as_utc(b))
            for s, t, a, b in zip(
                existing["scope"],
                existing["target"],
                existing["starts_at"],
                existing["ends_at"],
                strict=True,
            )
        }
        added, skipped = [], 0
        with self.begin() as conn:
            for request in requests:
                key = (request.scope, request.target, request.starts_at, request.ends_at)
                if key in known:
                    skipped += 1
                    continue
                known.add(key)
                added.append(self._insert(conn, request, actor))
        return {"added": added, "skipped": skipped}

    def _request_from_row(self, raw: dict[str, Any]) -> WindowRequest:
        row = {k.strip(): v for k, v in raw.items() if isinstance(k, str)}
        scope, target = row.get("scope"), row.get("target")
        for candidate in SCOPES:
            if row.get(f"{candidate}_id") not in (None, ""):
                if scope not in (None, "") or target not in (None, ""):
                    raise MaintenanceError(f"give either {candidate}_id or scope and target")
                scope, target = candidate, row[f"{candidate}_id"]
        missing = [k for k in ("starts_at", "ends_at", "reason") if row.get(k) in (None, "")]
        if scope in (None, "") or target in (None, ""):
            missing.insert(0, "scope/target (or device_id/site_id)")
        if missing:
            raise MaintenanceError(f"missing {', '.join(missing)}")
        return check_window(
            str(scope).strip(),
            str(target),
            row["starts_at"],
            row["ends_at"],
            str(row["reason"]),
            self.settings,
        )


def _actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor.strip():
        raise MaintenanceError("the operator declaring or cancelling a window must be named")
    return actor.strip()


def _read_rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """(row number, mapping) per window in a CSV (header row first) or YAML (list) file."""
    if not path.exists():
        raise MaintenanceError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="") as fh:
            return list(enumerate(csv.DictReader(fh), start=1))
    if suffix in (".yaml", ".yml"):
        try:
            body = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise MaintenanceError(f"{path}: not valid YAML: {exc}") from None
        if isinstance(body, dict):
            body = body.get("windows")
        if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
            raise MaintenanceError(f"{path}: expected a list of windows (or windows: [...])")
        return list(enumerate(body, start=1))
    raise MaintenanceError(f"{path}: maintenance files must be .csv, .yaml or .yml")


def window_matches(
    frame: pd.DataFrame, windows: pd.DataFrame, registry: pd.DataFrame | None = None
) -> pd.Series:
    """Per row of ``frame``, the id of the first maintenance window it overlaps (else <NA>).

    ``frame`` has ``device_id``, ``window_start``, ``window_end`` and, for site windows,
    ``site_id`` (or pass the device ``registry`` to look sites up). A row overlaps a window when
    ``window_start < ends_at`` and ``window_end > starts_at`` and the window names its device or
    its site. Cancelled windows never match.
    """
    out = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    if frame.empty or windows.empty:
        return out
    if "cancelled_at" in windows:
        windows = windows[windows["cancelled_at"].isna()]
    rows = pd.DataFrame(
        {
            "row": range(len(frame)),
            "device_id": frame["device_id"].to_numpy(),
            "window_start": pd.to_datetime(frame["window_start"], utc=True).to_numpy(),
            "window_end": pd.to_datetime(frame["window_end"], utc=True).to_numpy(),
        }
    )
    parts = []
    for scope, key in ((DEVICE, "device_id"), (SITE, "site_id")):
        scoped = windows[windows["scope"] == scope]
        if scoped.empty:
            continue
        if key == "site_id":
            rows["site_id"] = _sites(frame, registry)
        scoped = scoped.assign(
            starts_at=pd.to_datetime(scoped["starts_at"], utc=True).to_numpy(),
            ends_at=pd.to_datetime(scoped["ends_at"], utc=True).to_numpy(),
        )
        joined = rows.merge(
            scoped[["id", "target", "starts_at", "ends_at"]], left_on=key, right_on="target"
        )
        joined = joined[
            (joined["window_start"] < joined["ends_at"])
            & (joined["window_end"] > joined["starts_at"])
        ]
        parts.append(joined[["row", "id", "starts_at"]])
    if not parts:
        return out
    hits = pd.concat(parts).sort_values(["row", "starts_at", "id"]).drop_duplicates("row")
    out.iloc[hits["row"].to_numpy()] = hits["id"].to_numpy()
    return out


def maintenance_mask(
    features: pd.DataFrame, windows: pd.DataFrame, registry: pd.DataFrame | None = None
) -> pd.Series:
    """True for feature windows that overlap a maintenance window of their device or site.

    Pure: ``windows`` comes from :meth:`MaintenanceCalendar.windows` (or any frame with ``id,
    scope, target, starts_at, ends_at``). Training keeps ``features[~maintenance_mask(...)]`` so
    a device's baseline is never learned from the time a technician had it open.
    """
    return window_matches(features, windows, registry).notna()


def exclude_maintenance(
    features: pd.DataFrame, alerts_db_url: str, registry: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``features`` without the windows under maintenance declared in the alert database."""
    calendar = MaintenanceCalendar(alerts_db_url)
    try:
        if features.empty:
            return features
        period = (features["window_start"].min(), features["window_end"].max())
        windows = calendar.windows(overlapping=period)
    finally:
        calendar.alerts.close()
    if windows.empty:
        return features
    return features[~maintenance_mask(features, windows, registry)]


def _sites(frame: pd.DataFrame, registry: pd.DataFrame | None) -> Any:
    if "site_id" in frame:
        return frame["site_id"].to_numpy()
    if registry is None:
        raise MaintenanceError(
            "site-wide maintenance windows need each row's site: the frame has no site_id "
            "column, so pass the device registry"
        )
    return frame["device_id"].map(registry.set_index("device_id")["site_id"]).to_numpy()
