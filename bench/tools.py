"""Latency of every appointment-desk store operation a tool makes, against the local stack.

    python bench/tools.py        # starts its own local Supabase stack

Each operation runs 200 times, one after another (a tool waits for its answer), through
`SupabaseAppointmentStore` and the real `supabase` client: find a customer by phone, list
a customer's appointments, list open slots (reads); book, reschedule, cancel (changes, each
one SQL function call). Baselines in the same run, through the same kind of client: a bare
PostgREST GET of one row and a bare PostgREST POST of one row, i.e. what one round trip
through gateway + PostgREST + Postgres costs before the desk adds anything.
Targets: reads p95 < 30 ms, changes p95 < 50 ms.
Last line: RESULT read_p95_ms=<worst read p95> write_p95_ms=<worst change p95>
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.domain import VerificationLimits
from storage.domain_supabase import SupabaseAppointmentStore
from testkit.local_supabase import Stack, start_stack

CALLS = 200
WARMUP = 20
CUSTOMERS = 50
SLOTS = 3 * (CALLS + WARMUP) + 100
"""Room for every booking, every reschedule target, and open slots left over."""
log = logging.getLogger("bench.tools")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def seed(stack: Stack) -> tuple[list[str], list[str], list[str]]:
    """Customers (with two appointments each) and future slots; returns (customer ids, phones, free slot ids)."""
    customers = [str(uuid.uuid4()) for _ in range(CUSTOMERS)]
    phones = [f"+1415556{i:04d}" for i in range(CUSTOMERS)]
    slots = [str(uuid.uuid4()) for _ in range(SLOTS + 2 * CUSTOMERS)]
    customer_rows = ", ".join(
        f"('{c}', 'Bench {i}', '{p}', '94103', 'en')" for i, (c, p) in enumerate(zip(customers, phones, strict=True))
    )
    slot_rows = ", ".join(
        f"('{s}', now() + interval '1 hour' + {i} * interval '30 minutes', "
        f"now() + interval '1 hour' + {i + 1} * interval '30 minutes', 'Dr. Bench')"
        for i, s in enumerate(slots)
    )
    appointment_rows = ", ".join(
        f"('{c}', '{slots[2 * i + k]}', 'seed')" for i, c in enumerate(customers) for k in (0, 1)
    )
    stack.psql(
        f"insert into customers (id, name, phone, zip_code, language) values {customer_rows};"
        f"insert into slots (id, starts_at, ends_at, provider) values {slot_rows};"
        f"insert into appointments (customer_id, slot_id, reason) values {appointment_rows};"
    )
    return customers, phones, slots[2 * CUSTOMERS :]


async def measure(calls: list[Callable[[], Awaitable[object]]]) -> list[float]:
    """Run the calls in order (the first WARMUP are not timed); milliseconds per timed call."""
    latencies: list[float] = []
    for i, call in enumerate(calls):
        began = time.perf_counter()
        await call()
        if i >= WARMUP:
            latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def report(name: str, latencies: list[float]) -> float:
    p95 = percentile(latencies, 0.95)
    print(
        f"{name:<34} n={len(latencies):<4} p50 {statistics.median(latencies):6.2f} ms   p95 {p95:6.2f} ms   "
        f"max {max(latencies):6.2f} ms"
    )
    return p95


async def baselines(stack: Stack, customer_id: str) -> None:
    headers = {"apikey": stack.service_key, "Authorization": f"Bearer {stack.service_key}"}
    async with httpx.AsyncClient(base_url=f"{stack.url}/rest/v1", headers=headers, timeout=10.0) as http:

        async def get_one() -> None:
            (await http.get("/customers", params={"select": "id", "id": f"eq.{customer_id}"})).raise_for_status()

        async def post_one() -> None:
            row = {"reason": "bench baseline", "customer_id": customer_id}
            (await http.post("/callback_requests", json=row, headers={"Prefer": "return=minimal"})).raise_for_status()

        n = CALLS + WARMUP
        report("baseline: bare GET of one row", await measure([get_one] * n))
        report("baseline: bare POST of one row", await measure([post_one] * n))


async def run(stack: Stack) -> tuple[float, float]:
    customers, phones, free = seed(stack)
    n = CALLS + WARMUP
    await baselines(stack, customers[0])
    store = await SupabaseAppointmentStore.connect(stack.url, stack.service_key, timeout=10.0)
    try:
        now = dt.datetime.now(dt.UTC)
        reads = [
            report(
                "find_customer_by_phone",
                await measure([lambda i=i: store.find_customer_by_phone(phones[i % CUSTOMERS]) for i in range(n)]),
            ),
            report(
                "list_appointments",
                await measure([lambda i=i: store.list_appointments(customers[i % CUSTOMERS]) for i in range(n)]),
            ),
            report(
                "list_open_slots (2 weeks, 10)",
                await measure([lambda: store.list_open_slots(now, now + dt.timedelta(days=14), limit=10)] * n),
            ),
        ]

        booked: list[tuple[str, str]] = []  # (customer id, appointment id)

        async def book(i: int) -> None:
            customer = customers[i % CUSTOMERS]
            booked.append((customer, (await store.book(customer, free[i], reason="bench")).id))

        book_ms = await measure([lambda i=i: book(i) for i in range(n)])
        targets = free[n : 2 * n]
        writes = [
            report("book", book_ms),
            report(
                "reschedule",
                await measure([lambda i=i: store.reschedule(booked[i][0], booked[i][1], targets[i]) for i in range(n)]),
            ),
            report("cancel", await measure([lambda i=i: store.cancel(*booked[i]) for i in range(n)])),
        ]
        # The one store write a verification makes (counted before the ZIP comparison); not in
        # RESULT, which tracks the desk's reads and changes.
        limits = VerificationLimits(window_seconds=3600, phone_limit=10**6, source_limit=10**6)
        report(
            "begin_verification_attempt (claim)",
            await measure(
                [
                    lambda i=i: store.begin_verification_attempt(
                        phones[i % CUSTOMERS],
                        source=f"sip:{phones[i % CUSTOMERS]}",
                        conversation_id=None,
                        limits=limits,
                    )
                    for i in range(n)
                ]
            ),
        )
        still = stack.psql("select count(*) from appointments where reason = 'bench' and status = 'scheduled'")
        print(f"bench appointments still scheduled after cancelling all: {still.strip()}")
        return max(reads), max(writes)
    finally:
        await store.aclose()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    stack = start_stack()
    try:
        read_p95, write_p95 = asyncio.run(run(stack))
    finally:
        stack.stop()
    print(
        f"targets: reads p95 < 30 ms ({'met' if read_p95 < 30 else 'MISSED'}), "
        f"changes p95 < 50 ms ({'met' if write_p95 < 50 else 'MISSED'})"
    )
    print(f"RESULT read_p95_ms={read_p95:.1f} write_p95_ms={write_p95:.1f}")


if __name__ == "__main__":
    main()
