"""Load: 50 simulated calls at once (any number with --calls), 40 turns each, all ending within the same second.

    python bench/load.py [--calls 50] [--turns 40]     # starts its own local Supabase stack

Each call is a real text-mode `AgentSession` with the reception and appointments agents
(scripted LLM: verify, list, book, confirm, cancel, save details, chat), its own record
and appointment stores, and its own journal; every call has its own customer and day of
slots (testkit/load_calls.py). After the last turn every session closes and every call
ends at once. Then the database is read with psql and compared with what each session
said and did: every message, tool call and agent run stored exactly once, no line in
another call's record, the bookings and cancellations in place. A call whose write did
not fit its FLUSH_TIMEOUT under the load keeps its journal pending; one replay (what a
worker does at start) writes those before the database is read, so every call must be
either written or pending and then written: 0 rows missing.

Baseline, measured first in the same run: one call alone, same script.
Last line: RESULT calls=<n> errors=<n> missing_rows=<n after replay> pending_before_replay=<n>
flush_p95_ms=<ms> rss_mb=<peak>
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conversation_manager import replay_pending
from conversation_manager.journal import journal_path, pending_journals
from storage.supabase_records import SupabaseConversationStore
from testkit.load_calls import LoadRun, call_failures, check_stored, plan_calls, quiet_livekit, run_calls, seed
from testkit.local_supabase import start_stack

CONCURRENT_TURNS = 20
"""Calls in a turn at the same moment (all stay open and end together); see run_calls."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def flushes(run: LoadRun) -> list[float]:
    return [o.end.flush_ms for o in run.outcomes if o.end is not None]


async def main(calls: int, turns: int) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    stack = start_stack()
    try:
        plans = plan_calls(calls + 1)
        seed(stack, plans)
        with tempfile.TemporaryDirectory() as tmp, quiet_livekit():
            solo = await run_calls(stack, plans[:1], turns, Path(tmp) / "solo")
            began = time.perf_counter()
            run = await run_calls(stack, plans[1:], turns, Path(tmp) / "load", concurrent_turns=CONCURRENT_TURNS)
            took = time.perf_counter() - began
            journals = Path(tmp) / "load"
            names = {p.name for p in pending_journals(journals)}
            pending = frozenset(
                o.conversation_id for o in run.outcomes if journal_path(journals, o.conversation_id).name in names
            )
            store = await SupabaseConversationStore.connect(stack.url, stack.service_key, timeout=30.0)
            try:
                replay = await replay_pending(store, journals, timeout=60.0)
            finally:
                await store.aclose()
            left = len(pending_journals(journals))
        stored = check_stored(stack, solo.outcomes + run.outcomes)
    finally:
        stack.stop()

    failures = call_failures(solo) + call_failures(run, pending)
    failures += [f"replay of {cid} failed: {error}" for cid, error in replay.failed.items()]
    for line in [*failures, *stored.problems][:20]:
        print(f"  ! {line}")
    solo_ms = flushes(solo)[0] if flushes(solo) else float("nan")
    load_ms = flushes(run) or [float("nan")]
    p50, p95, worst = percentile(load_ms, 0.50), percentile(load_ms, 0.95), max(load_ms)
    expected = sum(o.expected_messages + o.tool_calls + o.agent_runs + 1 for o in run.outcomes + solo.outcomes)
    total = sum(stored.rows.values())
    print(
        f"{calls} calls x {turns} turns in {took:.1f} s ({calls * turns / took:.0f} turns/s), "
        f"whole run {time.perf_counter() - started:.1f} s"
    )
    print(
        f"per call: {run.outcomes[0].expected_messages} messages, {run.outcomes[0].tool_calls} tool calls, "
        f"{run.outcomes[0].agent_runs} agent runs"
    )
    print(f"at most {min(calls, CONCURRENT_TURNS)} calls in a turn at once; all {calls} open until the end")
    print(f"ends spread over {run.end_spread_ms:.1f} ms (all {calls} end_conversation calls started within it)")
    print(f"flush alone (baseline): {solo_ms:.1f} ms")
    print(
        f"flush under load: p50 {p50:.1f} ms ({p50 / solo_ms:.1f}x), p95 {p95:.1f} ms ({p95 / solo_ms:.1f}x), "
        f"max {worst:.1f} ms ({worst / solo_ms:.1f}x)"
    )
    print(
        f"rows stored: {total} of {expected} expected "
        + ", ".join(f"{table} {n}" for table, n in sorted(stored.rows.items()))
    )
    print(
        f"journals pending after the calls: {len(pending)}; one replay wrote {len(replay.replayed)} "
        f"(already stored: {len(replay.superseded)}), {left} left pending"
    )
    print(
        f"memory: RSS {run.rss_before_mb:.0f} MB before, {run.rss_peak_mb:.0f} MB with {calls} calls open "
        f"({run.mb_per_call:.2f} MB per call; the first call alone, warm-up included: {solo.mb_per_call:.2f} MB)"
    )
    errors = len(failures) + len(stored.problems) + left
    print(
        f"RESULT calls={calls} errors={errors} missing_rows={stored.missing_rows} "
        f"pending_before_replay={len(pending)} flush_p95_ms={p95:.1f} rss_mb={run.rss_peak_mb:.0f}"
    )
    return 1 if errors or stored.missing_rows else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--turns", type=int, default=40)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.calls, args.turns)))
