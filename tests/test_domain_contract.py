"""One contract, two backends, for the appointment desk: the embedded SQLite store and
Supabase (the real local stack: PostgreSQL + PostgREST + gateway, through the real client).

Each test seeds its own customers and slots; only the demo-seed test uses sql/seed_demo.sql
(and checks it against storage/demo_data.py). Effects are checked in the database itself,
not only through the store under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from settings import Settings
from storage.demo_data import DEMO_CUSTOMERS, DEMO_TIMEZONE, load_demo_data
from storage.domain import Appointment, AppointmentStore, Customer, NotFound, Slot, SlotTaken
from storage.domain_sqlite import SQLiteAppointmentStore
from storage.domain_supabase import SupabaseAppointmentStore
from storage.factory import open_appointment_store
from testkit.local_supabase import REPO_ROOT, Stack

BACKENDS = ("sqlite", "supabase")
DOMAIN_TABLES = ("customers", "slots", "appointments", "callback_requests", "appointment_details")
SEED_SQL = REPO_ROOT / "sql" / "seed_demo.sql"

ALICE = Customer(str(uuid.uuid4()), "Alice Smith", "+14155550111", "94103", "en")
HUDA = Customer(str(uuid.uuid4()), "هدى الخطيب", "+963933000111", "12345", "ar")
RACERS = tuple(Customer(str(uuid.uuid4()), f"Racer {i}", f"+1415555020{i}", "94110", "en") for i in range(6))
SOMEONE = str(uuid.uuid4())
"""A well-formed id that names nothing."""

Row = tuple[str, str, str, str]
"""An appointment as stored: (id, customer_id, slot_id, status)."""


def make_slots() -> tuple[list[Slot], Slot]:
    """Eight future half-hour slots from tomorrow 09:00 UTC, and one slot two days ago."""
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    opening = dt.datetime.combine(tomorrow, dt.time(9), tzinfo=dt.UTC)
    half_hour = dt.timedelta(minutes=30)
    future = [
        Slot(str(uuid.uuid4()), opening + i * half_hour, opening + (i + 1) * half_hour, "Dr. Test") for i in range(8)
    ]
    past_start = opening - dt.timedelta(days=3)
    return future, Slot(str(uuid.uuid4()), past_start, past_start + half_hour, "Dr. Test")


@dataclass
class Desk:
    """A store under test, its seeded world, and a view of the database behind it."""

    backend: str
    store: AppointmentStore
    slots: list[Slot]
    past_slot: Slot
    rows: Callable[[], Awaitable[list[Row]]]
    callbacks: Callable[[], Awaitable[list[dict[str, Any]]]]
    open_another: Callable[[], Awaitable[AppointmentStore]]
    sent: list[httpx.Request] = field(default_factory=list)
    """Requests the Supabase store under test sent (always empty for SQLite)."""


async def supabase_store(stack: Stack, sent: list[httpx.Request] | None = None) -> SupabaseAppointmentStore:
    """The store with an httpx client that records every request it sends."""

    async def record(request: httpx.Request) -> None:
        if sent is not None:
            sent.append(request)

    http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), event_hooks={"request": [record]})
    client = await acreate_client(
        stack.url, stack.service_key, options=AsyncClientOptions(httpx_client=http, postgrest_client_retry=False)
    )
    return SupabaseAppointmentStore(client, http)


def slot_row(slot: Slot) -> dict[str, Any]:
    return {
        "id": slot.id,
        "starts_at": slot.starts_at.isoformat(),
        "ends_at": slot.ends_at.isoformat(),
        "provider": slot.provider,
    }


def customer_row(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "phone": customer.phone,
        "zip_code": customer.zip_code,
        "language": customer.language,
    }


@pytest_asyncio.fixture(params=BACKENDS)
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    future, past = make_slots()
    customers = [ALICE, HUDA, *RACERS]
    extra: list[AppointmentStore] = []

    if request.param == "sqlite":
        path = tmp_path / "desk.sqlite3"
        sqlite_store = await SQLiteAppointmentStore.open(path)
        await sqlite_store.load(customers=customers, slots=[*future, past])

        def query(sql: str) -> list[sqlite3.Row]:
            with contextlib.closing(sqlite3.connect(path)) as db:
                db.row_factory = sqlite3.Row
                return db.execute(sql).fetchall()

        async def sqlite_rows() -> list[Row]:
            return [tuple(r) for r in query("select id, customer_id, slot_id, status from appointments order by id")]

        async def sqlite_callbacks() -> list[dict[str, Any]]:
            return [dict(r) for r in query("select * from callback_requests order by created_at")]

        async def another_sqlite() -> AppointmentStore:
            extra.append(await SQLiteAppointmentStore.open(path))
            return extra[-1]

        desk = Desk("sqlite", sqlite_store, future, past, sqlite_rows, sqlite_callbacks, another_sqlite)
    else:
        stack: Stack = request.getfixturevalue("clean_db")
        admin: AsyncClient = await acreate_client(stack.url, stack.service_key)
        await admin.table("customers").insert([customer_row(c) for c in customers]).execute()
        await admin.table("slots").insert([slot_row(s) for s in [*future, past]]).execute()
        sent: list[httpx.Request] = []

        async def supabase_rows() -> list[Row]:
            found = await admin.table("appointments").select("id,customer_id,slot_id,status").order("id").execute()
            return [(r["id"], r["customer_id"], r["slot_id"], r["status"]) for r in found.data]

        async def supabase_callbacks() -> list[dict[str, Any]]:
            return list((await admin.table("callback_requests").select("*").order("created_at").execute()).data)

        async def another_supabase() -> AppointmentStore:
            extra.append(await SupabaseAppointmentStore.connect(stack.url, stack.service_key, timeout=5.0))
            return extra[-1]

        desk = Desk(
            "supabase",
            await supabase_store(stack, sent),
            future,
            past,
            supabase_rows,
            supabase_callbacks,
            another_supabase,
            sent,
        )
    try:
        yield desk
    finally:
        for store in [desk.store, *extra]:
            await store.aclose()
        if request.param == "supabase":
            await admin.postgrest.aclose()


def scheduled_on(rows: list[Row], slot: Slot) -> list[Row]:
    return [r for r in rows if r[2] == slot.id and r[3] == "scheduled"]


# ---------------------------------------------------------------------------- reads


@pytest.mark.asyncio
async def test_find_customer_by_phone(desk: Desk) -> None:
    assert await desk.store.find_customer_by_phone(ALICE.phone) == ALICE
    assert await desk.store.find_customer_by_phone(HUDA.phone) == HUDA
    assert await desk.store.find_customer_by_phone("+14155559999") is None
    sent_before = len(desk.sent)
    for bad in (
        "",
        "14155550111",
        f"eq.{ALICE.phone}",
        f"{ALICE.phone},phone.neq.0",
        "*",
        "%",
        "+1415555011%",
        f"{ALICE.phone})",
        "or=(id.gt.0)",
    ):
        assert await desk.store.find_customer_by_phone(bad) is None, bad
    assert len(desk.sent) == sent_before, "a malformed phone must not reach the database"


@pytest.mark.asyncio
async def test_list_appointments_is_scoped_to_the_customer_and_soonest_first(desk: Desk) -> None:
    s = desk.slots
    later = await desk.store.book(ALICE.id, s[3].id)
    sooner = await desk.store.book(ALICE.id, s[1].id, reason="check-up")
    hudas = await desk.store.book(HUDA.id, s[2].id)
    cancelled = await desk.store.book(ALICE.id, s[4].id)
    await desk.store.cancel(ALICE.id, cancelled.id)
    past = await desk.store.book(ALICE.id, desk.past_slot.id)

    alices = await desk.store.list_appointments(ALICE.id)
    assert [a.id for a in alices] == [sooner.id, later.id]
    assert alices[0] == sooner
    assert alices[0].reason == "check-up" and alices[0].slot == s[1] and alices[0].status == "scheduled"
    assert all(a.customer_id == ALICE.id for a in alices)
    assert [a.id for a in await desk.store.list_appointments(ALICE.id, upcoming_only=False)] == [
        past.id,
        sooner.id,
        later.id,
    ]
    assert await desk.store.list_appointments(HUDA.id) == [hudas]
    assert await desk.store.list_appointments(RACERS[0].id) == []
    assert await desk.store.list_appointments(SOMEONE) == []


@pytest.mark.asyncio
async def test_open_slots_exclude_booked_ones_and_keep_to_the_window(desk: Desk) -> None:
    s = desk.slots
    await desk.store.book(ALICE.id, s[1].id)
    assert await desk.store.list_open_slots(s[0].starts_at, s[4].starts_at) == [s[0], s[2], s[3]]
    assert await desk.store.list_open_slots(s[0].starts_at, s[4].starts_at, limit=2) == [s[0], s[2]]
    assert await desk.store.list_open_slots(s[0].starts_at, s[4].starts_at, limit=0) == []
    everything = await desk.store.list_open_slots(s[0].starts_at - dt.timedelta(days=30), s[-1].ends_at, limit=50)
    assert everything == [desk.past_slot, s[0], *s[2:]]
    # The window is [start, end) on the start time, whatever time zone the caller uses.
    damascus = dt.timezone(dt.timedelta(hours=3))
    assert await desk.store.list_open_slots(s[2].starts_at.astimezone(damascus), s[3].starts_at) == [s[2]]


# ---------------------------------------------------------------------------- book


@pytest.mark.asyncio
async def test_book_returns_the_scheduled_appointment(desk: Desk) -> None:
    booked = await desk.store.book(HUDA.id, desk.slots[0].id, reason="متابعة")
    assert booked == Appointment(booked.id, HUDA.id, desk.slots[0], "scheduled", "متابعة")
    assert await desk.rows() == [(booked.id, HUDA.id, desk.slots[0].id, "scheduled")]
    with pytest.raises(NotFound):
        await desk.store.book(HUDA.id, SOMEONE)
    with pytest.raises(NotFound):
        await desk.store.book(SOMEONE, desk.slots[1].id)
    assert len(await desk.rows()) == 1


@pytest.mark.asyncio
async def test_double_booking_the_same_slot_raises_slot_taken(desk: Desk) -> None:
    slot = desk.slots[0]
    first = await desk.store.book(ALICE.id, slot.id)
    with pytest.raises(SlotTaken):
        await desk.store.book(HUDA.id, slot.id)
    with pytest.raises(SlotTaken):
        await desk.store.book(ALICE.id, slot.id)
    assert await desk.rows() == [(first.id, ALICE.id, slot.id, "scheduled")]


@pytest.mark.asyncio
async def test_concurrent_bookings_of_one_slot_have_exactly_one_winner(desk: Desk) -> None:
    # Separate stores (connections) racing, like calls in separate job processes ...
    stores = [await desk.open_another() for _ in RACERS]
    slot = desk.slots[5]
    results = await asyncio.gather(
        *(store.book(racer.id, slot.id) for store, racer in zip(stores, RACERS, strict=True)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, Appointment)]
    assert len(won) == 1, results
    assert all(isinstance(r, SlotTaken) for r in results if r not in won), results
    assert scheduled_on(await desk.rows(), slot) == [(won[0].id, won[0].customer_id, slot.id, "scheduled")]

    # ... and coroutines sharing one store.
    slot = desk.slots[6]
    results = await asyncio.gather(*(desk.store.book(r.id, slot.id) for r in RACERS), return_exceptions=True)
    assert sum(isinstance(r, Appointment) for r in results) == 1, results
    assert sum(isinstance(r, SlotTaken) for r in results) == len(RACERS) - 1, results
    assert len(scheduled_on(await desk.rows(), slot)) == 1


# ---------------------------------------------------------------------------- reschedule


@pytest.mark.asyncio
async def test_reschedule_moves_the_appointment_and_frees_the_old_slot(desk: Desk) -> None:
    s = desk.slots
    booked = await desk.store.book(ALICE.id, s[0].id, reason="check-up")
    moved = await desk.store.reschedule(ALICE.id, booked.id, s[3].id)
    assert moved == Appointment(booked.id, ALICE.id, s[3], "scheduled", "check-up")
    assert await desk.rows() == [(booked.id, ALICE.id, s[3].id, "scheduled")]
    window = await desk.store.list_open_slots(s[0].starts_at, s[4].starts_at)
    assert s[0] in window and s[3] not in window
    assert await desk.store.list_appointments(ALICE.id) == [moved]
    # The freed slot can be booked by someone else.
    assert (await desk.store.book(HUDA.id, s[0].id)).slot == s[0]


@pytest.mark.asyncio
async def test_reschedule_onto_a_taken_or_missing_slot_changes_nothing(desk: Desk) -> None:
    s = desk.slots
    mine = await desk.store.book(ALICE.id, s[0].id)
    await desk.store.book(HUDA.id, s[1].id)
    before = await desk.rows()
    with pytest.raises(SlotTaken):
        await desk.store.reschedule(ALICE.id, mine.id, s[1].id)
    with pytest.raises(NotFound):
        await desk.store.reschedule(ALICE.id, mine.id, SOMEONE)
    assert await desk.rows() == before
    assert await desk.store.list_appointments(ALICE.id) == [mine]


# ---------------------------------------------------------------------------- cancel


@pytest.mark.asyncio
async def test_cancel_frees_the_slot_and_only_once(desk: Desk) -> None:
    s = desk.slots
    booked = await desk.store.book(ALICE.id, s[0].id)
    cancelled = await desk.store.cancel(ALICE.id, booked.id)
    assert cancelled == Appointment(booked.id, ALICE.id, s[0], "cancelled", None)
    assert await desk.rows() == [(booked.id, ALICE.id, s[0].id, "cancelled")]
    assert await desk.store.list_appointments(ALICE.id) == []
    assert s[0] in await desk.store.list_open_slots(s[0].starts_at, s[1].starts_at)
    with pytest.raises(NotFound):
        await desk.store.cancel(ALICE.id, booked.id)
    with pytest.raises(NotFound):
        await desk.store.reschedule(ALICE.id, booked.id, s[2].id)
    assert await desk.rows() == [(booked.id, ALICE.id, s[0].id, "cancelled")]


# ---------------------------------------------------------------------------- scoping and hostile input


@pytest.mark.asyncio
async def test_another_customers_appointment_is_not_found(desk: Desk) -> None:
    s = desk.slots
    alices = await desk.store.book(ALICE.id, s[0].id)
    before = await desk.rows()
    with pytest.raises(NotFound):
        await desk.store.reschedule(HUDA.id, alices.id, s[2].id)
    with pytest.raises(NotFound):
        await desk.store.cancel(HUDA.id, alices.id)
    with pytest.raises(NotFound):
        await desk.store.cancel(SOMEONE, alices.id)
    assert await desk.rows() == before
    assert await desk.store.list_appointments(HUDA.id) == []
    assert await desk.store.list_appointments(ALICE.id) == [alices]


GARBAGE: tuple[Any, ...] = (
    "",
    "not-a-uuid",
    "eq.1,or=(id.gt.0)",
    "*",
    "%",
    "null",
    "1 or 1=1",
    "' or '1'='1",
    "00000000-0000-0000-0000-00000000000g",
    None,
    42,
)


@pytest.mark.asyncio
async def test_garbage_and_filter_syntax_ids_are_not_found_without_a_request(desk: Desk) -> None:
    s = desk.slots
    mine = await desk.store.book(ALICE.id, s[0].id)
    before = await desk.rows()
    values = [*GARBAGE, f"eq.{mine.id}", f"{mine.id},or=(id.gt.0)", f"{ALICE.id})", f"in.({mine.id})"]
    sent_before = len(desk.sent)
    for bad in values:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda bad=bad: desk.store.list_appointments(bad),
            lambda bad=bad: desk.store.book(bad, s[1].id),
            lambda bad=bad: desk.store.book(ALICE.id, bad),
            lambda bad=bad: desk.store.reschedule(bad, mine.id, s[1].id),
            lambda bad=bad: desk.store.reschedule(ALICE.id, bad, s[1].id),
            lambda bad=bad: desk.store.reschedule(ALICE.id, mine.id, bad),
            lambda bad=bad: desk.store.cancel(bad, mine.id),
            lambda bad=bad: desk.store.cancel(ALICE.id, bad),
            lambda bad=bad: desk.store.create_callback_request(
                customer_id=bad, name=None, phone=None, reason="x", conversation_id=None
            ),
        ]
        if bad is None:
            calls.pop()  # a callback request without a customer is fine
        for number, call in enumerate(calls):
            try:
                await call()
            except NotFound:
                continue
            pytest.fail(f"call {number} accepted {bad!r}")
    assert len(desk.sent) == sent_before, "a malformed id must not reach the database"
    assert await desk.rows() == before
    assert await desk.callbacks() == []


# ---------------------------------------------------------------------------- callbacks


@pytest.mark.asyncio
async def test_callback_requests_are_stored(desk: Desk) -> None:
    known = await desk.store.create_callback_request(
        customer_id=HUDA.id, name=HUDA.name, phone=HUDA.phone, reason="تريد التحدث مع الطبيب", conversation_id="c-1"
    )
    anonymous = await desk.store.create_callback_request(
        customer_id=None, name="Unknown caller", phone="+14155550999", reason="billing question", conversation_id=None
    )
    assert str(uuid.UUID(known)) == known and known != anonymous
    stored = {r["id"]: r for r in await desk.callbacks()}
    assert set(stored) == {known, anonymous}
    assert {k: stored[known][k] for k in ("customer_id", "name", "phone", "reason", "conversation_id", "status")} == {
        "customer_id": HUDA.id,
        "name": HUDA.name,
        "phone": HUDA.phone,
        "reason": "تريد التحدث مع الطبيب",
        "conversation_id": "c-1",
        "status": "open",
    }
    assert stored[anonymous]["customer_id"] is None and stored[anonymous]["conversation_id"] is None
    with pytest.raises(NotFound):
        await desk.store.create_callback_request(
            customer_id=SOMEONE, name=None, phone=None, reason="x", conversation_id=None
        )
    assert len(await desk.callbacks()) == 2


# ---------------------------------------------------------------------------- Supabase access rules


@pytest.mark.asyncio
@pytest.mark.parametrize("role", ["anon", "authenticated"])
async def test_api_roles_can_neither_read_the_desk_nor_call_its_functions(clean_db: Stack, role: str) -> None:
    stack = clean_db
    stack.psql(SEED_SQL.read_text())
    counts = stack.psql("select (select count(*) from customers), (select count(*) from appointments)")
    key = stack.anon_key if role == "anon" else stack.authenticated_key
    client = await acreate_client(stack.url, key)
    try:
        for table in DOMAIN_TABLES:
            with pytest.raises(APIError) as denied:
                await client.table(table).select("*").limit(1).execute()
            assert denied.value.code == "42501", (table, denied.value)
        with pytest.raises(APIError) as denied:
            await client.table("customers").insert(customer_row(ALICE)).execute()
        assert denied.value.code == "42501"
        demo, appointment = DEMO_CUSTOMERS[0].id, "5eed0000-0000-4000-8000-0000000000a1"
        now = dt.datetime.now(dt.UTC)
        calls = {
            "open_slots": {"p_from": now.isoformat(), "p_to": (now + dt.timedelta(days=14)).isoformat(), "p_limit": 5},
            "book_appointment": {"p_customer_id": demo, "p_slot_id": SOMEONE, "p_reason": None},
            "reschedule_appointment": {
                "p_customer_id": demo,
                "p_appointment_id": appointment,
                "p_new_slot_id": SOMEONE,
            },
            "cancel_appointment": {"p_customer_id": demo, "p_appointment_id": appointment},
        }
        for function, params in calls.items():
            with pytest.raises(APIError) as denied:
                await client.rpc(function, params).execute()
            assert denied.value.code == "42501", (function, denied.value)
    finally:
        await client.postgrest.aclose()
    assert stack.psql("select (select count(*) from customers), (select count(*) from appointments)") == counts
    assert stack.psql("select status from appointments where id = '5eed0000-0000-4000-8000-0000000000a1'") == (
        "scheduled\n"
    )


# ---------------------------------------------------------------------------- demo data


def seeded_counts(stack: Stack) -> str:
    return stack.psql(
        "select (select count(*) from customers), (select count(*) from slots), "
        "(select count(*) from appointments where status = 'scheduled')"
    )


async def appointments_by_phone(store: AppointmentStore) -> dict[str, list[tuple[dt.datetime, str | None]]]:
    found: dict[str, list[tuple[dt.datetime, str | None]]] = {}
    for demo in DEMO_CUSTOMERS:
        customer = await store.find_customer_by_phone(demo.phone)
        assert customer == demo
        found[demo.phone] = [(a.slot.starts_at, a.reason) for a in await store.list_appointments(customer.id)]
    return found


@pytest.mark.asyncio
async def test_demo_seed_is_idempotent_and_matches_the_embedded_demo(clean_db: Stack, tmp_path: Path) -> None:
    stack = clean_db
    stack.psql(SEED_SQL.read_text())
    first = seeded_counts(stack)
    stack.psql(SEED_SQL.read_text())
    assert seeded_counts(stack) == first
    customers, slots, scheduled = (int(n) for n in first.strip().split("|"))
    assert (customers, scheduled) == (len(DEMO_CUSTOMERS), 3) and slots > 0

    rows = stack.psql("select id, name, phone, zip_code, language from customers order by id")
    assert [Customer(*line.split("|")) for line in rows.splitlines() if line] == list(DEMO_CUSTOMERS)

    embedded = await open_appointment_store(Settings(data_dir=tmp_path))
    supabase = await SupabaseAppointmentStore.connect(stack.url, stack.service_key, timeout=5.0)
    try:
        assert await appointments_by_phone(embedded) == await appointments_by_phone(supabase)
        # The same clinic hours: compare a window that cannot straddle "now" between the two seeds.
        start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        end = start + dt.timedelta(days=9)
        in_sqlite = [s.starts_at for s in await embedded.list_open_slots(start, end, limit=100)]
        in_supabase = [s.starts_at for s in await supabase.list_open_slots(start, end, limit=100)]
        assert in_sqlite == in_supabase and in_sqlite
        assert all(s.astimezone(dt.UTC).minute in (0, 30) for s in in_sqlite)
    finally:
        await embedded.aclose()
        await supabase.aclose()


@pytest.mark.asyncio
async def test_embedded_store_loads_the_demo_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = await open_appointment_store(settings)
    try:
        assert isinstance(store, SQLiteAppointmentStore)
        sarah = await store.find_customer_by_phone("+14155550100")
        assert sarah is not None and sarah.language == "en"
        (appointment,) = await store.list_appointments(sarah.id)
        local = appointment.slot.starts_at.astimezone(ZoneInfo(DEMO_TIMEZONE))
        assert (local.hour, local.minute, local.weekday() < 5) == (14, 30, True)
        # A second open (another job process, a restart) finds it loaded and leaves it alone.
        assert await load_demo_data(store) is False
    finally:
        await store.aclose()
    again = await open_appointment_store(settings)
    try:
        sarah_again = await again.find_customer_by_phone("+14155550100")
        assert sarah_again == sarah
        assert len(await again.list_appointments(sarah.id)) == 1
    finally:
        await again.aclose()
    with contextlib.closing(sqlite3.connect(tmp_path / "desk.sqlite3")) as db:
        assert db.execute("select count(*) from customers").fetchone() == (len(DEMO_CUSTOMERS),)


@pytest.mark.asyncio
async def test_factory_picks_supabase_when_configured(clean_db: Stack) -> None:
    settings = Settings(supabase_url=clean_db.url, supabase_service_role_key=clean_db.service_key)
    store = await open_appointment_store(settings)
    try:
        assert isinstance(store, SupabaseAppointmentStore)
        assert await store.find_customer_by_phone(DEMO_CUSTOMERS[0].phone) is None  # never seeded from code
    finally:
        await store.aclose()
