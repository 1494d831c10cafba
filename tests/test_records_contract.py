"""One contract, two backends: the embedded SQLite store and Supabase (real local stack)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from storage.records import CallRecord, ConversationQuery, ConversationStore, RecordState
from testkit.local_supabase import Stack
from testkit.record_stores import BACKENDS, open_store, same_instant, without_ids


@pytest_asyncio.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConversationStore]:
    stack: Stack | None = request.getfixturevalue("clean_db") if request.param == "supabase" else None
    opened = await open_store(request.param, tmp_path=tmp_path, stack=stack)
    yield opened
    await opened.aclose()


def iso(minutes_ago: float = 0.0) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)).isoformat()


def record(
    cid: str,
    *,
    messages: int = 3,
    status: str = "completed",
    phone: str | None = None,
    minutes_ago: float = 0.0,
    content: str = "turn {i}",
) -> CallRecord:
    started = iso(minutes_ago)
    return CallRecord(
        conversation={
            "conversation_id": cid,
            "room_name": "room-a",
            "participant_identity": "caller",
            "status": status,
            "started_at": started,
            "ended_at": started,
            "duration_seconds": 12.5,
            "message_count": messages,
            "user_name": "Ahmad",
            "user_phone": phone,
            "user_email": None,
            "language": "ar",
            "metadata": {"channel": "sip"},
        },
        messages=[
            {
                "conversation_id": cid,
                "seq": i,
                "role": "user" if i % 2 else "assistant",
                "content": content.format(i=i),
                "interrupted": i == 2,
                "created_at": started,
                "agent_run_id": "run-1",
                "metadata": {"metrics": {"e2e_latency": 0.8}},
            }
            for i in range(messages)
        ],
        tool_calls=[
            {
                "conversation_id": cid,
                "seq": messages,
                "call_id": "c1",
                "name": "verify_caller",
                "arguments": {"zip_code": "12345"},
                "output": "verified",
                "is_error": False,
                "duration_ms": 12.0,
                "created_at": started,
                "agent_run_id": "run-1",
            },
        ],
        agent_runs=[
            {
                "run_id": "run-1",
                "conversation_id": cid,
                "agent_type": "ReceptionAgent",
                "started_at": started,
                "llm_calls": 2,
                "prompt_tokens": 40,
                "completion_tokens": 10,
                "total_tokens": 50,
                "tool_calls": 1,
                "tool_errors": 0,
                "metadata": {},
            },
        ]
        if cid == "c-main"
        else [],
    )


@pytest.mark.asyncio
async def test_a_written_call_reads_back_whole(store: ConversationStore) -> None:
    written = record("c-main")
    await store.write_call(written)
    detail = await store.get_conversation("c-main")
    assert detail is not None
    conversation = without_ids(detail.conversation)
    for key, value in written.conversation.items():
        if key.endswith("_at"):
            assert same_instant(conversation[key], value), key
        else:
            assert conversation[key] == value, key
    assert [(m["seq"], m["role"], m["content"], m["interrupted"]) for m in detail.messages] == [
        (m["seq"], m["role"], m["content"], m["interrupted"]) for m in written.messages
    ]
    assert detail.messages[0]["metadata"] == {"metrics": {"e2e_latency": 0.8}}
    assert detail.tool_calls[0]["arguments"] == {"zip_code": "12345"}
    assert detail.tool_calls[0]["is_error"] is False
    assert detail.agent_runs[0]["feedback"] == "pending"
    assert detail.agent_runs[0]["total_tokens"] == 50


@pytest.mark.asyncio
async def test_writing_a_call_twice_never_duplicates(store: ConversationStore) -> None:
    await store.write_call(record("c-main"))
    await store.write_call(record("c-main"))
    detail = await store.get_conversation("c-main")
    assert detail is not None
    assert len(detail.messages) == 3 and len(detail.tool_calls) == 1 and len(detail.agent_runs) == 1
    assert len(await store.list_conversations()) == 1


@pytest.mark.asyncio
async def test_a_late_active_row_never_overwrites_the_finished_call(store: ConversationStore) -> None:
    await store.write_call(record("c-main"))
    await store.create_conversation(
        {"conversation_id": "c-main", "room_name": "room-a", "status": "active", "started_at": iso()}
    )
    detail = await store.get_conversation("c-main")
    assert detail is not None and detail.conversation["status"] == "completed"


@pytest.mark.asyncio
async def test_list_filters_and_orders_most_recent_first(store: ConversationStore) -> None:
    await store.write_call(record("old", phone="+963991234567", minutes_ago=30))
    await store.write_call(record("new", phone="+963991234567", minutes_ago=1))
    await store.write_call(record("live", status="active", phone="+14155550100", minutes_ago=5))
    await store.write_call(record("yesterday", minutes_ago=60 * 30))
    assert [r["conversation_id"] for r in await store.list_conversations()] == ["new", "live", "old", "yesterday"]
    assert [r["conversation_id"] for r in await store.list_conversations(limit=2)] == ["new", "live"]
    assert [r["conversation_id"] for r in await store.list_conversations(status="active")] == ["live"]
    by_phone = await store.list_conversations(phone="+963991234567")
    assert [r["conversation_id"] for r in by_phone] == ["new", "old"]
    today = {r["conversation_id"] for r in await store.list_conversations(today=True)}
    assert "yesterday" not in today and "new" in today


@pytest.mark.asyncio
async def test_search_filters_combine_and_page_newest_first(store: ConversationStore) -> None:
    def call(cid: str, minutes_ago: float, **fields: object) -> CallRecord:
        r = record(cid, minutes_ago=minutes_ago, phone="+963991234567" if cid.startswith("p") else None)
        r.conversation.update(fields)
        return r

    await store.write_call(call("p-booked-ar", 1, outcome="booked", language="ar", slow_turns=0))
    await store.write_call(call("slow-en", 2, outcome="booked", language="en", slow_turns=3))
    await store.write_call(call("p-cancel", 3, outcome="cancelled", language="ar", slow_turns=None))
    gap = call("gap", 4, status="abandoned")
    await store.write_call(gap)
    await store.mark_incomplete(gap, "journal lost")
    await store.write_call(call("old", 60 * 48, outcome="booked", language="ar"))

    async def ids(**filters: object) -> list[str]:
        return [r["conversation_id"] for r in await store.search_conversations(ConversationQuery(**filters))]

    assert await ids() == ["p-booked-ar", "slow-en", "p-cancel", "gap", "old"]
    assert await ids(outcome="booked", language="ar") == ["p-booked-ar", "old"]
    assert await ids(slow=True) == ["slow-en"]
    assert await ids(incomplete=True) == ["gap"]
    assert await ids(status="abandoned") == ["gap"]
    assert await ids(phone="+963991234567") == ["p-booked-ar", "p-cancel"]
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    assert await ids(until=yesterday) == ["old"]
    assert "old" not in await ids(since=yesterday)
    assert await ids(limit=2) == ["p-booked-ar", "slow-en"]
    assert await ids(limit=2, offset=2) == ["p-cancel", "gap"]
    assert await ids(limit=2, offset=10) == []
    assert await ids(outcome="booked' or '1'='1") == []
    assert await ids(language="eq.ar,or=(id.gt.0)") == []


@pytest.mark.asyncio
async def test_filter_values_are_data_not_syntax(store: ConversationStore) -> None:
    await store.write_call(record("c-main", phone="+963991234567"))
    assert await store.list_conversations(phone="eq.1,or=(id.gt.0)") == []
    assert await store.list_conversations(status="completed') or ('1'='1") == []
    assert await store.get_conversation("c-main' or '1'='1") is None


@pytest.mark.asyncio
async def test_stats_by_status(store: ConversationStore) -> None:
    await store.write_call(record("a", messages=2))
    await store.write_call(record("b", messages=4))
    await store.write_call(record("c", status="abandoned", messages=1))
    stats = {s.status: s for s in await store.stats_by_status()}
    assert stats["completed"].count == 2
    assert stats["completed"].avg_message_count == pytest.approx(3.0)
    assert stats["completed"].avg_duration_seconds == pytest.approx(12.5)
    assert stats["abandoned"].count == 1


@pytest.mark.asyncio
async def test_report_gives_the_reporting_views_figures(store: ConversationStore) -> None:
    def call(cid: str, *, outcome: str, status: str, days_ago: int, e2e: list[float], tool_error: bool) -> CallRecord:
        r = record(cid, messages=2 * len(e2e), status=status, minutes_ago=days_ago * 24 * 60)
        r.conversation["outcome"] = outcome
        for m, seconds in zip([m for m in r.messages if m["role"] == "assistant"], e2e, strict=True):
            m["metadata"] = {"metrics": {"e2e_latency": seconds}}
        for m in r.messages:
            if m["role"] == "user":
                m["metadata"] = {"metrics": {"end_of_turn_delay": 0.3}}  # not a reply: not counted
        r.tool_calls[0]["is_error"] = tool_error
        return r

    await store.write_call(
        call("c-main", outcome="booked", status="completed", days_ago=0, e2e=[0.5, 1.5], tool_error=False)
    )
    await store.write_call(call("r2", outcome="abandoned", status="abandoned", days_ago=0, e2e=[1.0], tool_error=True))
    await store.write_call(call("old", outcome="booked", status="completed", days_ago=10, e2e=[9.0], tool_error=False))
    today = dt.datetime.now(dt.UTC).date().isoformat()

    report = await store.report(days=7)

    assert report.volume == [
        {
            "day": today,
            "calls": 2,
            "completed": 1,
            "abandoned": 1,
            "failed": 0,
            "avg_duration_seconds": pytest.approx(12.5),
        }
    ]
    assert report.outcomes == [
        {"day": today, "outcome": "abandoned", "calls": 1},
        {"day": today, "outcome": "booked", "calls": 1},
    ]
    assert report.latency == [
        {
            "day": today,
            "replies": 3,
            "p50_ms": pytest.approx(1000.0),
            "p95_ms": pytest.approx(1450.0),
            "max_ms": pytest.approx(1500.0),
        }
    ]
    assert report.agent_usage == [
        {
            "agent_type": "ReceptionAgent",
            "runs": 1,
            "llm_calls": 2,
            "prompt_tokens": 40,
            "completion_tokens": 10,
            "total_tokens": 50,
            "tool_calls": 1,
            "tool_errors": 0,
        }
    ]
    assert report.tool_errors == [
        {
            "name": "verify_caller",
            "calls": 3,
            "errors": 1,
            "error_rate": pytest.approx(1 / 3),
            "avg_duration_ms": pytest.approx(12.0),
        }
    ]
    assert report.slow_turns == [{"day": today, "calls": 2, "slow_calls": 0, "slow_turns": 0}]
    assert len((await store.report(days=30)).volume) == 2, "the older day is in a longer report"


@pytest.mark.asyncio
async def test_unicode_controls_and_rtl_marks_survive(store: ConversationStore) -> None:
    text = "\u200fمرحبا\u200e hello \t\x01\x1b[31m 😀 \u202eevil\u202c  اسمي أحمد"
    await store.write_call(record("c-main", messages=1, content=text))
    detail = await store.get_conversation("c-main")
    assert detail is not None and detail.messages[0]["content"] == text


@pytest.mark.asyncio
async def test_more_rows_than_a_chunk_or_a_page(store: ConversationStore) -> None:
    await store.write_call(record("c-main", messages=1_234))
    detail = await store.get_conversation("c-main")
    assert detail is not None
    assert [m["seq"] for m in detail.messages] == list(range(1_234))


@pytest.mark.asyncio
async def test_updated_at_moves_when_the_row_changes(store: ConversationStore) -> None:
    await store.create_conversation(
        {"conversation_id": "c-main", "room_name": "room-a", "status": "active", "started_at": iso()}
    )
    before = (await store.list_conversations())[0]["updated_at"]
    await asyncio.sleep(0.01)
    await store.write_call(record("c-main"))
    after = (await store.list_conversations())[0]["updated_at"]
    assert str(after) != str(before)


@pytest.mark.asyncio
async def test_the_record_state_and_the_incomplete_mark(store: ConversationStore) -> None:
    """0006_record_integrity: how far along a stored record is, and a mark that only a write
    as far along takes back."""
    whole = record("c-main", messages=3)
    whole.conversation["record_events"] = 7
    assert await store.record_state("c-main") is None
    await store.mark_incomplete(whole, "worker could not save the record or its journal: 502")
    assert await store.record_state("c-main") == RecordState(7, False, "completed", 3)
    detail = await store.get_conversation("c-main")
    assert detail is not None and detail.conversation["metadata"]["record_at_risk"].endswith("502")

    older = record("c-main", messages=2, status="abandoned")
    older.conversation["record_events"] = 5
    await store.write_call(older)  # a partial journal: adds what it has, takes nothing back
    assert await store.record_state("c-main") == RecordState(7, False, "completed", 3)

    await store.write_call(whole)  # the whole record, written at last
    assert await store.record_state("c-main") == RecordState(7, True, "completed", 3)
    detail = await store.get_conversation("c-main")
    assert detail is not None and "record_at_risk" not in detail.conversation["metadata"]
    assert len(detail.messages) == 3

    await store.mark_incomplete(older, "late")  # never over a whole, further record
    assert await store.record_state("c-main") == RecordState(7, True, "completed", 3)


@pytest.mark.asyncio
async def test_a_stored_message_is_never_rewritten(store: ConversationStore) -> None:
    await store.write_call(record("c-main", messages=3))
    changed = record("c-main", messages=3, content="other {i}")
    changed.conversation["record_events"] = 9
    await store.write_call(changed)
    detail = await store.get_conversation("c-main")
    assert detail is not None and [m["content"] for m in detail.messages] == ["turn 0", "turn 1", "turn 2"]
