"""Calls at once against the local Supabase stack: every row stored exactly once, in its own call.

The suite's small version of `bench/load.py` (which runs 50 calls of 40 turns): the same
calls (tests/load_calls.py: real text-mode sessions, the desk's agents, a scripted LLM that
verifies, lists, books, confirms, cancels and chats) all ending at the same instant, and the
same checks of what the database holds. No timings are asserted here; the bench prints them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conversation_manager.journal import ARCHIVE, pending_journals
from testkit.load_calls import call_failures, check_stored, plan_calls, quiet_livekit, run_calls, seed
from testkit.local_supabase import Stack

CALLS = 8
TURNS = 12


@pytest.mark.asyncio
async def test_calls_ending_at_once_are_each_stored_exactly_once(clean_db: Stack, tmp_path: Path) -> None:
    plans = plan_calls(CALLS)
    seed(clean_db, plans)
    with quiet_livekit():
        run = await run_calls(clean_db, plans, TURNS, tmp_path)

    assert call_failures(run) == []
    assert all(o.end is not None and o.end.saved for o in run.outcomes)
    stored = check_stored(clean_db, run.outcomes)
    assert stored.problems == []
    assert (stored.missing_rows, stored.extra_rows) == (0, 0)
    first = run.outcomes[0]
    assert (first.tool_calls, first.agent_runs) == (9, 2), "verify, list, search, book, confirm, list, cancel, ..."
    assert first.expected_messages >= 1 + 2 * TURNS, "greeting, then a line and a reply per turn (acks extra)"
    assert stored.rows == {
        "conversations": CALLS,
        "messages": sum(o.expected_messages for o in run.outcomes),
        "tool_calls": sum(o.tool_calls for o in run.outcomes),
        "agent_runs": 2 * CALLS,
    }
    assert pending_journals(tmp_path) == []
    assert len(list((tmp_path / ARCHIVE).glob("*.jsonl"))) == CALLS
