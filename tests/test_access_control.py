"""Nobody gets in: not with the public keys, not as another customer, not by guessing, and no secret leaks.

- Through the local Supabase stack (gateway, PostgREST, Postgres with the migrations), with
  the anon key and with an `authenticated` user's JWT: every relation of the public schema
  is unreadable and unwritable and every function refuses them. Relations and functions
  come from the database catalog, so a new table, view or function is covered (or fails
  the test until it is seeded) without editing this file.
- Inside a call, whatever the model invents: a caller verified as one customer reaches
  nothing of another; verification stops at the lockout, even with guesses in parallel.
- With distinctive fake secrets configured, a whole call through the production wiring
  (settings, store factory, the OpenAI plugin against a local server), failures included,
  leaves none of them in any log line, stored row, journal or LLM request.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import rtc
from livekit.agents import AgentSession
from livekit.plugins import openai

import calls
from conversation_manager import ConversationManager
from desk.call_state import DeskError
from desk.desk import AppointmentDesk, DeskConfig
from settings import Settings, SettingsError
from storage.domain_sqlite import SQLiteAppointmentStore
from storage.factory import open_record_store
from storage.supabase_records import SupabaseConversationStore
from testkit.desk_world import (
    APPOINTMENT_TOOLS,
    HUDA,
    OMAR,
    SARA,
    TZ,
    World,
    last_output,
    list_tomorrow,
    open_call,
    sqlite_world,
    supabase_world,
    tool,
    verify,
)
from testkit.fake_openai_server import Completion, FakeOpenAIServer, FunctionCall
from testkit.fake_room import FakeRoom
from testkit.local_supabase import Stack
from testkit.log_capture import every_log_line
from testkit.scripted_llm import Reply, ToolCall
from tools.agents import AppointmentsAgent, ReceptionAgent
from tools.room_status import RoomStatusPublisher

WAIT = 15.0

# ------------------------------------------------------------------------- the public keys


@dataclass(frozen=True)
class Relation:
    name: str
    kind: str  # pg_class.relkind: r (table), p (partitioned), v (view), m (materialized view), f (foreign)
    first_column: str

    @property
    def is_table(self) -> bool:
        return self.kind in ("r", "p")


@dataclass(frozen=True)
class Function:
    name: str
    arguments: tuple[str, ...]
    is_trigger: bool


def catalog_relations(stack: Stack) -> list[Relation]:
    out = stack.psql(
        """
        select c.relname, c.relkind,
               (select a.attname from pg_attribute a
                 where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum limit 1)
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f')
         order by c.relname
        """
    )
    return [Relation(*line.split("|")) for line in out.splitlines() if line]


def catalog_functions(stack: Stack) -> list[Function]:
    out = stack.psql(
        """
        select p.proname,
               coalesce((select string_agg(a.name, ',' order by a.position)
                           from unnest(p.proargnames, coalesce(p.proargmodes::text[], array_fill('i'::text,
                                       array[coalesce(cardinality(p.proargnames), 0)])))
                                with ordinality as a(name, mode, position)
                          where a.mode in ('i', 'b', 'v')), ''),  -- input arguments only (not RETURNS TABLE's)
               p.prorettype = 'trigger'::regtype
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'public' and p.prokind = 'f'
         order by p.proname
        """
    )
    functions = []
    for line in out.splitlines():
        if line:
            name, args, trigger = line.split("|")
            functions.append(Function(name, tuple(a for a in args.split(",") if a), trigger == "t"))
    return functions


def checksums(stack: Stack, relations: list[Relation]) -> dict[str, str]:
    """One digest of every base table's content: any write, by anyone, changes it."""
    sql = " union all ".join(
        f"select '{r.name}', md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from public.{r.name} t"
        for r in relations
        if r.is_table
    )
    return dict(line.split("|") for line in stack.psql(sql).splitlines() if line)


def who_headers(stack: Stack, who: str) -> dict[str, str]:
    if who == "anon":
        return {"apikey": stack.anon_key}
    if who == "authenticated_user":  # how a signed-in user calls: the public anon key plus their JWT
        return {"apikey": stack.anon_key, "Authorization": f"Bearer {stack.authenticated_key}"}
    if who == "authenticated_key":
        return {"apikey": stack.authenticated_key}
    raise ValueError(who)


OUTSIDERS = ["anon", "authenticated_user", "authenticated_key"]


@contextlib.asynccontextmanager
async def rest(stack: Stack, headers: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.rest_url, headers=headers, timeout=10.0) as client:
        yield client


def denied(response: httpx.Response) -> bool:
    """Refused by Postgres itself: no grant (permission denied) or a row-level security policy."""
    return response.status_code in (401, 403) and response.json().get("code") == "42501"


async def seed_every_table(stack: Stack, tmp_path: Path) -> None:
    """A real call's records (through the worker's store) and the desk's data, so no table is empty."""
    customer, slot, appointment = (str(uuid.uuid4()) for _ in range(3))
    stack.psql(
        f"insert into customers (id, name, phone, zip_code) values ('{customer}', 'Rana Saleh', '+963944000111', "
        f"'10101'); insert into slots (id, starts_at, ends_at) values ('{slot}', now() + interval '1 day', "
        f"now() + interval '1 day 30 minutes'); insert into appointments (id, customer_id, slot_id) values "
        f"('{appointment}', '{customer}', '{slot}'); insert into callback_requests (customer_id, phone, reason) "
        f"values ('{customer}', '+963944000111', 'call me back'); insert into verification_attempts (phone, source) "
        f"values ('+963944000111', 'sip:+963944000111');"
    )
    store = await SupabaseConversationStore.connect(stack.url, stack.service_key, timeout=5.0)
    try:
        manager = ConversationManager.from_settings(store, Settings(journal_dir=tmp_path / "journal"))
        await manager.start_conversation(None, "acl-room", "caller")
        manager.runs.open_run("ReceptionAgent")
        manager.add_message_to_local_transcript("user", "My name is Rana Saleh.")
        manager.add_message_to_local_transcript("assistant", "Hello Rana.", {"metrics": {"e2e_latency": 0.8}})
        manager.add_tool_call("list_appointments", {}, "A1: tomorrow")
        manager.update_conversation(customer_id=customer, outcome="information_only")
        assert (await manager.end_conversation()).saved
    finally:
        await store.aclose()


@pytest_asyncio.fixture
async def seeded(clean_db: Stack, tmp_path: Path) -> Stack:
    """Every relation holds rows the service role can see, so an empty answer means "hidden"."""
    await seed_every_table(clean_db, tmp_path)
    async with rest(clean_db, {"apikey": clean_db.service_key}) as service:
        for relation in catalog_relations(clean_db):
            seen = await service.get(f"/{relation.name}", params={"select": "*", "limit": "1"})
            assert seen.status_code == 200 and seen.json(), (
                f"{relation.name} is empty even for the service role: seed it in seed_every_table()"
            )
    return clean_db


def test_the_catalog_lists_what_the_migrations_create(supabase_stack: Stack) -> None:
    """The enumeration itself works (it is what makes new tables and functions covered)."""
    relations = {r.name for r in catalog_relations(supabase_stack)}
    assert {
        "conversations",
        "messages",
        "tool_calls",
        "agent_runs",
        "customers",
        "slots",
        "appointments",
        "callback_requests",
        "appointment_details",
        "daily_call_volume",
    } <= relations
    functions = {f.name: f for f in catalog_functions(supabase_stack)}
    assert {"open_slots", "book_appointment", "reschedule_appointment", "cancel_appointment"} <= set(functions)
    assert functions["book_appointment"].arguments == ("p_customer_id", "p_slot_id", "p_reason")


@pytest.mark.asyncio
@pytest.mark.parametrize("who", OUTSIDERS)
async def test_no_relation_is_readable_with_a_public_key(who: str, seeded: Stack) -> None:
    async with rest(seeded, who_headers(seeded, who)) as http:
        for relation in catalog_relations(seeded):
            read = await http.get(f"/{relation.name}", params={"select": "*"}, headers={"Prefer": "count=exact"})
            # No grant at all: refused by Postgres, not answered with an empty list.
            assert denied(read), (relation.name, read.status_code, read.text[:200])
            assert "permission denied" in read.json()["message"], (relation.name, read.text[:200])


@pytest.mark.asyncio
@pytest.mark.parametrize("who", OUTSIDERS)
async def test_the_openapi_document_shows_a_public_key_nothing(who: str, seeded: Stack) -> None:
    """PostgREST lists what the requesting role may use: with a public key, no relation, no function."""
    async with rest(seeded, {**who_headers(seeded, who), "Accept": "application/openapi+json"}) as http:
        answer = await http.get("/")
    assert answer.status_code == 200, answer.text[:200]
    document = answer.json()
    listed = [path.strip("/") for path in document.get("paths", {}) if path.strip("/")]
    assert listed == [], listed
    assert document.get("definitions", {}) == {}
    names = {r.name for r in catalog_relations(seeded)} | {f.name for f in catalog_functions(seeded)}
    assert not [name for name in names if f'"{name}"' in answer.text or f"/{name}" in answer.text]
    # the service role, for comparison, sees every table
    async with rest(seeded, {"apikey": seeded.service_key, "Accept": "application/openapi+json"}) as http:
        service_paths = (await http.get("/")).json()["paths"]
    assert {f"/{r.name}" for r in catalog_relations(seeded) if r.is_table} <= set(service_paths)


@pytest.mark.asyncio
@pytest.mark.parametrize("who", OUTSIDERS)
async def test_no_relation_is_writable_with_a_public_key(who: str, seeded: Stack) -> None:
    relations = catalog_relations(seeded)
    before = checksums(seeded, relations)
    async with rest(seeded, {**who_headers(seeded, who), "Prefer": "return=representation"}) as http:
        for r in relations:
            where = {r.first_column: "not.is.null"}
            attempts = {
                "insert": await http.post(f"/{r.name}", json={}),
                "upsert": await http.post(
                    f"/{r.name}", json=[{}], headers={"Prefer": "return=representation,resolution=merge-duplicates"}
                ),
                "update": await http.patch(f"/{r.name}", params=where, json={r.first_column: None}),
                "delete": await http.delete(f"/{r.name}", params=where),
            }
            for what, answer in attempts.items():
                if r.is_table:  # no grant: refused (42501) before any row or constraint is considered
                    assert denied(answer), (r.name, what, answer.status_code, answer.text[:200])
                else:  # a view: refused, or not updatable (55000, which Postgres finds before privileges)
                    assert denied(answer) or answer.json().get("code") == "55000", (r.name, what, answer.text[:200])
    assert checksums(seeded, relations) == before


@pytest.mark.asyncio
@pytest.mark.parametrize("who", OUTSIDERS)
async def test_no_function_is_callable_with_a_public_key(who: str, seeded: Stack) -> None:
    relations = catalog_relations(seeded)
    before = checksums(seeded, relations)
    functions = catalog_functions(seeded)
    async with rest(seeded, who_headers(seeded, who)) as http:
        for function in functions:
            answer = await http.post(f"/rpc/{function.name}", json=dict.fromkeys(function.arguments))
            if function.is_trigger:  # PostgREST does not expose trigger functions at all
                assert answer.status_code == 404 and answer.json()["code"] == "PGRST202", function
            else:
                assert denied(answer), (function.name, answer.status_code, answer.text[:200])
                assert f"permission denied for function {function.name}" in answer.json()["message"]
    assert checksums(seeded, relations) == before
    callable_by_outsiders = seeded.psql(
        "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname = 'public' and p.prokind = 'f' and p.prorettype <> 'trigger'::regtype "
        "and (has_function_privilege('anon', p.oid, 'EXECUTE') "
        "or has_function_privilege('authenticated', p.oid, 'EXECUTE'))"
    )
    assert callable_by_outsiders.split() == []


@pytest.mark.asyncio
async def test_a_forged_or_expired_token_is_refused(seeded: Stack) -> None:
    forged = seeded.make_jwt("service_role")[:-4] + "AAAA"  # the public anon key does not sign anything
    expired = seeded.make_jwt("authenticated", expires_in=-60)
    for bearer in (forged, expired):
        async with rest(seeded, {"apikey": seeded.anon_key, "Authorization": f"Bearer {bearer}"}) as http:
            for path in ("/customers", "/conversations"):
                answer = await http.get(path)
                assert answer.status_code == 401 and answer.json()["code"] == "PGRST301", answer.text
            assert (await http.post("/rpc/cancel_appointment", json={})).status_code == 401


# ------------------------------------------------------------------------- one customer cannot reach another


def invented_references(world: World) -> list[str]:
    """What a model might pass as a reference: the other customers' real ids, refs never shown,
    and text that looks like SQL or PostgREST filter syntax."""
    theirs = [world.appointments[c.id] for c in (OMAR, HUDA)]
    return [
        *(a.id for a in theirs),
        *(a.slot.id for a in theirs),
        OMAR.id,
        "A0",
        "A2",
        "A3",
        "A9999",
        "S0",
        "S99",
        "a 2",
        "A١٢",
        "A1 or 1=1",
        "A1'--",
        "eq.1,or=(id.gt.0)",
        "*",
        "%",
        "A1%",
        "A1,A2",
        "A-2",
        "",
    ]


@pytest.mark.asyncio
async def test_a_verified_caller_reaches_nothing_of_another_customer(any_world: World, tmp_path: Path) -> None:
    world = any_world
    before = await world.rows()
    async with open_call(world, tmp_path) as call:
        await verify(call, tool("list_appointments"), Reply("You have one appointment."))
        await list_tomorrow(call, world)
        refs = invented_references(world)
        result = await call.turn(
            "Cancel Omar's appointment and move Huda's to the first slot.",
            Reply(
                tool_calls=[
                    *(ToolCall("cancel_appointment", {"appointment_ref": r}) for r in refs),
                    *(ToolCall("reschedule_appointment", {"appointment_ref": r, "slot_ref": "S1"}) for r in refs),
                    *(ToolCall("book_appointment", {"slot_ref": r}) for r in refs),
                ]
            ),
            Reply("I can't find that."),
        )
        outputs = [e.item for e in result.events if e.type == "function_call_output"]
        assert len(outputs) == 3 * len(refs) and all(o.is_error for o in outputs)
        assert {o.output for o in outputs} <= {
            call.line("bad_reference"),
            *(
                call.line(k, ref=r)
                for k in ("unknown_appointment", "unknown_slot")
                for r in ("A2", "A3", "A9999", "A12", "S99")
            ),
        }
        # the caller then says yes: there is nothing to confirm
        await call.turn("Yes, do it.", tool("confirm_pending_change", confirmed=True), Reply("Nothing to do."))
        assert call.outputs("confirm_pending_change")[-1].output == call.line("nothing_pending")
        # what the caller was shown is theirs alone
        shown = " ".join(o.output for name in ("list_appointments", "list_available_slots") for o in call.outputs(name))
        for other in (OMAR, HUDA):
            assert call.desk.when(world.appointments[other.id].slot.starts_at) not in shown
        # a second verification cannot switch the call to another customer
        await call.turn("I am Omar, my ZIP is 94110.", tool("verify_caller", zip_code="94110"), Reply("OK."))
        await call.turn("My number is Omar's.", tool("provide_phone_number", phone=OMAR.phone), Reply("OK."))
        assert call.outputs("provide_phone_number")[-1].is_error
        assert call.desk.state.customer == SARA
    assert await world.rows() == before


REFERENCES = st.one_of(
    st.sampled_from(["A1", "S1", "S2", "a 1", "A١", "A2", "S9", "eq.1,or=(id.gt.0)", "A1 or 1=1", "*", ""]),
    st.from_regex(r"[AaSs#\- ]{0,2}[0-9١۱]{1,5}", fullmatch=True),
    st.text(max_size=24),
    st.uuids().map(str),
)


@dataclass(frozen=True)
class SeededDesk:
    """A seeded SQLite file to copy per example, and the world it holds."""

    path: Path
    world: World


@pytest.fixture(scope="module")
def seeded_desk(tmp_path_factory: pytest.TempPathFactory) -> SeededDesk:
    directory = tmp_path_factory.mktemp("seeded_desk")

    async def build() -> World:
        async with sqlite_world(directory) as w:
            return w

    return SeededDesk(directory / "desk.sqlite3", asyncio.run(build()))


def other_customers_rows(path: Path) -> list[tuple[str, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [
            tuple(r)
            for r in db.execute(
                "select id, customer_id, slot_id, status from appointments where customer_id <> ? order by id",
                [SARA.id],
            )
        ]


async def try_references(path: Path, tomorrow: str, pairs: list[tuple[str, str]]) -> None:
    store = await SQLiteAppointmentStore.open(path)
    try:
        desk = AppointmentDesk(
            store, DeskConfig.from_settings(Settings(clinic_timezone=TZ, default_country_code="963"))
        )
        desk.caller_identified(phone=SARA.phone)
        desk.state.note_user_message("zip", "94103")
        await desk.verify("94103")
        await desk.list_appointments()
        await desk.list_slots(tomorrow, tomorrow, "any")
        for n, (ref, slot_ref) in enumerate(pairs):
            for kind in ("book", "reschedule", "cancel"):
                desk.state.note_user_message(f"ask-{n}-{kind}", "please")
                with contextlib.suppress(DeskError):
                    if kind == "book":
                        await desk.propose_booking(slot_ref)
                    elif kind == "reschedule":
                        await desk.propose_reschedule(ref, slot_ref)
                    else:
                        desk.propose_cancel(ref)
                pending = desk.state.pending
                if pending is not None:
                    assert pending.appointment is None or pending.appointment.customer_id == SARA.id
                    desk.state.note_user_message(f"yes-{n}-{kind}", "yes")
                    with contextlib.suppress(DeskError):
                        await desk.confirm(True)  # only ever the caller's own appointment or an open slot
    finally:
        await store.aclose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(REFERENCES, REFERENCES), min_size=1, max_size=6))
def test_no_reference_the_model_invents_reaches_another_customer(
    seeded_desk: SeededDesk, pairs: list[tuple[str, str]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "desk.sqlite3"
        shutil.copy(seeded_desk.path, path)
        before = other_customers_rows(path)
        asyncio.run(try_references(path, seeded_desk.world.tomorrow.isoformat(), pairs))
        assert other_customers_rows(path) == before


# ------------------------------------------------------------------------- verification cannot be brute-forced


@pytest.mark.asyncio
async def test_parallel_guesses_stop_at_the_lockout(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path) as call:
        guesses = [f"{n:05d}" for n in range(10, 20)]
        first = await call.turn(
            "It's one of these.",
            Reply(tool_calls=[ToolCall("verify_caller", {"zip_code": z}) for z in guesses]),
            Reply("Sorry."),
        )
        outputs = [o.output for o in (e.item for e in first.events if e.type == "function_call_output")]
        assert sorted(outputs) == sorted(
            [
                call.line("verify_failed"),
                call.line("verify_failed_offer_human"),
                call.line("verify_locked_now"),
                *[call.line("verify_locked")] * 7,
            ]
        )
        assert call.desk.state.failed_attempts == 3 and call.desk.state.locked
        # the right ZIP, alone or among more guesses, in a later turn: still locked, no handoff
        for zips in (["94103"], ["99999", "94103", "94103"]):
            result = await call.turn(
                "94103", Reply(tool_calls=[ToolCall("verify_caller", {"zip_code": z}) for z in zips]), Reply("No.")
            )
            assert {last_output(result, "verify_caller").output} == {call.line("verify_locked")}
            assert not [e for e in result.events if e.type == "agent_handoff"]
        assert not call.desk.state.verified and isinstance(call.session.current_agent, ReceptionAgent)
        assert not any(set(c.tool_names) & APPOINTMENT_TOOLS for c in call.llm.calls)


@pytest.mark.asyncio
async def test_changing_the_stated_phone_does_not_reset_the_attempts(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, phone=None) as call:  # a browser call: no phone from the call
        for customer in (OMAR, HUDA, SARA):
            await call.turn(
                f"My number is {customer.phone}, ZIP 00000.",
                tool("provide_phone_number", phone=customer.phone),
                tool("verify_caller", zip_code="00000"),
                Reply("Sorry."),
            )
        assert call.desk.state.locked and call.desk.state.failed_attempts == 3
        result = await call.turn(
            "Sarah, 94103.",
            tool("provide_phone_number", phone=SARA.phone),
            tool("verify_caller", zip_code="94103"),
            Reply("Sorry."),
        )
        assert last_output(result, "provide_phone_number").output == call.line("verify_locked")
        assert last_output(result, "verify_caller").output == call.line("verify_locked")
        assert not call.desk.state.verified


# ------------------------------------------------------------------------- secrets


def all_rows(stack: Stack) -> str:
    tables = [r.name for r in catalog_relations(stack) if r.is_table]
    return stack.psql(" union all ".join(f"select row_to_json(t)::text from public.{t} t" for t in tables))


@pytest.mark.asyncio
async def test_no_secret_in_logs_rows_journals_or_llm_requests(clean_db: Stack, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    fake_secrets = {
        "OPENAI_API_KEY": f"sk-canary-openai-{tag}",
        "TAVUS_API_KEY": f"canary-tavus-{tag}",
        "LIVEKIT_API_KEY": f"APIcanary{tag[:8]}",
        "LIVEKIT_API_SECRET": f"canary-livekit-secret-{tag}",
    }
    env = {
        **fake_secrets,
        "TAVUS_FACE_ID": "r-canary-face",
        "LIVEKIT_URL": "wss://canary.invalid",
        "SUPABASE_URL": clean_db.url,
        "SUPABASE_SERVICE_ROLE_KEY": clean_db.service_key,
        "DATA_DIR": str(tmp_path / "data"),
        "JOURNAL_DIR": str(tmp_path / "journal"),
        "CLINIC_TIMEZONE": TZ,
        "FLUSH_TIMEOUT": "2",
        "LOG_LEVEL": "DEBUG",
    }
    settings_ = Settings.from_env(env, mode="start")
    secrets = settings_.secret_values()
    assert {*fake_secrets.values(), clean_db.service_key} <= set(secrets)
    for broken in ({"SUPABASE_URL": ""}, {"TAVUS_FACE_ID": ""}, {"FLUSH_TIMEOUT": "x", "LOAD_THRESHOLD": "7"}):
        with pytest.raises(SettingsError) as refused:
            Settings.from_env({**env, **broken}, mode="start")
        assert not [s for s in secrets if s in str(refused.value)]
    assert not [s for s in secrets if s in repr(settings_)]

    async with supabase_world(clean_db) as world, FakeOpenAIServer() as llm_server:
        with every_log_line() as logs:
            await a_call_through_the_production_wiring(settings_, world, llm_server, clean_db)
        llm_requests = [str(r.json) for r in llm_server.chat_requests]
    journals = [p.read_text(errors="replace") for p in (tmp_path / "journal").rglob("*.jsonl")]
    assert len(journals) == 1 and len(llm_requests) >= 4
    assert any("NOT saved" in line for line in logs.lines), "the failure paths were logged too"
    places = {
        "log": "\n".join(logs.lines),
        "rows": all_rows(clean_db),
        "journal": journals[0],
        "llm requests": "\n".join(llm_requests),
    }
    leaks = [(where, secret[:12]) for where, text in places.items() for secret in secrets if secret in text]
    assert leaks == []


async def a_call_through_the_production_wiring(
    settings_: Settings, world: World, llm_server: FakeOpenAIServer, stack: Stack
) -> None:
    """Verify, list, a store outage mid-call, a failed end-of-call write, then the replay."""
    from conversation_manager import replay_pending

    room = FakeRoom()
    caller = room.join(
        "caller", kind=rtc.ParticipantKind.PARTICIPANT_KIND_SIP, attributes={"sip.phoneNumber": SARA.phone}
    )
    call = await calls.open_call(settings_, room_name=room.name, status=RoomStatusPublisher(room))
    model = openai.LLM(model=settings_.llm_model, api_key=settings_.openai_key_for_client, base_url=llm_server.base_url)
    try:
        call.caller_joined(cast(rtc.RemoteParticipant, caller))
        llm_server.push(
            Completion(tool_calls=[FunctionCall("verify_caller", {"zip_code": SARA.zip_code})]),
            Completion("You are verified."),
            Completion(tool_calls=[FunctionCall("list_appointments", {})]),
            Completion("You have one appointment."),
            Completion(tool_calls=[FunctionCall("list_appointments", {})]),
            Completion("Our system is not answering."),
            Completion("The caller was verified and asked about their appointments."),  # the end-of-call summary
        )
        async with AgentSession(llm=model, vad=None, turn_handling={"turn_detection": None}) as session:
            call.attach(session)
            await asyncio.wait_for(session.start(call.reception_agent(), capture_run=True), WAIT)
            await asyncio.wait_for(session.run(user_input=f"My ZIP code is {SARA.zip_code}."), WAIT)
            assert isinstance(session.current_agent, AppointmentsAgent)
            await asyncio.wait_for(session.run(user_input="What do I have?"), WAIT)
            stack.stop_postgrest()
            try:
                failed = await asyncio.wait_for(session.run(user_input="And again?"), WAIT)
                assert last_output(failed, "list_appointments").is_error
                result = await call.aclose()
            finally:
                stack.start_postgrest()
        assert not result.saved
        records = await open_record_store(settings_)
        try:
            report = await replay_pending(records, settings_.journal_dir)
        finally:
            await records.aclose()
        assert report.replayed == [call.conversation_id]
    finally:
        await call.aclose()
        await model.aclose()
