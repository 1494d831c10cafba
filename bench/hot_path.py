"""Cost of recording a turn during a call, and the event-loop stall it causes.

    python bench/hot_path.py

Ten calls run at once in one event loop, each adding turns the way a live session does
(`add_message_to_local_transcript`, memory + journal write). A probe task measures how
late the loop wakes it (loop lag). Baseline in the same run: one SQLite insert+commit
per turn on the loop (the old system wrote each message to the database as it came).
Last line: RESULT p99_ms=<ms> max_stall_ms=<ms>
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conversation_manager import ConversationManager
from settings import Settings
from storage.sqlite_records import SQLiteConversationStore

CALLS = 10
TURNS = 400
PROBE_INTERVAL = 0.001


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def probe(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        due = time.perf_counter() + PROBE_INTERVAL
        await asyncio.sleep(PROBE_INTERVAL)
        lags.append(max(0.0, time.perf_counter() - due) * 1000)


async def one_call(manager: ConversationManager, n: int, costs: list[float]) -> None:
    await manager.start_conversation(None, f"hot-room-{n}", f"caller-{n}")
    text = "I would like to move my appointment to next Tuesday afternoon if possible, thanks "
    for turn in range(TURNS):
        began = time.perf_counter_ns()
        manager.add_message_to_local_transcript(
            "user" if turn % 2 else "assistant", f"{text}{turn}", {"metrics": {"e2e_latency": 0.9}}
        )
        costs.append((time.perf_counter_ns() - began) / 1e6)
        await asyncio.sleep(0.002)  # turns arrive spread over time, interleaved across calls


def baseline_per_turn_insert(path: Path) -> list[float]:
    db = sqlite3.connect(path)
    db.execute("create table m (cid text, seq int, role text, content text)")
    costs = []
    for turn in range(TURNS):
        began = time.perf_counter_ns()
        db.execute("insert into m values (?, ?, ?, ?)", ("c", turn, "user", "hello " * 14))
        db.commit()
        costs.append((time.perf_counter_ns() - began) / 1e6)
    db.close()
    return costs


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        store = await SQLiteConversationStore.open(Path(tmp) / "records.sqlite3")
        managers = [
            ConversationManager.from_settings(store, Settings(), journal_dir=Path(tmp) / "journal")
            for _ in range(CALLS)
        ]
        costs: list[float] = []
        lags: list[float] = []
        stop = asyncio.Event()
        probe_task = asyncio.create_task(probe(stop, lags))
        await asyncio.gather(*(one_call(m, n, costs) for n, m in enumerate(managers)))
        stop.set()
        await probe_task
        # The idle loop's own lag, measured the same way, is the floor the stall is read against.
        idle: list[float] = []
        stop = asyncio.Event()
        idle_task = asyncio.create_task(probe(stop, idle))
        await asyncio.sleep(1.0)
        stop.set()
        await idle_task
        for m in managers:
            await m.end_conversation()
        await store.aclose()
        baseline = baseline_per_turn_insert(Path(tmp) / "baseline.sqlite3")

    p50, p99 = statistics.median(costs), percentile(costs, 0.99)
    base_p50, base_p99 = statistics.median(baseline), percentile(baseline, 0.99)
    print(f"{len(costs)} turns over {CALLS} concurrent calls")
    print(f"add_message_to_local_transcript: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {max(costs):.3f} ms")
    print(
        f"baseline one insert+commit per turn: p50 {base_p50:.3f} ms, p99 {base_p99:.3f} ms "
        f"({base_p99 / p99:.1f}x the manager's p99)"
    )
    print(
        f"loop lag with calls: p99 {percentile(lags, 0.99):.2f} ms, max {max(lags):.2f} ms; "
        f"idle loop max {max(idle):.2f} ms"
    )
    print(f"RESULT p99_ms={p99:.3f} max_stall_ms={max(lags):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
