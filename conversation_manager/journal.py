"""The crash-safe journal of one call: a write-ahead log of JSON lines, one file per call.

Each event is written to the OS with one `os.write` the moment it is added, so a killed
worker loses nothing already added; `fsync` (the part that waits for the disk) runs in
a background thread at most every `fsync_interval` seconds. A live journal holds an
exclusive `flock` from its first event until its fate is decided (archived after the
record reached the store, or left pending for replay), which is how recovery tells a
running call from a dead one: the kernel drops the lock when the process dies, whatever
killed it.

A journal is always in a known `state`: `written` (every event is in the file), `partial`
(the first `written` events are, then the disk refused one) or `unwritten` (it could not
be created). One that cannot be kept logs loudly once, naming the call and what is at risk,
and keeps the call going; the events the file lacks stay in memory, so the end of the call
can still write a whole journal elsewhere (`rescue`) when the store cannot take the record.
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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger("conversation_manager.journal")

Event = dict[str, Any]
JournalState = Literal["written", "partial", "unwritten"]
PENDING = "pending"
ARCHIVE = "archive"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def journal_name(conversation_id: str) -> str:
    return f"{_UNSAFE.sub('_', conversation_id)[:180]}.jsonl"


def journal_path(directory: Path, conversation_id: str) -> Path:
    return directory / PENDING / journal_name(conversation_id)


def encode(event: Event) -> bytes:
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        return (text + "\n").encode()
    except UnicodeEncodeError:  # a lone surrogate (from JSON tool arguments): escaped, it reads back the same
        return (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    rest = memoryview(data)
    while rest:  # a short write (the disk filling up): the next write says why
        written = os.write(fd, rest)
        if written == 0:
            raise OSError(f"wrote nothing of {len(rest)} bytes")
        rest = rest[written:]


def _lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


class Journal:
    def __init__(self, path: Path, *, conversation_id: str = "", fsync_interval: float = 0.5) -> None:
        self.path = path
        self.conversation_id = conversation_id or path.stem
        self._fsync_interval = fsync_interval
        self._fd: int | None = None
        """Open from creation to release: it holds the lock, even after a write failed."""
        self._dirty = False
        self._sync_task: asyncio.Task[None] | None = None
        self.failed: str | None = None
        self.written = 0
        """Events wholly in the file."""
        self._unwritten: list[Event] = []
        """Events after a failure: what the file lacks, kept for `rescue`."""
        self._owned = False
        """The file at `path` is this call's (created and locked here): only then is it moved or removed."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            _lock(self._fd)
            self._owned = True
        except OSError as e:
            self._release_fd()
            self._fail(f"cannot open journal {path}: {e}")

    @property
    def writable(self) -> bool:
        return self.failed is None and self._fd is not None

    @property
    def state(self) -> JournalState:
        if self.failed is None:
            return "written"
        return "partial" if self.written else "unwritten"

    @property
    def at_risk(self) -> str:
        """What a crash would lose now, in words for an operator."""
        if self.failed is None:
            return "nothing"
        lost = len(self._unwritten)
        return f"{lost} event{'s' if lost != 1 else ''} after the first {self.written} are in memory only"

    def _fail(self, reason: str) -> None:
        logger.error(
            "JOURNAL UNAVAILABLE for conversation %s after %d events, the call continues but a crash before "
            "the end-of-call write would lose everything it adds from now on: %s",
            self.conversation_id,
            self.written,
            reason,
            extra={"conversation_id": self.conversation_id},
        )
        self.failed = reason

    def append(self, event: Event) -> None:
        """Write one event through to the OS now (no disk wait). Never raises."""
        if self.failed is not None or self._fd is None:
            self._unwritten.append(event)
            return
        try:
            _write_all(self._fd, encode(event))
        except OSError as e:
            self._unwritten.append(event)
            self._fail(f"cannot append to {self.path}: {e}")
            return
        self.written += 1
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
        if fd is None or not self._dirty or self.failed is not None:
            return
        self._dirty = False
        try:
            await asyncio.to_thread(os.fsync, fd)
        except OSError as e:
            self._fail(f"cannot fsync {self.path}: {e}")

    async def seal(self) -> None:
        """The last event is in: make the file durable. The lock stays until `archive` or `release`."""
        if self._sync_task is not None:
            self._sync_task.cancel()
            self._sync_task = None
        await self.sync()

    async def close(self) -> None:
        """Seal and release, leaving the journal pending."""
        await self.seal()
        self.release()

    def _release_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # also releases the flock
            self._fd = None

    def release(self) -> None:
        """Give up the lock; the journal (if any) stays pending for replay. Idempotent."""
        if self._sync_task is not None:
            self._sync_task.cancel()
            self._sync_task = None
        self._release_fd()

    def archive(self) -> Path | None:
        """The record reached the store: move the journal out of `pending/` (kept for the retention
        period), then release it. A journal that failed part-way is archived too (the store has
        the whole record); one that was never created has nothing to move."""
        try:
            if not self._owned or not self.path.exists():
                return None
            return archive(self.path)
        finally:
            self.release()

    def rescue(self, directories: Sequence[Path]) -> Path | None:
        """Write the whole journal (the file's events and those only in memory) into the first
        of `directories` that takes it, locked, and make it this journal: state `written`.

        Called when the store could not take the record and the file is not whole. The file
        goes in under a temporary name and is renamed into place, so a replay never sees half
        of it; the old partial file is removed once the whole one exists."""
        if self.failed is None:
            return self.path
        events = self._events_on_disk() + self._unwritten
        name = journal_name(self.conversation_id)
        for directory in directories:
            target = directory / PENDING / name
            if target == self.path and not self._owned:
                continue  # another process holds a journal of this id: never write over it
            fd = _write_whole(target, events)
            if fd is None:
                continue
            old, owned_old = self.path, self._owned
            self.release()
            self._fd, self.path, self.failed, self.written, self._unwritten = fd, target, None, len(events), []
            self._owned = True
            if old != target and owned_old:
                with contextlib.suppress(OSError):
                    old.unlink()
            logger.warning(
                "journal of conversation %s rescued whole (%d events) to %s",
                self.conversation_id,
                len(events),
                target,
                extra={"conversation_id": self.conversation_id},
            )
            return target
        return None

    def _events_on_disk(self) -> list[Event]:
        if self.written == 0:
            return []
        try:
            return read_events(self.path)[: self.written]
        except OSError:
            return []


def _write_whole(target: Path, events: list[Event]) -> int | None:
    """`events` as a complete journal at `target`, fsynced and locked; the locked fd, or None."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd: int | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        _lock(fd)
        _write_all(fd, b"".join(encode(e) for e in events))
        os.fsync(fd)
        os.replace(temporary, target)
        return fd
    except OSError as e:
        logger.warning("cannot write a whole journal to %s: %s", target, e)
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            temporary.unlink()
        return None


def archive(path: Path) -> Path | None:
    target = path.parent.parent / ARCHIVE / path.name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        return target
    except OSError as e:
        logger.warning(
            "cannot archive journal %s (it stays pending; replay will find its record already stored): %s", path, e
        )
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
        _lock(fd)
        # The call may have archived (renamed) it between our open and our lock.
        still_there = os.fstat(fd).st_ino == os.stat(path).st_ino
    except OSError:  # BlockingIOError: locked by its live call; FileNotFoundError: archived meanwhile
        os.close(fd)
        yield False
        return
    if not still_there:
        os.close(fd)
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def pending_journals(*directories: Path) -> list[Path]:
    return sorted(p for d in dict.fromkeys(directories) for p in (d / PENDING).glob("*.jsonl"))


def prune_archive(directory: Path, retention_days: float, *, now: float | None = None) -> int:
    cutoff = (now or time.time()) - retention_days * 86400
    removed = 0
    for path in (directory / ARCHIVE).glob("*.jsonl"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed
