"""The landing zone: discover reading files and turn the readings of one hour into typed rows.

Files may be Parquet or CSV, any name, any folder depth, any mix of hours. Everything runs in
DuckDB: an hour's readings are one ``SELECT ... UNION ALL ...`` over the files that hold that hour,
streamed straight into the ``sensor_readings`` partition. Every delivered row keeps its
``source_file`` and 0-based ``source_row``; a row that cannot be used is not dropped but carries
``read_error`` (the rule), ``read_error_column`` and ``read_error_value`` so the quality step can
quarantine it. A file that cannot be used at all becomes a :class:`FileRejection` naming its rule.

The :class:`LandingIndex` remembers, per file fingerprint (size + mtime), the hours a file holds
and, per hour, which files its first and latest materialization read: that is how late files are
recognised (the ``LATE`` flag) and how the late-data sensor knows which hours to refresh.

Modules: :mod:`.discovery` (finding reading files), :mod:`.readers` (opening one file, checking
its columns, the typed SELECT), :mod:`.index` (the landing index), :mod:`.hour_keys` (hourly
partition keys) and :mod:`.hours` (one hour's files and readings, hours to refresh). The names
below are re-exported for callers that use the package as a whole.
"""

from refrig_assets.core.duck import connect, sql_str
from refrig_assets.ingestion.landing.discovery import discover_files
from refrig_assets.ingestion.landing.hour_keys import hour_key
from refrig_assets.ingestion.landing.hours import hour_readings, hours_to_refresh
from refrig_assets.ingestion.landing.index import LandingIndex, landing_index_path
from refrig_assets.ingestion.landing.readers import (
    CONTRACT_FILE,
    FileRejection,
    file_select_sql,
    landing_rules,
    open_file,
)

__all__ = [
    "CONTRACT_FILE",
    "FileRejection",
    "LandingIndex",
    "connect",
    "discover_files",
    "file_select_sql",
    "hour_key",
    "hour_readings",
    "hours_to_refresh",
    "landing_index_path",
    "landing_rules",
    "open_file",
    "sql_str",
]
