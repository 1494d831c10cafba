"""The store failing at every moment of a call: nothing lost, nothing duplicated, no call stalled.

Runs against the real local Supabase stack (PostgREST stopped, paused, answering 5xx;
PostgreSQL stopped behind PostgREST), real text-mode AgentSessions with the record
attached, a journal directory the kernel refuses to write (read-only mount or no
permission) or a disk that fills up mid-call (a 16 KiB tmpfs when root, else /dev/full),
and a real SIGKILL of a process holding live calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from livekit.agents import Agent, AgentSession, RunContext, function_tool

from conversation_manager import ConversationManager, replay_pending
from conversation_manager.journal import journal_path, pending_journals
from conversation_manager.session_events import attach
from settings import Settings
from storage.supabase_records import SupabaseConversationStore
from testkit.local_supabase import Stack
from testkit.scripted_llm import Reply, ScriptedLLM, ToolCall, usage

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def stack(clean_db: Stack) -> Iterator[Stack]:
    """The stack, healthy again after the test whatever the test did to it."""
    yield clean_db
    if not clean_db.pgdata.joinpath("postmaster.pid").exists():
        clean_db.start_postgres()
        clean_db.stop_postgrest()  # a fresh PostgREST connects at once (no reconnect backoff)
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
async def test_store_unreachable_for_the_whole_call(
    stack: Stack, store: SupabaseConversationStore, tmp_path: Path
) -> None:
    unreachable = await SupabaseConversationStore.connect("http://127.0.0.1:9", stack.service_key, timeout=1.0)
    manager = ConversationManager.from_settings(unreachable, Settings(), journal_dir=tmp_path, flush_timeout=2.0)
    cid = await a_call(manager)
    result = await manager.end_conversation()
    await unreachable.aclose()
    assert not result.saved and "ConnectError" in (result.error or "")
    assert len(pending_journals(tmp_path)) == 1
    await replay_twice_writes_once(store, stack, tmp_path, cid)


@pytest.mark.asyncio
async def test_postgrest_down_during_the_call_then_back(
    stack: Stack, store: SupabaseConversationStore, tmp_path: Path
) -> None:
    manager = ConversationManager.from_settings(store, Settings(), journal_dir=tmp_path, flush_timeout=3.0)
    cid = await a_call(manager, turns=2)
    stack.stop_postgrest()
    for i in range(2, 6):
        manager.add_message_to_local_transcript("user" if i % 2 else "assistant", f"turn {i}")
    stack.start_postgrest()
    result = await manager.end_conversation()
    assert result.saved
    assert row_counts(stack, cid) == (1, 6, 1)


@pytest.mark.asyncio
async def test_sigkill_mid_call_recovers_every_call_as_abandoned(
    stack: Stack, store: SupabaseConversationStore, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "SUPABASE_URL": stack.url,
        "SUPABASE_SERVICE_ROLE_KEY": stack.service_key,
        "JOURNAL_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, str(ROOT / "testkit" / "crash_call.py"), "5", "40"]
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


# ------------------------------------------------------------------------- a live call while the store fails


WAIT = 15.0
"""A hang guard for one turn (the turns take milliseconds; a turn that waited on the store would hit it)."""


class FrontDesk(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You answer questions about the clinic.")

    async def on_enter(self) -> None:
        self.session.say("Hello, how can I help?")

    @function_tool
    async def opening_hours(self, context: RunContext, day: str) -> str:
        """Opening hours of the clinic on a day.

        Args:
            day: The day, e.g. "monday".
        """
        return f"{day}: 9:00 to 17:00"

    @function_tool
    async def to_billing(self, context: RunContext) -> Agent:
        """Hand the caller over to billing."""
        return Billing()


class Billing(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You handle billing questions.")


@dataclass
class LiveCall:
    session: AgentSession
    llm: ScriptedLLM
    turns: int = 0

    async def turn(self, *, with_tool: bool = False) -> None:
        """One caller turn; its reply proves the call went on."""
        n = self.turns
        self.turns += 1
        tool = [Reply(tool_calls=[ToolCall("opening_hours", {"day": f"day {n}"})], usage=usage(90, 5))]
        self.llm.push(*(tool if with_tool else []), Reply(f"Reply number {n}.", usage=usage(100, 6)))
        result = await asyncio.wait_for(self.session.run(user_input=f"Question number {n}"), WAIT)
        assert [e.item.text_content for e in result.events if e.type == "message"][-1] == f"Reply number {n}."

    async def handoff(self) -> None:
        self.llm.push(Reply(tool_calls=[ToolCall("to_billing", {})]))
        result = await asyncio.wait_for(self.session.run(user_input="Billing, please"), WAIT)
        result.expect.contains_agent_handoff(new_agent_type=Billing)


@asynccontextmanager
async def live_call(manager: ConversationManager) -> AsyncIterator[LiveCall]:
    scripted = ScriptedLLM()
    async with AgentSession(llm=scripted, vad=None, turn_handling={"turn_detection": None}) as session:
        attach(session, manager)
        await asyncio.wait_for(session.start(FrontDesk(), capture_run=True), WAIT)
        yield LiveCall(session, scripted)
    assert not scripted.errors, scripted.errors


async def a_live_call(call: LiveCall, turns: int = 4) -> None:
    for n in range(turns):
        await call.turn(with_tool=n % 2 == 0)


def stored_counts(stack: Stack, cid: str) -> dict[str, int]:
    tables = ("conversations", "messages", "tool_calls", "agent_runs")
    out = stack.psql(
        "select " + ", ".join(f"(select count(*) from {t} where conversation_id = '{cid}')" for t in tables)
    )
    return dict(zip(tables, (int(x) for x in out.strip().split("|")), strict=True))


def expected_counts(manager: ConversationManager) -> dict[str, int]:
    transcript = manager.transcript
    return {
        "conversations": 1,
        "messages": len(transcript.messages),
        "tool_calls": len(transcript.tool_calls),
        "agent_runs": len(transcript.agent_runs),
    }


async def until(check: Callable[[], bool]) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def replay_writes_exactly_once(
    store: SupabaseConversationStore, stack: Stack, journal: Path, manager: ConversationManager
) -> None:
    cid = manager.conversation_id
    first = await replay_pending(store, journal)
    assert first.replayed == [cid] and not first.failed and not first.abandoned, first
    expected = expected_counts(manager)
    assert stored_counts(stack, cid) == expected
    second = await replay_pending(store, journal)
    assert second.replayed == [] and pending_journals(journal) == []
    assert stored_counts(stack, cid) == expected
    status = stack.psql(f"select status, message_count from conversations where conversation_id = '{cid}'").strip()
    assert status == f"completed|{expected['messages']}"


FAULTS = {
    # fault: (when it starts, what end_conversation reports)
    "postgrest_stopped_before_the_call": ("before", "502"),
    "postgrest_stopped_during_the_call": ("during", "502"),
    "postgrest_stopped_at_the_end": ("end", "502"),
    "postgrest_hanging_at_the_end": ("end", "timed out"),
    "postgrest_hanging_throughout": ("before", "timed out"),
    "postgres_down_postgrest_answers_503": ("end", "PGRST"),
}


def break_store(stack: Stack, fault: str) -> None:
    if "hanging" in fault:
        stack.pause_postgrest()
    elif fault.startswith("postgres_down"):
        stack.stop_postgres()
    else:
        stack.stop_postgrest()


def mend_store(stack: Stack, fault: str) -> None:
    if "hanging" in fault:
        stack.resume_postgrest()  # requests frozen in it may commit now: replay must not duplicate them
    elif fault.startswith("postgres_down"):
        stack.start_postgres()
        stack.stop_postgrest()
        stack.start_postgrest()
    else:
        stack.start_postgrest()


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_live_call_goes_on_while_the_store_fails_and_replay_writes_it_once(
    fault: str, stack: Stack, store: SupabaseConversationStore, tmp_path: Path
) -> None:
    when, error = FAULTS[fault]
    manager = ConversationManager.from_settings(store, Settings(), journal_dir=tmp_path, flush_timeout=1.5)
    if when == "before":
        break_store(stack, fault)
    cid = await manager.start_conversation(None, "fault-room", "caller")
    async with live_call(manager) as call:
        await a_live_call(call, 2)
        if when == "during":
            await until(lambda: stored_counts(stack, cid)["conversations"] == 1)  # the active row landed first
            break_store(stack, fault)
        await a_live_call(call, 3)
        await call.handoff()
        await call.turn()
    if when == "end":
        await until(lambda: stored_counts(stack, cid)["conversations"] == 1)
        break_store(stack, fault)
    result = await manager.end_conversation()

    assert not result.saved and error in (result.error or ""), result
    assert [p.name for p in pending_journals(tmp_path)] == [manager.journal.path.name]  # type: ignore[union-attr]
    assert len(manager.transcript.messages) == 1 + 2 * 6 + 1 and len(manager.transcript.agent_runs) == 2
    mend_store(stack, fault)
    await replay_writes_exactly_once(store, stack, tmp_path, manager)


# ------------------------------------------------------------------------- the journal's disk fails


def mounted_tmpfs(path: Path, options: str) -> bool:
    """Mount a small tmpfs on `path` if this process may (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return mount.returncode == 0


@contextmanager
def unwritable_directory(path: Path) -> Iterator[tuple[Path, str]]:
    """A journal directory the kernel refuses, and the kernel's words for it: a read-only
    mount, else no write permission, else (root that may not mount) sysfs, which takes no
    new directories."""
    path.mkdir()
    if mounted_tmpfs(path, "ro,size=16k"):
        try:
            yield path, "Read-only file system"
        finally:
            subprocess.run(["umount", str(path)], check=True)
    elif os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path, "Permission denied"
        finally:
            path.chmod(0o755)
    else:
        refused = Path("/sys") / f"journal-{uuid.uuid4().hex}"
        try:
            refused.mkdir()
        except OSError as e:
            yield refused, e.strerror
        else:  # pragma: no cover - a writable sysfs would make this test meaningless
            refused.rmdir()
            pytest.fail("no way to make an unwritable directory here")


@contextmanager
def disk_that_fills_up(path: Path, cid: str) -> Iterator[tuple[Path, str]]:
    """A 16 KiB tmpfs the journal fills mid-call; else a journal file that is /dev/full,
    which refuses every write with ENOSPC (from the first event on)."""
    path.mkdir()
    if mounted_tmpfs(path, "size=16k"):
        try:
            yield path, "No space left on device"
        finally:
            subprocess.run(["umount", str(path)], check=True)
    else:
        journal_path(path, cid).parent.mkdir(parents=True)
        journal_path(path, cid).symlink_to("/dev/full")
        yield path, "No space left on device"


@pytest.mark.asyncio
@pytest.mark.parametrize("problem", ["directory_not_writable", "disk_full"])
async def test_a_failing_journal_is_loud_and_the_record_still_reaches_the_store(
    problem: str, stack: Stack, store: SupabaseConversationStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "journal"
    cid = f"disk-room-{uuid.uuid4().hex[:12]}"
    broken = unwritable_directory(journal) if problem == "directory_not_writable" else disk_that_fills_up(journal, cid)
    caplog.set_level(logging.WARNING)
    with broken as (journal, kernel_says):
        manager = ConversationManager.from_settings(store, Settings(), journal_dir=journal, flush_timeout=3.0)
        await manager.start_conversation(cid, "disk-room", "caller")
        async with live_call(manager) as call:
            await a_live_call(call, 12)  # about 40 journal lines: more than 16 KiB
            await call.handoff()
            await call.turn()
        result = await manager.end_conversation()
        assert manager.journal is not None and kernel_says in (manager.journal.failed or "")
        assert pending_journals(journal) == []
        archived = journal / "archive" / journal_path(journal, cid).name
        if problem == "disk_full" and not archived.is_symlink():
            assert 0 < archived.stat().st_size <= 16 * 1024, "events written before the disk filled up"

    assert result.saved, result
    assert stored_counts(stack, cid) == expected_counts(manager)
    assert stored_counts(stack, cid)["messages"] == 1 + 2 * 12 + 1 + 2
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "conversation_manager.journal"]
    assert len(loud) == 1 and "JOURNAL UNAVAILABLE" in loud[0].getMessage() and kernel_says in loud[0].getMessage()
