"""A real text-mode AgentSession feeding the conversation manager: turns, tool calls, handoffs."""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit.agents import Agent, AgentSession, RunContext, function_tool

from conversation_manager import ConversationManager
from conversation_manager.session_events import attach
from settings import Settings
from storage.sqlite_records import SQLiteConversationStore
from testkit.scripted_llm import Reply, ScriptedLLM, ToolCall, usage


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

    @function_tool
    async def back_to_desk(self, context: RunContext) -> Agent:
        """Hand the caller back to the appointment desk."""
        return Desk()


@pytest.mark.asyncio
async def test_session_events_reach_the_record(tmp_path: Path) -> None:
    store = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    manager = ConversationManager.from_settings(store, Settings(), journal_dir=tmp_path / "journal")
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
    assert [r["agent_type"] for r in detail.agent_runs] == ["Desk", "Billing"]
    desk_run, billing_run = (r["run_id"] for r in detail.agent_runs)
    assert [m["agent_run_id"] for m in detail.messages] == [desk_run] * 4
    assert [t["agent_run_id"] for t in detail.tool_calls] == [desk_run, desk_run]
    assert detail.agent_runs[1]["parent_run_id"] == desk_run and billing_run != desk_run
    await store.aclose()


@pytest.mark.asyncio
async def test_each_activation_is_its_own_run_and_runs_add_up(tmp_path: Path) -> None:
    store = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    manager = ConversationManager.from_settings(store, Settings(), journal_dir=tmp_path / "journal")
    cid = await manager.start_conversation(None, "room", "caller")
    llm = ScriptedLLM(
        Reply(tool_calls=[ToolCall("list_appointments", {"day": "monday"})], usage=usage(100, 10)),
        Reply("A1 on Monday.", usage=usage(120, 6)),
        Reply(tool_calls=[ToolCall("to_billing", {})], usage=usage(130, 5)),
        Reply(tool_calls=[ToolCall("back_to_desk", {})], usage=usage(90, 4)),
        Reply(tool_calls=[ToolCall("list_appointments", {"day": 3})], usage=usage(140, 7)),  # bad argument
        Reply("Which day?", usage=usage(150, 3)),
    )
    async with AgentSession(llm=llm, vad=None, turn_handling={"turn_detection": None}) as session:
        attach(session, manager)
        await session.start(Desk(), capture_run=True)
        await session.run(user_input="What do I have on Monday?")
        await session.run(user_input="Billing please")
        await session.run(user_input="Actually, back to appointments")
        await session.run(user_input="List them again")
        totals = [u for u in session.usage.model_usage if hasattr(u, "input_tokens")]
    await manager.end_conversation()
    detail = await manager.get_conversation_with_messages(cid)
    assert detail is not None
    runs = detail.agent_runs
    assert [r["agent_type"] for r in runs] == ["Desk", "Billing", "Desk"]
    assert len({r["run_id"] for r in runs}) == 3
    assert [r["parent_run_id"] for r in runs] == [None, runs[0]["run_id"], runs[1]["run_id"]]
    assert all(r["ended_at"] for r in runs)
    assert sum(r["llm_calls"] for r in runs) == 6 == len(llm.calls)
    assert sum(r["prompt_tokens"] for r in runs) == sum(u.input_tokens for u in totals) == 730
    assert sum(r["completion_tokens"] for r in runs) == sum(u.output_tokens for u in totals) == 35
    assert [(r["tool_calls"], r["tool_errors"]) for r in runs] == [(2, 0), (1, 0), (1, 1)]
    await store.aclose()
