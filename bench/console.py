"""The operator console's page times over a large local Supabase store.

    python bench/console.py      # starts its own local Supabase stack

Seeds 10,000 conversations and 400,000 messages: 9,999 calls of 40 turns spread over the
last 30 days (bulk SQL, with statuses, outcomes, languages, slow turns and per-reply latency
metrics), plus one call of 200 turns with tool calls and two agent runs written by the real
ConversationManager. Then the console runs on uvicorn (as `serve` does) and each page is
fetched 60 times, interleaved (list, call, stats, list, ...), after 5 warm-up rounds:
- the calls list (first page, and a filtered one: outcome + language);
- the 200-turn call page;
- the stats page (7 days).
Baseline in the same run: the same reads straight from the store (SupabaseConversationStore,
no HTTP server, no templates), so the console's own cost is the difference.
Targets: list and call page p95 < 150 ms, stats p95 < 300 ms.
Last line: RESULT list_p95_ms=<ms> call_p95_ms=<ms> stats_p95_ms=<ms> conversations=<n>
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conversation_manager import ConversationManager
from settings import Settings
from storage.records import ConversationQuery
from storage.supabase_records import SupabaseConversationStore
from testkit.console_server import running_console
from testkit.local_supabase import Stack, start_stack

BULK_CALLS = 9_999
TURNS = 40
LONG_CALL_TURNS = 200
ROUNDS = 60
WARMUP = 5
TOKEN = "bench-console-token-0123456789"
log = logging.getLogger("bench.console")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def seed_bulk(stack: Stack) -> None:
    """9,999 calls x 40 turns in two statements (what a month of a busy desk leaves)."""
    stack.psql(
        f"""
        insert into conversations (conversation_id, room_name, participant_identity, status, started_at, ended_at,
            duration_seconds, message_count, user_name, user_phone, language, outcome, summary, avatar_status,
            latency_p50_ms, latency_p95_ms, latency_max_ms, slow_turns, metadata)
        select 'bench-' || i, 'room-' || (i % 50), 'caller-' || i,
               (array['completed','completed','completed','abandoned','failed'])[1 + i % 5],
               now() - (i * interval '259 seconds'), now() - (i * interval '259 seconds') + interval '3 minutes',
               180, {TURNS}, 'Caller ' || i, '+9639' || lpad((i % 100000)::text, 8, '0'),
               (array['en','ar'])[1 + i % 2],
               (array['booked', 'cancelled', 'rescheduled', 'information_only', 'callback_requested',
                      'abandoned'])[1 + i % 6],
               'Summary of call ' || i, (array['ready','not_configured','disabled_sip'])[1 + i % 3],
               700, 1400, 2600, i % 3, jsonb_build_object('channel', 'sip', 'effects', '[]'::jsonb)
        from generate_series(1, {BULK_CALLS}) as i;
        insert into messages (conversation_id, seq, role, content, interrupted, created_at, metadata)
        select 'bench-' || i, t, case when t % 2 = 0 then 'user' else 'assistant' end,
               'turn ' || t || ' of call ' || i || ': I would like to move my appointment to next week please',
               t % 17 = 0, now() - (i * interval '259 seconds') + t * interval '4 seconds',
               case when t % 2 = 1
                    then jsonb_build_object('metrics', jsonb_build_object(
                         'e2e_latency', 0.5 + ((i * 7 + t) % 23) / 10.0, 'llm_node_ttft', 0.3, 'tts_node_ttfb', 0.2))
                    else jsonb_build_object('metrics', jsonb_build_object('end_of_turn_delay', 0.25)) end
        from generate_series(1, {BULK_CALLS}) as i, generate_series(0, {TURNS - 1}) as t;
        analyze;
        """,
        timeout=900,
    )


async def seed_long_call(store: SupabaseConversationStore, journal: Path) -> str:
    manager = ConversationManager.from_settings(store, Settings(), journal_dir=journal)
    cid = await manager.start_conversation(None, "bench-long", "caller-long")
    manager.runs.open_run("ReceptionAgent")
    for turn in range(LONG_CALL_TURNS):
        if turn == LONG_CALL_TURNS // 4:
            manager.add_tool_call("verify_caller", {"zip_code": "11001"}, "verified", duration_ms=30.0)
            manager.runs.open_run("AppointmentsAgent")
        if turn % 2 == 0:
            meta = {"metrics": {"end_of_turn_delay": 0.2}}
            manager.add_message_to_local_transcript("user", f"caller turn {turn}: which days are free", meta)
        else:
            meta = {"metrics": {"e2e_latency": 0.6 + (turn % 9) / 10, "llm_node_ttft": 0.3, "tts_node_ttfb": 0.2}}
            text = f"agent turn {turn}: Monday at nine or Tuesday at ten are open, which one suits you"
            manager.add_message_to_local_transcript("assistant", text, meta, interrupted=turn % 25 == 0)
    result = await manager.end_conversation()
    assert result.saved, result.error
    return cid


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await fn()
    return (time.perf_counter() - began) * 1000


async def measure(stack: Stack, long_call: str, journal: Path) -> dict[str, list[float]]:
    settings = Settings(
        supabase_url=stack.url,
        supabase_service_role_key=stack.service_key,
        journal_dir=journal,
        console_token=TOKEN,
        store_timeout=10.0,
    )
    store = await SupabaseConversationStore.connect(stack.url, stack.service_key, timeout=10.0)
    pages = {
        "list": "/calls",
        "list_filtered": "/calls?outcome=booked&language=en",
        "call": f"/calls/{long_call}",
        "stats": "/stats?days=7",
    }
    direct: dict[str, Callable[[], Awaitable[object]]] = {
        "list": lambda: store.search_conversations(ConversationQuery(limit=51)),
        "list_filtered": lambda: store.search_conversations(
            ConversationQuery(outcome="booked", language="en", limit=51)
        ),
        "call": lambda: store.get_conversation(long_call),
        "stats": lambda: asyncio.gather(store.stats_by_status(), store.report(days=7)),
    }
    times: dict[str, list[float]] = {f"{k}{kind}": [] for k in pages for kind in ("", "_store")}
    try:
        with running_console(settings) as console:
            async with httpx.AsyncClient(
                base_url=console.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
            ) as client:

                async def get(path: str) -> None:
                    answer = await client.get(path)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{path}: HTTP {answer.status_code} {answer.text[:200]}")

                for round_ in range(WARMUP + ROUNDS):
                    for key, path in pages.items():  # interleaved: load on the machine hits every page alike
                        page_ms = await timed(lambda p=path: get(p))
                        store_ms = await timed(direct[key])
                        if round_ >= WARMUP:
                            times[key].append(page_ms)
                            times[f"{key}_store"].append(store_ms)
    finally:
        await store.aclose()
    return times


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    stack = start_stack()
    try:
        began = time.perf_counter()
        seed_bulk(stack)
        journal = stack.dir / "bench-journal"

        async def long_call() -> str:
            store = await SupabaseConversationStore.connect(stack.url, stack.service_key, timeout=30.0)
            try:
                return await seed_long_call(store, journal)
            finally:
                await store.aclose()

        cid = asyncio.run(long_call())
        counts = stack.psql("select (select count(*) from conversations), (select count(*) from messages)").strip()
        conversations, messages = (int(v) for v in counts.split("|"))
        print(f"seeded {conversations} conversations, {messages} messages in {time.perf_counter() - began:.0f} s")
        times = asyncio.run(measure(stack, cid, journal))
    finally:
        stack.stop()

    print(f"\n{ROUNDS} requests per page after {WARMUP} warm-up rounds, interleaved; ms")
    print(f"{'page':<16}{'p50':>8}{'p95':>8}{'max':>8}   {'store p50':>9}{'store p95':>10}   console/store p95")
    for key in ("list", "list_filtered", "call", "stats"):
        page, direct = times[key], times[f"{key}_store"]
        ratio = percentile(page, 0.95) / max(percentile(direct, 0.95), 0.001)
        print(
            f"{key:<16}{statistics.median(page):>8.1f}{percentile(page, 0.95):>8.1f}{max(page):>8.1f}   "
            f"{statistics.median(direct):>9.1f}{percentile(direct, 0.95):>10.1f}   {ratio:>6.2f}x"
        )
    list_p95 = max(percentile(times["list"], 0.95), percentile(times["list_filtered"], 0.95))
    print("targets: list and call p95 < 150 ms, stats p95 < 300 ms")
    print(
        f"RESULT list_p95_ms={list_p95:.1f} call_p95_ms={percentile(times['call'], 0.95):.1f} "
        f"stats_p95_ms={percentile(times['stats'], 0.95):.1f} conversations={conversations}"
    )


if __name__ == "__main__":
    main()
