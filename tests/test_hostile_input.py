"""Hostile and malformed input, mostly hypothesis-driven: a clean refusal, never a crash, never a wider query.

- Tool arguments at both layers: the checks under the tools (`desk.arguments`, references)
  on any value, and every tool of a real session on a corpus of nasty values (wrong types,
  huge, empty, control and RTL characters, emoji, SQL and PostgREST filter look-alikes,
  lone surrogates, broken JSON). A refusal is a `ToolError` the caller can hear or the
  framework's argument-validation message; nothing is written for invalid input.
- The Supabase stores on nasty ids, phones and filters: nothing outside the exact match
  comes back, nothing changes, a malformed id sends no request at all.
- Caller-detail extraction on arbitrary text, including 32,000-character adversarial turns.
- The call record: NUL, lone surrogates and NaN anywhere in a call still reach both stores
  (from the live call and from its journal), instead of blocking the call's whole write.
- Settings values: every bad value is a `SettingsError` line, never a crash or a leaked secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prompts
from conversation_manager import ConversationManager, replay_pending
from conversation_manager.caller_details import extract
from conversation_manager.journal import read_events
from conversation_manager.transcript import CallTranscript
from desk import arguments
from desk.call_state import DeskError, normalize_ref
from settings import Settings, SettingsError
from storage.domain import E164, NotFound
from storage.domain_supabase import SupabaseAppointmentStore
from storage.records import ConversationStore, StoreError, storable
from storage.sqlite_records import SQLiteConversationStore
from storage.supabase_records import SupabaseConversationStore
from testkit.desk_world import HUDA, OMAR, SARA, World, open_call, sqlite_world, supabase_world, verify
from testkit.local_supabase import Stack
from testkit.scripted_llm import Reply, ToolCall

NASTY = [
    "",
    " ",
    "\t\n",
    "\x00",
    "94103\x00",
    "\x1b[2J",
    "\u202e30149",
    "94103\u200f",
    "\u2066A1\u2069",
    "\u2028",
    "٩٤١٠٣",
    "🙂",
    "👨‍👩‍👧",
    "A1🙂",
    "' OR '1'='1",
    "1; DROP TABLE appointments; --",
    "eq.1,or=(id.gt.0)",
    "S1&select=*",
    "*",
    "%",
    "A1)",
    "\ud800",
    "x\udfffy",
    "null",
    "[]",
    "{}",
    "A" * 300,
    "٩" * 5000,
    "Robert'); DELETE FROM customers;--",
    "\\",
    '"',
    "A 1",
    "S-1",
    "s١",
    "2030-02-30",
    "9999-12-31",
    "lina\u202e@example.com",
    "x\u200b@y.com",
    "Sarah\u200dJohnson",
]
TEXT = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, categories=["Cc", "Cf", "Cs", "Zl", "Zp", "So", "Nd"]), max_size=20),
    st.text(min_size=300, max_size=3000),
)
ANY_VALUE = st.one_of(
    TEXT,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    st.binary(max_size=8),
)
INTERNAL_ERROR = "An internal error occurred"


# ------------------------------------------------------------------------- the checks under the tools


def refused_with(key: str, error: DeskError) -> None:
    assert error.key == key and key in prompts.REQUIRED


@settings(max_examples=300, deadline=None)
@given(value=ANY_VALUE)
def test_every_argument_check_normalises_or_refuses_cleanly(value: object) -> None:
    checks: dict[str, Any] = {
        "zip_invalid": lambda: arguments.zip_code(value),
        "phone_invalid": lambda: arguments.phone(value, "963"),
        "name_invalid": lambda: arguments.name(value),
        "email_invalid": lambda: arguments.email(value),
        "reason_invalid": lambda: arguments.reason(value),
        "date_invalid": lambda: arguments.date(value),
        "bad_reference": lambda: normalize_ref(value, "A"),
    }
    for key, check in checks.items():
        try:
            result = check()
        except DeskError as e:
            refused_with(key, e)
            continue
        assert result is None or isinstance(result, str | __import__("datetime").date), (key, result)
        if isinstance(result, str):
            assert result.isprintable() or key == "reason_invalid", (key, result)
            result.encode()  # storable as UTF-8: no lone surrogate got through
            assert "\x00" not in result and len(result) <= arguments.MAX_REASON


# ------------------------------------------------------------------------- every tool of a real session


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with sqlite_world(tmp_path) as w:
        yield w


WRONG_TYPES: list[Any] = [None, 5, 3.5, True, [], ["A1"], {"ref": "A1"}]


def nasty_calls(tool: str, params: list[str], fixed: dict[str, Any] | None = None) -> list[ToolCall]:
    """Each parameter in turn gets every nasty string and every wrong type; plus broken shapes."""
    fixed = fixed or {}
    base = {p: fixed.get(p, "A1") for p in params}
    calls = [ToolCall(tool, {**base, p: v}) for p in params for v in [*NASTY, *WRONG_TYPES]]
    calls += [
        ToolCall(tool, {}),
        ToolCall(tool, {**base, "extra": "eq.1,or=(id.gt.0)"}),
        ToolCall(tool, raw_arguments='{"' + params[0] + '": '),
        ToolCall(tool, raw_arguments="[1, 2]"),
        ToolCall(tool, raw_arguments=json.dumps({p: "x" * 100_000 for p in params})),
    ]
    return calls


def clean_refusals(result: object, caplog: pytest.LogCaptureFixture) -> list[tuple[bool, str]]:
    outputs = [
        (e.item.is_error, e.item.output)
        for e in result.events  # type: ignore[attr-defined]
        if e.type == "function_call_output"
    ]
    assert INTERNAL_ERROR not in {out for _, out in outputs}
    assert not [r for r in caplog.records if "exception occurred while executing tool" in r.getMessage()]
    return outputs


@pytest.mark.asyncio
async def test_every_reception_tool_refuses_nasty_arguments_and_writes_nothing(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = await world.rows()
    async with open_call(world, tmp_path, phone=None) as call:
        batches = [
            nasty_calls("provide_phone_number", ["phone"]),
            nasty_calls("save_caller_details", ["name", "phone", "email"], {"name": "", "phone": "", "email": ""}),
            nasty_calls("verify_caller", ["zip_code"]),
        ]
        for batch in batches:
            outputs = clean_refusals(await call.turn("...", Reply(tool_calls=batch), Reply("Sorry?")), caplog)
            assert len(outputs) == len(batch)
        assert call.desk.state.phone is None or E164.fullmatch(call.desk.state.phone), "digits only, E.164"
        assert not call.desk.state.verified
        # a callback needs a reason: invalid ones write nothing
        invalid = [v for v in [*NASTY, *WRONG_TYPES] if not _valid(arguments.reason, v)]
        call.desk.state.contact_phone = "+963991234567"
        outputs = clean_refusals(
            await call.turn(
                "...",
                Reply(
                    tool_calls=[
                        *(ToolCall("request_callback", {"reason": v}) for v in invalid),
                        *(ToolCall("transfer_to_human", {"reason": v}) for v in invalid),
                    ]
                ),
                Reply("Sorry?"),
            ),
            caplog,
        )
        assert all(is_error for is_error, _ in outputs)
        assert await world.callbacks() == []
        # a reason that looks like SQL or a filter is just text, stored as said
        await call.turn(
            "...", Reply(tool_calls=[ToolCall("request_callback", {"reason": "eq.1,or=(id.gt.0)"})]), Reply("Noted.")
        )
    assert [c["reason"] for c in await world.callbacks()] == ["eq.1,or=(id.gt.0)"]
    assert await world.rows() == before


@pytest.mark.asyncio
async def test_every_appointment_tool_refuses_nasty_arguments_and_writes_nothing(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = await world.rows()
    day = world.tomorrow.isoformat()
    async with open_call(world, tmp_path) as call:
        await verify(call)
        batches = [
            nasty_calls("cancel_appointment", ["appointment_ref"]),
            nasty_calls("book_appointment", ["slot_ref"]),
            nasty_calls("reschedule_appointment", ["appointment_ref", "slot_ref"], {"slot_ref": "S1"}),
            nasty_calls(
                "list_available_slots",
                ["from_date", "to_date", "part_of_day"],
                {"from_date": day, "to_date": day, "part_of_day": "any"},
            ),
            [ToolCall("confirm_pending_change", {"confirmed": v}) for v in [*NASTY, *WRONG_TYPES]],
        ]
        for batch in batches:
            outputs = clean_refusals(await call.turn("...", Reply(tool_calls=batch), Reply("Sorry?")), caplog)
            assert len(outputs) == len(batch)
            assert call.desk.state.pending is None
    assert await world.rows() == before


def _valid(check: Any, value: object) -> bool:
    try:
        check(value)
    except DeskError:
        return False
    return True


# ------------------------------------------------------------------------- the Supabase stores: no query broadened


@pytest_asyncio.fixture
async def supabase_desk(clean_db: Stack) -> AsyncIterator[tuple[Stack, World]]:
    async with supabase_world(clean_db) as w:
        records = await SupabaseConversationStore.connect(clean_db.url, clean_db.service_key, timeout=5.0)
        for n in range(2):
            manager = ConversationManager.from_settings(records, Settings(), journal_dir=Path(tempfile.mkdtemp()))
            await manager.start_conversation(None, f"room-{n}", "caller")
            manager.set_caller_details(phone=f"+96399100000{n}")
            manager.add_message_to_local_transcript("user", "hello")
            assert (await manager.end_conversation()).saved
        await records.aclose()
        yield clean_db, w


def database_digest(stack: Stack) -> str:
    return stack.psql(
        "select md5(string_agg(t, '|' order by t)) from (select row_to_json(x)::text t from appointments x "
        "union all select row_to_json(x)::text from conversations x union all select row_to_json(x)::text "
        "from customers x) all_rows"
    )


async def probe_stores(stack: Stack, world: World, values: list[str]) -> None:
    requests: list[httpx.Request] = []

    async def seen(request: httpx.Request) -> None:
        requests.append(request)

    http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), event_hooks={"request": [seen]})
    from supabase import AsyncClientOptions, acreate_client

    client = await acreate_client(stack.url, stack.service_key, options=AsyncClientOptions(httpx_client=http))
    desk, records = SupabaseAppointmentStore(client, http), SupabaseConversationStore(client, http)
    known = {c.phone: c for c in (SARA, HUDA, OMAR)}
    try:
        for value in values:
            requests.clear()
            assert await desk.find_customer_by_phone(value) == known.get(value)
            with contextlib.suppress(NotFound):  # a malformed id; a well-formed unknown one finds nothing
                assert await desk.list_appointments(value) == []
            for attempt in (
                lambda v=value: desk.cancel(SARA.id, v),
                lambda v=value: desk.reschedule(SARA.id, v, v),
                lambda v=value: desk.book(v, world.slots[0].id),
            ):
                with pytest.raises(NotFound):
                    await attempt()
            assert requests == [] or _is_uuid(value), "a malformed id never reaches the database"
            # The operator's reads: nothing, or a clean StoreError (a value too long for a URL: 414/502).
            # "" is their documented "no filter" (never fed by a caller).
            with contextlib.suppress(StoreError):
                assert not value or await records.list_conversations(phone=value, limit=50) == []
            with contextlib.suppress(StoreError):
                assert not value or await records.list_conversations(status=value, limit=50) == []
            with contextlib.suppress(StoreError):
                assert await records.get_conversation(value) is None
    finally:
        await client.postgrest.aclose()
        await http.aclose()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(TEXT.filter(lambda v: len(v) < 1000), st.uuids().map(str)), min_size=1, max_size=4))
def test_no_store_query_is_broadened_by_input(supabase_desk: tuple[Stack, World], values: list[str]) -> None:
    stack, world = supabase_desk
    before = database_digest(stack)
    asyncio.run(probe_stores(stack, world, values))
    assert database_digest(stack) == before


# ------------------------------------------------------------------------- caller details from any text


ADVERSARIAL_UNITS = ["1-", "a", "a.", "a dot ", "1 ", "x@", "+", "my name is ", "اسمي ", "٠-", "a at ", "(1)", "00"]


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=600),
        st.text(alphabet=st.characters(codec=None), max_size=200),
        st.builds(
            lambda unit, end: (unit * (32_000 // len(unit)))[:32_000] + end,
            st.sampled_from(ADVERSARIAL_UNITS),
            st.sampled_from(["", "a", "1", "@b.co", " at x dot com"]),
        ),
    )
)
def test_caller_details_from_any_text_are_well_formed(text: str) -> None:
    details = extract(text, "963")
    if details.phone is not None:
        assert details.phone[0] == "+" and details.phone[1:].isascii() and details.phone[1:].isdigit()
        assert 8 <= len(details.phone) - 1 <= 15
    if details.email is not None:
        local, _, domain = details.email.partition("@")
        assert local and "." in domain and not any(c.isspace() for c in details.email)
    if details.name is not None:
        words = details.name.split(" ")
        assert 1 <= len(words) <= 3 and all(w and not any(c.isdigit() for c in w) for w in words)


# ------------------------------------------------------------------------- the call record holds anything said


ODD = {
    "content": "he said \x00 then \ud83d alone, 🙂, \u202eRTL\u202c and ٩٤١",
    "name": "lookup\x00",
    "args": {"zip\x00": "1\x002", "ref": "A\udc801", "nested": [{"x": "\x00"}], "ratio": math.nan},
    "output": "ok \x00 \ud800",
    "identity": "caller\x00\ud800",
}


async def a_call_with_odd_characters(store: ConversationStore, journal: Path) -> ConversationManager:
    manager = ConversationManager.from_settings(store, Settings(), journal_dir=journal, flush_timeout=5.0)
    await manager.start_conversation(None, "odd-room", ODD["identity"], {"note": ODD["content"]})
    manager.add_message_to_local_transcript("user", ODD["content"])
    manager.add_message_to_local_transcript("assistant", "fine", {"metrics": {"e2e_latency": math.inf}})
    manager.add_tool_call(ODD["name"], ODD["args"], ODD["output"])
    manager.add_tool_call("raw", '{"a": "\\u0000", "b": "\\ud800"}', None, is_error=True)
    return manager


@pytest_asyncio.fixture(params=["sqlite", "supabase"])
async def record_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConversationStore]:
    if request.param == "sqlite":
        store: ConversationStore = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    else:
        stack = request.getfixturevalue("clean_db")
        store = await SupabaseConversationStore.connect(stack.url, stack.service_key, timeout=5.0)
    yield store
    await store.aclose()


@pytest.mark.asyncio
async def test_odd_characters_never_block_a_calls_write(record_store: ConversationStore, tmp_path: Path) -> None:
    manager = await a_call_with_odd_characters(record_store, tmp_path / "live")
    result = await manager.end_conversation(summary="summary \x00\ud800")
    assert result.saved, result
    detail = await record_store.get_conversation(manager.conversation_id)
    assert detail is not None
    assert [m["content"] for m in detail.messages] == [storable(ODD["content"]), "fine"]
    assert detail.messages[0]["content"] == "he said  then \ufffd alone, 🙂, \u202eRTL\u202c and ٩٤١"
    assert [t["name"] for t in detail.tool_calls] == ["lookup", "raw"]
    assert detail.tool_calls[0]["arguments"] == {"zip": "12", "ref": "A\ufffd1", "nested": [{"x": ""}], "ratio": None}
    assert detail.conversation["participant_identity"] == "caller\ufffd"

    # the journal of the same call, never ended (a crash), replays the same way
    crashed = await a_call_with_odd_characters(record_store, tmp_path / "crash")
    events = read_events(crashed.journal.path)  # type: ignore[union-attr]
    assert CallTranscript.from_events(events).messages == crashed.transcript.messages, "the journal kept every char"
    await crashed.journal.close()  # type: ignore[union-attr]  # as if the process died: no end, no lock
    report = await replay_pending(record_store, tmp_path / "crash")
    assert report.abandoned == [crashed.conversation_id] and not report.failed


@settings(max_examples=25, deadline=None)
@given(said=st.lists(st.text(alphabet=st.characters(codec=None), max_size=300), min_size=1, max_size=6))
def test_any_text_said_reaches_the_store_as_said(said: list[str]) -> None:
    async def run(directory: Path) -> None:
        store = await SQLiteConversationStore.open(directory / "records.sqlite3")
        try:
            manager = ConversationManager.from_settings(store, Settings(), journal_dir=directory / "journal")
            await manager.start_conversation(None, "room", "caller")
            seqs = [manager.add_message_to_local_transcript("user", text) for text in said]
            assert (await manager.end_conversation()).saved
            detail = await store.get_conversation(manager.conversation_id)
            assert detail is not None
            kept = [text for text, seq in zip(said, seqs, strict=True) if seq is not None]
            assert [m["content"] for m in detail.messages] == [storable(t.replace("\x00", "")) for t in kept]
        finally:
            await store.aclose()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp)))


# ------------------------------------------------------------------------- settings


SETTING_NAMES = [
    "AGENT_LANGUAGE",
    "DEFAULT_COUNTRY_CODE",
    "CLINIC_TIMEZONE",
    "MAX_VERIFICATION_ATTEMPTS",
    "ACK_DELAY",
    "STILL_WORKING_AFTER",
    "LLM_HISTORY_MESSAGES",
    "SUPABASE_URL",
    "OPENAI_BASE_URL",
    "JOURNAL_RETENTION_DAYS",
    "LOAD_THRESHOLD",
    "NUM_IDLE_PROCESSES",
    "JOB_MEMORY_LIMIT_MB",
    "SESSION_END_TIMEOUT",
    "FLUSH_TIMEOUT",
    "STORE_TIMEOUT",
    "SLOW_TURN_MS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "LIVEKIT_URL",
    "ESCALATION_PHONE_NUMBER",
]
SETTING_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "-1",
            "nan",
            "inf",
            "1e309",
            "0",
            "9" * 5000,
            "١٢",
            "０",
            "Mars/Olympus",
            "../../etc/passwd",
            "UTC\x00",
            "https://",
            "wss://x",
            "eq.1,or=(id.gt.0)",
            "\u202e",
            "🙂",
            "+963",
            "TRUE",
        ]
    ),
    st.text(max_size=30),
)


@settings(max_examples=200, deadline=None)
@given(values=st.dictionaries(st.sampled_from(SETTING_NAMES), SETTING_VALUES, max_size=6))
def test_any_setting_value_is_accepted_or_named_as_a_problem(values: dict[str, str]) -> None:
    secret = f"sk-canary-{uuid.uuid4().hex}"
    env = {
        "OPENAI_API_KEY": secret,
        "LIVEKIT_URL": "wss://x.invalid",
        "LIVEKIT_API_KEY": "k",
        "LIVEKIT_API_SECRET": secret,
        "SUPABASE_SERVICE_ROLE_KEY": secret,
        "SUPABASE_URL": "http://127.0.0.1:1",
        **values,
    }
    with contextlib.suppress(SettingsError):
        parsed = Settings.from_env(env, mode="start")
        assert parsed.flush_timeout < parsed.session_end_timeout
        assert parsed.language in ("en", "ar") and parsed.default_country_code.isdigit()
        return
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env, mode="start")
    assert refused.value.problems and secret not in str(refused.value)
    for problem in refused.value.problems:
        assert any(name in problem for name in [*SETTING_NAMES, "SUPABASE_SERVICE_ROLE_KEY", "TAVUS_FACE_ID"])


logging.getLogger("hypothesis").setLevel(logging.WARNING)
