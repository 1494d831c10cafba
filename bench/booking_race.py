"""Twenty callers race for one slot: the database lets exactly one win.

    python bench/booking_race.py        # starts its own local Supabase stack

Twenty customers book the same slot at the same moment, each through its own
`SupabaseAppointmentStore` (its own client and connections, like calls in separate job
processes), against the local stack (PostgreSQL + PostgREST + gateway). The partial unique
index on scheduled appointments decides the race; the losers get `SlotTaken`. Connections
are warmed first and a warm-up race on another slot is not counted, so the figures are
booking latency under contention, not TCP set-up. Nine more races repeat the check.
Last line: RESULT successes=<n> attempts=20 p95_ms=<ms>  (the first measured race)
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.domain import Appointment, SlotTaken
from storage.domain_supabase import SupabaseAppointmentStore
from testkit.local_supabase import Stack, start_stack

CALLERS = 20
REPEATS = 9
log = logging.getLogger("bench.booking_race")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: with 20 samples, p95 is the 19th fastest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def seed(stack: Stack, races: int) -> tuple[list[str], list[str]]:
    """CALLERS customers and one future slot per race; returns their ids."""
    customers = [str(uuid.uuid4()) for _ in range(CALLERS)]
    slots = [str(uuid.uuid4()) for _ in range(races)]
    values = ", ".join(f"('{cid}', 'Caller {i}', '+1415555{i:04d}', '94103', 'en')" for i, cid in enumerate(customers))
    slot_values = ", ".join(
        f"('{sid}', now() + interval '1 day' + {i} * interval '30 minutes', "
        f"now() + interval '1 day' + {i + 1} * interval '30 minutes', 'Dr. Bench')"
        for i, sid in enumerate(slots)
    )
    stack.psql(
        f"insert into customers (id, name, phone, zip_code, language) values {values};"
        f"insert into slots (id, starts_at, ends_at, provider) values {slot_values};"
    )
    return customers, slots


async def timed_book(store: SupabaseAppointmentStore, customer_id: str, slot_id: str) -> tuple[object, float]:
    began = time.perf_counter()
    try:
        outcome: object = await store.book(customer_id, slot_id, reason="race")
    except Exception as e:  # every outcome is counted, not raised
        outcome = e
    return outcome, (time.perf_counter() - began) * 1000


async def race(
    stores: list[SupabaseAppointmentStore], customers: list[str], slot_id: str
) -> tuple[int, int, list[float]]:
    """All callers at once; returns (winners, SlotTaken losers, latencies in ms)."""
    results = await asyncio.gather(*(timed_book(s, c, slot_id) for s, c in zip(stores, customers, strict=True)))
    winners = sum(isinstance(outcome, Appointment) for outcome, _ in results)
    taken = sum(isinstance(outcome, SlotTaken) for outcome, _ in results)
    for outcome, _ in results:
        if not isinstance(outcome, Appointment | SlotTaken):
            log.error("unexpected outcome: %r", outcome)
    return winners, taken, [ms for _, ms in results]


async def run(stack: Stack) -> tuple[int, float, bool]:
    customers, slots = seed(stack, 2 + REPEATS)
    stores = [await SupabaseAppointmentStore.connect(stack.url, stack.service_key, timeout=10.0) for _ in customers]
    try:
        await asyncio.gather(*(s.list_appointments(c) for s, c in zip(stores, customers, strict=True)))
        await race(stores, customers, slots[0])  # warm-up, not counted

        winners, taken, latencies = await race(stores, customers, slots[1])
        print(
            f"race: {CALLERS} concurrent bookings of one slot -> {winners} booked, {taken} SlotTaken, "
            f"{CALLERS - winners - taken} other"
        )
        print(
            f"latency: p50 {percentile(latencies, 0.5):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms, "
            f"max {max(latencies):.1f} ms"
        )
        scheduled = stack.psql(
            f"select count(*) from appointments where slot_id = '{slots[1]}' and status = 'scheduled'"
        ).strip()
        print(f"scheduled rows for the slot in the database: {scheduled}")

        consistent = winners == 1 and taken == CALLERS - 1 and scheduled == "1"
        all_latencies = list(latencies)
        for slot_id in slots[2:]:
            w, t, ms = await race(stores, customers, slot_id)
            consistent = consistent and w == 1 and t == CALLERS - 1
            all_latencies += ms
        print(
            f"repeats: {REPEATS} more races, every one with exactly one winner: {consistent}; "
            f"p95 over all {len(all_latencies)} bookings {percentile(all_latencies, 0.95):.1f} ms"
        )
        return winners, percentile(latencies, 0.95), consistent
    finally:
        for store in stores:
            await store.aclose()


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    stack = start_stack()
    try:
        winners, p95, consistent = asyncio.run(run(stack))
    finally:
        stack.stop()
    print(f"RESULT successes={winners} attempts={CALLERS} p95_ms={p95:.1f}")
    return 0 if consistent else 1


if __name__ == "__main__":
    sys.exit(main())
