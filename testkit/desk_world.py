"""The appointment desk's seeded world and a call to it, shared by the desk's tests.

A `World` is a seeded appointment store (embedded SQLite or the local Supabase stack) and a
view of the database behind it; `open_call` is a real text-mode AgentSession with the scripted
LLM over that world.
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

from livekit.agents import AgentSession, llm
from livekit.agents.voice.run_result import RunResult
from supabase import AsyncClient, acreate_client

import calls
import prompts
from conversation_manager import ConversationManager
from desk.call_language import Cause
from desk.desk import AppointmentDesk, Transfer
from settings import Settings
from storage.domain import Appointment, AppointmentStore, Customer, Slot
from storage.domain_sqlite import SQLiteAppointmentStore
from storage.domain_supabase import SupabaseAppointmentStore
from storage.records import ConversationStore
from storage.sqlite_records import SQLiteConversationStore
from testkit.scripted_llm import LLMCall, Reply, ScriptedLLM, ToolCall
from tools.progress import StatusSink

WAIT = 15.0
TZ = "Asia/Damascus"
APPOINTMENT_TOOLS = {
    "list_appointments",
    "list_available_slots",
    "book_appointment",
    "reschedule_appointment",
    "cancel_appointment",
    "confirm_pending_change",
}

SARA = Customer(str(uuid.uuid4()), "Sarah Johnson", "+14155550100", "94103", "en")
HUDA = Customer(str(uuid.uuid4()), "هدى الخطيب", "+963933000111", "12345", "ar")
OMAR = Customer(str(uuid.uuid4()), "Omar Khalil", "+14155550123", "94110", "en")
CALLER = {"en": SARA, "ar": HUDA}
ZIP_SAID = {"en": "94103", "ar": "١٢٣٤٥"}
"""What the model passes as the ZIP code: the Arabic call says it in Arabic-Indic digits."""
SAY = {
    "en": {
        "hello": "Hi, I'd like to book an appointment.",
        "zip": "My ZIP code is 9 4 1 0 3.",
        "tomorrow": "Something tomorrow morning?",
        "first": "The first one.",
        "yes": "Yes, please.",
        "no": "No, leave it.",
    },
    "ar": {
        "hello": "مرحباً، أريد حجز موعد.",
        "zip": "الرمز البريدي ١٢٣٤٥.",
        "tomorrow": "هل يوجد شيء غداً صباحاً؟",
        "first": "الأول من فضلك.",
        "yes": "نعم، من فضلك.",
        "no": "لا، اتركه.",
    },
}
LANGUAGES = ["en", "ar"]


# ------------------------------------------------------------------------- the world


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZoneInfo(TZ)).astimezone(dt.UTC)


@dataclass
class World:
    """A seeded store and a view of the database behind it."""

    backend: str
    store: AppointmentStore
    tomorrow: dt.date
    slots: list[Slot]
    """Tomorrow 09:00-12:30 (8 slots), then the day after, the same hours."""
    appointments: dict[str, Appointment]
    """Each customer's one appointment (the day after tomorrow), by customer id."""
    rows: Callable[[], Awaitable[list[tuple[str, str, str, str]]]]
    """Every appointment as stored: (id, customer_id, slot_id, status), by id."""
    callbacks: Callable[[], Awaitable[list[dict[str, Any]]]]
    another_store: Callable[[], Awaitable[AppointmentStore]]
    """A second connection, for "someone else" acting during the call."""

    def tomorrow_slots(self) -> list[Slot]:
        return self.slots[:8]

    async def scheduled(self, customer: Customer) -> dict[str, str]:
        """appointment id -> slot id of the customer's scheduled appointments."""
        return {r[0]: r[2] for r in await self.rows() if r[1] == customer.id and r[3] == "scheduled"}


def plan(now: dt.datetime) -> tuple[dt.date, list[Slot], dict[str, Appointment]]:
    tomorrow = now.astimezone(ZoneInfo(TZ)).date() + dt.timedelta(days=1)
    slots = [
        Slot(
            str(uuid.uuid4()),
            local(day, 9) + k * dt.timedelta(minutes=30),
            local(day, 9) + (k + 1) * dt.timedelta(minutes=30),
            "Dr. Rana Khoury",
        )
        for day in (tomorrow, tomorrow + dt.timedelta(days=1))
        for k in range(8)
    ]
    later = slots[8:]
    appointments = {
        c.id: Appointment(str(uuid.uuid4()), c.id, later[i], "scheduled", "check-up")
        for i, c in ((2, SARA), (4, HUDA), (6, OMAR))
    }
    return tomorrow, slots, appointments


@contextlib.asynccontextmanager
async def sqlite_world(tmp_path: Path) -> AsyncIterator[World]:
    tomorrow, slots, appointments = plan(dt.datetime.now(dt.UTC))
    path = tmp_path / "desk.sqlite3"
    store = await SQLiteAppointmentStore.open(path)
    await store.load(customers=[SARA, HUDA, OMAR], slots=slots, appointments=list(appointments.values()))
    extra: list[AppointmentStore] = []

    def query(sql: str) -> list[sqlite3.Row]:
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql).fetchall()

    async def rows() -> list[tuple[str, str, str, str]]:
        return [tuple(r) for r in query("select id, customer_id, slot_id, status from appointments order by id")]

    async def callbacks() -> list[dict[str, Any]]:
        return [dict(r) for r in query("select * from callback_requests order by created_at")]

    async def another() -> AppointmentStore:
        extra.append(await SQLiteAppointmentStore.open(path))
        return extra[-1]

    try:
        yield World("sqlite", store, tomorrow, slots, appointments, rows, callbacks, another)
    finally:
        for s in [store, *extra]:
            await s.aclose()


@contextlib.asynccontextmanager
async def supabase_world(stack: Any) -> AsyncIterator[World]:
    tomorrow, slots, appointments = plan(dt.datetime.now(dt.UTC))
    admin: AsyncClient = await acreate_client(stack.url, stack.service_key)
    await (
        admin.table("customers")
        .insert(
            [
                {"id": c.id, "name": c.name, "phone": c.phone, "zip_code": c.zip_code, "language": c.language}
                for c in (SARA, HUDA, OMAR)
            ]
        )
        .execute()
    )
    await (
        admin.table("slots")
        .insert(
            [
                {
                    "id": s.id,
                    "starts_at": s.starts_at.isoformat(),
                    "ends_at": s.ends_at.isoformat(),
                    "provider": s.provider,
                }
                for s in slots
            ]
        )
        .execute()
    )
    await (
        admin.table("appointments")
        .insert(
            [
                {"id": a.id, "customer_id": a.customer_id, "slot_id": a.slot.id, "status": a.status, "reason": a.reason}
                for a in appointments.values()
            ]
        )
        .execute()
    )
    store = await SupabaseAppointmentStore.connect(stack.url, stack.service_key, timeout=5.0)
    extra: list[AppointmentStore] = []

    async def rows() -> list[tuple[str, str, str, str]]:
        found = await admin.table("appointments").select("id,customer_id,slot_id,status").order("id").execute()
        return [(r["id"], r["customer_id"], r["slot_id"], r["status"]) for r in found.data]

    async def callbacks() -> list[dict[str, Any]]:
        return list((await admin.table("callback_requests").select("*").order("created_at").execute()).data)

    async def another() -> AppointmentStore:
        extra.append(await SupabaseAppointmentStore.connect(stack.url, stack.service_key, timeout=5.0))
        return extra[-1]

    try:
        yield World("supabase", store, tomorrow, slots, appointments, rows, callbacks, another)
    finally:
        for s in [store, *extra]:
            await s.aclose()
        await admin.postgrest.aclose()


# ------------------------------------------------------------------------- the call


@dataclass
class Call:
    session: AgentSession
    llm: ScriptedLLM
    desk: AppointmentDesk
    manager: ConversationManager
    lang: str
    results: list[RunResult] = field(default_factory=list)

    async def turn(self, text: str, *steps: Reply | Callable[[LLMCall], Reply]) -> RunResult:
        """One caller turn, answered by the given model steps (one per LLM call)."""
        self.llm.push(*steps)
        result = await asyncio.wait_for(self.session.run(user_input=text), WAIT)
        self.results.append(result)
        return result

    def line(self, key: str, **fields: object) -> str:
        return prompts.load(self.lang, key, **fields)

    def outputs(self, name: str) -> list[llm.FunctionCallOutput]:
        return [
            e.item for r in self.results for e in r.events if e.type == "function_call_output" and e.item.name == name
        ]


@contextlib.asynccontextmanager
async def open_call(
    world: World,
    tmp_path: Path,
    lang: str = "en",
    *,
    phone: str | None = "caller",
    is_sip: bool = False,
    transfer: Transfer | None = None,
    escalation: str | None = None,
    status: StatusSink | None = None,
    languages: tuple[str, ...] = (),
    start_language: tuple[str | None, Cause] | None = None,
    records: ConversationStore | None = None,
    **config: Any,
) -> AsyncIterator[Call]:
    """A call to the desk through the production wiring (`calls.open_call`); `phone="caller"`
    means the call carries the language's customer's phone.

    `languages`: the deployment's (default: `lang` alone); `start_language`: the call's first
    language and its cause, chosen before the greeting as the worker does; `records`: the record
    store (default: a fresh SQLite file, closed at the end)."""
    settings = Settings(
        language=lang,
        languages=languages or (lang,),
        clinic_timezone=TZ,
        default_country_code="963",
        escalation_phone_number=escalation,
        journal_dir=tmp_path / "journal",
    )
    own_records = records is None
    records = records or await SQLiteConversationStore.open(tmp_path / f"records-{uuid.uuid4().hex[:6]}.sqlite3")
    wired = await calls.open_call(
        settings,
        room_name="desk-room",
        records=records,
        appointments=world.store,
        transfer=transfer,
        status=status,
        desk_overrides=config,
    )
    wired.desk.caller_identified(
        phone=CALLER[lang].phone if phone == "caller" else phone, is_sip=is_sip, participant_identity="sip_caller"
    )
    if start_language is not None:
        wired.desk.start_language(*start_language)
    scripted = ScriptedLLM()
    try:
        async with AgentSession(llm=scripted, vad=None, turn_handling={"turn_detection": None}) as session:
            wired.attach(session)
            await asyncio.wait_for(session.start(wired.reception_agent(), capture_run=True), WAIT)
            call = Call(session, scripted, wired.desk, wired.manager, lang)
            yield call
        assert not scripted.errors, scripted.errors
    finally:
        wired.summarize = None  # the scripted LLM's script is the test's, not the summary's
        await wired.aclose()
        if own_records:
            await records.aclose()


def outcome(call: Call) -> str:
    """The outcome the call's record carries (derived from what the tools did)."""
    return str(call.manager.transcript.to_record().conversation["outcome"])


def tool(name: str, **args: Any) -> Reply:
    return Reply(tool_calls=[ToolCall(name, args)])


async def verify(call: Call, *then: Reply) -> RunResult:
    """The caller gives the right ZIP code: verify_caller, handoff, the appointments agent answers
    (with `then`, e.g. a tool call and a reply)."""
    return await call.turn(
        SAY[call.lang]["zip"], tool("verify_caller", zip_code=ZIP_SAID[call.lang]), *(then or [Reply("Verified.")])
    )


async def list_tomorrow(call: Call, world: World) -> RunResult:
    day = world.tomorrow.isoformat()
    if call.lang == "ar":  # the Arabic call's model writes the date in Arabic-Indic digits
        day = day.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    return await call.turn(
        SAY[call.lang]["tomorrow"],
        tool("list_available_slots", from_date=day, to_date=day, part_of_day="any"),
        Reply("Here are some times."),
    )


def last_output(result: RunResult, name: str) -> llm.FunctionCallOutput:
    outputs = [e.item for e in result.events if e.type == "function_call_output" and e.item.name == name]
    assert outputs, f"no output from {name}"
    return outputs[-1]
