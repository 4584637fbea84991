"""Importing a fleet's own files: a mapping file turns them into contract-conformant landing files.

Real exports never use the contract's names or units. A mapping (YAML, see
``examples/mappings/``) says how one source file is laid out and what each of its columns is:

* ``layout: wide`` (one row per device and time, one column per sensor) or ``layout: long``
  (one row per device, time and sensor, with ``long: {sensor_column, value_column}``);
* ``device_id``: ``{column: <name>}``, ``{value: <id>}`` (a single-device file) or
  ``{file_name: true}`` (the file's name without suffixes; ``folders: N`` puts the names of
  its N enclosing folders before it, ``valve1/0.csv`` -> ``valve1-0``, for exports that
  reuse file names in several folders), with an optional ``prefix``; ``normalize: true``
  rewrites an id the contract refuses (``Kühlzelle 3``, ``Freezer #2``) as letters, digits and
  dashes (``Kuhlzelle-3``, ``Freezer-2``), unless two ids would become one;
* ``timestamp``: ``{column, format, timezone}``: ``column`` is one column or a list of them
  (a date and a time column), joined by a space; ``format`` is ``iso`` (default), one of the
  epoch units of ``config/units.yaml`` (``epoch_s``, ``epoch_ms``, ``epoch_us``, ``epoch_ns``),
  ``excel`` (a spreadsheet's serial date: days since 1899-12-30, local time) or a ``strftime``
  pattern; text without an offset is local time in ``timezone`` (default ``UTC``) and
  converted to UTC;
* ``labels``: ``{column, true_values, false_values}``: a column marking each row anomalous
  (1/0, or the words given) is written as point labels (``device_id, ts, anomaly``) of the
  imported readings, for ``refrig evaluate --labels``;
* ``csv``: ``{delimiter, decimal, skip_lines}``: ``decimal: ","`` reads ``-18,5`` as -18.5
  (exports in a European locale, mostly with ``delimiter: ";"``); ``skip_lines: N`` skips the
  N lines before the header (a data logger's preamble: model, serial number);
* ``sensors``: source column (wide) or sensor name (long) -> ``{to: <contract column>, unit,
  frequency_hz, true_values, false_values}``. Units are converted with the table of
  ``config/units.yaml`` into the contract's unit of the column.

:func:`convert_frame` does the work on a frame of raw values and returns the readings and the
quarantine (``quarantined_readings`` shape: ``source_file``, ``row``, ``column``, ``rule``,
``value``, ``message``, ``device_id``, ``ts``); :func:`import_file` reads a CSV (plain, gzip,
zstd, bzip2 or xz) or Parquet source, writes one landing Parquet file per hour under
``<landing>/imports/<name>/`` (re-importing the same source replaces the same files) and checks
each one with the landing reader before it is moved into place.
"""

from __future__ import annotations

import bz2
import lzma
import math
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from refrig_assets.core.config import Section, load_config
from refrig_assets.core.contracts import Contract, load_contract
from refrig_assets.core.duck import connect, sql_str
from refrig_assets.core.storage import durable_replace
from refrig_assets.engines.memory import hold_to_budget, load_memory_budget
from refrig_assets.ingestion.landing.readers import UTF16_MARKS, open_file, text_limits
from refrig_assets.ingestion.settings import load_ingestion_settings

LAYOUTS = ("wide", "long")
QUARANTINE_COLUMNS = ["source_file", "row", "column", "rule", "value", "message", "device_id", "ts"]
DEFAULT_TRUE = ("1", "true", "yes", "on", "open", "opened")
DEFAULT_FALSE = ("0", "false", "no", "off", "closed", "close", "shut")
DECIMAL_MARKS = (".", ",")
# timestamp.format of a spreadsheet's serial date: days (with their fraction) since this day.
EXCEL_FORMAT = "excel"
EXCEL_ORIGIN = "1899-12-30"
# Longest raw value quoted in a quarantine row.
VALUE_SHOWN = 200
# The keys of a mapping file, per section ("": the top level, "sensor": each entry of sensors).
MAPPING_KEYS: dict[str, tuple[str, ...]] = {
    "": ("layout", "device_id", "timestamp", "long", "sensors", "csv", "labels"),
    "device_id": ("column", "value", "file_name", "folders", "prefix", "normalize"),
    "timestamp": ("column", "format", "timezone"),
    "long": ("sensor_column", "value_column"),
    "csv": ("delimiter", "decimal", "skip_lines"),
    "labels": ("column", "true_values", "false_values"),
    "sensor": ("to", "unit", "frequency_hz", "true_values", "false_values"),
}


class MappingError(ValueError):
    """A mapping file is malformed or names a column, unit or layout that does not exist."""


@dataclass(frozen=True)
class Conversion:
    """``value * scale + offset`` (divided by 2*pi*f when ``per_angular_frequency``)."""

    scale: float
    offset: float = 0.0
    per_angular_frequency: bool = False

    def apply(self, values: pd.Series, frequency_hz: float | None = None) -> pd.Series:
        """``values`` in the contract's unit."""
        out = values * self.scale + self.offset
        if self.per_angular_frequency:
            if not frequency_hz:
                raise MappingError("this unit needs the column's frequency_hz")
            out = out / (2.0 * math.pi * frequency_hz)
        return out


@dataclass(frozen=True)
class UnitTable:
    """The conversions of ``config/units.yaml``: contract unit -> source unit -> conversion."""

    conversions: dict[str, dict[str, Conversion]]
    aliases: dict[str, str]
    epoch_units: dict[str, str]
    path: Path

    def canonical(self, unit: str) -> str:
        """The table's name for ``unit`` (aliases resolved)."""
        return self.aliases.get(unit, unit)

    def conversion(self, source_unit: str, contract_unit: str) -> Conversion:
        """How a value in ``source_unit`` becomes one in ``contract_unit`` (error if unknown)."""
        known = self.conversions.get(contract_unit)
        if known is None:
            raise MappingError(f"{self.path}: no conversions into {contract_unit!r}")
        unit = self.canonical(source_unit)
        if unit not in known:
            raise MappingError(
                f"unit {source_unit!r} cannot be converted into {contract_unit!r} "
                f"(known: {', '.join(sorted(known))}; add it to {self.path})"
            )
        return known[unit]


def load_units() -> UnitTable:
    """The unit table of ``config/units.yaml``."""
    section = load_config("units")
    table: dict[str, dict[str, Conversion]] = {}
    conv = section.section("conversions")
    for target in conv.raw:
        by_source = conv.section(target)
        table[target] = {}
        for source in by_source.raw:
            one = by_source.section(source)
            table[target][source] = Conversion(
                scale=one.number("scale"),
                offset=one.number("offset"),
                per_angular_frequency=one.flag("per_angular_frequency")
                if one.has("per_angular_frequency")
                else False,
            )
    aliases = {str(k): str(v) for k, v in section.section("aliases").raw.items()}
    epochs = {str(k): str(v) for k, v in section.section("epoch_units").raw.items()}
    return UnitTable(table, aliases, epochs, section.path)


@dataclass(frozen=True)
class SensorMapping:
    """One source column (wide) or sensor name (long) and the contract column it becomes."""

    source: str
    target: str
    conversion: Conversion | None  # None for non-numeric (bool) columns
    frequency_hz: float | None = None
    true_values: tuple[str, ...] = DEFAULT_TRUE
    false_values: tuple[str, ...] = DEFAULT_FALSE
    unit: str | None = None  # the source's unit as the mapping names it (None: not numeric)


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping file (see the module docstring)."""

    path: Path
    layout: str
    sensors: tuple[SensorMapping, ...]
    ts_columns: tuple[str, ...]
    ts_format: str
    timezone: str
    device_column: str | None = None
    device_value: str | None = None
    device_from_file_name: bool = False
    device_prefix: str = ""
    device_folders: int = 0
    device_normalize: bool = False
    sensor_column: str | None = None
    value_column: str | None = None
    csv_delimiter: str | None = None
    csv_decimal: str = "."
    csv_skip_lines: int = 0
    label: SensorMapping | None = None  # the labels column, read as a bool
    epoch_unit: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        """Contract columns the mapping fills, in mapping order."""
        return [s.target for s in self.sensors]


def load_mapping(path: Path | str, contract: Contract | None = None) -> Mapping:
    """Parse and check a mapping file against the sensor contract and the unit table."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise MappingError(f"{path}: mapping file not found") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise MappingError(f"{path}: expected a mapping at the top level")
    _refuse_unknown_keys(path, raw)
    contract = contract or load_contract("sensor_readings")
    units = load_units()
    top = Section(path, raw)
    try:
        return _parse(top, path, contract, units)
    except (KeyError, TypeError) as exc:
        raise MappingError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise MappingError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None


def _refuse_unknown_keys(path: Path, raw: dict[str, Any]) -> None:
    """A key the mapping format does not have (``time_zone:`` for ``timezone:``) would be
    ignored without a word, and its default used: Berlin times read as UTC, an hour off."""
    sections: list[tuple[str, Any, tuple[str, ...]]] = [("", raw, MAPPING_KEYS[""])]
    sections += [
        (f"{k}.", raw.get(k), MAPPING_KEYS[k]) for k in MAPPING_KEYS if k and k != "sensor"
    ]
    sensors = raw.get("sensors")
    if isinstance(sensors, dict):
        sections += [(f"sensors.{k}.", v, MAPPING_KEYS["sensor"]) for k, v in sensors.items()]
    unknown = [
        f"{where}{key} (known: {', '.join(known)})"
        for where, section, known in sections
        if isinstance(section, dict)
        for key in section
        if key not in known
    ]
    if unknown:
        raise MappingError(f"{path}: unknown key(s): {'; '.join(unknown)}")


def _parse(top: Section, path: Path, contract: Contract, units: UnitTable) -> Mapping:
    layout = top.choice("layout", LAYOUTS) if top.has("layout") else "wide"
    device = top.section("device_id")
    sources = [k for k in ("column", "value", "file_name") if device.has(k)]
    if len(sources) != 1:
        raise MappingError(f"{path}: device_id needs exactly one of column, value or file_name")
    stamp = top.section("timestamp")
    ts_format = stamp.text("format") if stamp.has("format") else "iso"
    epoch_unit = units.epoch_units.get(ts_format)
    columns = stamp.value("column")
    ts_columns = tuple(str(c) for c in columns) if isinstance(columns, list) else (str(columns),)
    if not ts_columns or any(not c.strip() for c in ts_columns):
        raise MappingError(f"{path}: timestamp.column needs a column name or a list of them")
    if ts_format.startswith("epoch") and epoch_unit is None:
        raise MappingError(
            f"{path}: timestamp.format {ts_format!r} is not one of "
            f"{', '.join(units.epoch_units)} (or iso, or a strftime pattern)"
        )
    timezone = stamp.text("timezone") if stamp.has("timezone") else "UTC"
    try:
        pd.Timestamp("2026-01-01").tz_localize(timezone)
    except Exception:
        raise MappingError(f"{path}: timestamp.timezone {timezone!r} is not a time zone") from None
    long_cols: tuple[str | None, str | None] = (None, None)
    if layout == "long":
        long = top.section("long")
        long_cols = (long.text("sensor_column"), long.text("value_column"))
    sensor_section = top.section("sensors")
    if not sensor_section.raw:
        raise MappingError(f"{path}: sensors must map at least one column")
    sensors = []
    for source in sensor_section.raw:
        spec = sensor_section.section(str(source))
        target = spec.text("to")
        if target not in contract.column_names or target in ("device_id", "ts"):
            measurable = [c.name for c in contract.columns if c.name not in ("device_id", "ts")]
            raise MappingError(
                f"{path}: sensors.{source}.to: {target!r} is not a measurement of "
                f"sensor_readings ({', '.join(measurable)})"
            )
        col = contract.column(target)
        freq = spec.number("frequency_hz", minimum=0.0) if spec.has("frequency_hz") else None
        conversion = None
        if col.type == "float":
            unit = spec.text("unit") if spec.has("unit") else str(col.unit)
            conversion = units.conversion(unit, str(col.unit))
            if conversion.per_angular_frequency and not freq:
                raise MappingError(
                    f"{path}: sensors.{source}: unit {unit!r} needs frequency_hz to become "
                    f"{col.unit}"
                )
        words = _bool_words(spec)
        sensors.append(
            SensorMapping(
                str(source),
                target,
                conversion,
                freq,
                words.get("true_values", DEFAULT_TRUE),
                words.get("false_values", DEFAULT_FALSE),
                unit if conversion is not None else None,
            )
        )
    targets = [s.target for s in sensors]
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise MappingError(f"{path}: several sources map to {', '.join(twice)}")
    csv = top.section("csv") if top.has("csv") else None
    label = None
    if top.has("labels"):
        spec = top.section("labels")
        words = _bool_words(spec)
        label = SensorMapping(
            spec.text("column"),
            "anomaly",
            None,
            true_values=words.get("true_values", DEFAULT_TRUE),
            false_values=words.get("false_values", DEFAULT_FALSE),
        )
    return Mapping(
        path=path,
        layout=layout,
        sensors=tuple(sensors),
        ts_columns=ts_columns,
        ts_format=ts_format,
        timezone=timezone,
        device_column=device.text("column") if device.has("column") else None,
        device_value=str(device.value("value")) if device.has("value") else None,
        device_from_file_name=device.flag("file_name") if device.has("file_name") else False,
        device_prefix=str(device.value("prefix")) if device.has("prefix") else "",
        device_folders=(
            int(device.number("folders", minimum=0, integer=True)) if device.has("folders") else 0
        ),
        device_normalize=device.flag("normalize") if device.has("normalize") else False,
        sensor_column=long_cols[0],
        value_column=long_cols[1],
        csv_delimiter=csv.text("delimiter") if csv is not None and csv.has("delimiter") else None,
        csv_decimal=_decimal(path, csv),
        csv_skip_lines=(
            int(csv.number("skip_lines", minimum=0, integer=True))
            if csv is not None and csv.has("skip_lines")
            else 0
        ),
        label=label,
        epoch_unit=epoch_unit,
    )


def _bool_words(spec: Section) -> dict[str, tuple[str, ...]]:
    """The ``true_values`` / ``false_values`` a section gives, lower-cased."""
    return {
        k: tuple(str(v).strip().lower() for v in spec.items(k))
        for k in ("true_values", "false_values")
        if spec.has(k)
    }


def _decimal(path: Path, csv: Section | None) -> str:
    if csv is None or not csv.has("decimal"):
        return "."
    mark = csv.text("decimal")
    if mark not in DECIMAL_MARKS:
        raise MappingError(f"{path}: csv.decimal {mark!r} is not one of {', '.join(DECIMAL_MARKS)}")
    if mark == csv.optional_text("delimiter"):
        raise MappingError(f"{path}: csv.decimal and csv.delimiter are both {mark!r}")
    return mark


# --- converting a frame ------------------------------------------------------------------------


def _quarantine(
    source_file: str,
    rows: np.ndarray,
    column: str | None,
    rule: str,
    values: pd.Series | list | None,
    message: str | list[str],
    devices: pd.Series | list | None = None,
    ts: pd.Series | list | None = None,
) -> pd.DataFrame:
    n = len(rows)
    texts = (
        [None if _missing(v) else str(v)[:VALUE_SHOWN] for v in values]
        if values is not None
        else [None] * n
    )
    return pd.DataFrame(
        {
            "source_file": [source_file] * n,
            "row": np.asarray(rows, dtype="int64"),
            "column": [column] * n,
            "rule": [rule] * n,
            "value": texts,
            "message": message if isinstance(message, list) else [message] * n,
            "device_id": list(devices) if devices is not None else [None] * n,
            "ts": pd.to_datetime(pd.Series(list(ts) if ts is not None else [pd.NaT] * n), utc=True),
        }
    )


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NaT or (isinstance(value, str) and not value.strip())


def _blank(series: pd.Series) -> pd.Series:
    """Null, NaN or blank text."""
    text = series.astype("string").str.strip()
    return series.isna() | (text == "").fillna(True)


# A time of day ending in a UTC offset: Z, or +hh, +hhmm, +hh:mm (ISO 8601 allows the hour
# alone). A time pandas reads with an offset must be taken out of the local times: among them
# it would give its offset to all of them, or leave them unparsed.
OFFSET_AT_END = r"(?i)(?:\d\d:\d\d(?::\d\d)?|T\d{4,6})(?:[.,]\d+)?\s*(?:Z|[+-]\d\d(?::?\d\d)?)$"


def parse_timestamps(
    raw: pd.Series, mapping: Mapping, device: pd.Series | None = None
) -> pd.Series:
    """Reading times in UTC (NaT where a value does not parse or a local time does not exist in
    the mapping's zone, or is ambiguous and cannot be told by ``device``'s rows: see
    :func:`_localize`)."""
    if mapping.epoch_unit is not None:
        numbers = pd.to_numeric(_decimal_points(raw, mapping.csv_decimal), errors="coerce")
        return pd.to_datetime(numbers, unit=mapping.epoch_unit, utc=True, errors="coerce")
    if mapping.ts_format == EXCEL_FORMAT:
        days = pd.to_numeric(_decimal_points(raw, mapping.csv_decimal), errors="coerce")
        # Rounded to the millisecond: a serial's binary fraction is never a whole second.
        local = pd.to_datetime(days, unit="D", origin=EXCEL_ORIGIN, errors="coerce").dt.round("ms")
        return _localize(local, mapping.timezone, device)
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw
    else:
        fmt = "ISO8601" if mapping.ts_format == "iso" else mapping.ts_format
        text = raw.astype("string").str.strip()
        aware = text.str.contains(OFFSET_AT_END, regex=True, na=False)
        parsed = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
        if aware.any():
            parsed[aware] = pd.to_datetime(text[aware], format=fmt, utc=True, errors="coerce")
        naive = pd.to_datetime(text[~aware], format=fmt, errors="coerce")
        if isinstance(naive.dtype, pd.DatetimeTZDtype):  # a pattern with %z
            parsed[~aware] = naive.dt.tz_convert("UTC")
            return parsed
        parsed[~aware] = _localize(
            naive, mapping.timezone, None if device is None else device[~aware]
        )
        return parsed
    return _localize(parsed, mapping.timezone, device)


def _time_text(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    """The reading time's raw values: the one time column, or the text of several (a date and
    a time column) joined by a space; missing where any of them is blank."""
    if len(columns) == 1:
        return frame[columns[0]]
    parts = [frame[c].astype("string").str.strip() for c in columns]
    blank = pd.concat([_blank(frame[c]) for c in columns], axis=1).any(axis=1)
    joined = parts[0].str.cat(parts[1:], sep=" ")
    return joined.where(~blank, pd.NA)


def _decimal_points(raw: pd.Series, decimal: str) -> pd.Series:
    """Text values with a decimal comma (``-18,5``) written with a point; other values as
    they are."""
    if decimal == "." or not (raw.dtype == object or pd.api.types.is_string_dtype(raw)):
        return raw
    return raw.astype("string").str.replace(decimal, ".", regex=False)


# A number written with a decimal comma (-18,5), as a European locale exports it.
DECIMAL_COMMA = r"^\s*[+-]?\d*,\d+\s*$"


def _decimal_hint(failed: pd.Series, mapping: Mapping) -> str:
    """A pointer to ``csv.decimal`` when values that failed to parse have a decimal comma."""
    if mapping.csv_decimal != "." or not len(failed):
        return ""
    text = failed.astype("string")
    if not text.str.contains(DECIMAL_COMMA, regex=True, na=False).any():
        return ""
    return " (a decimal comma: set csv: {decimal: ','} in the mapping)"


def _localize(naive: pd.Series, zone: str, device: pd.Series | None = None) -> pd.Series:
    """Local wall-clock times in ``zone`` as UTC. A time that does not exist (the spring gap) is
    NaT. A time of the hour the autumn change repeats is told by its device's rows in file
    order (``device``: the series each row belongs to; a long source's device and sensor): before that device's wall clock goes back (or repeats a time: hourly readings), the
    first (summer) pass, after it the second; where the device's times in that hour do not go
    back exactly once (one pass only, or the rows out of order) it cannot be told and is NaT."""
    n = len(naive)
    first = naive.dt.tz_localize(zone, ambiguous=np.ones(n, dtype=bool), nonexistent="NaT")
    second = naive.dt.tz_localize(zone, ambiguous=np.zeros(n, dtype=bool), nonexistent="NaT")
    ambiguous = (first != second) & first.notna()
    out = first.where(~ambiguous)
    if device is not None and ambiguous.any():
        wall = naive[ambiguous]
        who = device[ambiguous].fillna("").to_numpy()
        back = wall.groupby(who, sort=False).diff().le(pd.Timedelta(0))
        told = back.groupby(who, sort=False).transform("sum").eq(1)
        after = back.groupby(who, sort=False).cumsum().gt(0)
        idx = wall.index
        out.loc[idx[told & ~after]] = first.loc[idx[told & ~after]]
        out.loc[idx[told & after]] = second.loc[idx[told & after]]
    return out.dt.tz_convert("UTC")


NAN_TEXTS = ("nan", "+nan", "-nan")


def _numeric(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(float values, parse failed) for one column of raw values."""
    if pd.api.types.is_bool_dtype(raw):
        return raw.astype("float64"), pd.Series(False, index=raw.index)
    if pd.api.types.is_numeric_dtype(raw):
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        return values, pd.Series(False, index=raw.index)
    text = raw.astype("string").str.strip()
    values = pd.to_numeric(text, errors="coerce").astype("float64")
    # "NaN" is a missing value, as the landing reader casts it (pandas leaves it unparsed).
    not_a_number = text.str.lower().isin(NAN_TEXTS).fillna(False)
    return values, values.isna() & ~_blank(raw) & ~not_a_number


def _boolean(raw: pd.Series, spec: SensorMapping) -> tuple[pd.Series, pd.Series]:
    """(nullable booleans, parse failed) using the mapping's true/false words (1/0 always)."""
    if pd.api.types.is_bool_dtype(raw):
        return raw.astype("boolean"), pd.Series(False, index=raw.index)
    text = raw.astype("string").str.strip().str.lower()
    numbers = pd.to_numeric(text, errors="coerce")
    out = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    out[text.isin(spec.true_values).fillna(False) | (numbers == 1).fillna(False)] = True
    out[text.isin(spec.false_values).fillna(False) | (numbers == 0).fillna(False)] = False
    return out, out.isna() & ~_blank(raw)


def convert_values(raw: pd.Series, spec: SensorMapping) -> tuple[pd.Series, pd.Series]:
    """(values in the contract's unit and type, parse failed) for one mapped column."""
    if spec.conversion is None:
        return _boolean(raw, spec)
    # An infinite value is kept, as in a landing file: outside every range, it is named by
    # the import (out_of_range) and flagged OUT_OF_RANGE by the pipeline.
    values, failed = _numeric(raw)
    return spec.conversion.apply(values, spec.frequency_hz), failed


@dataclass
class Converted:
    """Readings in the contract's shape (device_id, ts and the mapped measurements) and the
    quarantine."""

    readings: pd.DataFrame
    quarantine: pd.DataFrame
    source_rows: int
    # Point labels (device_id, ts, anomaly) when the mapping names a labels column.
    labels: pd.DataFrame | None = None
    # Long layout: rows per sensor name the mapping does not name (each one extra_column note).
    unknown_sensors: dict[str, int] = field(default_factory=dict)


def _device_ids(frame: pd.DataFrame, mapping: Mapping, file_name: str) -> pd.Series:
    if mapping.device_column is not None:
        raw = frame[mapping.device_column].astype("string").str.strip()
        raw = raw.where(~_blank(frame[mapping.device_column]))
    elif mapping.device_value is not None:
        raw = pd.Series(mapping.device_value, index=frame.index, dtype="string")
    else:
        ident = file_device_id(file_name, mapping.device_folders)
        raw = pd.Series(ident, index=frame.index, dtype="string")
    return (mapping.device_prefix + raw).astype("string")


def normalized_ids(device: pd.Series, length: int | None, pattern: str | None) -> pd.Series:
    """Ids that break the contract's ``max_length`` or ``pattern`` rewritten as letters, digits
    and dashes (accents dropped: ``Kühlzelle 3`` -> ``Kuhlzelle-3``); an id the contract takes is
    kept as it is, and one whose rewrite another id of the frame already has (or gets) is left
    as it was, to be quarantined."""
    ids = pd.Series(device.dropna().unique(), dtype="string")

    def fits(text: pd.Series) -> pd.Series:
        ok = text.str.len().gt(0)
        if length is not None:
            ok &= text.str.len() <= length
        if pattern is not None:
            ok &= text.str.fullmatch(pattern).fillna(False)
        return ok.fillna(False)

    bad = ids[~fits(ids)]
    if bad.empty:
        return device
    ascii_ = bad.map(
        lambda v: unicodedata.normalize("NFKD", v).encode("ascii", "ignore").decode("ascii")
    )
    rewritten = ascii_.str.replace(r"[^A-Za-z0-9]+", "-", regex=True).str.strip("-")
    taken = pd.concat([ids[fits(ids)], rewritten])
    unique = ~taken.duplicated(keep=False).iloc[len(ids) - len(bad) :].to_numpy()
    usable = fits(rewritten).to_numpy() & unique
    table = dict(zip(bad[usable], rewritten[usable], strict=True))
    return device.map(lambda v: table.get(v, v), na_action="ignore").astype("string")


def file_device_id(name: str, folders: int = 0) -> str:
    """A file's stem preceded by the names of its ``folders`` enclosing folders, joined by ``-``
    (``data/valve1/0.csv``, 1 -> ``valve1-0``)."""
    parents = [p.name for p in Path(name).parents if p.name][:folders]
    return "-".join([*reversed(parents), file_stem(name)])


def file_stem(name: str) -> str:
    """A file's name without directory and reading suffixes (``pump_3.csv.gz`` -> ``pump_3``)."""
    base = Path(name).name
    return re.sub(r"(\.(csv|parquet|tsv|txt|gz|zst|zstd|bz2|xz))+$", "", base, flags=re.I)


def convert_frame(
    frame: pd.DataFrame,
    mapping: Mapping,
    source_file: str,
    contract: Contract | None = None,
    rows: np.ndarray | None = None,
) -> Converted:
    """Rename, convert and check one source frame (its rows in file order; ``rows``: each one's
    0-based data row in the file, default 0, 1, 2, ...: a reader that left out malformed lines
    passes the numbers of the rows it kept). Rows that cannot be readings go to the quarantine
    with the rule: ``missing_value``
    (no device or time), ``invalid_device_id``, ``unparsable_value`` (a value or a time that
    does not parse, a local time that does not exist in the zone), ``duplicate_reading`` (long
    layout: the same device, time and sensor twice; the first is kept), ``extra_column``
    (one note per source column or sensor name the mapping does not name, row -1)."""
    contract = contract or load_contract("sensor_readings")
    needed = [*mapping.ts_columns] + ([mapping.device_column] if mapping.device_column else [])
    needed += [mapping.label.source] if mapping.label is not None else []
    if mapping.layout == "long":
        needed += [str(mapping.sensor_column), str(mapping.value_column)]
    else:
        needed += [s.source for s in mapping.sensors if s.source in frame.columns]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if mapping.layout == "wide" and not any(s.source in frame.columns for s in mapping.sensors):
        missing += [s.source for s in mapping.sensors]
    if missing:
        raise MappingError(
            f"{source_file}: column(s) {', '.join(map(repr, missing))} named in "
            f"{mapping.path} are not in the file (it has {', '.join(map(repr, frame.columns))})"
        )
    frame = frame.reset_index(drop=True)
    rows = (
        np.arange(len(frame), dtype="int64")
        if rows is None
        else np.asarray(rows, dtype="int64").reshape(len(frame))
    )
    notes: list[pd.DataFrame] = []
    unknown_sensors: dict[str, int] = {}
    device = _device_ids(frame, mapping, source_file)
    length, pattern = text_limits(contract.column("device_id"))
    if mapping.device_normalize:
        device = normalized_ids(device, length, pattern)
    raw_ts = _time_text(frame, mapping.ts_columns)
    # The autumn's repeated hour is told per series in file order: a device's, or in the long
    # layout a device's sensor's (its rows at one time, one per sensor, are no repeat).
    series = device
    if mapping.layout == "long":
        sensor_names = frame[str(mapping.sensor_column)].astype("string").str.strip()
        series = device + "\x1f" + sensor_names
    ts = parse_timestamps(raw_ts, mapping, series)
    bad = pd.Series(False, index=frame.index)

    def reject(mask: pd.Series, column: str, rule: str, values, message) -> None:
        nonlocal bad
        mask = mask & ~bad
        if mask.any():
            idx = mask.to_numpy()
            msgs = message(values[mask]) if callable(message) else message
            notes.append(
                _quarantine(
                    source_file,
                    rows[idx],
                    column,
                    rule,
                    values[mask],
                    msgs,
                    device[mask].astype(object).where(device[mask].notna(), None),
                    ts[mask],
                )
            )
            bad = bad | mask

    no_device = device.isna()
    reject(no_device, "device_id", "missing_value", device, "no device_id")
    invalid = pd.Series(False, index=frame.index)
    if length is not None:
        invalid |= (device.str.len() > length).fillna(False)
    if pattern is not None:
        invalid |= (~device.str.fullmatch(pattern)).fillna(False)
    reject(
        invalid,
        "device_id",
        "invalid_device_id",
        device,
        "device_id breaks max_length or pattern of contracts/sensor_readings.yaml",
    )
    no_ts = _blank(raw_ts)
    reject(no_ts, "ts", "missing_value", raw_ts, "no reading time")
    reject(
        ts.isna(),
        "ts",
        "unparsable_value",
        raw_ts,
        f"reading time does not parse as {mapping.ts_format} (or does not exist / is ambiguous "
        f"in {mapping.timezone})",
    )

    known = {s.source: s for s in mapping.sensors}
    if mapping.layout == "wide":
        out = pd.DataFrame({"device_id": device, "ts": ts})
        for spec in mapping.sensors:
            if spec.source not in frame.columns:
                continue  # a mapping may name columns only some files have
            values, failed = convert_values(
                _decimal_points(frame[spec.source], mapping.csv_decimal), spec
            )
            reject(
                failed,
                spec.target,
                "unparsable_value",
                frame[spec.source],
                f"{spec.source!r} does not parse as a {contract.column(spec.target).type}"
                + _decimal_hint(frame[spec.source][failed], mapping),
            )
            out[spec.target] = values
        used = set(needed) | set(known)
        extra = [c for c in frame.columns if c not in used]
        notes += [
            _quarantine(
                source_file,
                np.array([-1]),
                c,
                "extra_column",
                None,
                f"{source_file}: column {c!r} is not in {mapping.path.name}; its values are "
                "ignored, the rows are kept",
            )
            for c in extra
        ]
        out = out[~bad.to_numpy()]
    else:
        out = _long_to_wide(
            frame, mapping, source_file, device, ts, bad, rows, notes, contract, unknown_sensors
        )
    # Only the measurements the mapping delivers are written: the landing reader reads the
    # others as missing, and REFRIG_SENSORS tells the pipeline which ones the fleet has.
    columns = [c.name for c in contract.columns if c.name in out or not c.extra.get("optional")]
    for name in columns:
        if name not in out:
            out[name] = pd.Series(np.nan, index=out.index, dtype="float64")
    readings = out[columns].reset_index(drop=True)
    readings["device_id"] = readings["device_id"].astype(object)
    quarantine = (
        pd.concat(notes, ignore_index=True)
        if notes
        else pd.DataFrame({c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS})
    )
    labels = None
    if mapping.label is not None:
        labels, failed = _labels(frame, mapping.label, device, ts, bad)
        if failed.any():
            idx = failed.to_numpy()
            quarantine = pd.concat(
                [
                    quarantine,
                    _quarantine(
                        source_file,
                        rows[idx],
                        "anomaly",
                        "unparsable_value",
                        frame[mapping.label.source][failed],
                        f"label {mapping.label.source!r} is not 1/0 or one of its true_values/"
                        "false_values; the reading is kept without a label",
                        device[failed].astype(object),
                        ts[failed],
                    ),
                ],
                ignore_index=True,
            )
    return Converted(readings, quarantine, len(frame), labels, unknown_sensors)


def _labels(
    frame: pd.DataFrame, spec: SensorMapping, device: pd.Series, ts: pd.Series, bad: pd.Series
) -> tuple[pd.DataFrame, pd.Series]:
    """Point labels of the rows that are readings (one per device and time: anomalous when any
    of its rows is) and the rows whose label does not parse."""
    flags, failed = _boolean(frame[spec.source], spec)
    failed = failed & ~bad
    keep = ~bad & flags.notna()
    points = pd.DataFrame(
        {"device_id": device[keep].astype(object), "ts": ts[keep], "anomaly": flags[keep]}
    )
    points = points.groupby(["device_id", "ts"], as_index=False, sort=True)["anomaly"].max()
    return points.astype({"anomaly": bool}), failed


def unknown_sensor_notes(
    source_file: str, mapping: Mapping, counts: dict[str, int]
) -> list[pd.DataFrame]:
    """One ``extra_column`` note per sensor name of a long source the mapping does not name,
    with its rows (``counts``, most first)."""
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    return [
        _quarantine(
            source_file,
            np.array([-1]),
            str(mapping.sensor_column),
            "extra_column",
            [name],
            f"{source_file}: sensor {name!r} ({count} rows) is not in {mapping.path.name}; "
            "its values are ignored",
        )
        for name, count in ranked
    ]


def _long_to_wide(
    frame: pd.DataFrame,
    mapping: Mapping,
    source_file: str,
    device: pd.Series,
    ts: pd.Series,
    bad: pd.Series,
    rows: np.ndarray,
    notes: list[pd.DataFrame],
    contract: Contract,
    unknown_sensors: dict[str, int],
) -> pd.DataFrame:
    """Long rows (device, time, sensor, value) -> one wide row per device and time; the rows
    of each sensor name the mapping does not name are counted in ``unknown_sensors``."""
    sensor = frame[str(mapping.sensor_column)].astype("string").str.strip()
    raw_value = frame[str(mapping.value_column)]
    known = {s.source: s for s in mapping.sensors}
    unknown = ~sensor.isin(list(known)).fillna(False) & ~bad
    counts = sensor[unknown].fillna("<blank>").value_counts()
    unknown_sensors.update({str(k): int(v) for k, v in counts.items()})
    notes += unknown_sensor_notes(source_file, mapping, unknown_sensors)
    keep = ~bad & ~unknown
    parts = []
    for spec in mapping.sensors:
        mask = keep & (sensor == spec.source).fillna(False)
        if not mask.any():
            continue
        values, failed = convert_values(_decimal_points(raw_value[mask], mapping.csv_decimal), spec)
        if failed.any():
            idx = failed[failed].index
            notes.append(
                _quarantine(
                    source_file,
                    rows[idx],
                    spec.target,
                    "unparsable_value",
                    raw_value[idx],
                    f"value of sensor {spec.source!r} does not parse as a "
                    f"{contract.column(spec.target).type}" + _decimal_hint(raw_value[idx], mapping),
                    device[idx].astype(object),
                    ts[idx],
                )
            )
        ok = ~failed
        parts.append(
            pd.DataFrame(
                {
                    "device_id": device[mask][ok],
                    "ts": ts[mask][ok],
                    "target": spec.target,
                    "value": values[ok].astype(object),
                    "_row": rows[mask.to_numpy()][ok.to_numpy()],
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            {"device_id": pd.Series(dtype=object), "ts": pd.Series(dtype="datetime64[ns, UTC]")}
        )
    long = pd.concat(parts, ignore_index=True).sort_values("_row", kind="stable")
    twice = long.duplicated(["device_id", "ts", "target"], keep="first")
    if twice.any():
        dup = long[twice]
        notes.append(
            _quarantine(
                source_file,
                dup["_row"].to_numpy(),
                None,
                "duplicate_reading",
                dup["value"],
                [
                    f"second value of {t!r} for this device and time; the first is kept"
                    for t in dup["target"]
                ],
                dup["device_id"].astype(object),
                dup["ts"],
            )
        )
        long = long[~twice]
    wide = long.pivot(index=["device_id", "ts"], columns="target", values="value").reset_index()
    wide.columns.name = None
    for spec in mapping.sensors:
        if spec.target in wide:
            wide[spec.target] = wide[spec.target].astype(
                "boolean" if spec.conversion is None else "float64"
            )
    return wide.sort_values(["ts", "device_id"], kind="stable")


# --- reading a source, writing landing files ----------------------------------------------------


@dataclass
class Source:
    """A source file as read: its rows in file order, each one's 0-based data row, and the
    lines that are no rows (wrong number of fields, cut short, not UTF-8) as quarantine rows."""

    frame: pd.DataFrame
    rows: np.ndarray
    rejected: pd.DataFrame


# Compressions DuckDB does not read: decompressed to a temporary file first.
DECOMPRESSORS: dict[str, Callable[[Path], IO[bytes]]] = {
    ".bz2": lambda p: bz2.open(p, "rb"),
    ".xz": lambda p: lzma.open(p, "rb"),
}
# The first bytes of a ZIP archive, an .xlsx workbook included.
ZIP_MARK = b"PK\x03\x04"
# The first bytes of an OLE2 compound document: an Excel 97-2003 workbook (.xls).
OLE2_MARK = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def read_source(path: Path, mapping: Mapping) -> Source:
    """A source file's rows in file order: Parquet with its own types, CSV (plain, ``.gz``,
    ``.zst``, ``.bz2``, ``.xz``; UTF-8, or UTF-16 with its byte order mark) as text so that
    every raw value can be quoted in the quarantine. A CSV line that cannot be a row is
    quarantined (``malformed_row``, ``not_utf8``) with its line number and text, as the
    landing reader does, instead of failing the whole file."""
    (whole,) = read_source_chunks(path, mapping, None)
    return whole


def read_source_chunks(path: Path, mapping: Mapping, chunk_rows: int | None) -> Iterator[Source]:
    """:func:`read_source` in parts of about ``chunk_rows`` rows (None: one part), so that a
    large export is never held whole as Python objects: the file is read into a DuckDB
    database on disk (held to the memory budget of config/performance.yaml), and each part holds every row of its devices (a device's rows are
    never split: its repeated autumn hour and its copies are told from all of them), in file
    order, with the lines that are no rows in the first part. A source without a device column
    (one device per file) or with ``normalize`` (a rewrite must not collide with any id of the
    file) is one part."""
    with _readable(path) as read, tempfile.TemporaryDirectory(prefix="refrig-import-") as tmp:
        con = duckdb.connect(str(Path(tmp) / "source.duckdb"))
        try:
            con.execute("SET TimeZone = 'UTC'")
            hold_to_budget(con, load_memory_budget(), Path(tmp) / "spill")
            rows, rejected = _load_source(con, read, path, mapping)
            device = mapping.device_column
            columns = [r[0] for r in con.execute("DESCRIBE source_rows").fetchall()]
            if (
                device is None
                or chunk_rows is None
                or len(rows) <= chunk_rows
                or mapping.device_normalize
                or device not in columns
            ):
                frame = con.execute("SELECT * FROM source_rows ORDER BY rowid").df()
                yield Source(frame, rows, rejected)
                return
            yield from _device_parts(con, rows, rejected, device, chunk_rows)
        finally:
            con.close()


def _device_parts(
    con: duckdb.DuckDBPyConnection,
    rows: np.ndarray,
    rejected: pd.DataFrame,
    device: str,
    chunk_rows: int,
) -> Iterator[Source]:
    """The parts of table ``source_rows`` (see :func:`read_source_chunks`): whole devices of
    column ``device``, cut where the running count of rows crosses a multiple of
    ``chunk_rows``, each in file order."""

    def key(alias: str) -> str:  # the device id as convert_frame strips it
        return f"trim(CAST({alias}{_ident(device)} AS VARCHAR), {sql_str(_STRIPPED)})"

    cut = (
        "CAST(floor((sum(n) OVER (ORDER BY key ROWS UNBOUNDED PRECEDING) - n) / "
        f"{int(chunk_rows)}) AS BIGINT)"
    )
    con.execute(
        "CREATE TABLE source_chunks AS SELECT key, dense_rank() OVER (ORDER BY cut) - 1 "
        f"AS chunk FROM (SELECT key, {cut} AS cut FROM "
        f"(SELECT {key('')} AS key, count(*) AS n FROM source_rows GROUP BY 1))"
    )
    # the rows in part order, so that a part's read skips the others' row groups
    con.execute(
        "CREATE TABLE source_parts AS SELECT c.chunk AS __part, s.rowid AS __place, s.* "
        f"FROM source_rows s JOIN source_chunks c ON c.key IS NOT DISTINCT FROM {key('s.')} "
        "ORDER BY __part, __place"
    )
    con.execute("DROP TABLE source_rows")
    (parts,) = con.execute("SELECT max(chunk) + 1 FROM source_chunks").fetchall()[0]
    for k in range(int(parts)):
        frame = con.execute(
            f"SELECT * EXCLUDE (__part) FROM source_parts WHERE __part = {k} ORDER BY __place"
        ).df()
        places = frame.pop("__place").to_numpy(dtype="int64")
        yield Source(frame, rows[places], rejected if k == 0 else _no_rows())


# The characters Python's str.strip() takes off a device id, as DuckDB's trim() is told them.
_STRIPPED = " \t\n\r\x0b\x0c"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def _readable(path: Path) -> Iterator[Path]:
    """The file DuckDB reads for the source ``path``: itself, or its text decompressed (or
    re-encoded from UTF-16) into a temporary file for as long as the context lasts."""
    name = path.name.lower()
    if path.stat().st_size == 0:
        raise MappingError(f"{path}: file is empty (0 bytes)")
    opener = next((o for suffix, o in DECOMPRESSORS.items() if name.endswith(suffix)), None)
    with path.open("rb") as head:
        start = head.read(len(OLE2_MARK))
    if start == OLE2_MARK:
        raise MappingError(
            f"{path}: is an Excel 97-2003 workbook (.xls) or another OLE2 document, not CSV or "
            "Parquet: export the sheet as CSV"
        )
    if start[:4] == ZIP_MARK:
        raise MappingError(
            f"{path}: is a ZIP archive (an Excel workbook is one), not CSV or Parquet: "
            "export the sheet as CSV, or unpack the archive"
        )
    # UTF-16 text (spreadsheet "Unicode text" exports) is re-encoded as UTF-8.
    utf16 = not name.endswith(".parquet") and start[:2] in UTF16_MARKS
    if opener is None and not utf16:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="refrig-import-") as tmp:
        plain = Path(tmp) / "source.csv"
        try:
            if utf16:
                with path.open(encoding="utf-16") as text, plain.open("w") as out:
                    shutil.copyfileobj(text, out)
            else:
                assert opener is not None
                with opener(path) as packed, plain.open("wb") as out:
                    shutil.copyfileobj(packed, out)
        except UnicodeError as exc:
            raise MappingError(f"{path}: starts as UTF-16 but cannot be decoded: {exc}") from None
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise MappingError(f"{path}: cannot be decompressed: {exc}") from None
        yield plain


def _load_source(
    con: duckdb.DuckDBPyConnection, read: Path, path: Path, mapping: Mapping
) -> tuple[np.ndarray, pd.DataFrame]:
    """The rows of the file at ``read`` (named ``path`` in the quarantine) as table
    ``source_rows`` of ``con``, in file order (``rowid``); each one's 0-based data row, and
    the lines that are no rows as quarantine rows."""
    p = sql_str(str(read))
    if path.name.lower().endswith(".parquet"):
        con.execute(f"CREATE TABLE source_rows AS SELECT * FROM read_parquet({p})")
        (n,) = con.execute("SELECT count(*) FROM source_rows").fetchall()[0]
        return np.arange(n, dtype="int64"), _no_rows()
    options = (
        "all_varchar = true, header = true, ignore_errors = true, store_rejects = true, "
        "rejects_table = 'source_rejects', rejects_scan = 'source_scan'"
    )
    if mapping.csv_delimiter:
        options += f", delim = {sql_str(mapping.csv_delimiter)}"
    if mapping.csv_skip_lines:
        options += f", skip = {mapping.csv_skip_lines}"
    con.execute(f"CREATE TABLE source_rows AS SELECT * FROM read_csv({p}, {options})")
    (n,) = con.execute("SELECT count(*) FROM source_rows").fetchall()[0]
    lines = con.execute(
        "SELECT line, arg_min(error_type, column_idx), any_value(csv_line), "
        "arg_min(error_message, column_idx) FROM source_rejects GROUP BY line ORDER BY line"
    ).fetchall()
    # DuckDB numbers the file's lines from 1, the skipped ones and the header included.
    first = mapping.csv_skip_lines + 2
    bad = np.array([line - first for line, *_ in lines], dtype="int64")
    rows = np.setdiff1d(np.arange(n + len(bad), dtype="int64"), bad)
    rejected = [
        _quarantine(
            str(path),
            np.array([line - first]),
            None,
            "not_utf8" if kind == "INVALID ENCODING" else "malformed_row",
            [str(text).strip("\r\n")],
            f"line {line}: "
            + (
                "not valid UTF-8"
                if kind == "INVALID ENCODING"
                else f"malformed line (wrong number of fields: {message})"
            ),
        )
        for line, kind, text, message in lines
    ]
    return rows, pd.concat(rejected, ignore_index=True) if rejected else _no_rows()


def _no_rows() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS})


@dataclass
class ImportResult:
    """What one import wrote: landing files, readings, quarantined rows by rule."""

    source: str
    name: str
    source_rows: int
    readings: int
    files: list[str]
    quarantined: dict[str, int]
    quarantine_path: str | None
    first_ts: pd.Timestamp | None
    last_ts: pd.Timestamp | None
    devices: int
    # Per contract column with values outside its `range`: {"outside": n, "values": n}.
    out_of_range: dict[str, dict[str, int]] = field(default_factory=dict)
    # Device ids that differ only in case (`Dev-1`, `dev-1`): different devices to the pipeline.
    case_variants: list[list[str]] = field(default_factory=list)
    # Hour files of the earlier import of this name that this one did not write (removed), and
    # that import's source when it was another file.
    removed_hours: int = 0
    replaced_source: str | None = None
    labels_path: Path | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "source": self.source,
            "name": self.name,
            "source_rows": self.source_rows,
            "readings": self.readings,
            "devices": self.devices,
            "hours": len(self.files),
            "first_ts": None if self.first_ts is None else self.first_ts.isoformat(),
            "last_ts": None if self.last_ts is None else self.last_ts.isoformat(),
            "quarantined": self.quarantined,
            "quarantine_path": self.quarantine_path,
            "out_of_range": self.out_of_range,
            "removed_hours": self.removed_hours,
            "labels_path": None if self.labels_path is None else str(self.labels_path),
        }


def import_name(source: Path) -> str:
    """The default identity of an import: the source's name without suffixes, made safe."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", file_stem(source.name)) or "import"


def import_file(
    source: Path,
    mapping: Mapping,
    landing_dir: Path,
    quarantine_dir: Path,
    name: str | None = None,
    contract: Contract | None = None,
    merge: bool = False,
    labels_dir: Path | None = None,
) -> ImportResult:
    """Import one source file: one landing Parquet file per hour of its readings under
    ``<landing_dir>/imports/<name>/<YYYY-MM-DD>/readings_<YYYYMMDDTHH>.parquet`` and, when rows
    were rejected, ``<quarantine_dir>/<name>.parquet`` (both replaced by a re-import of the
    same name). Each file is written under a hidden name, opened with the landing reader (a file
    it would reject stops the import) and then moved into place.

    ``merge``: the source adds its measurements to the readings the import ``name`` already
    holds (per-sensor files: one file per sensor of the same devices). A reading of the same
    device and time gets the source's values where it has none; as separate landing files the
    pipeline would keep one copy of each device and time and quarantine the other
    (``duplicate_reading``). Its quarantine is ``<name>+<source name>.parquet``.

    A mapping with ``labels`` writes the point labels to ``<labels_dir>/<name>.parquet`` (the
    same name as the quarantine's)."""
    contract = contract or load_contract("sensor_readings")
    source = Path(source)
    name = name or import_name(source)
    rows_name = f"{name}+{import_name(source)}" if merge else name
    files: list[str] = []
    base = Path(landing_dir) / "imports" / name
    clashes: dict[str, int] = {}
    con = connect()
    spooled = _Spool(mapping, contract, str(source))
    try:
        for raw in read_source_chunks(source, mapping, load_ingestion_settings().import_chunk_rows):
            part_of = convert_frame(raw.frame, mapping, str(source), contract, rows=raw.rows)
            if len(raw.rejected):
                part_of.quarantine = pd.concat(
                    [raw.rejected, part_of.quarantine], ignore_index=True
                ).sort_values("row", kind="stable", ignore_index=True)
                part_of.source_rows += len(raw.rejected)
            spooled.add(part_of)
        converted = spooled.converted()
        for i, (hour, part) in enumerate(spooled.hours()):
            final = base / f"{hour:%Y-%m-%d}" / f"readings_{hour:%Y%m%dT%H}.parquet"
            final.parent.mkdir(parents=True, exist_ok=True)
            if merge and final.exists():
                part = merge_readings(pd.read_parquet(final), part, contract, clashes)
            tmp = final.with_name(
                f".{final.stem}.{os.getpid()}.tmp.parquet"
            )  # hidden: never discovered
            try:
                part.to_parquet(tmp, index=False)
                _layout, rejection = open_file(con, tmp, Path(landing_dir), contract, f"imp{i}")
                if rejection is not None:
                    raise MappingError(
                        f"the landing reader would reject {final}: {rejection.message}"
                    )
                durable_replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
            files.append(str(final))
    finally:
        con.close()
        spooled.close()
    labels_path = None
    if converted.labels is not None and labels_dir is not None:
        labels_path = Path(labels_dir) / f"{rows_name}.parquet"
        labels_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = labels_path.with_name(f".{labels_path.name}.{os.getpid()}.tmp")
        converted.labels.to_parquet(tmp, index=False)
        durable_replace(tmp, labels_path)
    elif labels_dir is not None:  # an earlier import of the name had labels, this one none
        (Path(labels_dir) / f"{rows_name}.parquet").unlink(missing_ok=True)
    removed, replaced = 0, None
    if not merge:
        removed = _remove_stale(base, files)
        replaced = _record_source(base, source)
    converted.quarantine = pd.concat(
        [converted.quarantine, *_clash_notes(str(source), name, clashes)], ignore_index=True
    )
    quarantine_path = None
    counts: dict[str, int] = {}
    if len(converted.quarantine):
        q = converted.quarantine
        counts = {str(k): int(v) for k, v in q["rule"].value_counts().items()}
        out = Path(quarantine_dir) / f"{rows_name}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        q.to_parquet(tmp, index=False)
        durable_replace(tmp, out)
        quarantine_path = str(out)
    else:
        # An earlier import of the same name quarantined rows this one reads.
        (Path(quarantine_dir) / f"{rows_name}.parquet").unlink(missing_ok=True)
    return ImportResult(
        source=str(source),
        name=name,
        source_rows=converted.source_rows,
        readings=spooled.readings,
        files=files,
        quarantined=counts,
        quarantine_path=quarantine_path,
        first_ts=spooled.first_ts,
        last_ts=spooled.last_ts,
        devices=len(spooled.devices),
        out_of_range=spooled.out_of_range,
        case_variants=case_variants(pd.Series(sorted(spooled.devices), dtype=object)),
        removed_hours=removed,
        replaced_source=replaced,
        labels_path=labels_path,
    )


class _Spool:
    """The converted parts of one source (:func:`read_source_chunks`): their readings spooled
    to a temporary file per part, one row group per hour, and what the import reports of them.
    A source read in one part gives what converting it whole gives; parts hold whole devices,
    so an hour's readings put together and sorted by time and device are in the order the
    whole source gives them."""

    def __init__(self, mapping: Mapping, contract: Contract, source_file: str) -> None:
        self._mapping, self._contract, self._source = mapping, contract, source_file
        self._columns: set[str] = set()
        self._dir = tempfile.TemporaryDirectory(prefix="refrig-import-spool-")
        self._groups: dict[pd.Timestamp, list[tuple[Path, int]]] = {}
        self._converted: list[Converted] = []
        self.readings = 0
        self.first_ts: pd.Timestamp | None = None
        self.last_ts: pd.Timestamp | None = None
        self.devices: set[str] = set()
        self.out_of_range: dict[str, dict[str, int]] = {}

    def add(self, part: Converted) -> None:
        """Spool one part's readings per hour; keep its quarantine, labels and counts."""
        readings = part.readings
        self._columns.update(readings.columns)
        path = Path(self._dir.name) / f"part-{len(self._converted)}.parquet"
        writer: pq.ParquetWriter | None = None
        try:
            for group, (hour, rows) in enumerate(
                readings.groupby(readings["ts"].dt.floor("h"), sort=True)
            ):
                table = pa.Table.from_pandas(rows, preserve_index=False)
                writer = writer or pq.ParquetWriter(path, table.schema)
                writer.write_table(table, row_group_size=max(len(rows), 1))
                self._groups.setdefault(hour, []).append((path, group))
        finally:
            if writer is not None:
                writer.close()
        if len(readings):
            first, last = readings["ts"].min(), readings["ts"].max()
            self.first_ts = first if self.first_ts is None else min(self.first_ts, first)
            self.last_ts = last if self.last_ts is None else max(self.last_ts, last)
        self.readings += len(readings)
        self.devices.update(readings["device_id"].dropna().astype(str).unique())
        for column, n in out_of_range(readings, self._contract).items():
            held = self.out_of_range.setdefault(column, {"outside": 0, "values": 0})
            held["outside"] += n["outside"]
            held["values"] += n["values"]
        self._converted.append(
            Converted(
                readings.iloc[:0],
                part.quarantine,
                part.source_rows,
                part.labels,
                part.unknown_sensors,
            )
        )

    def converted(self) -> Converted:
        """The parts' quarantine (a file note once), source rows and labels as one source's."""
        parts = self._converted
        if len(parts) == 1:
            return parts[0]
        quarantine = pd.concat([p.quarantine for p in parts], ignore_index=True)
        notes = quarantine["row"].eq(-1)
        again = notes & quarantine.astype(str).duplicated(keep="first")
        # a long source's unknown sensor names: one note each, with the rows of every part
        unknown: dict[str, int] = {}
        for p in parts:
            for name, rows in p.unknown_sensors.items():
                unknown[name] = unknown.get(name, 0) + rows
        if unknown:
            sensor_notes = quarantine["rule"].eq("extra_column") & quarantine["column"].eq(
                str(self._mapping.sensor_column)
            )
            again |= notes & sensor_notes
        quarantine = pd.concat(
            [quarantine[~again], *unknown_sensor_notes(self._source, self._mapping, unknown)],
            ignore_index=True,
        ).sort_values("row", kind="stable", ignore_index=True)
        labels = [p.labels for p in parts if p.labels is not None]
        joined = (
            pd.concat(labels, ignore_index=True).sort_values(["device_id", "ts"], ignore_index=True)
            if labels
            else None
        )
        rows = sum(p.source_rows for p in parts)
        return Converted(parts[0].readings, quarantine, rows, joined, unknown)

    def hours(self) -> Iterator[tuple[pd.Timestamp, pd.DataFrame]]:
        """Each hour's readings, in hour order, sorted by time and device (copies of a
        reading in file order)."""
        files: dict[Path, pq.ParquetFile] = {}
        for hour in sorted(self._groups):
            tables = []
            for path, group in self._groups[hour]:
                if path not in files:
                    files[path] = pq.ParquetFile(path)
                tables.append(files[path].read_row_group(group))
            rows = self._every_column(pa.concat_tables(tables, promote_options="default"))
            yield hour, rows.sort_values(["ts", "device_id"], kind="stable")

    def _every_column(self, table: pa.Table) -> pd.DataFrame:
        """An hour's readings with every column some part has (a long source's part may lack a
        sensor another part has), in contract order, typed as a whole conversion types it."""
        rows = table.to_pandas()
        kinds = {
            s.target: "boolean" if s.conversion is None else "float64"
            for s in self._mapping.sensors
        }
        columns = [c.name for c in self._contract.columns if c.name in self._columns]
        for name in columns:
            kind = kinds.get(name)
            if name not in rows:
                empty = pd.NA if kind == "boolean" else np.nan
                rows[name] = pd.Series(empty, index=rows.index, dtype=kind or "float64")
            elif kind is not None:
                rows[name] = rows[name].astype(kind)
        return rows[columns]

    def close(self) -> None:
        self._dir.cleanup()


def merge_readings(
    held: pd.DataFrame, added: pd.DataFrame, contract: Contract, clashes: dict[str, int]
) -> pd.DataFrame:
    """One hour's readings already imported (``held``) with a source's (``added``): one row per
    device and time, each measurement from ``held`` where it has one, else from ``added``. A
    value of ``added`` that differs from the one ``held`` has is counted in ``clashes`` (per
    contract column) and dropped: the first import's value is kept."""
    key = ["device_id", "ts"]
    old = held.set_index(key)
    new = added.set_index(key)
    both = old.index.intersection(new.index)
    for column in old.columns.intersection(new.columns):
        a, b = old.loc[both, column], new.loc[both, column]
        differ = a.notna() & b.notna() & (a.astype(object) != b.astype(object))
        if differ.any():
            clashes[column] = clashes.get(column, 0) + int(differ.sum())
    merged = old.combine_first(new).reset_index()
    columns = [c.name for c in contract.columns if c.name in merged]
    for c in contract.columns:
        if c.name in merged and c.name not in key:
            merged[c.name] = merged[c.name].astype("boolean" if c.type == "bool" else "float64")
    merged["device_id"] = merged["device_id"].astype(object)
    return merged[columns].sort_values(["ts", "device_id"], kind="stable", ignore_index=True)


def _clash_notes(source: str, name: str, clashes: dict[str, int]) -> list[pd.DataFrame]:
    return [
        _quarantine(
            source,
            np.array([-1]),
            column,
            "duplicate_reading",
            None,
            f"{source}: {n} value(s) of {column} for a device and time the import {name!r} "
            "already holds with another value; the value held is kept",
        )
        for column, n in clashes.items()
    ]


def _remove_stale(base: Path, files: list[str]) -> int:
    """Remove the hour files an earlier import of the same name wrote and this one did not (a
    mapping corrected from the wrong time zone moves every hour): left in place they would be
    read as a second copy of the readings, hours away from the true one. How many."""
    written = set(files)
    removed = 0
    for old in base.glob("*/readings_*.parquet"):
        if str(old) not in written:
            old.unlink()
            removed += 1
            if not any(old.parent.iterdir()):
                old.parent.rmdir()
    return removed


# Hidden (never read by the landing reader): the source an import of this name last read.
SOURCE_RECORD = ".source"


def _record_source(base: Path, source: Path) -> str | None:
    """Record ``source`` as what the import at ``base`` holds; the source it held before when
    that was another file (None otherwise)."""
    record = base / SOURCE_RECORD
    before = record.read_text().strip() if record.exists() else None
    now = str(source.resolve())
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f"{SOURCE_RECORD}.{os.getpid()}.tmp"
    tmp.write_text(now + "\n")
    durable_replace(tmp, record)
    return before if before and before != now else None


def case_variants(device_ids: pd.Series) -> list[list[str]]:
    """Groups of device ids that are the same but for case, each sorted (ids are compared
    exactly everywhere, so ``Dev-1`` and ``dev-1`` are two devices)."""
    ids = pd.Series(device_ids.dropna().astype(str).unique())
    folded = ids.str.casefold()
    twice = folded.duplicated(keep=False)
    return sorted(sorted(g) for _k, g in ids[twice].groupby(folded[twice]))


def out_of_range(readings: pd.DataFrame, contract: Contract) -> dict[str, dict[str, int]]:
    """Per measurement with values outside its contract ``range``: how many, of how many values
    (the pipeline flags each one ``OUT_OF_RANGE``; most of a column there is a wrong ``unit``)."""
    counts = {}
    for col in contract.columns:
        if col.range is None or col.name not in readings:
            continue
        values = pd.to_numeric(readings[col.name], errors="coerce")
        n = int(((values < col.range[0]) | (values > col.range[1])).sum())
        if n:
            counts[col.name] = {"outside": n, "values": int(values.notna().sum())}
    return counts
