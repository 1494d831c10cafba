"""Property: whatever the order of partial writes, crashes and replays, the stored record ends
equal to the longest record that was ever available.

One call's events (made by a real `ConversationManager`) are the stream every version of its
record is a prefix of. Hypothesis draws a history: where the journal's disk filled up (the
journal holds a prefix), whether the worker died before the end-of-call write, how far that
write got (the real Supabase path cut after N requests at the network edge; SQLite writes
whole or not at all), whether archiving failed, whether a whole journal was rescued, and
some replays cut part-way, then one healthy replay (a worker starting). Then the rows are
compared with what the history made available.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversation_manager import ConversationManager, replay_pending
from conversation_manager.journal import Event, archive, encode, journal_path, read_events
from conversation_manager.transcript import CallTranscript
from settings import Settings
from storage.records import CallRecord, ConversationStore, StoreError
from storage.sqlite_records import SQLiteConversationStore
from testkit.faulty_http import FaultyTransport, after, faulty_store
from testkit.local_supabase import Stack


def a_record(store: ConversationStore, *, journal_dir: Path, **overrides: Any) -> ConversationManager:
    """The record of one call as deployed, with no rescue directory and no retries unless asked."""
    values: dict[str, Any] = {"rescue_dirs": (), "retry_timeout": 0.0, **overrides}
    return ConversationManager.from_settings(store, Settings(), journal_dir=journal_dir, **values)


CHUNK = 3
"""Rows per Supabase request here, so a cut can fall between the chunks of a short call."""


def a_call(turns: int) -> list[Event]:
    """The events of one whole call, as the live manager journals them (run for real)."""

    async def run() -> list[Event]:
        with tempfile.TemporaryDirectory() as tmp:
            store = await SQLiteConversationStore.open(Path(tmp) / "scratch.sqlite3")
            manager = a_record(store, journal_dir=Path(tmp))
            cid = await manager.start_conversation(None, "prop-room", "caller")
            manager.runs.open_run("ReceptionAgent")
            for i in range(turns):
                manager.add_message_to_local_transcript("user" if i % 2 else "assistant", f"turn {i}")
                manager.runs.session_usage(10 * (i + 1), 2 * (i + 1))
                if i % 3 == 2:
                    manager.add_tool_call("list_appointments", {}, f"A{i}")
                    manager.add_effect("booked")
            manager.runs.open_run("AppointmentsAgent")
            manager.add_message_to_local_transcript("assistant", "Bye.")
            assert (await manager.end_conversation()).saved
            await store.aclose()
            return read_events(Path(tmp) / "archive" / journal_path(Path(tmp), cid).name)

    return asyncio.run(run())


EVENTS = a_call(10)


def as_call(events: list[Event], cid: str) -> list[Event]:
    first = {**events[0], "conversation": {**events[0]["conversation"], "conversation_id": cid}}
    return [first, *events[1:]]


@dataclass(frozen=True)
class History:
    journal_upto: int
    """Events the journal holds (the disk filled up after them); all of them: it stayed whole."""
    crashed: bool
    """The worker died before its end-of-call write."""
    write_requests: int | None
    """How many requests of the end-of-call write got through; None: all of it."""
    archive_fails: bool
    rescued: bool
    """The write failed and the whole journal was written elsewhere (the rescue directory had room)."""
    cut_replays: tuple[int, ...]
    """Replays that got this many requests through, before the healthy one."""


def histories(total: int) -> st.SearchStrategy[History]:
    return st.builds(
        History,
        journal_upto=st.integers(1, total),
        crashed=st.booleans(),
        write_requests=st.none() | st.integers(0, 8),
        archive_fails=st.booleans(),
        rescued=st.booleans(),
        cut_replays=st.lists(st.integers(0, 8), max_size=3).map(tuple),
    )


def messages_of(events: list[Event]) -> list[str]:
    return [e["row"]["content"] for e in events if e["type"] == "message"]


async def write_cut(
    store: ConversationStore, transport: FaultyTransport | None, record: CallRecord, n: int | None
) -> bool:
    """Write `record` letting only `n` requests through (None: all); SQLite writes are one
    transaction, so any cut there is a write that did not happen."""
    if n is None:
        await store.write_call(record)
        return True
    if transport is None:
        return False
    transport.refuse = after(n, lambda request: request.method in ("POST", "PATCH"))
    try:
        await store.write_call(record)
        return True
    except StoreError:
        return False
    finally:
        transport.refuse = lambda request: False


def landed_messages(record: CallRecord, n: int | None, *, chunked: bool) -> int:
    """Messages a first write of `record` stored when `n` requests got through."""
    total = len(record.messages)
    if n is None:
        return total
    if not chunked:
        return 0
    run_requests = -(-len(record.agent_runs) // CHUNK)
    return max(0, min(total, (n - 1 - run_requests) * CHUNK))


async def live_out(history: History, store: ConversationStore, transport: FaultyTransport | None, home: Path) -> None:
    """Play the history, then check the stored record against what it made available."""
    cid = f"prop-{uuid.uuid4().hex[:10]}"
    events = as_call(EVENTS, cid)
    whole = CallTranscript.from_events(events).to_record()
    chunked = transport is not None
    pending = journal_path(home, cid)
    pending.parent.mkdir(parents=True, exist_ok=True)
    pending.write_bytes(b"".join(encode(e) for e in events[: history.journal_upto]))
    journal_holds = history.journal_upto

    row_claimed = False  # the whole record's row landed (it says how far the call got)
    memory_landed = 0
    saved = False
    if not history.crashed:
        saved = await write_cut(store, transport, whole, history.write_requests)
        row_claimed = saved or (chunked and (history.write_requests or 0) >= 1)
        memory_landed = landed_messages(whole, None if saved else history.write_requests, chunked=chunked)
        if saved and not history.archive_fails:
            archive(pending)
        elif not saved and history.rescued:
            pending.write_bytes(b"".join(encode(e) for e in events))
            journal_holds = len(events)

    for n in history.cut_replays:  # replays interrupted part-way: they must not move anything back
        if transport is not None:
            transport.refuse = after(n, lambda request: request.method in ("POST", "PATCH"))
        with contextlib.suppress(StoreError):
            await replay_pending(store, home)
        if transport is not None:
            transport.refuse = lambda request: False
    report = await replay_pending(store, home)
    assert not report.failed, report.failed

    detail = await store.get_conversation(cid)
    assert detail is not None
    journaled = events[:journal_holds]
    journal_whole = journal_holds == len(events)
    longest = max(len(messages_of(journaled)), memory_landed)
    assert [m["content"] for m in detail.messages] == messages_of(events)[:longest]
    c = detail.conversation
    if row_claimed or journal_whole:
        assert (c["status"], c["message_count"], c["record_events"]) == ("completed", len(whole.messages), len(events))
        assert c["record_complete"] is (journal_whole or saved)
    else:
        assert (c["status"], c["message_count"], c["record_events"]) == (
            "abandoned",
            len(messages_of(journaled)),
            journal_holds,
        )
        assert c["record_complete"] is True
    if c["record_complete"]:
        assert len(detail.messages) == c["message_count"] and len(detail.tool_calls) == len(
            [e for e in (events if c["record_events"] == len(events) else journaled) if e["type"] == "tool_call"]
        )


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories(len(EVENTS)))
def test_sqlite_ends_with_the_longest_record_ever_available(history: History) -> None:
    async def run() -> None:
        with scratch() as home:
            store = await SQLiteConversationStore.open(home / "records.sqlite3")
            try:
                await live_out(history, store, None, home / "journal")
            finally:
                await store.aclose()

    asyncio.run(run())


@pytest.fixture(scope="module")
def stack(supabase_stack: Stack) -> Stack:
    supabase_stack.truncate_public_tables()
    return supabase_stack


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories(len(EVENTS)))
def test_supabase_ends_with_the_longest_record_ever_available(stack: Stack, history: History) -> None:
    async def run() -> None:
        with scratch() as home:
            store, transport = await faulty_store(stack.url, stack.service_key, chunk_rows=CHUNK)
            try:
                await live_out(history, store, transport, home / "journal")
            finally:
                await store.aclose()

    asyncio.run(run())


def test_the_call_under_test_has_what_the_property_needs() -> None:
    kinds = [e["type"] for e in EVENTS]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("message") == 11
    assert "tool_call" in kinds and "agent_run" in kinds and "run_counts" in kinds
