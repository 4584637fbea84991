"""Silences: hide the alerts of a device, a site, a cause or a lead contributor for a while.

Unlike maintenance windows (which suppress stored alerts and keep their windows out of
training), a silence only changes what the console lists: matching alerts are hidden while the
silence is active and come back by themselves when it expires or is cancelled. A silence has a
reason, an author, an expiry and optionally a recurrence (``daily`` or ``weekly``: the same
stretch of time every day or week, e.g. nightly cleaning, until its expiry). Kept in the alert
database; creating and cancelling are audited with the identity.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from refrig_assets.alerts.operator_tables import OperatorTables, as_utc, id_column
from refrig_assets.alerts.store import UTCDateTime

MATCHERS = ("device", "site", "cause", "contributor")
RECURRENCES = {"none": None, "daily": timedelta(days=1), "weekly": timedelta(days=7)}

metadata = sa.MetaData()
silences = sa.Table(
    "console_silences",
    metadata,
    id_column(),
    sa.Column("matcher", sa.String(20), nullable=False),
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("starts_at", UTCDateTime(), nullable=False),
    sa.Column("ends_at", UTCDateTime(), nullable=False),
    sa.Column("recurrence", sa.String(10), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("cancelled_by", sa.String(100), nullable=True),
    sa.Column("cancelled_at", UTCDateTime(), nullable=True),
)


class SilenceError(ValueError):
    """A silence request that cannot be honoured (invalid span, recurrence or value)."""


class SilenceNotFound(KeyError):
    """No silence with this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "silence not found"


def is_active(silence: dict[str, Any], at: datetime) -> bool:
    """Whether ``silence`` hides alerts at ``at`` (cancelled and expired ones never do)."""
    at = as_utc(at)
    if silence["cancelled_at"] is not None and as_utc(silence["cancelled_at"]) <= at:
        return False
    start, end = as_utc(silence["starts_at"]), as_utc(silence["ends_at"])
    if at < start or at >= as_utc(silence["expires_at"]):
        return False
    period = RECURRENCES[silence["recurrence"]]
    if period is None:
        return at < end
    return (at - start) % period < (end - start)


def lead_contributor(top_contributors: Any) -> str:
    """The first of an alert's comma-separated top contributors."""
    return str(top_contributors or "").split(",")[0].strip()


def silence_for(alert: dict[str, Any], active: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first of the ``active`` silences that matches ``alert``, or None.

    ``cause`` matches an incident's ``cause`` or, for an alert, its ``alert_type``.
    """
    values = {
        "device": alert.get("device_id"),
        "site": alert.get("site_id"),
        "cause": alert.get("cause") or alert.get("alert_type"),
        "contributor": lead_contributor(alert.get("top_contributors")),
    }
    for silence in active:
        if values.get(silence["matcher"]) == silence["value"]:
            return silence
    return None


def describe(silence: dict[str, Any]) -> str:
    """One sentence: what is silenced, when, why and by whom."""
    span = f"{as_utc(silence['starts_at']):%Y-%m-%d %H:%M} → {as_utc(silence['ends_at']):%H:%M}"
    if silence["recurrence"] != "none":
        span += f" {silence['recurrence']} until {as_utc(silence['expires_at']):%Y-%m-%d %H:%M}"
    return (
        f"silence #{silence['id']} of {silence['matcher']} {silence['value']} ({span} UTC) "
        f"by {silence['created_by']}: {silence['reason']}"
    )


class SilenceStore(OperatorTables):
    """Silences in the alert database."""

    metadata = metadata

    def create(
        self,
        matcher: str,
        value: str,
        starts_at: Any,
        duration: timedelta,
        reason: str,
        actor: str,
        *,
        recurrence: str = "none",
        until: Any = None,
        max_days: float,
    ) -> dict[str, Any]:
        """Add a silence of ``duration`` from ``starts_at``; a recurring one repeats until
        ``until``. Everything is checked before anything is written."""
        if matcher not in MATCHERS:
            raise SilenceError(f"matcher must be one of {', '.join(MATCHERS)}; got {matcher!r}")
        if recurrence not in RECURRENCES:
            raise SilenceError(f"recurrence must be one of {', '.join(RECURRENCES)}")
        if not value.strip() or not reason.strip():
            raise SilenceError("a silence needs a value to match and a reason")
        if duration <= timedelta(0):
            raise SilenceError("a silence must last more than 0 minutes")
        start = as_utc(starts_at)
        end = start + duration
        period = RECURRENCES[recurrence]
        if period is None:
            if until is not None:
                raise SilenceError("'until' is for recurring silences; set the duration instead")
            expires = end
        else:
            if until is None:
                raise SilenceError(f"a {recurrence} silence needs 'until' (when it stops)")
            if duration >= period:
                raise SilenceError(f"a {recurrence} silence must last less than {period}")
            expires = as_utc(until)
            if expires <= start:
                raise SilenceError("'until' must be after the start")
        if expires - start > timedelta(days=max_days):
            raise SilenceError(
                f"a silence may last at most {max_days:g} days (silence_max_days in config/access.yaml)"
            )
        if expires <= self.now():
            raise SilenceError("this silence would already have expired")
        row = {
            "matcher": matcher,
            "value": value.strip(),
            "starts_at": start,
            "ends_at": end,
            "recurrence": recurrence,
            "expires_at": expires,
            "reason": reason.strip(),
            "created_by": actor,
            "created_at": self.now(),
        }
        with self.begin() as conn:
            new_id = conn.execute(silences.insert().values(row)).inserted_primary_key[0]
        return self.get(int(new_id))

    def get(self, silence_id: int) -> dict[str, Any]:
        with self.begin(write=False) as conn:
            row = conn.execute(sa.select(silences).where(silences.c.id == silence_id)).first()
        if row is None:
            raise SilenceNotFound(f"no silence #{silence_id}")
        return self._decorated(dict(row._mapping))

    def _decorated(self, row: dict[str, Any]) -> dict[str, Any]:
        now = self.now()
        row["active"] = is_active(row, now)
        if row["cancelled_at"] is not None:
            row["state"] = "cancelled"
        elif as_utc(row["expires_at"]) <= now:
            row["state"] = "expired"
        else:
            row["state"] = "active" if row["active"] else "scheduled"
        row["description"] = describe(row)
        return row

    def cancel(self, silence_id: int, actor: str) -> dict[str, Any]:
        """End a silence now; its alerts show again."""
        silence = self.get(silence_id)
        if silence["state"] in ("cancelled", "expired"):
            raise SilenceError(f"silence #{silence_id} is already {silence['state']}")
        with self.begin() as conn:
            conn.execute(
                silences.update()
                .where(silences.c.id == silence_id)
                .values(cancelled_by=actor, cancelled_at=self.now())
            )
        return self.get(silence_id)

    def listing(self, *, include_ended: bool = False) -> list[dict[str, Any]]:
        """Silences, newest first; without ``include_ended`` only those not cancelled or expired."""
        query = sa.select(silences).order_by(silences.c.id.desc())
        if not include_ended:
            query = query.where(
                silences.c.cancelled_at.is_(None), silences.c.expires_at > self.now()
            )
        with self.begin(write=False) as conn:
            return [self._decorated(dict(r._mapping)) for r in conn.execute(query)]

    def active(self) -> list[dict[str, Any]]:
        """Silences hiding alerts right now."""
        return [s for s in self.listing() if s["active"]]
