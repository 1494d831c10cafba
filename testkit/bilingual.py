"""Helpers for the bilingual call tests: a two-language deployment, the language a scripted
model was instructed in, and the record store of a world's backend."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import prompts
from settings import Settings
from storage.records import ConversationStore, Row
from storage.sqlite_records import SQLiteConversationStore
from storage.supabase_records import SupabaseConversationStore
from testkit.desk_world import TZ, Call, World
from testkit.scripted_llm import LLMCall, Reply

PERSONA = {"agent_name": "Sara", "company": "Nour Clinic"}
BOTH = ("en", "ar")


def settings(tmp_path: Path | None = None) -> Settings:
    """A two-language deployment, English first (the clinic's zone and country of the seeded world)."""
    extra = {"journal_dir": tmp_path / "journal"} if tmp_path is not None else {}
    return Settings(language="en", languages=BOTH, clinic_timezone=TZ, default_country_code="963", **extra)


def instructed_in(call: LLMCall) -> str:
    """The language of the agent's instructions on this LLM call."""
    found = [lang for lang in BOTH if prompts.load(lang, "system", **PERSONA) in call.instructions]
    assert len(found) == 1, call.instructions[:200]
    return found[0]


def answer(call: LLMCall) -> Reply:
    """The model answers in the language it is instructed in."""
    return Reply(f"[{instructed_in(call)}]")


def assistant_texts(call: Call) -> list[str]:
    return [m.text_content or "" for m in call.session.history.messages() if m.role == "assistant"]


@contextlib.asynccontextmanager
async def record_store(
    world: World, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ConversationStore]:
    """The record store of the world's backend (the call's rows are read back from it)."""
    if world.backend == "sqlite":
        store: ConversationStore = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    else:
        stack = request.getfixturevalue("supabase_stack")
        store = await SupabaseConversationStore.connect(stack.url, stack.service_key, timeout=5.0)
    try:
        yield store
    finally:
        await store.aclose()


async def stored(store: ConversationStore, conversation_id: str) -> tuple[Row, list[Row]]:
    detail = await store.get_conversation(conversation_id)
    assert detail is not None
    return detail.conversation, detail.messages
