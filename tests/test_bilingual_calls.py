"""Bilingual calls at the appointment desk: a real text-mode AgentSession, the scripted LLM, the
real stores. One worker serves English and Arabic; the call's language follows the caller. The
tests assert which language the agent was instructed in, what the tools returned (compared with
the prompts they come from), and what the record holds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import calls
import prompts
from conversation_manager.journal import read_events
from conversation_manager.transcript import CallTranscript
from desk.call_state import DeskError
from desk.desk import AppointmentDesk, DeskConfig
from desk.phrases import Phrases
from storage.sqlite_records import SQLiteConversationStore
from testkit.bilingual import BOTH, PERSONA, answer, assistant_texts, instructed_in, record_store, settings, stored
from testkit.desk_world import HUDA, SARA, TZ, World, last_output, open_call, tool
from testkit.scripted_llm import Reply
from tools.agents import AppointmentsAgent


@pytest.mark.asyncio
async def test_an_english_default_worker_answers_an_arabic_caller_in_arabic(
    any_world: World, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    world = any_world
    async with record_store(world, request, tmp_path) as records:
        async with open_call(
            world, tmp_path, "en", phone=HUDA.phone, languages=BOTH, start_language=(None, "default"), records=records
        ) as call:
            greeting = assistant_texts(call)[0]
            english = prompts.load("en", "greeting", **PERSONA)
            assert greeting == f"{english} {prompts.load('ar', 'language_offer')}", "nothing known: offer Arabic too"

            await call.turn("مرحباً، أريد حجز موعد.", answer)
            assert call.llm.calls[-1].reply == Reply("[ar]"), "the very next reply is in Arabic"
            ar = Phrases("ar", TZ)
            assert prompts.load("ar", "state_unverified") in call.llm.calls[-1].instructions, "call context in Arabic"

            result = await call.turn("الرمز البريدي ١٢٣٤٥.", tool("verify_caller", zip_code="١٢٣٤٥"), answer)
            result.expect.contains_agent_handoff(new_agent_type=AppointmentsAgent)
            assert instructed_in(call.llm.calls[-1]) == "ar", "the appointments agent starts in the call's language"
            assert prompts.load("ar", "appointments") in call.llm.calls[-1].instructions

            listed = await call.turn("شو عندي مواعيد؟", tool("list_appointments"), answer)
            appointment = world.appointments[HUDA.id]
            when = ar.when(appointment.slot.starts_at, dt.datetime.now(dt.UTC))
            assert last_output(listed, "list_appointments").output == prompts.load(
                "ar",
                "appointments_list",
                lines=prompts.load(
                    "ar",
                    "appointment_line",
                    ref="A1",
                    when=when,
                    provider=prompts.load("ar", "with_provider", provider="Dr. Rana Khoury"),
                ),
            )
            assert assistant_texts(call)[1:] == ["[ar]"] * 3
            conversation_id = call.manager.conversation_id
        conversation, messages = await stored(records, conversation_id)
        assert conversation["language"] == "ar"
        assert conversation["metadata"]["language_source"] == {"language": "en", "cause": "default"}
        [switch] = conversation["metadata"]["language_switches"]
        assert (switch["language"], switch["cause"], switch["turn"], switch["previous"]) == ("ar", "speech", 1, "en")
        assert conversation["summary"] == prompts.load(
            "ar", "summary_information_only", caller=f"{HUDA.name} ({HUDA.phone})"
        )
        said = [(m["role"], m["metadata"]["language"]) for m in messages]
        assert said[0] == ("assistant", "en"), "the greeting was English"
        assert all(lang == "ar" for _, lang in said[1:]), said


@pytest.mark.asyncio
async def test_code_mixed_turns_and_names_do_not_switch(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, "en", languages=BOTH, start_language=("en", "dispatch")) as call:
        for said in ("بدي appointment يوم الأحد", "my name is أحمد", "أحمد خليل", "٠٩٩١٢٣٤٥٦٧"):
            await call.turn(said, answer)
        assert [c.reply for c in call.llm.calls] == [Reply("[en]")] * 4
        assert call.desk.language.switches == []
    record = call.manager.transcript.to_record()
    assert record.conversation["language"] == "en" and record.conversation["metadata"]["language_switches"] == []
    users = [m["metadata"]["language"] for m in record.messages if m["role"] == "user"]
    assert users == ["ar", "en", "en", "en"], "a mixed turn is recorded in its majority language, names in the call's"


@pytest.mark.asyncio
async def test_an_explicit_request_switches_at_once_and_is_acknowledged(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, "ar", languages=("ar", "en"), start_language=("ar", "dispatch")) as call:
        await call.turn("مرحباً", answer)
        await call.turn("English please", answer)
        asked = call.llm.calls[-1]
        assert instructed_in(asked) == "en"
        assert prompts.load("en", "hint_language_request") in asked.instructions, "told to acknowledge, in English"
        await call.turn("Thanks. What are your opening hours?", answer)
        assert prompts.load("en", "hint_language_request") not in call.llm.calls[-1].instructions, "only that turn"
        assert [c.reply for c in call.llm.calls] == [Reply("[ar]"), Reply("[en]"), Reply("[en]")]
    switches = call.manager.transcript.to_record().conversation["metadata"]["language_switches"]
    assert [(s["language"], s["cause"], s["turn"]) for s in switches] == [("en", "request", 2)]


@pytest.mark.asyncio
async def test_a_switch_between_proposal_and_confirmation_keeps_the_pending_change(
    any_world: World, tmp_path: Path
) -> None:
    world = any_world
    async with open_call(world, tmp_path, "en", languages=BOTH, start_language=("en", "dispatch")) as call:
        await call.turn("My ZIP code is 9 4 1 0 3.", tool("verify_caller", zip_code="94103"), answer)
        day = world.tomorrow.isoformat()
        await call.turn(
            "Something tomorrow?", tool("list_available_slots", from_date=day, to_date=day, part_of_day="any"), answer
        )
        proposed = await call.turn("The first one.", tool("book_appointment", slot_ref="S1"), answer)
        slot = world.tomorrow_slots()[0]
        en = Phrases("en", TZ)
        now = dt.datetime.now(dt.UTC)
        assert last_output(proposed, "book_appointment").output == prompts.load(
            "en",
            "confirm_book",
            when=en.when(slot.starts_at, now),
            provider=prompts.load("en", "with_provider", provider=slot.provider),
        )
        confirmed = await call.turn("نعم، من فضلك.", tool("confirm_pending_change", confirmed=True), answer)
        booked = last_output(confirmed, "confirm_pending_change")
        assert not booked.is_error
        assert booked.output == prompts.load("ar", "booked", when=Phrases("ar", TZ).when(slot.starts_at, now))
        assert call.llm.calls[-1].reply == Reply("[ar]")
        assert slot.id in (await world.scheduled(SARA)).values(), "the pending change was written"
    assert call.manager.transcript.to_record().conversation["outcome"] == "booked"


@pytest.mark.asyncio
async def test_a_verified_customer_continues_in_their_stored_language(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, "en", phone=HUDA.phone, languages=BOTH) as call:
        result = await call.turn("١٢٣٤٥", tool("verify_caller", zip_code="١٢٣٤٥"), answer)
        result.expect.contains_agent_handoff(new_agent_type=AppointmentsAgent)
        assert call.llm.calls[-1].reply == Reply("[ar]"), "only digits said: the customer's Arabic takes over"
    switches = call.manager.transcript.to_record().conversation["metadata"]["language_switches"]
    assert [(s["language"], s["cause"]) for s in switches] == [("ar", "customer")]


@pytest.mark.asyncio
async def test_the_handoff_keeps_the_language_and_the_replayed_journal_gives_the_same_fields(
    world: World, tmp_path: Path
) -> None:
    async with open_call(world, tmp_path, "en", phone=HUDA.phone, languages=BOTH) as call:
        await call.turn("أريد حجز موعد", answer)
        await call.turn("الرمز البريدي ١٢٣٤٥.", tool("verify_caller", zip_code="١٢٣٤٥"), answer)
        agent = call.session.current_agent
        assert isinstance(agent, AppointmentsAgent) and agent.language == "ar"
        await call.turn("Can we speak English?", answer)
        assert agent.language == "en" and instructed_in(call.llm.calls[-1]) == "en"
        conversation_id = call.manager.conversation_id
        journal = call.manager.journal
        assert journal is not None
    live = call.manager.transcript.to_record()
    archived = journal.path.parent.parent / "archive" / journal.path.name
    replayed = CallTranscript.from_events(read_events(archived)).to_record()
    assert replayed.conversation["conversation_id"] == conversation_id
    for key in ("language", "summary"):
        assert replayed.conversation[key] == live.conversation[key]
    for key in ("language_source", "language_switches"):
        assert replayed.conversation["metadata"][key] == live.conversation["metadata"][key]
    assert [m["metadata"]["language"] for m in replayed.messages] == [m["metadata"]["language"] for m in live.messages]
    assert [(s["language"], s["cause"]) for s in live.conversation["metadata"]["language_switches"]] == [
        ("ar", "speech"),
        ("en", "request"),
    ]


@pytest.mark.asyncio
async def test_progress_lines_refusals_and_dates_follow_the_switch(world: World) -> None:
    desk = AppointmentDesk(world.store, DeskConfig.from_settings(settings()))
    desk.start_language("en", "dispatch")
    slot = world.tomorrow_slots()[0]
    assert desk.acknowledgement("ack_slots") == prompts.load("en", "ack_slots")
    assert desk.when(slot.starts_at) == Phrases("en", TZ).when(slot.starts_at, desk.now())
    desk.state.note_user_message("m1", "أريد حجز موعد")
    desk.hear("m1", "أريد حجز موعد")
    assert desk.phrases.language == "ar"
    assert desk.acknowledgement("ack_slots") == prompts.load("ar", "ack_slots")
    assert desk.still_working() == prompts.load("ar", "still_working")
    assert desk.when(slot.starts_at) == Phrases("ar", TZ).when(slot.starts_at, desk.now())
    with pytest.raises(DeskError) as refused:
        await desk.list_appointments()
    assert desk.render(refused.value) == prompts.load("ar", "not_verified")


@pytest.mark.asyncio
async def test_a_switch_on_a_draft_of_the_turn_stands_only_if_the_whole_turn_bears_it_out(
    world: World, tmp_path: Path
) -> None:
    """LiveKit drafts a reply from a voice turn's first words (preemptive generation); the desk
    reads that draft, and the whole turn then confirms or undoes a switch made on it."""
    records = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    try:
        call = await calls.open_call(settings(tmp_path), room_name="r", records=records, appointments=world.store)
        desk, voices = call.desk, []
        desk.start_language("en", "dispatch")
        desk.language.listeners.append(lambda change: voices.append(change.language))
        # the draft "بدي موعد" switched; the whole turn is code-mixed: undone
        desk.state.note_user_message("draft-1", "بدي موعد")
        assert desk.hear("draft-1", "بدي موعد") is not None and desk.language.current == "ar"
        undone = desk.turn_ended("final-1", "بدي موعد appointment يوم الأحد")
        assert undone is not None and undone.undone and desk.language.current == "en"
        assert desk.phrases.language == "en" and voices == ["ar", "en"], "words and voice back to English"
        # a draft the whole turn bears out stands
        desk.state.note_user_message("draft-2", "أريد حجز موعد")
        desk.hear("draft-2", "أريد حجز موعد")
        assert desk.turn_ended("final-2", "أريد حجز موعد غداً") is None and desk.language.current == "ar"
        # a switch made on the final message itself, or in an earlier turn, is never reconsidered
        desk.state.note_user_message("final-3", "English please")
        assert desk.turn_ended("final-3", "English please") is None
        desk.hear("final-3", "English please")
        assert desk.turn_ended("final-4", "بدي appointment") is None and desk.language.current == "en"
        call.summarize = None
        await call.aclose()
        conversation, _ = await stored(records, call.conversation_id)
        switches = [(s["language"], s["cause"]) for s in conversation["metadata"]["language_switches"]]
        assert switches == [("ar", "speech"), ("en", "request")], "the undone switch is not in the record"
        assert conversation["language"] == "en"
        journal = call.manager.journal
        assert journal is not None
        archived = journal.path.parent.parent / "archive" / journal.path.name
        replayed = CallTranscript.from_events(read_events(archived)).to_record().conversation
        assert replayed["metadata"]["language_switches"] == conversation["metadata"]["language_switches"]
    finally:
        await records.aclose()
