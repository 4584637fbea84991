"""A partition write killed before its rename leaves its hidden temporary file behind; the next
write into that directory removes such leftovers of writers that are gone, and never the
temporary file of a writer still running (this process, or one on another machine)."""

import os
import socket

import pandas as pd

from refrig_assets.core import storage
from refrig_assets.core.storage import ParquetStore, temporary_for

GONE = 2**31 - 1  # no process has this id


def leftover(directory, stem, pid, host):
    path = directory / f".{stem}.0123456789abcdef.{pid}@{host}.tmp"
    path.write_bytes(b"half of a partition")
    return path


def test_a_dead_writers_temporary_file_goes_with_the_next_write_into_its_directory(tmp_path):
    store = ParquetStore(tmp_path / "data")
    first = store.write("sensor_readings", "2026-01-01-00:00", pd.DataFrame({"x": [1]}))
    host = socket.gethostname()
    dead = leftover(first.parent, "2026-01-01T01", GONE, host)
    running = leftover(first.parent, "2026-01-01T02", os.getpid(), host)
    elsewhere = leftover(first.parent, "2026-01-01T03", GONE, "another-machine")
    storage._SWEPT.clear()  # a new process
    store.write("sensor_readings", "2026-01-01-04:00", pd.DataFrame({"x": [2]}))
    assert not dead.exists()
    assert running.exists() and elsewhere.exists()
    assert sorted(p.name for p in first.parent.glob("*.parquet")) == [
        "2026-01-01T00.parquet",
        "2026-01-01T04.parquet",
    ]


def test_a_temporary_file_names_its_writer():
    tmp = temporary_for(storage.Path("/tmp/x/2026-01-01T00.parquet"))
    assert tmp.name.startswith(".2026-01-01T00.")
    assert tmp.name.endswith(f".{os.getpid()}@{socket.gethostname()}.tmp")
    assert storage._writer_gone(tmp.name) is False


def test_writers_are_read_from_names_whatever_the_host_is_called(monkeypatch):
    monkeypatch.setattr(storage.socket, "gethostname", lambda: "node-1.cluster.example")
    assert storage._writer_gone(f".2026-01-01T00.ab12.{GONE}@node-1.cluster.example.tmp")
    assert not storage._writer_gone(f".2026-01-01T00.ab12.{os.getpid()}@node-1.cluster.example.tmp")
    assert not storage._writer_gone(".2026-01-01T00.ab12.tmp")  # no writer named: kept
    assert not storage._writer_gone(f".all.ab12.{GONE}@other.tmp")
