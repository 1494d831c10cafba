"""The crash-safe journal of one call: append-only JSON lines, one file per call.

Each event is written to the OS with one `os.write` the moment it is added, so a killed
worker loses nothing already added; `fsync` (the part that waits for the disk) runs in
a background thread at most every `fsync_interval` seconds. A live journal holds an
exclusive `flock`, which is how recovery tells a running call from a dead one: the
kernel drops the lock when the process dies, whatever killed it.

A journal that cannot be written (directory not writable, disk full) logs loudly once
and keeps the call going: the record still reaches the store from memory at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger("conversation_manager.journal")

Event = dict[str, Any]
PENDING = "pending"
ARCHIVE = "archive"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def journal_path(directory: Path, conversation_id: str) -> Path:
    return directory / PENDING / f"{_UNSAFE.sub('_', conversation_id)[:180]}.jsonl"


def encode(event: Event) -> bytes:
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        return (text + "\n").encode()
    except UnicodeEncodeError:  # a lone surrogate (from JSON tool arguments): escaped, it reads back the same
        return (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode()


class Journal:
    def __init__(self, path: Path, *, fsync_interval: float = 0.5) -> None:
        self.path = path
        self._fsync_interval = fsync_interval
        self._fd: int | None = None
        self._dirty = False
        self._sync_task: asyncio.Task[None] | None = None
        self.failed: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._fail(f"cannot open journal {path}: {e}")

    @property
    def writable(self) -> bool:
        return self._fd is not None

    def _fail(self, reason: str) -> None:
        logger.error("JOURNAL UNAVAILABLE, the call continues but a crash now would lose its record: %s", reason)
        self.failed = reason
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def append(self, event: Event) -> None:
        """Write one event through to the OS now (no disk wait). Never raises."""
        if self._fd is None:
            return
        data = encode(event)
        try:
            rest = memoryview(data)
            while rest:  # a short write (the disk filling up): the next write says why
                written = os.write(self._fd, rest)
                if written == 0:
                    raise OSError(f"wrote nothing of {len(rest)} bytes")
                rest = rest[written:]
        except OSError as e:
            self._fail(f"cannot append to {self.path}: {e}")
            return
        self._dirty = True
        if self._sync_task is None:
            with contextlib.suppress(RuntimeError):  # no running loop: the final sync covers it
                self._sync_task = asyncio.get_running_loop().create_task(self._sync_soon())

    async def _sync_soon(self) -> None:
        await asyncio.sleep(self._fsync_interval)
        self._sync_task = None
        await self.sync()

    async def sync(self) -> None:
        fd = self._fd
        if fd is None or not self._dirty:
            return
        self._dirty = False
        try:
            await asyncio.to_thread(os.fsync, fd)
        except OSError as e:
            self._fail(f"cannot fsync {self.path}: {e}")

    async def close(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            self._sync_task = None
        await self.sync()
        if self._fd is not None:
            os.close(self._fd)  # also releases the flock
            self._fd = None

    def archive(self) -> Path | None:
        """Move a closed journal out of `pending/`; it is kept for the retention period."""
        if self.failed is not None and not self.path.exists():
            return None  # it could not even be created: nothing is pending
        return archive(self.path)


def archive(path: Path) -> Path | None:
    target = path.parent.parent / ARCHIVE / path.name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        return target
    except OSError as e:
        logger.error("cannot archive journal %s (it stays pending): %s", path, e)
        return None


def read_events(path: Path) -> list[Event]:
    """All complete events; a torn last line (killed mid-write) is skipped."""
    events: list[Event] = []
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            try:
                events.append(json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError):
                logger.warning("skipping unreadable line %d of journal %s", number, path)
    return events


@contextlib.contextmanager
def claim(path: Path) -> Iterator[bool]:
    """Lock a pending journal for replay; yields False while its call is still live."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def pending_journals(directory: Path) -> list[Path]:
    return sorted((directory / PENDING).glob("*.jsonl"))


def prune_archive(directory: Path, retention_days: float, *, now: float | None = None) -> int:
    cutoff = (now or time.time()) - retention_days * 86400
    removed = 0
    for path in (directory / ARCHIVE).glob("*.jsonl"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed
