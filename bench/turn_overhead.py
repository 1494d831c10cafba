"""What recording a call costs per turn: a bare session vs one with the full record attached.

    python bench/turn_overhead.py

200 text-mode turns through a real `AgentSession` with a zero-latency scripted LLM
(each reply carries token usage, and every fifth turn calls a tool), run once bare and
once with the conversation manager attached (journal, agent runs, usage, latency
metrics, embedded store), alternating rounds in the same process.
Last line: RESULT overhead_ratio=<x> added_ms=<ms>
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from livekit.agents import Agent, AgentSession, RunContext, function_tool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conversation_manager import ConversationManager
from conversation_manager.session_events import attach
from settings import Settings
from storage.sqlite_records import SQLiteConversationStore
from testkit.scripted_llm import LLMCall, Reply, ScriptedLLM, ToolCall, usage

TURNS = 200
ROUNDS = 3


class Desk(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You run an appointment desk.")

    @function_tool
    async def list_appointments(self, context: RunContext) -> str:
        """List the caller's appointments."""
        return "A1: Monday 10:00"


def reply(call: LLMCall) -> Reply:
    after_tool = call.chat_ctx.items[-1].type == "function_call_output"
    wants_tool = call.last_user_text.endswith("0") and not after_tool
    if wants_tool:
        return Reply(tool_calls=[ToolCall("list_appointments", {})], usage=usage(200, 8))
    return Reply("You have one appointment on Monday at ten.", usage=usage(220, 12))


async def run_turns(manager: ConversationManager | None) -> list[float]:
    llm = ScriptedLLM(default=reply)
    durations: list[float] = []
    async with AgentSession(llm=llm, vad=None, turn_handling={"turn_detection": None}) as session:
        if manager is not None:
            attach(session, manager)
        await session.start(Desk(), capture_run=True)
        for turn in range(TURNS):
            began = time.perf_counter()
            await session.run(user_input=f"What do I have next, question {turn}")
            durations.append((time.perf_counter() - began) * 1000)
    return durations


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    bare: list[float] = []
    recorded: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = await SQLiteConversationStore.open(Path(tmp) / "records.sqlite3")
        for round_ in range(ROUNDS):
            bare += await run_turns(None)
            manager = ConversationManager.from_settings(store, Settings(), journal_dir=Path(tmp) / "journal")
            await manager.start_conversation(None, f"bench-{round_}", "caller")
            recorded += await run_turns(manager)
            result = await manager.end_conversation()
            assert result.saved and result.messages_saved == TURNS * 2, result
        await store.aclose()
    bare_ms, recorded_ms = statistics.median(bare), statistics.median(recorded)
    print(f"{TURNS * ROUNDS} turns each; per-turn median: bare {bare_ms:.3f} ms, with the record {recorded_ms:.3f} ms")
    print(f"RESULT overhead_ratio={recorded_ms / bare_ms:.3f} added_ms={recorded_ms - bare_ms:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
