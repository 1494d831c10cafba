"""A real text-mode AgentSession feeding the conversation manager: turns, tool calls, handoffs."""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit.agents import Agent, AgentSession, RunContext, function_tool

from conversation_manager import ConversationManager
from conversation_manager.session_events import attach
from storage.sqlite_records import SQLiteConversationStore
from tests.scripted_llm import Reply, ScriptedLLM, ToolCall


class Desk(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You run an appointment desk.")

    async def on_enter(self) -> None:
        self.session.say("Hello, how can I help?")

    @function_tool
    async def list_appointments(self, context: RunContext, day: str) -> str:
        """List the caller's appointments on a day.

        Args:
            day: The day, e.g. "monday".
        """
        return f"A1: {day} 10:00"

    @function_tool
    async def to_billing(self, context: RunContext) -> Agent:
        """Hand the caller over to billing."""
        return Billing()


class Billing(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You handle billing.")


@pytest.mark.asyncio
async def test_session_events_reach_the_record(tmp_path: Path) -> None:
    store = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    manager = ConversationManager(store, journal_dir=tmp_path / "journal", default_country_code="963")
    cid = await manager.start_conversation(None, "room", "caller")
    llm = ScriptedLLM(
        Reply(tool_calls=[ToolCall("list_appointments", {"day": "monday"})]),
        Reply("You have A1 on Monday at ten."),
        Reply(tool_calls=[ToolCall("to_billing", {})]),  # the handoff: Billing has no greeting
    )
    async with AgentSession(llm=llm, vad=None, turn_handling={"turn_detection": None}) as session:
        attach(session, manager)
        await session.start(Desk(), capture_run=True)
        await session.run(user_input="My name is Lina. What do I have on Monday?")
        await session.run(user_input="Put me through to billing")
    result = await manager.end_conversation()
    assert result.saved

    detail = await manager.get_conversation_with_messages(cid)
    assert detail is not None
    assert [(m["role"], m["content"]) for m in detail.messages] == [
        ("assistant", "Hello, how can I help?"),
        ("user", "My name is Lina. What do I have on Monday?"),
        ("assistant", "You have A1 on Monday at ten."),
        ("user", "Put me through to billing"),
    ]
    calls = [(t["name"], t["arguments"], t["is_error"]) for t in detail.tool_calls]
    assert calls == [("list_appointments", {"day": "monday"}, False), ("to_billing", {}, False)]
    assert detail.tool_calls[0]["output"] == "A1: monday 10:00"
    seqs = sorted([m["seq"] for m in detail.messages] + [t["seq"] for t in detail.tool_calls])
    assert seqs == list(range(6))
    assert detail.conversation["user_name"] == "Lina"
    handoffs = detail.conversation["metadata"]["handoffs"]
    assert handoffs[-1]["to"] == "billing"
    await store.aclose()
