"""When the call journal waits for the disk: `os.fsync` after appends (batched per interval) and
at close, never for nothing.

A SIGKILL loses nothing the OS already holds, so the crash tests cannot see a missing fsync
(only a power cut would): these tests watch the real `os.fsync` calls instead, through a
recorder that still calls through and notes which file, and how much of it, each one made durable.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conversation_manager import ConversationManager
from conversation_manager.journal import Journal, encode, journal_path, read_events
from settings import Settings
from storage.sqlite_records import SQLiteConversationStore

INTERVAL = 0.05
HANG_AFTER = 5.0
"""Seconds after which an fsync that should have run is reported missing (a hang guard, far
above any interval here, not a timing figure)."""
QUIET_INTERVALS = 6
"""Intervals waited to see that nothing more is synced (slowness can only hide an extra sync, never fake one)."""


@dataclass(frozen=True)
class Synced:
    inode: int
    size: int
    """Bytes the file held when fsync ran: what it made durable."""


class FsyncRecorder:
    def __init__(self, real: Callable[[int], None]) -> None:
        self._real = real
        self._lock = threading.Lock()
        self.calls: list[Synced] = []

    def __call__(self, fd: int) -> None:
        status = os.fstat(fd)
        self._real(fd)
        with self._lock:  # journals sync from worker threads
            self.calls.append(Synced(status.st_ino, status.st_size))

    def of(self, path: Path) -> list[int]:
        """The file sizes `path` was synced at, in order."""
        inode = path.stat().st_ino
        with self._lock:
            return [c.size for c in self.calls if c.inode == inode]

    async def until(self, path: Path, count: int) -> list[int]:
        try:
            async with asyncio.timeout(HANG_AFTER):
                while len(self.of(path)) < count:  # noqa: ASYNC110 (the syncs happen in threads)
                    await asyncio.sleep(0.005)
        except TimeoutError:
            raise AssertionError(f"{path.name} was synced {len(self.of(path))} times, expected {count}") from None
        return self.of(path)


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> FsyncRecorder:
    recorder = FsyncRecorder(os.fsync)
    monkeypatch.setattr(os, "fsync", recorder)
    return recorder


def size_of(*events: dict[str, object]) -> int:
    return sum(len(encode(e)) for e in events)


async def quiet_for_a_while() -> None:
    await asyncio.sleep(INTERVAL * QUIET_INTERVALS)


@pytest.mark.asyncio
async def test_appends_are_synced_once_per_interval_and_never_without_a_write(
    tmp_path: Path, fsyncs: FsyncRecorder
) -> None:
    path = tmp_path / "pending" / "call.jsonl"
    journal = Journal(path, fsync_interval=INTERVAL)
    first, second, third = {"type": "start"}, {"type": "message", "seq": 1}, {"type": "message", "seq": 2}
    journal.append(first)
    journal.append(second)
    assert fsyncs.of(path) == [], "an append writes through to the OS and does not wait for the disk"

    assert await fsyncs.until(path, 1) == [size_of(first, second)], "one sync covers the burst, with no close"
    await quiet_for_a_while()
    assert fsyncs.of(path) == [size_of(first, second)], "nothing written since: nothing synced"

    journal.append(third)
    assert await fsyncs.until(path, 2) == [size_of(first, second), size_of(first, second, third)]
    await quiet_for_a_while()
    assert len(fsyncs.of(path)) == 2

    await journal.close()
    assert len(fsyncs.of(path)) == 2, "close after a sync has nothing left to sync"
    assert read_events(path) == [first, second, third]


@pytest.mark.asyncio
async def test_close_syncs_what_the_interval_has_not_yet(tmp_path: Path, fsyncs: FsyncRecorder) -> None:
    path = tmp_path / "pending" / "call.jsonl"
    journal = Journal(path, fsync_interval=60.0)  # the timer cannot fire within the test
    event = {"type": "message", "seq": 1, "content": "مرحبا"}
    journal.append(event)
    await journal.close()
    assert fsyncs.of(path) == [size_of(event)]
    await quiet_for_a_while()
    assert fsyncs.of(path) == [size_of(event)], "the pending timer was cancelled by close"


def test_an_append_without_an_event_loop_is_synced_at_close(tmp_path: Path, fsyncs: FsyncRecorder) -> None:
    path = tmp_path / "pending" / "call.jsonl"
    journal = Journal(path, fsync_interval=INTERVAL)
    event = {"type": "start"}
    journal.append(event)  # no running loop: no timer, the final sync covers it
    asyncio.run(journal.close())
    assert fsyncs.of(path) == [size_of(event)]


@pytest.mark.asyncio
async def test_a_journal_with_nothing_written_is_never_synced(tmp_path: Path, fsyncs: FsyncRecorder) -> None:
    path = tmp_path / "pending" / "call.jsonl"
    journal = Journal(path, fsync_interval=INTERVAL)
    await quiet_for_a_while()
    await journal.close()
    assert path.exists() and fsyncs.of(path) == []


@pytest.mark.asyncio
async def test_a_live_call_journal_is_synced_before_the_call_ends(tmp_path: Path, fsyncs: FsyncRecorder) -> None:
    store = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    try:
        manager = ConversationManager.from_settings(store, Settings(), journal_dir=tmp_path / "journal")
        cid = await manager.start_conversation(None, "room-1", "caller")
        path = journal_path(tmp_path / "journal", cid)
        manager.add_message_to_local_transcript("user", "I need to move my appointment")
        [synced] = await fsyncs.until(path, 1)
        assert synced == path.stat().st_size, "the start and the message are durable while the call goes on"
        await manager.end_conversation()
    finally:
        await store.aclose()
