"""A record is never moved backwards, never lost silently, and says how the call ended.

Each test is a defect found on the earlier code, reproduced with the faults that cause it:
small tmpfs volumes that fill up or run out of inodes (mounted here as root), read-only
mounts, the real Supabase path cut or held at the network edge (testkit/faulty_http.py),
an LLM endpoint nobody answers. Rows are checked in both stores where they are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from livekit.agents import Agent, AgentSession, APIConnectionError, APIConnectOptions
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.plugins import openai

from conversation_manager import ConversationManager, replay_pending
from conversation_manager.cli import run as cli_run
from conversation_manager.journal import journal_path, pending_journals, read_events
from conversation_manager.journal_volume import filesystem_of, volatile_journal_warning
from conversation_manager.session_events import attach
from conversation_manager.transcript import CallTranscript
from settings import Settings
from storage.records import ConversationStore, RecordState
from storage.sqlite_records import SQLiteConversationStore
from storage.supabase_records import SupabaseConversationStore
from testkit.faulty_http import after, faulty_store, writes_to
from testkit.local_supabase import Stack
from testkit.record_stores import BACKENDS, open_store


def a_record(store: ConversationStore, *, journal_dir: Path, **overrides: Any) -> ConversationManager:
    """The record of one call as deployed, with no rescue directory and no retries unless asked."""
    values: dict[str, Any] = {"rescue_dirs": (), "retry_timeout": 0.0, **overrides}
    return ConversationManager.from_settings(store, Settings(), journal_dir=journal_dir, **values)


UNREACHABLE = "http://127.0.0.1:9"


def mount_tmpfs(path: Path, options: str) -> None:
    """A small tmpfs at `path` (these tests run as root, like CI's container; they fail, never
    skip, where the failing volumes cannot be built)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.fail("these tests build failing volumes with mount(8): run them as root (as scripts/test.sh in CI)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, f"cannot mount a tmpfs (run as root): {done.stderr}"


@contextmanager
def volume(path: Path, options: str) -> Iterator[Path]:
    mount_tmpfs(path, options)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest_asyncio.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConversationStore]:
    stack: Stack | None = request.getfixturevalue("clean_db") if request.param == "supabase" else None
    opened = await open_store(request.param, tmp_path=tmp_path, stack=stack)
    yield opened
    await opened.aclose()


async def talk(manager: ConversationManager, turns: int, *, first: int = 0) -> None:
    for i in range(first, first + turns):
        manager.add_message_to_local_transcript("user" if i % 2 else "assistant", f"turn {i} " + "x" * 120)
        if i % 10 == 9:
            manager.add_tool_call("list_appointments", {}, f"A{i}: Monday 10:00")


async def stored(store: ConversationStore, cid: str) -> tuple[str, int, int, bool]:
    detail = await store.get_conversation(cid)
    assert detail is not None
    c = detail.conversation
    return c["status"], c["message_count"], len(detail.messages), bool(c["record_complete"])


# ------------------------------------------------------------------------- 1. replay never downgrades


@pytest.mark.asyncio
async def test_archive_failing_on_a_full_disk_then_replay_never_downgrades_the_saved_call(
    store: ConversationStore, tmp_path: Path
) -> None:
    """The journal's volume fills mid-call (16 KiB) and has no inode left for `archive/`: the
    end-of-call write succeeds from memory, the partial journal stays pending. Replayed after
    space is freed, it must not turn the saved call into an `abandoned` one with half the turns."""
    with volume(tmp_path / "journal", "size=16k,nr_inodes=4") as journal:
        (journal / "filler").write_bytes(b"\0" * 2048)  # the other tenant of the volume
        manager = a_record(store, journal_dir=journal)
        cid = await manager.start_conversation(None, "full-room", "caller")
        await talk(manager, 400)
        assert manager.journal is not None and manager.journal.state == "partial"
        result = await manager.end_conversation()
        assert result.saved and result.messages_saved == 400
        assert [p.name for p in pending_journals(journal)] == [journal_path(journal, cid).name], "archive failed"
        (journal / "filler").unlink()

        report = await replay_pending(store, journal)
        assert report.superseded == [cid] and not report.replayed and not report.failed
        assert pending_journals(journal) == []
    assert await stored(store, cid) == ("completed", 400, 400, True)


@pytest.mark.asyncio
async def test_a_behind_record_never_overwrites_a_further_one(store: ConversationStore, tmp_path: Path) -> None:
    """The rule holds in the store for every writer, not only in replay: a prefix of the call
    written after the whole call changes nothing, and adds no message it did not have."""
    manager = a_record(store, journal_dir=tmp_path / "j")
    cid = await manager.start_conversation(None, "room", "caller")
    await talk(manager, 6)
    prefix_events = manager.transcript.events
    await talk(manager, 6, first=6)
    assert (await manager.end_conversation()).saved
    whole = await store.get_conversation(cid)
    archived = tmp_path / "j" / "archive" / journal_path(tmp_path, cid).name
    prefix = CallTranscript.from_events(read_events(archived)[:prefix_events]).to_record()
    assert prefix.conversation["status"] == "abandoned" and len(prefix.messages) == 6
    await store.write_call(prefix)
    after_write = await store.get_conversation(cid)
    assert whole is not None and after_write is not None
    assert after_write.conversation["status"] == "completed" and after_write.conversation["message_count"] == 12
    assert [m["content"] for m in after_write.messages] == [m["content"] for m in whole.messages]
    assert after_write.agent_runs == whole.agent_runs


# ------------------------------------------------------------------------- 2. a journal that cannot be kept


@pytest.mark.asyncio
async def test_unwritable_journal_and_a_cut_write_are_loud_and_leave_an_incomplete_mark(
    clean_db: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Journal directory (and the rescue directory) read-only; the end-of-call write is cut
    after the conversation row. Nothing may claim a journal was kept; the error names the
    call and what is lost; the row says it is incomplete, and the CLI shows it."""
    store, transport = await faulty_store(clean_db.url, clean_db.service_key, chunk_rows=50)
    transport.refuse = writes_to("messages")
    caplog.set_level(logging.INFO)
    with volume(tmp_path / "ro", "ro,size=16k") as ro, volume(tmp_path / "ro2", "ro,size=16k") as ro2:
        manager = a_record(store, journal_dir=ro, rescue_dirs=[ro2], retry_timeout=0.6)
        cid = await manager.start_conversation(None, "ro-room", "caller")
        await talk(manager, 120)
        result = await manager.end_conversation()
        assert manager.journal is not None and manager.journal.state == "unwritten"
        assert pending_journals(ro, ro2) == []
    await store.aclose()
    assert not result.saved and transport.refused >= 2, "the first write and its retries were refused"

    lines = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in lines if "journal kept for replay" in r.getMessage()]
    at_risk = [r for r in lines if "RECORD AT RISK" in r.getMessage()]
    assert len(at_risk) == 1 and cid in at_risk[0].getMessage() and "120 messages" in at_risk[0].getMessage()
    assert getattr(at_risk[0], "conversation_id", None) == cid
    assert [r for r in lines if "RECORD LOST" in r.getMessage()]

    reader = await SupabaseConversationStore.connect(clean_db.url, clean_db.service_key, timeout=5.0)
    detail = await reader.get_conversation(cid)
    await reader.aclose()
    assert detail is not None and detail.conversation["record_complete"] is False
    assert "could not save" in detail.conversation["metadata"]["record_at_risk"]
    assert detail.conversation["status"] == "completed" and detail.messages == []


@pytest.mark.asyncio
async def test_a_cut_write_is_marked_incomplete_until_the_replay_completes_it(
    clean_db: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write lands its conversation row and first chunk, then the network drops: until the
    replay, the row must not read as a whole `completed` call."""
    store, transport = await faulty_store(clean_db.url, clean_db.service_key, chunk_rows=50)
    transport.refuse = after(1, writes_to("messages"))
    manager = a_record(store, journal_dir=tmp_path)
    cid = await manager.start_conversation(None, "cut-room", "caller")
    await talk(manager, 120)
    result = await manager.end_conversation()
    await store.aclose()
    assert not result.saved

    monkeypatch.setenv("SUPABASE_URL", clean_db.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", clean_db.service_key)
    monkeypatch.setenv("JOURNAL_DIR", str(tmp_path))
    monkeypatch.setenv("JOURNAL_FALLBACK_DIR", str(tmp_path / "fallback"))
    reader = await SupabaseConversationStore.connect(clean_db.url, clean_db.service_key, timeout=5.0)
    try:
        assert await stored(reader, cid) == ("completed", 120, 50, False)
        assert "RECORD INCOMPLETE" in await cli(["show", cid])
        assert "completed INCOMPLETE" in await cli(["list"])

        assert "replayed 1" in await cli(["replay"])
        assert await stored(reader, cid) == ("completed", 120, 120, True)
        assert "RECORD INCOMPLETE" not in await cli(["show", cid])
    finally:
        await reader.aclose()


async def cli(argv: list[str]) -> str:
    out = io.StringIO()
    assert await cli_run(argv, out) == 0
    return out.getvalue()


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_full_disk_and_a_store_down_rescue_the_whole_journal_elsewhere(
    backend: str, clean_db: Stack, tmp_path: Path
) -> None:
    """The journal's disk fills mid-call and the store is down at the end: the whole record
    (not the partial file) must survive for replay, in the rescue directory."""
    unreachable = await SupabaseConversationStore.connect(UNREACHABLE, clean_db.service_key, timeout=1.0)
    fallback = tmp_path / "fallback"
    with volume(tmp_path / "journal", "size=16k") as journal:
        manager = a_record(unreachable, journal_dir=journal, rescue_dirs=[fallback], flush_timeout=1.0)
        cid = await manager.start_conversation(None, "rescue-room", "caller")
        await talk(manager, 300)
        assert manager.journal is not None and manager.journal.state == "partial"
        result = await manager.end_conversation()
        await unreachable.aclose()
        assert not result.saved and manager.journal.state == "written"
        assert pending_journals(journal) == [], "the partial file gives way to the whole one"
        assert [p.parent.parent for p in pending_journals(fallback)] == [fallback]

    store = await open_store(backend, tmp_path=tmp_path, stack=clean_db)
    try:
        report = await replay_pending(store, tmp_path / "journal", also=(fallback,))
        assert report.replayed == [cid] and not report.abandoned
        assert await stored(store, cid) == ("completed", 300, 300, True)
    finally:
        await store.aclose()


@pytest.mark.asyncio
async def test_a_store_back_within_the_retry_window_saves_a_record_without_journal(
    clean_db: Stack, tmp_path: Path
) -> None:
    store, transport = await faulty_store(clean_db.url, clean_db.service_key)
    transport.refuse = after(0, writes_to("conversations"))
    with volume(tmp_path / "ro", "ro,size=16k") as ro:
        manager = a_record(store, journal_dir=ro, retry_timeout=20.0)
        cid = await manager.start_conversation(None, "retry-room", "caller")
        await talk(manager, 20)

        async def heal() -> None:
            await asyncio.sleep(0.6)
            transport.refuse = lambda request: False

        healing = asyncio.ensure_future(heal())
        result = await manager.end_conversation()
        await healing
    try:
        assert result.saved and result.messages_saved == 20
        assert await stored(store, cid) == ("completed", 20, 20, True)
    finally:
        await store.aclose()


# ------------------------------------------------------------------------- 3. the lock until the fate is decided


@pytest.mark.asyncio
async def test_a_replay_during_the_final_write_leaves_the_journal_to_its_call(
    clean_db: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, transport = await faulty_store(clean_db.url, clean_db.service_key)
    transport.hold = writes_to("messages")
    manager = a_record(store, journal_dir=tmp_path, flush_timeout=20.0)
    cid = await manager.start_conversation(None, "lock-room", "caller")
    await talk(manager, 10)
    caplog.set_level(logging.WARNING)
    ending = asyncio.ensure_future(manager.end_conversation())
    await asyncio.wait_for(transport.holding.wait(), 10)  # the final write is in flight

    other = await SupabaseConversationStore.connect(clean_db.url, clean_db.service_key, timeout=5.0)
    report = await replay_pending(other, tmp_path)
    assert report.live == [journal_path(tmp_path, cid).name] and not report.replayed
    transport.release()
    result = await asyncio.wait_for(ending, 20)
    assert result.saved and pending_journals(tmp_path) == []
    assert not [r for r in caplog.records if "cannot archive" in r.getMessage()]
    assert await stored(other, cid) == ("completed", 10, 10, True)
    await other.aclose()
    await store.aclose()


# ------------------------------------------------------------------------- 4. a call that failed says so


class Silent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a clinic receptionist.")


@pytest.mark.asyncio
async def test_an_unreachable_llm_is_stored_as_failed_and_counted(store: ConversationStore, tmp_path: Path) -> None:
    manager = a_record(store, journal_dir=tmp_path / "journal")
    cid = await manager.start_conversation(None, "llm-room", "caller")
    model = openai.LLM(model="gpt-test", base_url=f"{UNREACHABLE}/v1", api_key="test-key")
    fast_fail = SessionConnectOptions(llm_conn_options=APIConnectOptions(max_retry=0, retry_interval=0.0, timeout=2.0))
    async with AgentSession(llm=model, vad=None, turn_handling={"turn_detection": None}, conn_options=fast_fail) as s:
        attach(s, manager)
        await asyncio.wait_for(s.start(Silent()), 15)
        with pytest.raises(APIConnectionError):
            await asyncio.wait_for(s.run(user_input="I need an appointment"), 15)
    await model.aclose()
    result = await manager.end_conversation()
    assert result.saved and result.status == "failed"
    detail = await store.get_conversation(cid)
    assert detail is not None and detail.conversation["status"] == "failed"
    failure = detail.conversation["metadata"]["failure"]
    assert failure["kind"] == "llm_error" and failure["error"] == "APIConnectionError" and failure["caller_unserved"]
    assert {s.status: s.count for s in await store.stats_by_status()} == {"failed": 1}
    assert (await store.report(days=1)).volume[0]["failed"] == 1


@pytest.mark.asyncio
async def test_a_session_closed_on_an_llm_error_is_failed_with_the_session_closed(tmp_path: Path) -> None:
    store = await open_store("sqlite", tmp_path=tmp_path, stack=None)
    manager = a_record(store, journal_dir=tmp_path / "journal")
    cid = await manager.start_conversation(None, "llm-room", "caller")
    model = openai.LLM(model="gpt-test", base_url=f"{UNREACHABLE}/v1", api_key="test-key")
    closing = SessionConnectOptions(
        llm_conn_options=APIConnectOptions(max_retry=0, retry_interval=0.0, timeout=2.0), max_unrecoverable_errors=0
    )
    closed = asyncio.Event()
    async with AgentSession(llm=model, vad=None, turn_handling={"turn_detection": None}, conn_options=closing) as s:
        attach(s, manager)
        s.on("close", lambda ev: closed.set())
        await asyncio.wait_for(s.start(Silent()), 15)
        with contextlib.suppress(APIConnectionError):  # the run ends with the session, or with the error
            await asyncio.wait_for(s.run(user_input="Hello?"), 15)
        await asyncio.wait_for(closed.wait(), 15)
    await model.aclose()
    result = await manager.end_conversation()
    detail = await store.get_conversation(cid)
    await store.aclose()
    assert result.status == "failed" and detail is not None
    failure = detail.conversation["metadata"]["failure"]
    assert failure["session_closed"] is True and failure["kind"] == "llm_error"


@pytest.mark.asyncio
async def test_a_failure_the_call_recovered_from_is_kept_but_the_call_completes(tmp_path: Path) -> None:
    store = await open_store("sqlite", tmp_path=tmp_path, stack=None)
    manager = a_record(store, journal_dir=tmp_path / "journal")
    cid = await manager.start_conversation(None, "llm-room", "caller")
    manager.add_message_to_local_transcript("user", "hello")
    manager.note_failure("tts_error", "APITimeoutError")
    manager.add_message_to_local_transcript("assistant", "Sorry, how can I help?")
    result = await manager.end_conversation()
    detail = await store.get_conversation(cid)
    await store.aclose()
    assert result.status == "completed" and detail is not None
    assert detail.conversation["metadata"]["failure"]["caller_unserved"] is False


# ------------------------------------------------------------------------- 7. where journals live


def test_a_journal_dir_on_tmpfs_is_warned_about(tmp_path: Path) -> None:
    with volume(tmp_path / "ram", "size=16k") as ram:
        assert filesystem_of(ram / "journal") == "tmpfs"  # not created yet: its parent's filesystem
        warning = volatile_journal_warning(ram / "journal")
        assert warning is not None and "tmpfs" in warning and "StatefulSet" in warning


def test_the_journal_volume_is_read_from_the_mount_table(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\nshm /srv/j\\040k tmpfs rw 0 0\n")
    assert filesystem_of(Path("/srv/j k/journal"), mounts) == "tmpfs"
    assert filesystem_of(Path("/srv/journal"), mounts) == "ext4"
    assert volatile_journal_warning(Path("/run/agent/journal"), mounts) is not None
    assert volatile_journal_warning(Path("/var/lib/agent/journal"), mounts) is None


@pytest.mark.asyncio
async def test_an_embedded_file_from_before_0006_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    schema = Path(__file__).resolve().parent.parent / "storage" / "sqlite_schema.sql"
    before = "\n".join(
        line.replace("(strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),", "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))")
        for line in schema.read_text().split("-- sql/migrations/0006")[0].splitlines()
        if "record_events" not in line and "record_complete" not in line
    )
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(before)
        db.execute(
            "insert into conversations (conversation_id, room_name, status, started_at, message_count) "
            "values ('old-call', 'room', 'completed', '2026-01-01T00:00:00+00:00', 4)"
        )
        db.commit()
    store = await SQLiteConversationStore.open(path)
    try:
        assert await store.record_state("old-call") == RecordState(0, True, "completed", 4)
        manager = a_record(store, journal_dir=tmp_path / "journal")
        await manager.start_conversation("old-call", "room", "caller")
        manager.add_message_to_local_transcript("user", "hello")
        await manager.journal.seal()  # type: ignore[union-attr]
        manager.journal.release()  # type: ignore[union-attr]  # the worker died here
        report = await replay_pending(store, tmp_path / "journal")
        assert report.superseded == ["old-call"], "an abandoned prefix never replaces a completed call"
    finally:
        await store.aclose()


@pytest.mark.asyncio
async def test_a_journal_locked_by_another_call_is_never_moved_or_overwritten(tmp_path: Path) -> None:
    """A second manager given the same conversation id (a misconfigured caller of the API) cannot
    take the first call's journal: its own journal is `unwritten`, and its end leaves the first
    call's file where it is, untouched."""
    store = await open_store("sqlite", tmp_path=tmp_path, stack=None)
    first = a_record(store, journal_dir=tmp_path / "journal")
    await first.start_conversation("same-id", "room", "caller")
    first.add_message_to_local_transcript("user", "the first call")
    second = a_record(store, journal_dir=tmp_path / "journal", rescue_dirs=())
    await second.start_conversation("same-id", "room", "caller")
    assert second.journal is not None and second.journal.state == "unwritten"
    await second.end_conversation()
    assert [p.name for p in pending_journals(tmp_path / "journal")] == ["same-id.jsonl"]
    assert [e["type"] for e in read_events(journal_path(tmp_path / "journal", "same-id"))] == ["start", "message"]
    await first.end_conversation()
    await store.aclose()
    assert pending_journals(tmp_path / "journal") == []
