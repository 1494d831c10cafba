"""The conversation manager over both stores: buffer, journal, end-of-call write, caller details."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from conversation_manager import ConversationManager, new_conversation_id
from conversation_manager.journal import pending_journals, read_events
from conversation_manager.transcript import MAX_CONTENT_CHARS
from settings import Settings
from storage.records import CallRecord, ConversationStore
from storage.sqlite_records import SQLiteConversationStore
from testkit.local_supabase import Stack
from testkit.record_stores import BACKENDS, open_store


@pytest_asyncio.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConversationStore]:
    stack: Stack | None = request.getfixturevalue("clean_db") if request.param == "supabase" else None
    opened = await open_store(request.param, tmp_path=tmp_path, stack=stack)
    yield opened
    await opened.aclose()


def manager_for(store: ConversationStore, tmp_path: Path, **options: float) -> ConversationManager:
    return ConversationManager.from_settings(
        store, Settings(), journal_dir=tmp_path / "journal", language="ar", **options
    )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll the store (it has no change events) until `check` holds."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def test_conversation_ids_are_unique_even_for_a_reused_room() -> None:
    ids = {new_conversation_id("support room/1") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("support-room-") for i in ids)


@pytest.mark.asyncio
async def test_a_call_from_start_to_saved_record(store: ConversationStore, tmp_path: Path) -> None:
    manager = manager_for(store, tmp_path)
    cid = await manager.start_conversation(None, "room-7", "sip_caller", {"job_id": "J1"})

    async def active_row_written() -> bool:
        return [r["status"] for r in await store.list_conversations(status="active")] == ["active"]

    await eventually(active_row_written)

    manager.add_message_to_local_transcript("assistant", "أهلاً بك، كيف أساعدك؟")
    manager.add_message_to_local_transcript("user", "اسمي أحمد محمد ورقمي ٠٩٩١٢٣٤٥٦٧")
    manager.add_message_to_local_transcript("user", "  \u200f \n")  # blank: skipped
    manager.add_message_to_local_transcript("assistant", "Let me check that", interrupted=True)
    manager.add_tool_call("verify_caller", '{"zip_code": "12345"}', "verified", duration_ms=3.5)
    journal = manager.journal
    assert journal is not None
    assert [e["type"] for e in read_events(journal.path)] == ["start", "message", "message", "message", "tool_call"]

    result = await manager.end_conversation(summary="Caller verified.")
    assert result.saved and result.messages_saved == 3 and result.tool_calls_saved == 1
    assert pending_journals(tmp_path / "journal") == []
    assert (tmp_path / "journal" / "archive" / journal.path.name).exists()

    detail = await manager.get_conversation_with_messages(cid)
    assert detail is not None
    c = detail.conversation
    assert (c["status"], c["message_count"], c["user_name"], c["user_phone"]) == (
        "completed",
        3,
        "أحمد محمد",
        "+963991234567",
    )
    assert c["summary"] == "Caller verified." and c["metadata"] == {"job_id": "J1", "effects": []}
    assert c["outcome"] == "information_only", "no tool changed anything"
    assert [(m["role"], m["interrupted"]) for m in detail.messages] == [
        ("assistant", False),
        ("user", False),
        ("assistant", True),
    ]
    assert [t["seq"] for t in detail.tool_calls] == [3]
    listed = await manager.get_conversation_list(phone="0991 234 567")
    assert [r["conversation_id"] for r in listed] == [cid]
    assert await manager.end_conversation() == result  # idempotent


@pytest.mark.asyncio
async def test_stated_details_win_over_heard_ones(store: ConversationStore, tmp_path: Path) -> None:
    manager = manager_for(store, tmp_path)
    cid = await manager.start_conversation(None, "room", "caller")
    manager.set_caller_details(phone="00963 944 000 111")
    manager.add_message_to_local_transcript("user", "my name is john and my number is 0991234567")
    await manager.end_conversation(user_email="John@Example.com")
    detail = await manager.get_conversation_with_messages(cid)
    assert detail is not None
    c = detail.conversation
    assert (c["user_name"], c["user_phone"], c["user_email"]) == ("John", "+963944000111", "John@Example.com")


@pytest.mark.asyncio
async def test_huge_and_odd_messages(store: ConversationStore, tmp_path: Path) -> None:
    manager = manager_for(store, tmp_path)
    cid = await manager.start_conversation(None, "room", "caller")
    manager.add_message_to_local_transcript("user", "x" * 100_000)
    manager.add_message_to_local_transcript("user", "nul\x00byte \u202eRTL\u202c")
    with pytest.raises(ValueError, match="role"):
        manager.add_message_to_local_transcript("robot", "hi")
    result = await manager.end_conversation()
    assert result.saved
    detail = await manager.get_conversation_with_messages(cid)
    assert detail is not None
    big, odd = (m["content"] for m in detail.messages)
    assert big.startswith("x" * MAX_CONTENT_CHARS) and big.endswith("[... truncated 68000 characters]")
    assert odd == "nulbyte \u202eRTL\u202c"


@pytest.mark.asyncio
async def test_a_journal_that_cannot_be_written_does_not_stop_the_call(
    store: ConversationStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the journal directory should be")
    manager = ConversationManager.from_settings(store, Settings(), journal_dir=blocked)
    cid = await manager.start_conversation(None, "room", "caller")
    manager.add_message_to_local_transcript("user", "hello")
    result = await manager.end_conversation()
    assert result.saved and result.messages_saved == 1
    assert any("JOURNAL UNAVAILABLE" in r.getMessage() for r in caplog.records)
    assert (await manager.get_conversation_with_messages(cid)) is not None


@pytest.mark.asyncio
async def test_latency_summary_of_the_replies(store: ConversationStore, tmp_path: Path) -> None:
    manager = manager_for(store, tmp_path, slow_turn_ms=1000)
    cid = await manager.start_conversation(None, "room", "caller")
    for i, e2e in enumerate([0.6, 0.8, 2.4, 0.7, 1.1]):
        manager.add_message_to_local_transcript("user", f"question {i}", {"metrics": {"end_of_turn_delay": 0.3}})
        manager.add_message_to_local_transcript("assistant", f"answer {i}", {"metrics": {"e2e_latency": e2e}})
    await manager.end_conversation()
    detail = await manager.get_conversation_with_messages(cid)
    assert detail is not None
    c = detail.conversation
    assert (c["latency_p50_ms"], c["latency_p95_ms"], c["latency_max_ms"], c["slow_turns"]) == (800, 2400, 2400, 2)


class DriverBugStore(SQLiteConversationStore):
    """A real store whose bulk write hits a bug of its driver (not a `StoreError`)."""

    async def write_call(self, record: CallRecord) -> int:
        raise RuntimeError("driver bug")


@pytest.mark.asyncio
async def test_a_store_failing_in_an_unexpected_way_keeps_the_journal(tmp_path: Path) -> None:
    store = await DriverBugStore.open(tmp_path / "records.sqlite3")
    manager = ConversationManager.from_settings(store, Settings(), journal_dir=tmp_path / "journal")
    await manager.start_conversation(None, "room", "caller")
    manager.add_message_to_local_transcript("user", "Hello")

    result = await manager.end_conversation()
    await store.aclose()

    assert not result.saved and result.error == "RuntimeError: driver bug"
    assert [p.name for p in pending_journals(tmp_path / "journal")] == [f"{result.conversation_id}.jsonl"]
