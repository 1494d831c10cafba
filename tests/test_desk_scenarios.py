"""Whole calls at the appointment desk: a real text-mode AgentSession, the scripted LLM, the
real stores (embedded SQLite; the critical flows also the local Supabase stack).

The scripted LLM plays what a model would do (call a tool, answer); the tests assert what
the desk did: rows in the store, the call state, the call record, which tools the model
was offered. Tool wording is only compared with the prompt it must come from.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import Agent, AgentSession, RunContext
from livekit.agents.llm import FunctionCall, ToolError
from livekit.agents.voice.speech_handle import SpeechHandle

import prompts
from desk.desk import AppointmentDesk, DeskConfig
from settings import Settings
from testkit.desk_world import (
    APPOINTMENT_TOOLS,
    CALLER,
    LANGUAGES,
    OMAR,
    SARA,
    SAY,
    TZ,
    ZIP_SAID,
    World,
    last_output,
    list_tomorrow,
    open_call,
    outcome,
    tool,
    verify,
)
from testkit.scripted_llm import Reply, ToolCall
from tools.agents import AppointmentsAgent, AppointmentTools, Persona, ReceptionAgent, VerificationTools
from tools.progress import ToolStatus

# ------------------------------------------------------------------------- verification and handoff


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_verify_then_list(lang: str, world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, lang) as call:
        await call.turn(SAY[lang]["hello"], Reply("What is your ZIP code?"))
        before = set(call.llm.calls[0].tool_names)
        assert before == {
            "verify_caller",
            "provide_phone_number",
            "save_caller_details",
            "request_callback",
            "transfer_to_human",
        }
        assert not before & APPOINTMENT_TOOLS, "before verification the appointment tools do not exist"

        result = await verify(call, tool("list_appointments"), Reply("You have one appointment."))
        result.expect.contains_function_call(name="verify_caller")
        result.expect.contains_agent_handoff(new_agent_type=AppointmentsAgent)
        listed = last_output(result, "list_appointments")
        assert not listed.is_error
        customer = CALLER[lang]
        appointment = world.appointments[customer.id]
        assert listed.output == call.line(
            "appointments_list",
            lines=call.line(
                "appointment_line",
                ref="A1",
                when=call.desk.when(appointment.slot.starts_at),
                provider=call.line("with_provider", provider="Dr. Rana Khoury"),
            ),
        )
        assert isinstance(call.session.current_agent, AppointmentsAgent)
        assert call.desk.state.turn == 2, "the handoff's reply belongs to the caller's turn"
        assert set(call.llm.calls[-1].tool_names) >= APPOINTMENT_TOOLS
        assert "verify_caller" not in call.llm.calls[-1].tool_names
        assert call.desk.state.customer == customer
        assert call.manager.transcript.conversation["customer_id"] == customer.id
        # the appointments agent's instructions carry the verified state
        assert call.line("state_verified", customer=customer.name) in call.llm.calls[-1].instructions
    assert outcome(call) == "information_only"


@pytest.mark.asyncio
async def test_handoff_happens_once_and_is_recorded(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path) as call:
        # the model calls verify_caller twice in one step: one verification, one handoff
        result = await call.turn(
            SAY["en"]["zip"],
            Reply(
                tool_calls=[
                    ToolCall("verify_caller", {"zip_code": "94103"}),
                    ToolCall("verify_caller", {"zip_code": "94103"}),
                ]
            ),
            Reply("You're verified."),
        )
        result.expect.contains_agent_handoff(new_agent_type=AppointmentsAgent)
        handoffs = [e for e in result.events if e.type == "agent_handoff"]
        assert len(handoffs) == 1
        assert [o.is_error for o in call.outputs("verify_caller")] == [False, False]
        assert [m.text_content for m in call.session.history.messages() if m.role == "assistant"][-1] == (
            "You're verified."
        ), "one answer, from the appointments agent"
        await call.turn("What do I have?", tool("list_appointments"), Reply("One appointment."))
        assert isinstance(call.session.current_agent, AppointmentsAgent)
    # the record has one agent run per activation: the reception, then the appointments agent
    runs = list(call.manager.transcript.agent_runs.values())
    assert [r["agent_type"] for r in runs] == ["ReceptionAgent", "AppointmentsAgent"]
    assert runs[1]["parent_run_id"] == runs[0]["run_id"]
    assert {t["name"] for t in call.manager.transcript.tool_calls} >= {"verify_caller", "list_appointments"}


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_wrong_zip_twice_offers_a_human(lang: str, world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, lang) as call:
        for _ in range(2):
            await call.turn("00000", tool("verify_caller", zip_code="00000"), Reply("Sorry."))
        first, second = call.outputs("verify_caller")
        assert (first.is_error, first.output) == (True, call.line("verify_failed"))
        assert (second.is_error, second.output) == (True, call.line("verify_failed_offer_human"))
        assert call.desk.state.failed_attempts == 2 and not call.desk.state.locked
        assert isinstance(call.session.current_agent, ReceptionAgent)
        # the model is offered the way to a human
        assert {"transfer_to_human", "request_callback"} <= set(call.llm.calls[-1].tool_names)
    assert outcome(call) == "verification_failed"


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_lockout_after_the_maximum(lang: str, world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, lang) as call:
        for wrong in ("00000", "11111", "22222"):
            await call.turn(wrong, tool("verify_caller", zip_code=wrong), Reply("Sorry."))
        assert call.desk.state.locked
        assert call.outputs("verify_caller")[-1].output == call.line("verify_locked_now")
        # even the right ZIP code is refused now, and nothing is handed over
        result = await call.turn(SAY[lang]["zip"], tool("verify_caller", zip_code=ZIP_SAID[lang]), Reply("Sorry."))
        refused = last_output(result, "verify_caller")
        assert (refused.is_error, refused.output) == (True, call.line("verify_locked"))
        assert not [e for e in result.events if e.type == "agent_handoff"]
        assert not call.desk.state.verified and isinstance(call.session.current_agent, ReceptionAgent)
        assert call.line("state_locked") in call.llm.calls[-1].instructions
    assert outcome(call) == "verification_failed"


@pytest.mark.asyncio
async def test_an_unknown_phone_fails_like_a_wrong_zip(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, phone="+14155559999") as call:
        await call.turn("94103", tool("verify_caller", zip_code="94103"), Reply("Sorry."))
        assert call.outputs("verify_caller")[0].output == call.line("verify_failed")
        assert call.desk.state.failed_attempts == 1


@pytest.mark.asyncio
async def test_a_caller_without_phone_gives_it_then_verifies(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, phone=None) as call:
        await call.turn("hi", Reply("Hello!"))
        assert call.line("state_needs_phone") in call.llm.calls[-1].instructions
        await call.turn("94103", tool("verify_caller", zip_code="94103"), Reply("And your phone?"))
        assert call.outputs("verify_caller")[0].output == call.line("need_phone")
        assert call.desk.state.failed_attempts == 0, "a missing phone is not a failed attempt"
        await call.turn("(415) 555-0100", tool("provide_phone_number", phone="+1 (415) 555-0100"), Reply("Thanks."))
        result = await verify(call)
        result.expect.contains_agent_handoff(new_agent_type=AppointmentsAgent)
        assert call.desk.state.customer == SARA


@pytest.mark.asyncio
async def test_a_stated_phone_cannot_replace_the_calls(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, phone=OMAR.phone) as call:
        await call.turn("use 4155550100", tool("provide_phone_number", phone="4155550100"), Reply("Sorry."))
        assert call.outputs("provide_phone_number")[0].output == call.line("phone_from_call")
        assert call.desk.state.phone == OMAR.phone


# ------------------------------------------------------------------------- booking and changes


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_book_with_confirmation(lang: str, any_world: World, tmp_path: Path) -> None:
    world = any_world
    customer = CALLER[lang]
    async with open_call(world, tmp_path, lang) as call:
        await verify(call)
        await list_tomorrow(call, world)
        proposed = await call.turn(SAY[lang]["first"], tool("book_appointment", slot_ref="S1"), Reply("Shall I?"))
        first = world.tomorrow_slots()[0]
        assert last_output(proposed, "book_appointment").output == call.line(
            "confirm_book",
            when=call.desk.when(first.starts_at),
            provider=call.line("with_provider", provider="Dr. Rana Khoury"),
        )
        assert list((await world.scheduled(customer)).values()) == [world.appointments[customer.id].slot.id], (
            "a proposal writes nothing"
        )

        done = await call.turn(SAY[lang]["yes"], tool("confirm_pending_change", confirmed=True), Reply("Booked."))
        assert not last_output(done, "confirm_pending_change").is_error
        assert sorted((await world.scheduled(customer)).values()) == sorted(
            [world.appointments[customer.id].slot.id, first.id]
        )
        assert outcome(call) == "booked"
        assert call.desk.state.pending is None


@pytest.mark.asyncio
async def test_reschedule_moves_the_appointment_atomically(world: World, tmp_path: Path) -> None:
    appointment = world.appointments[SARA.id]
    async with open_call(world, tmp_path) as call:
        await verify(call, tool("list_appointments"), Reply("You have one appointment."))
        await list_tomorrow(call, world)
        await call.turn(
            "Move it to the third one.",
            tool("reschedule_appointment", appointment_ref="A1", slot_ref="S3"),
            Reply("Shall I?"),
        )
        assert await world.scheduled(SARA) == {appointment.id: appointment.slot.id}
        await call.turn("Yes.", tool("confirm_pending_change", confirmed=True), Reply("Moved."))
    third = world.tomorrow_slots()[2]
    assert await world.scheduled(SARA) == {appointment.id: third.id}, "same appointment, new slot, nothing else"
    assert len(await world.rows()) == 3
    freed = await world.store.list_open_slots(appointment.slot.starts_at, appointment.slot.ends_at)
    assert [s.id for s in freed] == [appointment.slot.id], "the old slot is open again"
    assert outcome(call) == "rescheduled"


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_cancel_with_confirmation(lang: str, world: World, tmp_path: Path) -> None:
    customer = CALLER[lang]
    appointment = world.appointments[customer.id]
    async with open_call(world, tmp_path, lang) as call:
        await verify(call, tool("list_appointments"), Reply("You have one appointment."))
        proposed = await call.turn("Cancel it.", tool("cancel_appointment", appointment_ref="A1"), Reply("Sure?"))
        assert last_output(proposed, "cancel_appointment").output == call.line(
            "confirm_cancel", when=call.desk.when(appointment.slot.starts_at)
        )
        assert await world.scheduled(customer) == {appointment.id: appointment.slot.id}
        await call.turn(SAY[lang]["yes"], tool("confirm_pending_change", confirmed=True), Reply("Cancelled."))
    assert await world.scheduled(customer) == {}
    assert (appointment.id, customer.id, appointment.slot.id, "cancelled") in await world.rows()
    assert outcome(call) == "cancelled"


@pytest.mark.asyncio
async def test_confirming_in_the_same_turn_is_refused(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path) as call:
        await verify(call)
        await list_tomorrow(call, world)
        before = await world.rows()
        # the model proposes and confirms without waiting for the caller: refused
        result = await call.turn(
            "Book the first one.",
            tool("book_appointment", slot_ref="S1"),
            tool("confirm_pending_change", confirmed=True),
            Reply("Shall I book it?"),
        )
        refused = last_output(result, "confirm_pending_change")
        assert (refused.is_error, refused.output) == (True, call.line("confirm_same_turn"))
        assert await world.rows() == before
        # both in one parallel step: refused too
        result = await call.turn(
            "Book the second one then.",
            Reply(
                tool_calls=[
                    ToolCall("book_appointment", {"slot_ref": "S2"}),
                    ToolCall("confirm_pending_change", {"confirmed": True}),
                ]
            ),
            Reply("Shall I?"),
        )
        assert last_output(result, "confirm_pending_change").is_error
        assert await world.rows() == before
        # the question stays open: the caller's yes in the next turn books it
        await call.turn("Yes.", tool("confirm_pending_change", confirmed=True), Reply("Booked."))
        assert world.tomorrow_slots()[1].id in (await world.scheduled(SARA)).values()


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_no_at_confirmation_changes_nothing(lang: str, world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, lang) as call:
        await verify(call, tool("list_appointments"), Reply("You have one appointment."))
        await call.turn("Cancel it.", tool("cancel_appointment", appointment_ref="A1"), Reply("Sure?"))
        before = await world.rows()
        declined = await call.turn(SAY[lang]["no"], tool("confirm_pending_change", confirmed=False), Reply("OK."))
        assert last_output(declined, "confirm_pending_change").output == call.line("change_declined")
        assert call.desk.state.pending is None
        late = await call.turn(SAY[lang]["yes"], tool("confirm_pending_change", confirmed=True), Reply("Hm."))
        assert last_output(late, "confirm_pending_change").output == call.line("nothing_pending")
        assert await world.rows() == before
    assert outcome(call) == "information_only"


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_slot_taken_between_listing_and_booking(lang: str, any_world: World, tmp_path: Path) -> None:
    world = any_world
    customer = CALLER[lang]
    first, second = world.tomorrow_slots()[:2]
    someone_else = await world.another_store()
    async with open_call(world, tmp_path, lang) as call:
        await verify(call)
        await list_tomorrow(call, world)
        await someone_else.book(OMAR.id, first.id)  # gone before the caller picks it
        result = await call.turn(SAY[lang]["first"], tool("book_appointment", slot_ref="S1"), Reply("Sorry."))
        taken = last_output(result, "book_appointment")
        assert taken.is_error
        assert taken.output.startswith(call.line("slot_taken", options="").strip())
        assert call.desk.state.pending is None
        # fresh options, none of them the taken slot, under references not used before
        fresh = {ref: s.id for ref, s in call.desk.state.slots._live.items()}
        assert first.id not in fresh.values() and "S1" not in fresh
        assert call.desk.when(second.starts_at) in taken.output

        # taken between the proposal and the caller's yes: nothing written either
        ref = next(r for r, sid in fresh.items() if sid == second.id)
        await call.turn("That one then.", tool("book_appointment", slot_ref=ref), Reply("Shall I?"))
        await someone_else.book(OMAR.id, second.id)
        result = await call.turn(SAY[lang]["yes"], tool("confirm_pending_change", confirmed=True), Reply("Sorry."))
        lost = last_output(result, "confirm_pending_change")
        assert lost.is_error and lost.output.startswith(call.line("slot_taken", options="").strip())
    assert list((await world.scheduled(customer)).values()) == [world.appointments[customer.id].slot.id]
    assert set((await world.scheduled(OMAR)).values()) >= {first.id, second.id}


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_another_customers_appointment_is_not_found(lang: str, any_world: World, tmp_path: Path) -> None:
    world = any_world
    omars = world.appointments[OMAR.id]
    async with open_call(world, tmp_path, lang) as call:
        await verify(call, tool("list_appointments"), Reply("You have one appointment."))
        before = await world.rows()
        result = await call.turn(
            "Cancel A2.",
            Reply(
                tool_calls=[
                    ToolCall("cancel_appointment", {"appointment_ref": "A2"}),
                    ToolCall("cancel_appointment", {"appointment_ref": omars.id}),  # a raw id: not a reference
                    ToolCall("reschedule_appointment", {"appointment_ref": "A3", "slot_ref": "S1"}),
                ]
            ),
            Reply("I can't find that."),
        )
        outputs = [e.item for e in result.events if e.type == "function_call_output"]
        assert [o.is_error for o in outputs] == [True, True, True]
        assert {o.output for o in outputs} == {
            call.line("unknown_appointment", ref="A2"),
            call.line("bad_reference"),
            call.line("unknown_appointment", ref="A3"),
        }
        await call.turn("Yes.", tool("confirm_pending_change", confirmed=True), Reply("Nothing to do."))
        assert call.outputs("confirm_pending_change")[0].output == call.line("nothing_pending")
        assert await world.rows() == before
    assert await world.scheduled(OMAR) == {omars.id: omars.slot.id}


@pytest.mark.asyncio
async def test_malformed_arguments_are_tool_errors_and_write_nothing(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path) as call:
        bad_zip = await call.turn("9 4 1", tool("verify_caller", zip_code="941\u0000\n03"), Reply("Again?"))
        assert last_output(bad_zip, "verify_caller").output == call.line("zip_invalid")
        assert call.desk.state.failed_attempts == 0
        await verify(call)
        await list_tomorrow(call, world)
        before = await world.rows()
        result = await call.turn(
            "Book it.",
            Reply(
                tool_calls=[
                    ToolCall("book_appointment", raw_arguments='{"slot_ref": '),  # broken JSON
                    ToolCall("book_appointment", {"slot": "S1"}),  # wrong name
                    ToolCall("book_appointment", {"slot_ref": "S1; delete from appointments"}),
                    ToolCall("book_appointment", {"slot_ref": "S1" * 50}),
                    ToolCall("list_available_slots", {"from_date": "next monday", "to_date": "", "part_of_day": "any"}),
                    ToolCall(
                        "list_available_slots",
                        {"from_date": "2020-01-01", "to_date": "2020-01-01", "part_of_day": "any"},
                    ),
                    ToolCall(
                        "list_available_slots",
                        {"from_date": world.tomorrow.isoformat(), "to_date": "", "part_of_day": "night"},
                    ),
                    ToolCall("request_callback", {"reason": "x" * 400}),
                    ToolCall("save_caller_details", {"name": "Sarah\u001b[2J", "phone": "", "email": ""}),
                ]
            ),
            Reply("Sorry, could you repeat that?"),
        )
        outputs = [e.item for e in result.events if e.type == "function_call_output"]
        assert len(outputs) == 9 and all(o.is_error for o in outputs), [o.output for o in outputs]
        mine = {o.output for o in outputs}
        for key in ("bad_reference", "date_invalid", "date_past", "reason_invalid", "name_invalid"):
            assert call.line(key) in mine, key
        assert call.desk.state.pending is None
        assert await world.rows() == before
        assert await world.callbacks() == []
        assert call.manager.transcript.caller.name == SARA.name, "the bad name was not saved"


@pytest.mark.asyncio
async def test_appointment_tools_refuse_without_verification(world: World, tmp_path: Path) -> None:
    """Defence in depth: even on the appointments agent, an unverified call gets nothing."""
    async with open_call(world, tmp_path) as call:
        persona = Persona(language="en", assistant_name="Sara", company_name="Nour Clinic")
        call.llm.push(Reply("Hello."))  # the appointments agent speaks on entering
        call.session.update_agent(AppointmentsAgent(persona, call.desk))
        await asyncio.sleep(0.2)
        result = await call.turn(
            "List my appointments and book S1.",
            Reply(
                tool_calls=[
                    ToolCall("list_appointments", {}),
                    ToolCall("book_appointment", {"slot_ref": "S1"}),
                    ToolCall("cancel_appointment", {"appointment_ref": "A1"}),
                ]
            ),
            Reply("Please verify first."),
        )
        outputs = [e.item for e in result.events if e.type == "function_call_output"]
        assert [(o.is_error, o.output) for o in outputs] == [(True, call.line("not_verified"))] * 3
        assert call.desk.state.appointments._live == {}


# ------------------------------------------------------------------------- details, callbacks, a human


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("lang", "name", "said_phone"),
    [("en", "John Doe", "0991 234 567"), ("ar", "يوسف الأحمد", "٠٩٩١ ٢٣٤ ٥٦٧")],
)
async def test_unknown_caller_leaves_details_and_a_callback(
    lang: str, name: str, said_phone: str, world: World, tmp_path: Path
) -> None:
    async with open_call(world, tmp_path, lang, phone=None) as call:
        await call.turn(
            "I'm new, please call me back.",
            Reply(tool_calls=[ToolCall("save_caller_details", {"name": name, "phone": said_phone, "email": ""})]),
            tool("request_callback", reason="New patient wants a first appointment"),
            Reply("A colleague will call you."),
        )
        assert [o.output for o in call.outputs("request_callback")] == [call.line("callback_saved")]
        # a second request in the same call does not add a row
        await call.turn("Please do call.", tool("request_callback", reason="again"), Reply("Already noted."))
    [row] = await world.callbacks()
    assert (row["name"], row["phone"], row["customer_id"], row["conversation_id"]) == (
        name,
        "+963991234567",
        None,
        call.manager.conversation_id,
    )
    assert row["reason"] == "New patient wants a first appointment"
    caller = call.manager.transcript.caller
    assert (caller.name, caller.phone) == (name, "+963991234567")
    assert outcome(call) == "callback_requested"


@pytest.mark.asyncio
async def test_callback_needs_a_phone(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, phone=None) as call:
        await call.turn("Call me back.", tool("request_callback", reason="question"), Reply("Your number?"))
        assert call.outputs("request_callback")[0].output == call.line("callback_needs_phone")
    assert await world.callbacks() == []


@pytest.mark.asyncio
async def test_transfer_to_human_over_sip(world: World, tmp_path: Path) -> None:
    transfers: list[tuple[str, str]] = []

    async def transfer(identity: str, destination: str) -> None:
        transfers.append((identity, destination))

    async with open_call(world, tmp_path, is_sip=True, transfer=transfer, escalation="+963112223344") as call:
        result = await call.turn(
            "Let me talk to a person.", tool("transfer_to_human", reason="wants a person"), Reply("Goodbye.")
        )
        said = [e.item.text_content for e in result.events if e.type == "message"]
        assert said[0] == call.line("transfer_started")
    assert transfers == [("sip_caller", "tel:+963112223344")]
    assert outcome(call) == "transferred"
    assert await world.callbacks() == []


@pytest.mark.asyncio
@pytest.mark.parametrize("failing", [False, True])
async def test_without_a_live_transfer_a_callback_is_recorded(failing: bool, world: World, tmp_path: Path) -> None:
    async def broken(identity: str, destination: str) -> None:
        raise RuntimeError("SIP transfer failed: STR_REJECTED")

    # not SIP (a browser call), or SIP with a transfer that fails
    async with open_call(world, tmp_path, is_sip=failing, transfer=broken, escalation="+963112223344") as call:
        await call.turn("A human please.", tool("transfer_to_human", reason="wants a person"), Reply("Noted."))
        expected = "transfer_failed_callback" if failing else "transfer_unavailable_callback"
        assert call.outputs("transfer_to_human")[0].output == call.line(expected)
    [row] = await world.callbacks()
    assert (row["phone"], row["reason"]) == (SARA.phone, "wants a person")
    assert outcome(call) == "callback_requested"


# ------------------------------------------------------------------------- context, acknowledgements, trimming


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_instructions_carry_date_time_zone_and_state(lang: str, world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, lang) as call:
        await call.turn(SAY[lang]["hello"], Reply("Your ZIP code?"))
        instructions = call.llm.calls[-1].instructions
        today = world.tomorrow - dt.timedelta(days=1)
        for expected in (prompts.load(lang, "reception"), today.isoformat(), TZ, call.line("state_unverified")):
            assert expected in instructions
        assert call.desk.phrases.date(today) in instructions


@pytest.mark.asyncio
async def test_unclear_turns_lead_to_offering_a_human(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path) as call:
        hint = call.line("hint_offer_human")
        await call.turn("...", Reply("Sorry?"))
        assert hint not in call.llm.calls[-1].instructions
        await call.turn("…", Reply("Sorry?"))
        assert hint in call.llm.calls[-1].instructions
        await call.turn("I want to book.", Reply("Sure."))
        assert hint not in call.llm.calls[-1].instructions
        assert call.desk.state.unclear_turns == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_slow_tool_gets_one_acknowledgement_per_turn(
    lang: str, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_list, real_slots = world.store.list_appointments, world.store.list_open_slots

    async def slow_list(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.4)
        return await real_list(*args, **kwargs)

    async def slow_slots(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.4)
        return await real_slots(*args, **kwargs)

    async with open_call(world, tmp_path, lang, acknowledgement_delay=0.1) as call:
        fast = await verify(call)  # verification is quick here: no acknowledgement
        assert call.line("ack_verify") not in [e.item.text_content for e in fast.events if e.type == "message"]

        monkeypatch.setattr(world.store, "list_appointments", slow_list)
        monkeypatch.setattr(world.store, "list_open_slots", slow_slots)
        day = world.tomorrow.isoformat()
        result = await call.turn(
            "What do I have, and what's free tomorrow?",
            tool("list_appointments"),
            tool("list_available_slots", from_date=day, to_date=day, part_of_day="morning"),
            Reply("Here you go."),
        )
        said = [e.item.text_content for e in result.events if e.type == "message"]
        assert said == [call.line("ack_appointments"), "Here you go."], "one line per turn, the first slow tool's"
        assert not last_output(result, "list_available_slots").is_error

        again = await call.turn("And the day after?", tool("list_appointments"), Reply("Same."))
        said_again = [e.item.text_content for e in again.events if e.type == "message"]
        assert said_again == [call.line("ack_appointments"), "Same."]


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_long_tool_says_still_working_once_and_the_room_sees_its_progress(
    lang: str, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_list = world.store.list_appointments

    async def very_slow_list(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(2.0)
        return await real_list(*args, **kwargs)

    statuses: list[ToolStatus] = []
    async with open_call(
        world, tmp_path, lang, status=statuses.append, acknowledgement_delay=0.1, still_working_after=0.5
    ) as call:
        await verify(call)
        monkeypatch.setattr(world.store, "list_appointments", very_slow_list)
        statuses.clear()
        result = await call.turn("What do I have?", tool("list_appointments"), Reply("One appointment."))
        said = [e.item.text_content for e in result.events if e.type == "message"]
        assert said == [call.line("ack_appointments"), call.line("still_working"), "One appointment."]
        assert [(s.tool, s.state, s.text) for s in statuses] == [
            ("list_appointments", "working", call.line("ack_appointments")),
            ("list_appointments", "still_working", call.line("still_working")),
            ("list_appointments", "done", ""),
        ]

        statuses.clear()
        await call.turn("Book S99.", tool("book_appointment", slot_ref="S99"), Reply("Which one?"))
        assert [(s.tool, s.state) for s in statuses] == [
            ("book_appointment", "working"),
            ("book_appointment", "failed"),
        ]


@pytest.mark.asyncio
async def test_the_llm_sees_the_last_messages_and_the_record_keeps_all(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, history_max_messages=4) as call:
        for i in range(6):
            await call.turn(f"Question number {i}", Reply(f"Answer number {i}"))
        await verify(call, tool("list_appointments"), Reply("You have one appointment."))
        await call.turn("Thanks", Reply("Bye"))
        for c in call.llm.calls:
            talk = [m for m in c.messages if m.role in ("user", "assistant")]
            assert len(talk) <= 4
            assert not c.chat_ctx.items or c.chat_ctx.items[0].type == "message", "no orphan tool output first"
        assert call.llm.calls[-1].last_user_text == "Thanks"
        assert call.desk.state.verified, "state lives in code, not in the trimmed context"
    transcript = [(m["role"], m["content"]) for m in call.manager.transcript.messages]
    assert ("user", "Question number 0") in transcript and ("assistant", "Answer number 0") in transcript
    assert len([m for m in transcript if m[0] == "user"]) == 8


@pytest.mark.asyncio
async def test_a_barge_in_before_the_write_keeps_the_question_open(world: World, tmp_path: Path) -> None:
    """confirm_pending_change holds the floor for the write; if the caller already cut in, nothing is written."""
    desk = AppointmentDesk(world.store, DeskConfig.from_settings(Settings(clinic_timezone=TZ)))
    desk.caller_identified(phone=SARA.phone)
    desk.state.note_user_message("m1", "my zip")
    await desk.verify("94103")
    await desk.list_appointments()
    desk.propose_cancel("A1")
    desk.state.note_user_message("m2", "yes")

    class InterruptedTurn:
        def disallow_interruptions(self) -> None:
            raise RuntimeError("the speech handle is already interrupted")

    tools = AppointmentTools(desk)
    with pytest.raises(ToolError) as refused:
        await tools.confirm_pending_change(InterruptedTurn(), True)
    assert str(refused.value) == prompts.load("en", "change_interrupted")
    assert desk.state.pending is not None and desk.state.pending.kind == "cancel"
    appointment = world.appointments[SARA.id]
    assert await world.scheduled(SARA) == {appointment.id: appointment.slot.id}


def interrupted_tool_call(session: AgentSession, name: str) -> RunContext:
    """LiveKit's context of a tool call whose speech the caller has already cut into."""
    speech = SpeechHandle.create()
    speech.interrupt()
    return RunContext(
        session=session, speech_handle=speech, function_call=FunctionCall(call_id="call_1", name=name, arguments="{}")
    )


@pytest.mark.asyncio
async def test_a_barge_in_before_verification_counts_no_attempt(world: World) -> None:
    """verify_caller holds the floor for its result and the handover; if the caller already cut in
    (maybe correcting the code), nothing is checked, no attempt is counted and nobody is handed over."""
    # One failure would lock the call: a counted attempt shows as the lockout on the second try.
    desk = AppointmentDesk(
        world.store, DeskConfig.from_settings(Settings(clinic_timezone=TZ, max_verification_attempts=1))
    )
    desk.caller_identified(phone=SARA.phone)
    handed_over: list[Agent] = []

    def on_verified(agent: Agent) -> Agent:
        handed_over.append(agent)
        return agent

    tools = VerificationTools(desk, on_verified)
    session: AgentSession = AgentSession()
    for said in ("00000", SARA.zip_code):  # a wrong code and the right one
        with pytest.raises(ToolError) as refused:
            await tools.verify_caller(interrupted_tool_call(session, "verify_caller"), said)
        assert (desk.state.failed_attempts, desk.state.locked) == (0, False), "the interrupted try was counted"
        assert str(refused.value) == prompts.load("en", "verify_interrupted")
    assert (desk.state.verified, handed_over) == (False, [])
    assert (await desk.verify(SARA.zip_code)).customer == SARA, "the caller can still say the code"
