"""The store failing at every moment of a call: nothing lost, nothing duplicated, no call stalled.

Runs against the real local Supabase stack (PostgREST stopped, paused, answering 5xx)
and a real SIGKILL of a process holding live calls.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from conversation_manager import ConversationManager, replay_pending
from conversation_manager.journal import pending_journals
from scripts.local_supabase import Stack
from storage.supabase_records import SupabaseConversationStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def stack(clean_db: Stack) -> Iterator[Stack]:
    """The stack, healthy again after the test whatever the test did to it."""
    yield clean_db
    clean_db.resume_postgrest()
    if not clean_db.postgrest_ready():
        clean_db.start_postgrest()


@pytest_asyncio.fixture
async def store(stack: Stack) -> AsyncIterator[SupabaseConversationStore]:
    opened = await SupabaseConversationStore.connect(stack.url, stack.service_key, timeout=5.0)
    yield opened
    await opened.aclose()


def row_counts(stack: Stack, cid: str) -> tuple[int, int, int]:
    out = stack.psql(
        f"select (select count(*) from conversations where conversation_id = '{cid}'),"
        f" (select count(*) from messages where conversation_id = '{cid}'),"
        f" (select count(*) from tool_calls where conversation_id = '{cid}')"
    )
    a, b, c = (int(x) for x in out.strip().split("|"))
    return a, b, c


async def a_call(manager: ConversationManager, turns: int = 6) -> str:
    cid = await manager.start_conversation(None, "fault-room", "caller")
    for i in range(turns):
        manager.add_message_to_local_transcript("user" if i % 2 else "assistant", f"turn {i}")
    manager.add_tool_call("list_appointments", {}, "A1: Monday 10:00")
    return cid


async def replay_twice_writes_once(store: SupabaseConversationStore, stack: Stack, journal: Path, cid: str) -> None:
    first = await replay_pending(store, journal)
    assert first.replayed == [cid] and not first.failed
    second = await replay_pending(store, journal)
    assert second.replayed == [] and pending_journals(journal) == []
    assert row_counts(stack, cid) == (1, 6, 1)


@pytest.mark.asyncio
async def test_store_unreachable_for_the_whole_call(stack: Stack, store: SupabaseConversationStore,
                                                   tmp_path: Path) -> None:
    unreachable = await SupabaseConversationStore.connect("http://127.0.0.1:9", stack.service_key, timeout=1.0)
    manager = ConversationManager(unreachable, journal_dir=tmp_path, flush_timeout=2.0)
    cid = await a_call(manager)
    result = await manager.end_conversation()
    await unreachable.aclose()
    assert not result.saved and "ConnectError" in (result.error or "")
    assert len(pending_journals(tmp_path)) == 1
    await replay_twice_writes_once(store, stack, tmp_path, cid)


@pytest.mark.asyncio
async def test_postgrest_down_during_the_call_then_back(stack: Stack, store: SupabaseConversationStore,
                                                       tmp_path: Path) -> None:
    manager = ConversationManager(store, journal_dir=tmp_path, flush_timeout=3.0)
    cid = await a_call(manager, turns=2)
    stack.stop_postgrest()
    for i in range(2, 6):
        manager.add_message_to_local_transcript("user" if i % 2 else "assistant", f"turn {i}")
    stack.start_postgrest()
    result = await manager.end_conversation()
    assert result.saved
    assert row_counts(stack, cid) == (1, 6, 1)


@pytest.mark.asyncio
async def test_gateway_answers_5xx_at_the_end(stack: Stack, store: SupabaseConversationStore, tmp_path: Path) -> None:
    manager = ConversationManager(store, journal_dir=tmp_path, flush_timeout=3.0)
    cid = await a_call(manager)
    stack.stop_postgrest()  # nginx stays up and answers 502
    result = await manager.end_conversation()
    assert not result.saved and "502" in (result.error or "")
    stack.start_postgrest()
    await replay_twice_writes_once(store, stack, tmp_path, cid)


@pytest.mark.asyncio
async def test_postgrest_hanging_at_the_end_gives_up_within_budget(stack: Stack, store: SupabaseConversationStore,
                                                                   tmp_path: Path) -> None:
    manager = ConversationManager(store, journal_dir=tmp_path, flush_timeout=1.0)
    cid = await a_call(manager)
    await asyncio.sleep(0.2)  # let the background active-row write land before the hang
    stack.pause_postgrest()
    result = await manager.end_conversation()
    assert not result.saved and "timed out" in (result.error or "")
    stack.resume_postgrest()
    # The abandoned request may still commit after the resume; replay must not duplicate it.
    await replay_twice_writes_once(store, stack, tmp_path, cid)


@pytest.mark.asyncio
async def test_sigkill_mid_call_recovers_every_call_as_abandoned(stack: Stack, store: SupabaseConversationStore,
                                                                  tmp_path: Path) -> None:
    env = {**os.environ, "SUPABASE_URL": stack.url, "SUPABASE_SERVICE_ROLE_KEY": stack.service_key,
           "JOURNAL_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "tests" / "crash_call.py"), "5", "40"]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, cwd=ROOT, text=True)  # noqa: ASYNC220
    try:
        assert worker.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(worker.stdout.readline), 60)
        assert line.startswith("READY "), line
        ids = line.split()[1:]
        # While the worker lives its journals are locked: replay leaves them alone.
        live = await replay_pending(store, tmp_path)
        assert sorted(live.live) and not live.replayed
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    report = await replay_pending(store, tmp_path)
    assert sorted(report.abandoned) == sorted(ids) and not report.failed
    for cid in ids:
        detail = await store.get_conversation(cid)
        assert detail is not None
        assert detail.conversation["status"] == "abandoned"
        assert detail.conversation["message_count"] == 40
        assert [m["content"] for m in detail.messages] == [f"turn {n} of {cid}" for n in range(40)]
