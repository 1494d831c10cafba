"""Many simulated calls at once against the local Supabase stack, for tests/test_load.py and bench/load.py.

Each call is what a job runs: its own record store and appointment store (own HTTP
clients), a `ConversationManager` with its journal, a real text-mode `AgentSession` with
the reception and appointments agents over an `AppointmentDesk`, and a scripted LLM that
verifies the caller, lists, books, cancels, saves details and chats, turn after turn.
Every call has its own customer and its own day of slots, so calls never compete for a
slot: any cross-talk between calls is a bug, not a race the desk is allowed to lose. A
call's desk books as far ahead as its day (`horizon_days`), so any number of calls fits.

`run_calls()` runs them concurrently, closes every session, then ends every call at the
same instant (one gather after a barrier); `check_stored()` then reads the database
(psql, independent of the worker's client) and compares it with what each session said.
Every user and assistant line carries its call's tag (`[c07 t12]`), so a row that
landed in another call's record is caught.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from livekit.agents import AgentSession
from livekit.agents.voice.run_result import RunResult

import calls
from conversation_manager.manager import EndResult
from desk.config import DeskConfig
from settings import Settings
from storage.domain import Appointment, Customer, Slot
from testkit.local_supabase import Stack
from testkit.scripted_llm import Reply, ScriptedLLM, ToolCall, usage

TZ = "Asia/Damascus"
MIN_TURNS = 10
SLOTS_PER_CALL = 4
TURN_BOUND = 120.0
"""A hang guard for one turn under load (not a performance threshold)."""
STORE_TIMEOUT = 30.0
"""Per store request in this rig. A thousand sessions share one event loop here (LiveKit gives
each job its own process), and on a loaded machine that loop can lag past the production 5 s
before it reads an answer that came at once; the end-of-call write keeps FLUSH_TIMEOUT (8 s)."""
INTERNAL_ERROR = "An internal error occurred"


@dataclass(frozen=True)
class CallPlan:
    index: int
    customer: Customer
    day: dt.date
    slots: tuple[Slot, ...]
    appointment: Appointment
    """Scheduled on `slots[0]`; the call books `slots[1]` and cancels this one."""

    @property
    def tag(self) -> str:
        return f"c{self.index:02d}"

    def horizon_days(self, now: dt.datetime | None = None) -> int:
        """The booking horizon this call's desk needs: its day, at least the desk's default."""
        today = (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(TZ)).date()
        return max(DeskConfig.booking_horizon_days, (self.day - today).days + 1)


def plan_calls(count: int, now: dt.datetime | None = None) -> list[CallPlan]:
    tz = ZoneInfo(TZ)
    first_day = (now or dt.datetime.now(dt.UTC)).astimezone(tz).date() + dt.timedelta(days=1)
    plans = []
    for i in range(count):
        letters = "".join(chr(ord("a") + int(d)) for d in f"{i:03d}").title()  # names have no digits
        customer = Customer(str(uuid.uuid4()), f"Caller {letters}", f"+1415777{i:04d}", f"{10000 + i}", "en")
        day = first_day + dt.timedelta(days=i)
        start = dt.datetime.combine(day, dt.time(9), tz).astimezone(dt.UTC)
        slots = tuple(
            Slot(
                str(uuid.uuid4()),
                start + k * dt.timedelta(minutes=30),
                start + (k + 1) * dt.timedelta(minutes=30),
                "Dr. Load",
            )
            for k in range(SLOTS_PER_CALL)
        )
        appointment = Appointment(str(uuid.uuid4()), customer.id, slots[0], "scheduled", "check-up")
        plans.append(CallPlan(i, customer, day, slots, appointment))
    return plans


def seed(stack: Stack, plans: list[CallPlan]) -> None:
    """Customers, slots and appointments, written with psql as the superuser (not the code under test)."""

    def q(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    customers = ",".join(
        f"({q(p.customer.id)},{q(p.customer.name)},{q(p.customer.phone)},{q(p.customer.zip_code)},'en')" for p in plans
    )
    slots = ",".join(
        f"({q(s.id)},{q(s.starts_at.isoformat())},{q(s.ends_at.isoformat())},{q(s.provider or '')})"
        for p in plans
        for s in p.slots
    )
    appointments = ",".join(
        f"({q(p.appointment.id)},{q(p.customer.id)},{q(p.appointment.slot.id)},'scheduled','check-up')" for p in plans
    )
    stack.psql(
        f"insert into customers (id, name, phone, zip_code, language) values {customers};"
        f"insert into slots (id, starts_at, ends_at, provider) values {slots};"
        f"insert into appointments (id, customer_id, slot_id, status, reason) values {appointments};"
    )


def turn_script(plan: CallPlan, turn: int) -> tuple[str, list[Reply]]:
    """What the caller says in `turn` and what the model does about it (one step per LLM call)."""
    tag = f"[{plan.tag} t{turn:02d}]"
    day = plan.day.isoformat()

    def answer(text: str) -> Reply:
        return Reply(f"{tag} {text}", usage=usage(300 + turn, 12))

    def tool(tool_name: str, **args: Any) -> Reply:
        return Reply(tool_calls=[ToolCall(tool_name, args)], usage=usage(280 + turn, 9))

    fixed: dict[int, tuple[str, list[Reply]]] = {
        0: ("Hi, I'd like to sort out my appointments.", [answer("Sure, what is your ZIP code?")]),
        1: (
            f"My ZIP code is {plan.customer.zip_code}.",
            [tool("verify_caller", zip_code=plan.customer.zip_code), answer("Thanks, you are verified.")],
        ),
        2: ("What do I have booked?", [tool("list_appointments"), answer("You have one appointment.")]),
        3: (
            f"What is free on {day}?",
            [
                tool("list_available_slots", from_date=day, to_date=day, part_of_day="any"),
                answer("Here are the open times."),
            ],
        ),
        4: ("The first one please.", [tool("book_appointment", slot_ref="S1"), answer("Shall I book it?")]),
        5: ("Yes, book it.", [tool("confirm_pending_change", confirmed=True), answer("It is booked.")]),
        6: ("What do I have now?", [tool("list_appointments"), answer("You have two appointments.")]),
        7: ("Cancel the old one.", [tool("cancel_appointment", appointment_ref="A1"), answer("Cancel it?")]),
        8: ("Yes, cancel it.", [tool("confirm_pending_change", confirmed=True), answer("It is cancelled.")]),
        9: (
            "Please note my email.",
            [
                tool("save_caller_details", name=plan.customer.name, phone="", email=f"caller{plan.index}@example.com"),
                answer("Noted."),
            ],
        ),
    }
    if turn in fixed:
        said, steps = fixed[turn]
        return f"{tag} {said}", steps
    if turn % 6 == 0:
        return f"{tag} Read my appointments again.", [tool("list_appointments"), answer("Here they are.")]
    if turn % 6 == 3:
        return f"{tag} Anything else that day?", [
            tool("list_available_slots", from_date=day, to_date=day, part_of_day="afternoon"),
            answer("Nothing in the afternoon."),
        ]
    return f"{tag} And one more question, number {turn}.", [answer(f"Here is answer number {turn}.")]


@dataclass
class CallOutcome:
    plan: CallPlan
    conversation_id: str = ""
    user_lines: list[str] = field(default_factory=list)
    assistant_messages: int = 0
    tool_calls: int = 0
    agent_runs: int = 0
    """One per activation: the start run carries the first agent's handoff event."""
    internal_errors: int = 0
    llm_errors: list[str] = field(default_factory=list)
    end: EndResult | None = None
    ended_at: float = 0.0
    failure: str | None = None

    @property
    def expected_messages(self) -> int:
        return len(self.user_lines) + self.assistant_messages

    def count(self, result: RunResult) -> None:
        for event in result.events:
            if event.type == "message" and event.item.role == "assistant":
                self.assistant_messages += 1
            elif event.type == "function_call":
                self.tool_calls += 1
            elif event.type == "function_call_output" and event.item.output == INTERNAL_ERROR:
                self.internal_errors += 1
            elif event.type == "agent_handoff":
                self.agent_runs += 1


@dataclass
class LoadRun:
    outcomes: list[CallOutcome]
    rss_before_mb: float
    rss_peak_mb: float
    end_spread_ms: float
    error_logs: list[str]

    @property
    def mb_per_call(self) -> float:
        return max(0.0, self.rss_peak_mb - self.rss_before_mb) / max(1, len(self.outcomes))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        cid = getattr(record, "conversation_id", "")
        self.lines.append(f"{record.name}: {record.getMessage()}" + (f" [{cid}]" if cid else ""))


async def _meet(barrier: asyncio.Barrier) -> int | None:
    """Wait for every call; None if another call failed and broke the barrier."""
    try:
        return await barrier.wait()
    except asyncio.BrokenBarrierError:
        return None


async def _one_call(
    stack: Stack,
    plan: CallPlan,
    turns: int,
    journal_dir: Path,
    barrier: asyncio.Barrier,
    outcome: CallOutcome,
    on_peak: Callable[[], None],
    gate: asyncio.Semaphore | contextlib.nullcontext[None],
) -> None:
    settings = Settings(
        supabase_url=stack.url,
        supabase_service_role_key=stack.service_key,
        journal_dir=journal_dir,
        default_country_code="1",
        clinic_timezone=TZ,
        store_timeout=STORE_TIMEOUT,
    )
    call: calls.Call | None = None
    try:
        async with gate:
            call = await calls.open_call(
                settings,
                room_name=f"load-room-{plan.index}",
                desk_overrides={"booking_horizon_days": plan.horizon_days()},
            )
        outcome.conversation_id = call.conversation_id
        call.desk.caller_identified(phone=plan.customer.phone, participant_identity=plan.tag)
        scripted = ScriptedLLM()
        async with AgentSession(llm=scripted, vad=None, turn_handling={"turn_detection": None}) as session:
            call.attach(session)
            call.summarize = None  # the scripted LLM plays the caller's turns only
            async with gate:
                outcome.count(await session.start(call.reception_agent(), capture_run=True))
            for turn in range(turns):
                said, steps = turn_script(plan, turn)
                async with gate:
                    scripted.push(*steps)
                    outcome.user_lines.append(said)
                    outcome.count(await asyncio.wait_for(session.run(user_input=said), TURN_BOUND))
            outcome.llm_errors = [repr(e) for e in scripted.errors]
            if await _meet(barrier) == 0:
                on_peak()  # every session is still open: the memory peak of the run
        await _meet(barrier)  # every session closed: every call ends now, at once
    except Exception as e:
        outcome.failure = f"{type(e).__name__}: {e}"
        await barrier.abort()
    finally:
        if call is not None:
            outcome.ended_at = time.perf_counter()
            outcome.end = await call.aclose()


async def run_calls(
    stack: Stack, plans: list[CallPlan], turns: int, journal_dir: Path, *, concurrent_turns: int | None = None
) -> LoadRun:
    """`concurrent_turns` bounds how many calls are in a turn at the same moment (every call
    stays open, and all end at once): one process hosting a thousand sessions is the rig's
    artefact (LiveKit gives each job its own process), and its event loop must not starve
    the store requests of the turns into their timeouts."""
    if turns < MIN_TURNS:
        raise ValueError(f"a call needs at least {MIN_TURNS} turns to verify, book and cancel")
    errors = _ErrorLog()
    logging.getLogger().addHandler(errors)
    gc.collect()
    before = rss_mb()
    peak = [before]

    def on_peak() -> None:
        gc.collect()
        peak[0] = rss_mb()

    outcomes = [CallOutcome(plan) for plan in plans]
    barrier = asyncio.Barrier(len(plans))
    gate = asyncio.Semaphore(concurrent_turns) if concurrent_turns else contextlib.nullcontext()
    try:
        await asyncio.gather(
            *(_one_call(stack, o.plan, turns, journal_dir, barrier, o, on_peak, gate) for o in outcomes)
        )
    finally:
        logging.getLogger().removeHandler(errors)
    ends = [o.ended_at for o in outcomes if o.ended_at]
    spread = (max(ends) - min(ends)) * 1000 if ends else 0.0
    return LoadRun(outcomes, before, peak[0], spread, errors.lines)


# ------------------------------------------------------------------------- what the database holds


@dataclass
class Stored:
    missing_rows: int = 0
    extra_rows: int = 0
    problems: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


def _table(stack: Stack, sql: str) -> list[list[str]]:
    return [line.split("\x1f") for line in stack.psql(f"\\pset fieldsep '\\x1f'\n{sql}").splitlines() if line]


def check_stored(stack: Stack, outcomes: list[CallOutcome]) -> Stored:
    """Compare every call's rows with what its session said and did."""
    stored = Stored()
    by_id = {o.conversation_id: o for o in outcomes}
    conversations = {
        r[0]: r
        for r in _table(
            stack, "select conversation_id, status, message_count, customer_id, user_name from conversations"
        )
    }
    counts: dict[str, dict[str, int]] = {cid: {"messages": 0, "tool_calls": 0, "agent_runs": 0} for cid in by_id}
    for table in ("messages", "tool_calls", "agent_runs"):
        for cid, n in _table(stack, f"select conversation_id, count(*) from {table} group by 1"):
            if cid not in counts:
                stored.problems.append(f"{table}: {n} rows of an unknown conversation {cid}")
                stored.extra_rows += int(n)
                continue
            counts[cid][table] = int(n)
        stored.rows[table] = sum(c[table] for c in counts.values())
    stored.rows["conversations"] = len(conversations)
    messages: dict[str, list[tuple[int, str, str, str]]] = {cid: [] for cid in by_id}
    for cid, seq, role, content, run in _table(
        stack,
        "select conversation_id, seq, role, replace(content, chr(10), ' '), coalesce(agent_run_id, '') "
        "from messages order by conversation_id, seq",
    ):
        if cid in messages:
            messages[cid].append((int(seq), role, content, run))
    tool_seqs: dict[str, list[int]] = {cid: [] for cid in by_id}
    tool_days: dict[str, set[str]] = {cid: set() for cid in by_id}
    for cid, seq, day in _table(
        stack, "select conversation_id, seq, coalesce(arguments->>'from_date', '') from tool_calls"
    ):
        if cid in tool_seqs:
            tool_seqs[cid].append(int(seq))
            if day:
                tool_days[cid].add(day)
    runs: dict[str, set[str]] = {cid: set() for cid in by_id}
    for cid, run_id in _table(stack, "select conversation_id, run_id from agent_runs"):
        if cid in runs:
            runs[cid].add(run_id)
    appointments: dict[str, dict[str, str]] = {}
    for customer, slot, status in _table(stack, "select customer_id, slot_id, status from appointments"):
        appointments.setdefault(customer, {})[slot] = status

    for cid, o in by_id.items():
        where = f"call {o.plan.tag} ({cid})"
        expected = {"messages": o.expected_messages, "tool_calls": o.tool_calls, "agent_runs": o.agent_runs}
        for table, want in expected.items():
            have = counts[cid][table]
            stored.missing_rows += max(0, want - have)
            stored.extra_rows += max(0, have - want)
            if have != want:
                stored.problems.append(f"{where}: {have} {table} stored, {want} expected")
        row = conversations.get(cid)
        if row is None:
            stored.missing_rows += 1
            stored.problems.append(f"{where}: no conversation row")
        elif row[1:] != ["completed", str(o.expected_messages), o.plan.customer.id, o.plan.customer.name]:
            stored.problems.append(f"{where}: conversation row {row[1:]}")
        seqs = sorted([m[0] for m in messages[cid]] + tool_seqs[cid])
        if seqs != list(range(len(seqs))):
            stored.problems.append(f"{where}: seqs are not 0..{len(seqs) - 1}")
        users = [m[2] for m in messages[cid] if m[1] == "user"]
        if users != o.user_lines:
            stored.problems.append(f"{where}: user lines differ from what the caller said")
        foreign = [m[2] for m in messages[cid] if m[2].startswith("[c") and not m[2].startswith(f"[{o.plan.tag} ")]
        if foreign:
            stored.problems.append(f"{where}: lines of other calls: {foreign[:3]}")
        if tool_days[cid] - {o.plan.day.isoformat()}:
            stored.problems.append(f"{where}: slot searches for other days: {sorted(tool_days[cid])}")
        orphans = {m[3] for m in messages[cid]} - runs[cid]
        if orphans:
            stored.problems.append(f"{where}: messages of agent runs not in this call: {sorted(orphans)[:3]}")
        booked = appointments.get(o.plan.customer.id, {})
        want_booked = {o.plan.slots[0].id: "cancelled", o.plan.slots[1].id: "scheduled"}
        if booked != want_booked:
            stored.problems.append(f"{where}: appointments {booked}, expected {want_booked}")
    return stored


def call_failures(run: LoadRun, pending: frozenset[str] = frozenset()) -> list[str]:
    """Everything that went wrong in the calls themselves (not in what was stored). A call in
    `pending` (its write failed, its journal kept for replay) is not a failure: the replay
    writes it, and what is stored after it is checked."""
    kept = {o.conversation_id for o in run.outcomes if o.conversation_id in pending}
    replayable = tuple(f"[{cid}]" for cid in kept)
    failures = [
        f"log: {line}"
        for line in run.error_logs
        if not (
            line.startswith("conversation_manager: conversation NOT saved, journal kept") and line.endswith(replayable)
        )
    ]
    for o in run.outcomes:
        where = f"call {o.plan.tag}"
        if o.failure:
            failures.append(f"{where}: {o.failure}")
        if o.llm_errors:
            failures.append(f"{where}: scripted LLM errors {o.llm_errors}")
        if o.internal_errors:
            failures.append(f"{where}: {o.internal_errors} tool(s) failed with an internal error")
        if (o.end is None or not o.end.saved) and o.conversation_id not in kept:
            failures.append(f"{where}: not saved ({o.end.error if o.end else 'never ended'})")
    return failures


@contextlib.contextmanager
def quiet_livekit() -> Iterator[None]:
    """Livekit logs every turn at INFO; a load run only needs warnings and errors."""
    logger = logging.getLogger("livekit.agents")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
