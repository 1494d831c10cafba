"""End-of-call flush: the manager's bulk write vs one insert per message (the old system).

    python bench/flush.py            # starts its own local Supabase stack

Both run in the same process against the same local stack (PostgreSQL + PostgREST +
gateway) through the real `supabase` client. Last line:
RESULT speedup=<x> flush_ms=<ms> requests=<n> messages=1000
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from supabase import AsyncClientOptions, acreate_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conversation_manager import ConversationManager
from settings import Settings
from storage.supabase_records import SupabaseConversationStore
from testkit.local_supabase import Stack, start_stack

MESSAGES = 1000
ROUNDS = 3
log = logging.getLogger("bench.flush")


async def counted_store(stack: Stack, counter: list[int]) -> SupabaseConversationStore:
    async def count(_: httpx.Request) -> None:
        counter[0] += 1

    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0), event_hooks={"request": [count]})
    client = await acreate_client(stack.url, stack.service_key, options=AsyncClientOptions(httpx_client=http))
    return SupabaseConversationStore(client, http)


async def manager_flush(store: SupabaseConversationStore, counter: list[int], journal: Path) -> tuple[float, int]:
    manager = ConversationManager.from_settings(store, Settings(), journal_dir=journal, flush_timeout=60.0)
    await manager.start_conversation(None, "bench-room", "caller")
    for i in range(MESSAGES):
        manager.add_message_to_local_transcript("user" if i % 2 else "assistant", f"message number {i} " * 4)
    await asyncio.sleep(0.2)  # the background active-row write is not part of the flush
    counter[0] = 0
    result = await manager.end_conversation()
    assert result.saved and result.messages_saved == MESSAGES, result
    return result.flush_ms, counter[0]


async def naive_flush(store: SupabaseConversationStore, cid: str) -> float:
    client = store._client  # the same client and connection pool as the manager's
    await client.table("conversations").insert({"conversation_id": cid, "room_name": "bench-room"}).execute()
    began = time.perf_counter()
    for i in range(MESSAGES):
        row = {
            "conversation_id": cid,
            "seq": i,
            "role": "user" if i % 2 else "assistant",
            "content": f"message number {i} " * 4,
        }
        await client.table("messages").insert(row).execute()
    return (time.perf_counter() - began) * 1000


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    stack = start_stack()
    try:
        counter = [0]
        store = await counted_store(stack, counter)
        managed, naive, requests = [], [], 0
        with tempfile.TemporaryDirectory() as journal:
            for round_ in range(ROUNDS):
                ms, requests = await manager_flush(store, counter, Path(journal))
                managed.append(ms)
                naive.append(await naive_flush(store, f"naive-{round_}"))
                print(
                    f"round {round_ + 1}: manager {ms:.1f} ms ({requests} requests), "
                    f"one insert per message {naive[-1]:.1f} ms"
                )
        await store.aclose()
    finally:
        stack.stop()
    flush_ms = statistics.median(managed)
    naive_ms = statistics.median(naive)
    print(f"median manager flush {flush_ms:.1f} ms, naive {naive_ms:.1f} ms, request budget {4 + -(-MESSAGES // 500)}")
    print(f"RESULT speedup={naive_ms / flush_ms:.1f} flush_ms={flush_ms:.1f} requests={requests} messages={MESSAGES}")


if __name__ == "__main__":
    asyncio.run(main())
