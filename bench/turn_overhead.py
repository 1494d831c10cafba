"""What recording a call costs per turn: a bare session vs one with the full record attached.

    python bench/turn_overhead.py [--pairs 15]

Text-mode turns through a real `AgentSession` with a zero-latency scripted LLM (each reply
carries token usage, and every fifth turn calls a tool), run bare and with the conversation
manager attached (journal, agent runs, usage, latency metrics, embedded store). The two are
paired and interleaved: each pair runs both, back to back in the same process, in an order
that alternates from pair to pair, so drift and other load hit both alike. The figure is the
median of the paired ratios (recorded / bare per-turn median), with their spread.
Last line: RESULT overhead_ratio=<median of paired ratios> spread=<p25>-<p75> added_ms=<ms>
"""

from __future__ import annotations

import argparse
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

TURNS = 60
PAIRS = 15


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


async def main(pairs: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    ratios: list[float] = []
    added: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = await SQLiteConversationStore.open(Path(tmp) / "records.sqlite3")

        async def recorded(index: int) -> list[float]:
            manager = ConversationManager.from_settings(store, Settings(), journal_dir=Path(tmp) / "journal")
            await manager.start_conversation(None, f"bench-{index}", "caller")
            durations = await run_turns(manager)
            result = await manager.end_conversation()
            assert result.saved and result.messages_saved == TURNS * 2, result
            return durations

        await run_turns(None)  # warm-up: imports, first-session costs
        for index in range(pairs):
            if index % 2 == 0:
                bare, with_record = await run_turns(None), await recorded(index)
            else:
                with_record, bare = await recorded(index), await run_turns(None)
            bare_ms, recorded_ms = statistics.median(bare), statistics.median(with_record)
            ratios.append(recorded_ms / bare_ms)
            added.append(recorded_ms - bare_ms)
        await store.aclose()
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"{pairs} pairs of {TURNS} turns each; paired ratios: " + " ".join(f"{r:.3f}" for r in sorted(ratios)))
    print(
        f"median ratio {statistics.median(ratios):.3f} (p25 {quartiles[0]:.3f}, p75 {quartiles[2]:.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f}); added per turn {statistics.median(added):.3f} ms"
    )
    print(
        f"RESULT overhead_ratio={statistics.median(ratios):.3f} spread={quartiles[0]:.3f}-{quartiles[2]:.3f} "
        f"added_ms={statistics.median(added):.3f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=PAIRS)
    asyncio.run(main(parser.parse_args().pairs))
