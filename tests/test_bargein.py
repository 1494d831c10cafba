"""Barge-in through real audio: the production turn handling, VAD and backchannel filter in a
real `AgentSession`, a caller speaking espeak-ng English and Arabic into it in real time
(tests/audio_harness.py), and the call's record.

Effects only, never timings: whether the agent's audio was paused, resumed or cleared,
whether a reply played to its end, what the LLM was asked, what the store holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from livekit.agents import Agent

from conversation_manager import ConversationManager
from conversation_manager.session_events import attach
from desk.desk import AppointmentDesk, DeskConfig
from settings import Settings
from storage.domain import Appointment, Customer, Slot, VerificationClaim, VerificationLimits
from storage.domain_sqlite import SQLiteAppointmentStore
from storage.records import Row
from storage.sqlite_records import SQLiteConversationStore
from testkit.audio_harness import TTS_RATE, Clips, VoiceCall, open_voice_call
from testkit.scripted_llm import LLMCall, Reply, ScriptedLLM, ToolCall
from tools.agents import AppointmentsAgent, Persona, ReceptionAgent
from turn_handling import BackchannelFilter, build_vad, is_backchannel, turn_handling_for

WAIT = 20.0
TURN_DECIDED = 1.0
"""Seconds after the caller stops for the VAD, STT and endpointing to have acted (a wait, not a limit)."""
SETTINGS = Settings()
SENTENCES = {
    "en": [
        "Your appointment is on Monday at ten.",
        "Please arrive fifteen minutes early so that the front desk can check your insurance details.",
        "Bring a photo identity card.",
    ],
    "ar": [
        "موعدك يوم الاثنين الساعة العاشرة.",
        "يرجى الحضور قبل الموعد بخمس عشرة دقيقة حتى يتمكن موظف الاستقبال من مراجعة بيانات التأمين.",
        "أحضري بطاقة الهوية.",
    ],
}
CALLER = {
    "en": {
        "ask": "When is my appointment",
        "stop": "Stop, please cancel it",
        "yes": "Yes please",
        "wait": "Wait, stop",
    },
    "ar": {"ask": "متى موعدي", "stop": "توقفي، ألغيه من فضلك", "yes": "نعم", "wait": "انتظري"},
}
SHORT = {"en": "Okay.", "ar": "حسنا."}
QUESTION = {"en": "Shall I book it for Monday at ten?", "ar": "هل أحجز لك يوم الاثنين الساعة العاشرة؟"}


@pytest.fixture(scope="module")
def clips() -> Clips:
    return Clips()


@pytest_asyncio.fixture
async def manager(tmp_path: Path) -> AsyncIterator[ConversationManager]:
    store = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    manager = ConversationManager.from_settings(store, Settings(journal_dir=tmp_path / "journal"))
    await manager.start_conversation(None, "bargein-room", "caller")
    try:
        yield manager
    finally:
        await manager.end_conversation()
        await store.aclose()


@contextlib.asynccontextmanager
async def production_call(
    agent: Agent,
    llm: ScriptedLLM,
    clips: Clips,
    lang: str,
    manager: ConversationManager | None = None,
    *,
    avatar: bool = False,
) -> AsyncIterator[VoiceCall]:
    """A call with the production turn handling, VAD and backchannel filter."""
    async with open_voice_call(
        agent,
        llm=llm,
        turn_handling=turn_handling_for(SETTINGS, avatar=avatar),
        vad=build_vad(SETTINGS),
        listen=BackchannelFilter,
        clips=clips,
        language=lang,
        pausable=not avatar,
        on_session=(lambda session: attach(session, manager)) if manager is not None else None,
    ) as call:
        yield call
    assert not llm.errors, llm.errors


def answering(reply: str, lang: str) -> ScriptedLLM:
    """The caller's question gets `reply`; anything else the short answer, word by word."""

    def step(call: LLMCall) -> Reply:
        return Reply(reply if call.last_user_text == CALLER[lang]["ask"] else SHORT[lang], chunks=1000)

    return ScriptedLLM(default=step)


def audio_seconds(clips: Clips, text: str, lang: str) -> float:
    return len(clips.tts_pcm(text, lang)) / 2 / TTS_RATE


def words(text: str) -> str:
    return " ".join(text.split())


async def stored_messages(manager: ConversationManager) -> list[Row]:
    await manager.end_conversation()
    detail = await manager.get_conversation_with_messages(manager.conversation_id)
    assert detail is not None
    return sorted(detail.messages, key=lambda m: m["seq"])


# ------------------------------------------------------------------------- interrupting a reply


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", ["en", "ar"])
async def test_the_caller_interrupts_a_reply_and_is_answered(
    lang: str, clips: Clips, manager: ConversationManager
) -> None:
    first, second, third = SENTENCES[lang]
    full = " ".join(SENTENCES[lang])
    llm = answering(full, lang)
    async with production_call(Agent(instructions="Clinic desk."), llm, clips, lang, manager) as call:
        await call.mic.say(clips.speech(CALLER[lang]["ask"], lang))
        # barge in a second into the second sentence
        await call.sink.wait_until_playing(audio_seconds(clips, first, lang) + 0.8, timeout=WAIT)
        barge_in = await call.mic.say(clips.speech(CALLER[lang]["stop"], lang))
        onset = call.mic.onset(barge_in)
        answer = await call.sink.wait_for("started", since=call.mic.speech_end(barge_in), timeout=WAIT)
        await call.quiet()

        kinds = call.sink.kinds(since=onset)
        assert kinds[0] == "pause", "the caller's voice paused the reply at once"
        assert "clear" in kinds, "then the reply was dropped"
        reply_segment = call.sink.events[0].segment
        assert not any(e.kind == "finished" and e.segment == reply_segment and e.t < onset for e in call.sink.events)
        assert answer.segment != reply_segment, "the agent answered with a new reply"
        assert llm.calls[-1].last_user_text == CALLER[lang]["stop"], "the answer is to what the caller said"

    user_q, cut, user_stop, answered = await stored_messages(manager)
    assert (user_q["role"], user_q["content"]) == ("user", CALLER[lang]["ask"])
    # The record holds what the caller heard: the first sentence and the start of the second.
    assert cut["role"] == "assistant" and cut["interrupted"] is True
    heard = words(cut["content"])
    assert words(full).startswith(heard) and heard.startswith(words(first)) and len(heard) > len(words(first))
    assert words(third) not in heard and words(second) not in heard
    assert (user_stop["role"], user_stop["content"]) == ("user", CALLER[lang]["stop"])
    assert user_stop["metadata"]["interrupts_seq"] == cut["seq"], "the barge-in is linked to what it cut off"
    assert user_stop["metadata"]["interrupts_item_id"] == cut["metadata"]["item_id"]
    assert (answered["role"], answered["content"], answered["interrupted"]) == ("assistant", SHORT[lang], False)
    assert "interrupts_seq" not in user_q["metadata"]


# ------------------------------------------------------------------------- noise and backchannels


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", ["en", "ar"])
async def test_a_noise_burst_and_a_backchannel_do_not_end_the_reply(
    lang: str, clips: Clips, manager: ConversationManager
) -> None:
    full = f"{SENTENCES[lang][0]} {SENTENCES[lang][2]}"
    llm = answering(full, lang)
    async with production_call(Agent(instructions="Clinic desk."), llm, clips, lang, manager) as call:
        await call.mic.say(clips.speech(CALLER[lang]["ask"], lang))
        await call.sink.wait_until_playing(0.5, timeout=WAIT)
        burst = await call.mic.say(clips.voiced_burst())
        await call.sink.wait_until_playing(1.3, timeout=WAIT)
        backchannel = await call.mic.say(clips.backchannel(lang))
        finished = await call.sink.wait_for("finished", since=call.mic.onset(burst), timeout=WAIT)
        await call.quiet()
        listener = call.session.stt
        assert isinstance(listener, BackchannelFilter)

        assert "clear" not in call.sink.kinds(), "nothing stopped the reply"
        assert finished.segment == 0 and len(call.sink.played[0]) == call.sink.captured[0] > 0, (
            "the reply played to its end"
        )
        paused = call.sink.first({"pause"}, since=call.mic.onset(backchannel))
        assert paused is not None, "the backchannel was heard as speech (it paused the reply) ..."
        assert call.sink.first({"resume"}, since=paused.t) is not None, "... and the reply resumed"
        assert call.false_interruptions and all(call.false_interruptions), "each pause was a resumed false one"
        assert listener.dropped >= 1, "the backchannel's transcript never became a turn"
        assert len(llm.calls) == 1, "nothing but the question was answered"

    messages = await stored_messages(manager)
    assert [(m["role"], words(m["content"]), m["interrupted"]) for m in messages] == [
        ("user", CALLER[lang]["ask"], False),
        ("assistant", words(full), False),
    ], "the resumed reply is recorded whole and not interrupted; the backchannel is no turn"


@pytest.mark.asyncio
@pytest.mark.parametrize("lang", ["en", "ar"])
async def test_a_backchannel_answering_the_silent_agent_is_a_turn(
    lang: str, clips: Clips, manager: ConversationManager
) -> None:
    """Only over the agent's reply is "uh-huh" a listener's noise; after "shall I book it?" it is the answer."""
    llm = answering(QUESTION[lang], lang)
    async with production_call(Agent(instructions="Clinic desk."), llm, clips, lang, manager) as call:
        await call.mic.say(clips.speech(CALLER[lang]["ask"], lang))
        await call.sink.wait_for("finished", timeout=WAIT)
        await call.quiet()
        listener = call.session.stt
        assert isinstance(listener, BackchannelFilter)
        asked = len(llm.calls)
        answer = clips.backchannel(lang)
        assert answer.transcript is not None and is_backchannel(answer.transcript), "the filter's own kind of word"

        said = await call.mic.say(answer)
        async with asyncio.timeout(WAIT):  # the filter decides as the STT returns
            while answer.transcript not in call.stt.heard:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert listener.dropped == 0, "the caller's answer was dropped as a backchannel"
        await call.sink.wait_for("started", since=call.mic.speech_end(said), timeout=WAIT)
        await call.quiet()
        assert llm.calls[-1].last_user_text == answer.transcript, "the LLM was asked about the caller's answer"
        assert len(llm.calls) > asked

    messages = await stored_messages(manager)
    assert [(m["role"], words(m["content"])) for m in messages] == [
        ("user", CALLER[lang]["ask"]),
        ("assistant", QUESTION[lang]),
        ("user", answer.transcript),
        ("assistant", SHORT[lang]),
    ]


# ------------------------------------------------------------------------- uninterruptible commits
class GatedStore(SQLiteAppointmentStore):
    """The real embedded store, whose cancel and verification attempt wait for the test (slow)."""

    entered: asyncio.Event
    gate: asyncio.Event

    async def _slow(self) -> None:
        self.entered.set()
        await self.gate.wait()

    async def cancel(self, customer_id: str, appointment_id: str) -> Appointment:
        await self._slow()
        return await super().cancel(customer_id, appointment_id)

    async def begin_verification_attempt(
        self, phone: str, *, source: str | None, conversation_id: str | None, limits: VerificationLimits
    ) -> VerificationClaim:
        await self._slow()
        return await super().begin_verification_attempt(
            phone, source=source, conversation_id=conversation_id, limits=limits
        )


@contextlib.asynccontextmanager
async def desk_for(tmp_path: Path, manager: ConversationManager) -> AsyncIterator[tuple[AppointmentDesk, Any]]:
    """Sarah's desk over a gated store holding her one appointment (in three days)."""
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=3)
    slot = Slot(str(uuid.uuid4()), start, start + dt.timedelta(minutes=30), "Dr. Rana Khoury")
    store: Any = await GatedStore.open(tmp_path / "desk.sqlite3")
    store.entered, store.gate = asyncio.Event(), asyncio.Event()
    await store.load(
        customers=[SARAH],
        slots=[slot],
        appointments=[Appointment(str(uuid.uuid4()), SARAH.id, slot, "scheduled", "check-up")],
    )
    desk = AppointmentDesk(
        store,
        DeskConfig.from_settings(Settings(clinic_timezone="UTC"), acknowledgement_delay=30.0, still_working_after=60.0),
        record=manager,
    )
    desk.caller_identified(phone=SARAH.phone)
    try:
        yield desk, store
    finally:
        await store.aclose()


SARAH = Customer(str(uuid.uuid4()), "Sarah Johnson", "+14155550100", "94103", "en")
PERSONA = Persona(language="en", assistant_name="Sara", company_name="Nour Clinic")


@pytest.mark.asyncio
async def test_a_verification_survives_a_barge_in(clips: Clips, tmp_path: Path, manager: ConversationManager) -> None:
    """The real reception agent: the caller talks while their ZIP code is checked; the
    verification and its hand-over to the appointments agent still happen."""
    checking = "Thank you, let me check that for you."
    llm = ScriptedLLM(
        Reply(checking, tool_calls=[ToolCall("verify_caller", {"zip_code": "94103"})], chunks=1000),
        Reply("You are verified.", chunks=1000),  # the appointments agent's first words
        default=Reply(SHORT["en"], chunks=1000),
    )
    async with (
        desk_for(tmp_path, manager) as (desk, store),
        production_call(ReceptionAgent(PERSONA, desk), llm, clips, "en", manager) as call,
    ):
        await call.sink.wait_for("started", timeout=WAIT)
        call.session.interrupt()  # the greeting is not what this test is about
        await call.quiet()
        zip_code = await call.mic.say(clips.speech("My ZIP code is 9 4 1 0 3", transcript="My ZIP code is 94103"))
        await asyncio.wait_for(store.entered.wait(), WAIT)
        await call.sink.wait_for("started", since=call.mic.onset(zip_code), timeout=WAIT)
        await call.mic.say(clips.speech(CALLER["en"]["wait"]))  # over "let me check that"
        await asyncio.sleep(TURN_DECIDED)
        store.gate.set()
        await call.quiet()
        agent = call.session.current_agent
    assert desk.state.verified
    verifications = [t for t in manager.transcript.tool_calls if t["name"] == "verify_caller"]
    assert [t["is_error"] for t in verifications] == [False], verifications
    assert isinstance(agent, AppointmentsAgent), "the hand-over happened"


@pytest.mark.asyncio
async def test_a_confirmed_cancellation_survives_a_barge_in(
    clips: Clips, tmp_path: Path, manager: ConversationManager
) -> None:
    """The real appointments agent and store: the caller talks over the confirm tool's commit."""
    cancelling = "Alright, I am cancelling your appointment now."
    done = "It is cancelled."
    llm = ScriptedLLM(
        Reply("Hi.", chunks=1000),  # on_enter
        Reply(tool_calls=[ToolCall("list_appointments")]),
        Reply(tool_calls=[ToolCall("cancel_appointment", {"appointment_ref": "A1"})]),
        Reply("Shall I cancel it?", chunks=1000),
        Reply(cancelling, tool_calls=[ToolCall("confirm_pending_change", {"confirmed": True})], chunks=1000),
        Reply(done, chunks=1000),
        default=Reply(SHORT["en"], chunks=1000),
    )
    async with desk_for(tmp_path, manager) as (desk, store):
        desk.state.bind_customer(SARAH)
        (appointment,) = await store.list_appointments(SARAH.id)
        async with production_call(AppointmentsAgent(PERSONA, desk), llm, clips, "en", manager) as call:
            await call.quiet()
            await asyncio.wait_for(call.session.run(user_input="Please cancel my appointment"), WAIT)  # typed: faster
            assert desk.state.pending is not None, "the cancellation was proposed"
            yes = await call.mic.say(clips.speech(CALLER["en"]["yes"]))
            await asyncio.wait_for(store.entered.wait(), WAIT)
            await call.sink.wait_for("started", since=call.mic.onset(yes), timeout=WAIT)
            barge_in = await call.mic.say(clips.speech(CALLER["en"]["wait"]))  # over "I am cancelling"
            await asyncio.sleep(TURN_DECIDED)
            store.gate.set()
            await call.quiet()
            stopped = {"pause", "clear"} & set(call.sink.kinds(since=call.mic.onset(barge_in)))
        cancelled = desk.phrases.line("cancelled", when=desk.when(appointment.slot.starts_at))
    with contextlib.closing(sqlite3.connect(tmp_path / "desk.sqlite3")) as db:
        assert db.execute("select id, status from appointments").fetchall() == [(appointment.id, "cancelled")]
    assert not stopped, "the caller's voice did not stop the agent"
    confirms = [t for t in manager.transcript.tool_calls if t["name"] == "confirm_pending_change"]
    assert [(t["is_error"], t["output"]) for t in confirms] == [(False, cancelled)]
    replies = [(m["content"], m["interrupted"]) for m in manager.transcript.messages if m["role"] == "assistant"]
    assert replies[-2:] == [(cancelling, False), (done, False)], "the caller heard the whole answer"
    assert CALLER["en"]["wait"] not in [m["content"] for m in manager.transcript.messages], (
        "words said over the uninterruptible commit are discarded"
    )
