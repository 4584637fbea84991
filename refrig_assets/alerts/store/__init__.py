"""The alert state database: alerts handed to operators and everything that happened to them.

Batch partitions and streaming rules produce ``device_alerts`` rows (see
``contracts/device_alerts.yaml``); :class:`AlertStore` keeps them in a SQL database (SQLite file by
default, PostgreSQL in production) together with their lifecycle:

* ``status``: OPEN → ACKNOWLEDGED → RESOLVED, or OPEN/ACKNOWLEDGED → FALSE_POSITIVE;
* SLA monitoring: an OPEN alert past its ``sla_deadline`` is flagged ``sla_breached`` and moves
  up one ``escalation_levels`` step each time a further SLA period passes;
* an audit trail (``alert_transitions``) of every change: creation, status transitions,
  escalations and batch/streaming reconciliation of ``alert_type``.

Re-running a partition upserts the same deterministic ``alert_id`` values again: batch-derived
fields are refreshed, operator and SLA state is never reset.

Timestamps are UTC. SQLite has no time zones, so they are stored as naive UTC there and always
come back tz-aware.

Modules: :mod:`.schema` (tables, column types, status values), :mod:`.transitions` (lifecycle
rules), :mod:`.engine` (the SQLAlchemy engine) and :mod:`.repository` (:class:`AlertStore`). The
names below are re-exported so ``from refrig_assets.alerts.store import ...`` keeps working.
"""

from refrig_assets.alerts.store.repository import AlertNotFound, AlertStore, Records
from refrig_assets.alerts.store.schema import (
    ACKNOWLEDGED,
    FALSE_POSITIVE,
    LIFECYCLE_COLUMNS,
    OPEN,
    RESOLVED,
    STATUSES,
    UTCDateTime,
    sql_type,
)
from refrig_assets.alerts.store.transitions import (
    ALLOWED_TRANSITIONS,
    INITIAL_ALERT_TYPE,
    SLA_ACTOR,
    SYSTEM_ACTOR,
    InvalidTransition,
)

__all__ = [
    "ACKNOWLEDGED",
    "ALLOWED_TRANSITIONS",
    "FALSE_POSITIVE",
    "INITIAL_ALERT_TYPE",
    "LIFECYCLE_COLUMNS",
    "OPEN",
    "RESOLVED",
    "SLA_ACTOR",
    "STATUSES",
    "SYSTEM_ACTOR",
    "AlertNotFound",
    "AlertStore",
    "InvalidTransition",
    "Records",
    "UTCDateTime",
    "sql_type",
]
