"""The DuckDB warehouse file, and the one-writer rule around it.

DuckDB allows one writing process per file. Dagster's `warehouse` pool serializes runs it
schedules; this lock also covers everything else that writes (the CLI, dbt, a second
`dagster dev`), so a second writer waits its turn instead of failing on DuckDB's own lock.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Warehouse:
    data_dir: Path

    @property
    def path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the warehouse for writing; waits (and says so) while another writer has it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".warehouse.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("another run is writing the warehouse; waiting for it to finish")
                started = time.monotonic()
                fcntl.flock(handle, fcntl.LOCK_EX)
                log.info("warehouse free after %.1f s", time.monotonic() - started)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A writing connection, held under the lock and closed on exit."""
        with self.lock():
            con = duckdb.connect(str(self.path))
            try:
                con.execute("set TimeZone = 'UTC'")
                yield con
            finally:
                con.close()


def with_frame(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, sql: str, params: list | None = None
) -> list[tuple]:
    """Run `sql` with `frame` readable as `{frame}` in it (one statement for all its rows);
    its result rows."""
    con.register("_frame_rows", frame)
    try:
        return con.execute(sql.format(frame="_frame_rows"), params or []).fetchall()
    finally:
        con.unregister("_frame_rows")
