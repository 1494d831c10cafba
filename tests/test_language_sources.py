"""Where a call's language comes from (the dispatch, a known SIP caller, the default) and how
operators see it (the query by language and switches, the CLI), on the real stores."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from livekit.agents import AgentSession

import calls
import prompts
from conversation_manager import ConversationManager
from desk.call_language import CallLanguage, choose_start
from desk.desk import AppointmentDesk, DeskConfig
from storage.domain import Customer
from storage.domain_sqlite import SQLiteAppointmentStore
from storage.records import ConversationStore, Row, StoreError
from storage.sqlite_records import SQLiteConversationStore
from testkit.bilingual import BOTH, PERSONA, record_store, settings, stored
from testkit.desk_world import HUDA, SARA, World
from testkit.scripted_llm import ScriptedLLM


async def sip_call(
    world: World, tmp_path: Path, records: ConversationStore, *, phone: str, attributes: dict[str, str] | None = None
) -> tuple[str, Row, list[Row]]:
    """A SIP call whose first language is chosen as agent.py does (dispatch, the caller's number,
    default) before the greeting: its greeting and its stored rows."""
    call = await calls.open_call(settings(tmp_path), room_name="sip-room", records=records, appointments=world.store)
    call.desk.caller_identified(phone=phone, is_sip=True, participant_identity="sip_caller")
    await choose_start(call.desk.language, call.desk.language_of_caller, attributes, None, None)
    async with AgentSession(llm=ScriptedLLM(), vad=None, turn_handling={"turn_detection": None}) as session:
        call.attach(session)
        call.summarize = None  # no summary from the scripted LLM: the built one
        await session.start(call.reception_agent(), capture_run=True)
        greeting = next(m.text_content or "" for m in session.history.messages() if m.role == "assistant")
    await call.aclose()
    conversation_id = call.conversation_id
    conversation, messages = await stored(records, conversation_id)
    return greeting, conversation, messages


@pytest.mark.asyncio
async def test_a_known_arabic_sip_caller_is_greeted_in_arabic(
    any_world: World, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with record_store(any_world, request, tmp_path) as records:
        greeting, conversation, messages = await sip_call(any_world, tmp_path, records, phone=HUDA.phone)
        assert greeting == prompts.load("ar", "greeting", **PERSONA), "Arabic from the first word, no offer"
        assert conversation["language"] == "ar"
        assert conversation["metadata"]["language_source"] == {"language": "ar", "cause": "customer"}
        assert messages[0]["metadata"]["language"] == "ar"

        greeting, _, _ = await sip_call(any_world, tmp_path, records, phone=SARA.phone)
        assert greeting == prompts.load("en", "greeting", **PERSONA), "a known English customer: no offer either"
        _, unknown, _ = await sip_call(any_world, tmp_path, records, phone="+963944000999")
        assert unknown["metadata"]["language_source"] == {"language": "en", "cause": "default"}
        greeting, dispatched, _ = await sip_call(
            any_world, tmp_path, records, phone=HUDA.phone, attributes={"language": "en"}
        )
        assert dispatched["metadata"]["language_source"] == {"language": "en", "cause": "dispatch"}, "dispatch first"
        assert greeting == prompts.load("en", "greeting", **PERSONA)


@pytest.mark.asyncio
async def test_a_slow_or_failing_customer_lookup_greets_in_the_default_language(world: World) -> None:
    async def slow() -> str | None:
        await asyncio.sleep(5)
        return "ar"

    language = CallLanguage(BOTH)
    started = await choose_start(language, slow, None, None, None, lookup_timeout=0.05)
    assert (started.language, started.cause) == ("en", "default")

    class Down(SQLiteAppointmentStore):
        async def find_customer_by_phone(self, phone: str) -> Customer | None:
            raise StoreError("store unreachable")

    store = world.store
    assert isinstance(store, SQLiteAppointmentStore)
    desk = AppointmentDesk(Down(store._db), DeskConfig.from_settings(settings()))
    desk.caller_identified(phone=HUDA.phone, is_sip=True)
    started = await choose_start(desk.language, desk.language_of_caller, None)
    assert (started.language, started.cause) == ("en", "default"), "an unreachable store never holds up the call"


@pytest.mark.asyncio
async def test_the_worker_reads_the_dispatch_from_the_job_metadata(world: World, tmp_path: Path) -> None:
    records = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    try:
        call = await calls.open_call(settings(tmp_path), room_name="r", records=records, appointments=world.store)
        caller = SimpleNamespace(attributes={"sip.phoneNumber": HUDA.phone})  # no language attribute
        started = await call.choose_language(caller, json.dumps({"language": "ar"}), None)  # type: ignore[arg-type]
        assert (started.language, started.cause) == ("ar", "dispatch")
        call.summarize = None
        await call.aclose()
        conversation, _ = await stored(records, call.conversation_id)
        assert conversation["metadata"]["language_source"] == {"language": "ar", "cause": "dispatch"}
    finally:
        await records.aclose()


def test_operators_count_calls_by_language_and_switches(clean_db: Any) -> None:
    queries = (Path(__file__).resolve().parent.parent / "sql" / "queries.sql").read_text()
    query = queries[queries.index("-- Calls by language") :]
    query = query[: query.index(";") + 1]
    switch = '{"language": "ar", "cause": "speech", "turn": 1, "previous": "en", "seq": 2}'
    back = '{"language": "en", "cause": "request", "turn": 3, "previous": "ar", "seq": 6}'
    clean_db.psql(
        "insert into conversations (conversation_id, room_name, status, language, metadata) values"
        ' (\'l1\', \'r\', \'completed\', \'ar\', \'{"language_source": {"language": "en", "cause": "default"},'
        f' "language_switches": [{switch}]}}\'),'
        ' (\'l2\', \'r\', \'completed\', \'en\', \'{"language_source": {"language": "en", "cause": "dispatch"},'
        f' "language_switches": [{switch}, {back}]}}\'),'
        ' (\'l3\', \'r\', \'completed\', \'ar\', \'{"language_source": {"language": "ar", "cause": "customer"},'
        ' "language_switches": []}\'),'
        " ('l4', 'r', 'completed', 'en', '{}')"
    )
    rows = clean_db.psql(query).split()
    # language | calls | with switches | switches | speech | request | customer | dispatch | customer | default
    assert sorted(rows) == ["ar|2|1|1|1|0|0|0|1|1", "en|2|1|2|1|1|0|1|0|0"]


def test_the_operator_cli_shows_the_calls_languages(tmp_path: Path) -> None:
    async def record() -> str:
        store = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
        manager = ConversationManager.from_settings(store, settings(tmp_path))
        conversation_id = await manager.start_conversation(None, "cli-room", "caller")
        manager.record_language("en", "default", 0)
        manager.add_message_to_local_transcript("user", "أريد حجز موعد")
        manager.record_language("ar", "speech", 1)
        await manager.end_conversation()
        await store.aclose()
        return conversation_id

    conversation_id = asyncio.run(record())
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DATA_DIR": str(tmp_path)}
    shown = subprocess.run(
        [sys.executable, "-m", "conversation_manager", "show", conversation_id],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "language ar (started en: default; then ar: speech at turn 1)" in shown.stdout
