"""The callback service's append-only event log: on disk before anything is acknowledged.

Layout under ``<events_dir>/log/``::

    open/<segment>.jsonl     being appended by a live writer, which holds an flock on it
    sealed/<segment>.jsonl   closed and complete, waiting to be landed
    landed/<segment>.jsonl   turned into landing files; kept for audit

A segment is named ``<writer>-<UTC start>-<pid>-<random>.jsonl``; each line is one JSON object
``{"entity": ..., "row": {...}, "logged_at": ...}`` whose row holds the landing columns.

Writes go through one writer thread that batches whatever is waiting, writes it with one
``write`` and one ``fsync`` ("group commit") and only then resolves each caller's future: a
thousand concurrent callbacks cost a few dozen fsyncs, not a thousand, and none is answered
before it is on disk. The writer seals its segment every ``rotate_seconds`` (and at a size
limit, and on close). A writer killed with SIGKILL leaves its segment in ``open/``; its flock
dies with it, which is how `seal_abandoned` knows the segment is safe to seal. Only the last
line of such a segment can be torn, and it was never acknowledged: readers skip it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024


def log_root(events_dir: Path) -> Path:
    return Path(events_dir) / "log"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def encode(record: Mapping[str, Any]) -> bytes:
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return line.encode() + b"\n"


@dataclass
class _Write:
    data: bytes
    future: Future


@dataclass
class _Rotate:
    future: Future


_STOP = object()


class EventLog:
    """Durable appends for one writer process; see the module docstring."""

    def __init__(
        self,
        events_dir: Path,
        writer: str = "cb",
        *,
        rotate_seconds: float = 60.0,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
    ) -> None:
        if not writer.isalnum():
            raise ValueError(f"writer name {writer!r} must be alphanumeric")
        self.root = log_root(events_dir)
        self.writer = writer
        self.rotate_seconds = rotate_seconds
        self.rotate_bytes = rotate_bytes
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._size = 0
        self.sealed: list[Path] = []  # segments this writer sealed, in order

    # --- the public side ---------------------------------------------------------------------

    def start(self) -> EventLog:
        with self._start_lock:
            if self._thread is None:
                for sub in ("open", "sealed", "landed"):
                    (self.root / sub).mkdir(parents=True, exist_ok=True)
                self._thread = threading.Thread(
                    target=self._run, name=f"eventlog-{self.writer}", daemon=True
                )
                self._thread.start()
        return self

    def append(self, records: Iterable[Mapping[str, Any]]) -> Future:
        """Queue records; the future resolves once they are written and fsynced."""
        self.start()
        future: Future = Future()
        data = b"".join(encode(r) for r in records)
        if not data:
            future.set_result(None)
            return future
        self._queue.put(_Write(data, future))
        return future

    def write(self, records: Iterable[Mapping[str, Any]], timeout: float | None = None) -> None:
        """Append and wait until the records are on disk."""
        self.append(records).result(timeout)

    def rotate(self) -> Path | None:
        """Seal the current segment now (if it holds anything); returns the sealed path."""
        self.start()
        future: Future = Future()
        self._queue.put(_Rotate(future))
        return future.result()

    def close(self) -> None:
        """Write what is queued, seal the segment and stop the writer thread."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join()
        self._thread = None

    @property
    def current(self) -> Path | None:
        return self._path

    # --- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                first = None
            batch = [] if first is None else [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            writes = [item for item in batch if isinstance(item, _Write)]
            rotations = [item for item in batch if isinstance(item, _Rotate)]
            stopping = any(item is _STOP for item in batch)
            if writes:
                self._commit(writes)
            sealed = None
            if rotations or stopping or self._due():
                sealed = self._seal_quietly()
            for rotation in rotations:
                rotation.future.set_result(sealed)

    def _due(self) -> bool:
        if self._fd is None or self._size == 0:
            return False
        aged = time.monotonic() - self._opened_at >= self.rotate_seconds
        return aged or self._size >= self.rotate_bytes

    def _commit(self, writes: list[_Write]) -> None:
        data = b"".join(w.data for w in writes)
        try:
            fd = self._open()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fdatasync(fd)
        except BaseException as exc:  # noqa: BLE001 - every waiting caller must hear of it
            log.exception(
                "event log write failed; %d record batch(es) not acknowledged", len(writes)
            )
            # A partial line may now end the segment: seal it, so the next write starts clean.
            self._seal_quietly()
            for w in writes:
                w.future.set_exception(exc)
            return
        self._size += len(data)
        for w in writes:
            w.future.set_result(None)

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        stamp = utc_now().strftime("%Y%m%dT%H%M%S%f")
        name = f"{self.writer}-{stamp}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        folder = self.root / "open"
        folder.mkdir(parents=True, exist_ok=True)
        hidden = folder / f".{name}"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        # The lock says "a live writer owns this"; taken before the segment becomes visible.
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = folder / name
        os.rename(hidden, path)
        _fsync_dir(folder)
        self._fd, self._path = fd, path
        self._opened_at, self._size = time.monotonic(), 0
        return fd

    def _seal_quietly(self) -> Path | None:
        # The writer thread must outlive a failing disk: callers are told through their
        # futures, and a segment that could not be sealed stays in open/ for seal_abandoned.
        try:
            return self._seal()
        except OSError:
            log.exception("could not seal event log segment; it stays in open/")
            return None

    def _seal(self) -> Path | None:
        fd, path = self._fd, self._path
        if fd is None or path is None:
            return None
        self._fd, self._path, self._size = None, None, 0
        try:
            os.fsync(fd)
            if os.fstat(fd).st_size == 0:
                path.unlink()
                return None
            target = self.root / "sealed" / path.name
            os.rename(path, target)
            _fsync_dir(target.parent)
            _fsync_dir(path.parent)
            self.sealed.append(target)
            return target
        finally:
            os.close(fd)  # releases the flock


# --- readers and the sealing of abandoned segments ------------------------------------------


def read_segment(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of a segment, and how many lines were unreadable (a torn last line)."""
    records, bad = [], 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "entity" not in record or "row" not in record:
                    raise ValueError("not an event record")
            except ValueError:
                bad += 1
                log.warning("%s line %d is not a complete event record; skipped", path, number)
                continue
            records.append(record)
    return records, bad


def sealed_segments(events_dir: Path) -> list[Path]:
    folder = log_root(events_dir) / "sealed"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == SUFFIX and not p.name.startswith("."))


def open_segments(events_dir: Path) -> list[Path]:
    folder = log_root(events_dir) / "open"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == SUFFIX and not p.name.startswith("."))


def seal_abandoned(events_dir: Path) -> list[Path]:
    """Seal the open segments whose writer is gone (its flock released); returns them."""
    sealed_dir = log_root(events_dir) / "sealed"
    done = []
    for path in open_segments(events_dir):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # its writer sealed it meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer owns it
            if os.fstat(fd).st_size == 0:
                path.unlink(missing_ok=True)
                continue
            sealed_dir.mkdir(parents=True, exist_ok=True)
            target = sealed_dir / path.name
            os.rename(path, target)
            _fsync_dir(sealed_dir)
            log.warning("sealed %s, left open by a writer that stopped", path.name)
            done.append(target)
        finally:
            os.close(fd)
    return done
