"""``refrig import``: turn a fleet's own export files into landing files with a mapping."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from refrig_assets.core.settings import get_settings

SOURCE_SUFFIXES = (".csv", ".csv.gz", ".csv.zst", ".csv.bz2", ".csv.xz", ".parquet")


def source_files(source: Path) -> list[Path]:
    """``source`` itself, or every CSV/Parquet file (plain or compressed) below a folder."""
    if source.is_dir():
        return sorted(
            p
            for p in source.rglob("*")
            if p.is_file()
            and p.name.lower().endswith(SOURCE_SUFFIXES)
            and not p.name.startswith(".")
        )
    return [source]


def skipped_files(source: Path) -> list[Path]:
    """The files below a folder that are not sources (an .xlsx, a .txt), hidden ones aside."""
    if not source.is_dir():
        return []
    return sorted(
        p
        for p in source.rglob("*")
        if p.is_file()
        and not p.name.lower().endswith(SOURCE_SUFFIXES)
        and not p.name.startswith(".")
    )


SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def source_names(source: Path, files: list[Path]) -> list[str | None]:
    """The import identity of each file of a folder: its path below the folder without suffixes
    (``valve1/0.csv`` -> ``valve1_0``), so that files of the same name in different folders do
    not replace each other's landing and quarantine files. A single file keeps its own name."""
    from refrig_assets.ingestion.mapping import import_name

    if not source.is_dir():
        return [None for _ in files]
    names: list[str | None] = []
    for path in files:
        rel = path.relative_to(source)
        names.append(import_name(Path("_".join([*rel.parent.parts, rel.name]))))
    return names


def same_names(files: list[Path], names: list[str | None]) -> dict[str, list[Path]]:
    """Import names that more than one file of a folder would get, with those files."""
    by_name: dict[str, list[Path]] = {}
    for path, one in zip(files, names, strict=True):
        if one is not None:
            by_name.setdefault(one, []).append(path)
    return {n: ps for n, ps in by_name.items() if len(ps) > 1}


def import_command(
    source: str = typer.Argument(..., help="A CSV/Parquet file (.gz/.zst too) or a folder."),
    mapping: str = typer.Option(..., "--mapping", help="Mapping YAML (see examples/mappings)."),
    name: str | None = typer.Option(
        None, help="Identity of the import (one file only; default: the file's name)."
    ),
    merge: bool = typer.Option(
        False,
        "--merge",
        help="Add the file's measurements to the readings the import --name holds (per-sensor "
        "files: one file per sensor of the same devices).",
    ),
) -> None:
    """Rename columns, convert units and times to UTC and write one landing file per hour.

    Rows that cannot be readings go to $REFRIG_DATA_DIR/import_quarantine/<name>.parquet
    with their rule. Importing the same source again replaces its files."""
    import duckdb
    import pandas as pd

    from refrig_assets.ingestion.landing.readers import plausible_timestamps
    from refrig_assets.ingestion.mapping import MappingError, import_file, load_mapping

    s = get_settings()
    try:
        parsed = load_mapping(Path(mapping))
    except MappingError as exc:
        typer.echo(f"mapping refused: {exc}", err=True)
        raise typer.Exit(2) from None
    except (OSError, UnicodeDecodeError) as exc:  # a directory, unreadable, not text
        typer.echo(f"mapping refused: {mapping}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    # A folder holding the home (`refrig import .` in the project) would import the landing
    # zone's own files, earlier imports included, into itself.
    home = s.home.resolve()
    files, skipped = source_files(Path(source)), skipped_files(Path(source))
    if Path(source).is_dir():
        files = [p for p in files if not p.resolve().is_relative_to(home)]
        skipped = [p for p in skipped if not p.resolve().is_relative_to(home)]
    if skipped:
        shown = ", ".join(str(p.relative_to(source)) for p in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        typer.echo(
            f"{source}: {len(skipped)} file(s) are not CSV or Parquet ({', '.join(SOURCE_SUFFIXES)}) "
            f"and are not imported: {shown}{more}",
            err=True,
        )
    if not files or not files[0].exists():
        typer.echo(f"no source files at {source}", err=True)
        raise typer.Exit(2)
    if merge and (name is None or len(files) > 1):
        typer.echo("--merge needs --name (the import to add to) and a single source file", err=True)
        raise typer.Exit(2)
    if name is not None and len(files) > 1:
        typer.echo("--name needs a single source file", err=True)
        raise typer.Exit(2)
    if name is not None and not SAFE_NAME.fullmatch(name):
        # It names a folder under landing/imports/: "..", "../x" or "a/b" would write (and
        # replace) landing files outside it, the gateway's own readings included.
        typer.echo(
            f"--name {name!r} must be letters, digits, '.', '_' or '-' (not starting with '.')",
            err=True,
        )
        raise typer.Exit(2)
    from refrig_assets.core.contracts import load_contract
    from refrig_assets.core.fleet_sensors import named_measurements

    # Unset, the fleet's sensors are those its data reports; named, each one the mapping
    # does not deliver will read as a dropout of every device.
    undelivered = [
        m
        for m in named_measurements(load_contract("sensor_readings")) or []
        if m not in parsed.targets
    ]
    if undelivered:
        typer.echo(
            f"REFRIG_SENSORS names {', '.join(undelivered)}, which the mapping does not deliver: "
            "they will be dropouts",
            err=True,
        )
    first, ahead = plausible_timestamps(load_contract("sensor_readings"))
    earliest = pd.Timestamp(first)
    failed = 0
    names: list[str | None] = [name] if name is not None else source_names(Path(source), files)
    clashing = same_names(files, names)
    if clashing:
        # Each would replace the other's landing files (a.csv and a.csv.gz are both "a").
        typer.echo(
            f"{source}: files that would be one import each replace the other's: "
            + "; ".join(f"{n!r}: {', '.join(str(p) for p in ps)}" for n, ps in clashing.items())
            + ". Rename one, or import them one by one with --name",
            err=True,
        )
        raise typer.Exit(2)
    for path, one_name in zip(files, names, strict=True):
        try:
            result = import_file(
                path,
                parsed,
                s.landing_dir,
                s.data_dir / "import_quarantine",
                name=one_name,
                merge=merge,
                labels_dir=s.data_dir / "import_labels",
            )
        except MappingError as exc:
            typer.echo(f"{path}: not imported: {exc}", err=True)
            failed += 1
            continue
        except (duckdb.Error, OSError, ValueError) as exc:  # corrupt, truncated, not a table
            first = (str(exc).strip().splitlines() or [""])[0]
            typer.echo(f"{path}: not imported: {type(exc).__name__}: {first}", err=True)
            failed += 1
            continue
        typer.echo(json.dumps(result.summary()))
        for target, n in result.out_of_range.items():
            col = load_contract("sensor_readings").column(target)
            spec = next(s for s in parsed.sensors if s.target == target)
            typer.echo(
                f"{path}: {n['outside']:,} of {n['values']:,} {target} values (from "
                f"{spec.source!r} in "
                f"{spec.unit}) are outside its range {list(col.range or ())} {col.unit} in "
                "contracts/sensor_readings.yaml: the pipeline flags each one OUT_OF_RANGE; "
                "if most are, check the mapping's unit",
                err=True,
            )
        if result.removed_hours:
            earlier = f" (of {result.replaced_source})" if result.replaced_source else ""
            typer.echo(
                f"{path}: removed {result.removed_hours} hour file(s) of the earlier import "
                f"{result.name!r}{earlier} that this file does not cover; a different file under "
                "the same --name replaces it (add per-sensor files with --merge)",
                err=True,
            )
        for spellings in result.case_variants:
            typer.echo(
                f"{path}: device ids {', '.join(spellings)} differ only in case: the pipeline "
                "takes them for different devices (ids are compared exactly, as in the registry)",
                err=True,
            )
        latest = pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=ahead)
        if result.last_ts is not None and result.last_ts > latest:
            typer.echo(
                f"{path}: readings up to {result.last_ts:%Y-%m-%d %H:%M} UTC are more than "
                f"{ahead:g} h ahead of now (landing.plausible_timestamps.max_hours_after_arrival "
                "of contracts/sensor_readings.yaml): the pipeline quarantines them as "
                "implausible_timestamp; check the time column's format and zone",
                err=True,
            )
        if result.first_ts is not None and result.first_ts < earliest:
            typer.echo(
                f"{path}: readings from {result.first_ts:%Y-%m-%d %H:%M} UTC are before "
                f"landing.plausible_timestamps.earliest ({earliest:%Y-%m-%d}) of "
                "contracts/sensor_readings.yaml: the pipeline quarantines them as "
                "implausible_timestamp unless REFRIG_PARTITION_START is set to their first hour "
                f"(e.g. {result.first_ts:%Y-%m-%d-%H}:00)",
                err=True,
            )
    if failed:
        raise typer.Exit(1)
