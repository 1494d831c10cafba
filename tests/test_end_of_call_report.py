"""The end-of-call report: the outcome derived from what the tools did, and the summary
(the LLM's within a time budget, else one built from the outcome and the caller), in the
conversation row of both stores, live and after a crash."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from livekit.agents import APIConnectionError
from livekit.plugins import openai

import prompts
from conversation_manager import ConversationManager, replay_pending
from conversation_manager.caller_details import CallerDetails
from conversation_manager.outcome import OUTCOMES, built_summary, derive_outcome
from conversation_manager.summary import MAX_SUMMARY_CHARS, written_summary
from settings import Settings
from storage.records import ConversationStore
from testkit.fake_openai_server import Completion, FakeOpenAIServer
from testkit.local_supabase import Stack
from testkit.record_stores import BACKENDS, open_store
from testkit.scripted_llm import Reply, ScriptedLLM

TALK = [
    {"role": "assistant", "content": "Hello, Nour Clinic."},
    {"role": "user", "content": "I want to book a check-up tomorrow morning."},
    {"role": "assistant", "content": "Booked for 9:00 tomorrow."},
]
LLM_SUMMARY = "Sarah called to book a check-up. It was booked for tomorrow at 9:00."


@pytest_asyncio.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConversationStore]:
    stack: Stack | None = request.getfixturevalue("clean_db") if request.param == "supabase" else None
    s = await open_store(request.param, tmp_path=tmp_path, stack=stack)
    yield s
    await s.aclose()


# ------------------------------------------------------------------------- outcome rules


@pytest.mark.parametrize(
    ("effects", "ended", "spoke", "expected"),
    [
        (["verified", "booked"], True, True, "booked"),
        (["verified", "booked", "cancelled"], True, True, "cancelled"),  # the last change counts
        (["verified", "cancelled", "rescheduled"], True, True, "rescheduled"),
        (["verified", "booked", "transferred"], True, True, "transferred"),  # a human took over
        (["callback_requested", "booked"], True, True, "booked"),
        (["verification_failed", "callback_requested"], True, True, "callback_requested"),
        (["verification_failed", "verification_failed"], True, True, "verification_failed"),
        (["verification_failed", "verified"], True, True, "information_only"),
        (["verified"], True, True, "information_only"),
        ([], True, True, "information_only"),
        ([], True, False, "abandoned"),  # the caller never said a word
        (["verified"], False, True, "abandoned"),  # never ended: recovered after a crash
        (["verified", "booked"], False, True, "booked"),  # what was done stays done
    ],
)
def test_outcome_follows_the_effects(effects: list[str], ended: bool, spoke: bool, expected: str) -> None:
    assert derive_outcome(effects, ended=ended, caller_spoke=spoke) == expected


@pytest.mark.parametrize("lang", ["en", "ar"])
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_the_built_summary_names_the_caller_and_is_never_empty(lang: str, outcome: str) -> None:
    known = built_summary(lang, outcome, CallerDetails("Sarah Johnson", "+14155550100", None))
    assert known == prompts.load(lang, f"summary_{outcome}", caller="Sarah Johnson (+14155550100)")
    phone_only = built_summary(lang, outcome, CallerDetails(None, "+14155550100", None))
    assert "+14155550100" in phone_only
    unknown = built_summary(lang, outcome, CallerDetails())
    assert prompts.load(lang, "summary_unknown_caller") in unknown


# ------------------------------------------------------------------------- the LLM summary


@pytest.mark.asyncio
async def test_the_llm_summary_is_asked_in_the_calls_language() -> None:
    model = ScriptedLLM(Reply(LLM_SUMMARY))
    assert await written_summary(model, "ar", TALK, timeout=5) == LLM_SUMMARY
    [call] = model.calls
    assert call.instructions == prompts.load("ar", "summary_instructions")
    assert call.last_user_text is not None and "book a check-up" in call.last_user_text
    assert call.tool_names == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "reply",
    [
        Reply(error=APIConnectionError(retryable=False)),
        Reply(""),
        Reply("word " * MAX_SUMMARY_CHARS),
    ],
    ids=["error", "empty", "too-long"],
)
async def test_an_unusable_llm_summary_gives_none(reply: Reply) -> None:
    assert await written_summary(ScriptedLLM(reply), "en", TALK, timeout=5) is None


@pytest.mark.asyncio
async def test_a_call_without_words_asks_no_llm() -> None:
    model = ScriptedLLM()
    assert await written_summary(model, "en", [], timeout=5) is None
    assert model.calls == []


@pytest.mark.asyncio
async def test_the_real_plugin_summarises_and_a_slow_server_is_cut_off_at_the_budget() -> None:
    async with FakeOpenAIServer(Completion(LLM_SUMMARY), Completion("late", delay=5.0)) as server:
        model = openai.LLM(model="gpt-test", base_url=server.base_url, api_key="test-key")
        assert await written_summary(model, "en", TALK, timeout=5) == LLM_SUMMARY
        assert await written_summary(model, "en", TALK, timeout=0.3) is None
        assert len(server.chat_requests) == 2, "one attempt each: no retry outlives the budget"


# ------------------------------------------------------------------------- in the store


async def a_call(store: ConversationStore, tmp_path: Path, *effects: str) -> ConversationManager:
    manager = ConversationManager.from_settings(
        store, Settings(default_country_code="1"), journal_dir=tmp_path / "journal"
    )
    await manager.start_conversation(None, "report-room", "caller")
    manager.add_message_to_local_transcript("user", "Hi, this is Sarah Johnson, I need a check-up.")
    manager.set_caller_details(phone="+14155550100")
    for effect in effects:
        manager.add_effect(effect)
    return manager


@pytest.mark.asyncio
async def test_the_row_carries_outcome_llm_summary_and_effects(store: ConversationStore, tmp_path: Path) -> None:
    manager = await a_call(store, tmp_path, "verified", "booked")
    result = await manager.end_conversation(summary=LLM_SUMMARY)
    assert result.saved
    detail = await store.get_conversation(result.conversation_id)
    assert detail is not None
    row = detail.conversation
    assert (row["outcome"], row["summary"]) == ("booked", LLM_SUMMARY)
    assert row["metadata"]["effects"] == ["verified", "booked"]


@pytest.mark.asyncio
async def test_without_an_llm_summary_the_row_has_the_built_one(store: ConversationStore, tmp_path: Path) -> None:
    manager = await a_call(store, tmp_path, "verification_failed", "callback_requested")
    result = await manager.end_conversation()
    detail = await store.get_conversation(result.conversation_id)
    assert detail is not None
    row = detail.conversation
    assert row["outcome"] == "callback_requested"
    caller = CallerDetails("Sarah Johnson", "+14155550100", None)
    assert row["summary"] == built_summary("en", "callback_requested", caller)


@pytest.mark.asyncio
async def test_a_crashed_call_is_replayed_as_abandoned_with_a_summary(store: ConversationStore, tmp_path: Path) -> None:
    manager = await a_call(store, tmp_path, "verified")
    cid = manager.conversation_id
    assert manager.journal is not None
    await manager.journal.close()  # the process dies here: no end_conversation

    report = await replay_pending(store, tmp_path / "journal", timeout=10)
    assert report.abandoned == [cid]
    detail = await store.get_conversation(cid)
    assert detail is not None
    row = detail.conversation
    assert (row["status"], row["outcome"]) == ("abandoned", "abandoned")
    assert row["summary"] == built_summary("en", "abandoned", CallerDetails("Sarah Johnson", "+14155550100", None))


def test_an_unknown_effect_is_refused(tmp_path: Path) -> None:
    manager = ConversationManager.from_settings(None, Settings(), journal_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="effect must be one of"):
        manager.add_effect("deleted_everything")
