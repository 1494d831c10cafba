"""A language switch through real audio: an English-default worker (production turn handling,
VAD, backchannel filter, agents and desk) and a caller speaking espeak-ng Arabic into it in real
time (testkit/audio_harness.py). Effects only: which language the agent was instructed and spoke
in, what the backchannel filter dropped, how many turns the model answered, what the record holds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conversation_manager import ConversationManager
from conversation_manager.session_events import attach
from desk.desk import AppointmentDesk, DeskConfig
from settings import Settings
from storage.domain_sqlite import SQLiteAppointmentStore
from storage.sqlite_records import SQLiteConversationStore
from testkit.audio_harness import Clips, EspeakTTS, open_voice_call
from testkit.bilingual import instructed_in
from testkit.scripted_llm import LLMCall, Reply, ScriptedLLM
from tools.agents import Persona, ReceptionAgent
from tools.call_language import follow_language
from turn_handling import BackchannelFilter, build_vad, turn_handling_for

WAIT = 20.0
SETTINGS = Settings()  # AGENT_LANGUAGES=en,ar
ASK = "متى موعدي"
LONG_REPLY = "موعدك يوم الاثنين الساعة العاشرة. يرجى الحضور قبل الموعد بخمس عشرة دقيقة مع بطاقة الهوية."
FIRST_HALF, SECOND_HALF = "اسمي هدى و", "رقمي صفر تسعة تسعة"


def step(call: LLMCall) -> Reply:
    """Arabic instructions: Arabic words (a long answer to the question); English ones: a marker."""
    if instructed_in(call) != "ar":
        return Reply("[en]")
    return Reply(LONG_REPLY if call.last_user_text == ASK else "حسنا.", chunks=1000)


@pytest.mark.asyncio
async def test_an_arabic_caller_switches_the_call_and_the_turn_rules_follow(tmp_path: Path) -> None:
    clips = Clips()
    records = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    desk_store = await SQLiteAppointmentStore.open(tmp_path / "desk.sqlite3")
    manager = ConversationManager.from_settings(records, SETTINGS, journal_dir=tmp_path / "journal")
    await manager.start_conversation(None, "bilingual-room", "caller")
    desk = AppointmentDesk(desk_store, DeskConfig.from_settings(SETTINGS), record=manager)
    desk.start_language(None, "default")
    llm = ScriptedLLM(default=step)

    def wire(session: object) -> None:
        attach(session, manager, said_in=desk.said_in.get)  # type: ignore[arg-type]
        follow_language(session, desk, lambda language: language)  # type: ignore[arg-type]

    try:
        agent = ReceptionAgent(Persona("en", "Sara", "Nour Clinic"), desk=desk)
        async with open_voice_call(
            agent,
            llm=llm,
            turn_handling=turn_handling_for(SETTINGS, avatar=False),
            vad=build_vad(SETTINGS),
            listen=lambda inner: BackchannelFilter(inner, SETTINGS.languages),
            clips=clips,
            language="en",
            stt_language="",  # a detecting STT that reports no language: the script decides
            on_session=wire,
        ) as call:
            await call.quiet()  # the English greeting, with its Arabic offer line
            tts = call.session.tts
            assert isinstance(tts, EspeakTTS) and tts.language == "en"

            # 1. One whole Arabic turn: the very next reply is Arabic, in the Arabic voice.
            await call.mic.say(clips.speech(ASK, "ar"))
            await call.sink.wait_until_playing(1.5, timeout=WAIT)
            assert instructed_in(llm.calls[-1]) == "ar" and tts.language == "ar"

            # 2. An Arabic backchannel during the Arabic reply: dropped, the reply plays on.
            await call.mic.say(clips.backchannel("ar"))
            await call.quiet()
            listener = call.session.stt
            assert isinstance(listener, BackchannelFilter) and listener.dropped >= 1
            assert "clear" not in call.sink.kinds(), "nothing stopped the Arabic reply"
            assert len(llm.calls) == 1, "the backchannel was no turn"

            # 3. An Arabic turn that stops on "و" (and): the session waits for the rest.
            await call.mic.say(clips.speech(FIRST_HALF, "ar"))
            await asyncio.sleep(0.8)
            await call.mic.say(clips.speech(SECOND_HALF, "ar"))
            await call.quiet()
            # (a preemptive generation may have drafted a reply to the first half; none was said)
            assert llm.calls[-1].last_user_text is not None
            assert FIRST_HALF.split()[0] in llm.calls[-1].last_user_text
            assert SECOND_HALF.split()[0] in llm.calls[-1].last_user_text
            assert instructed_in(llm.calls[-1]) == "ar"
        assert not llm.errors, llm.errors
        await manager.end_conversation()
        detail = await manager.get_conversation_with_messages(manager.conversation_id)
        assert detail is not None
        assert detail.conversation["language"] == "ar"
        [switch] = detail.conversation["metadata"]["language_switches"]
        assert (switch["language"], switch["cause"], switch["turn"]) == ("ar", "speech", 1)
        messages = sorted(detail.messages, key=lambda m: m["seq"])
        said = [(m["role"], m["metadata"]["language"]) for m in messages]
        assert said == [("assistant", "en"), ("user", "ar"), ("assistant", "ar"), ("user", "ar"), ("assistant", "ar")]
        assert FIRST_HALF.split()[0] in messages[3]["content"] and SECOND_HALF.split()[0] in messages[3]["content"], (
            "the unfinished Arabic turn and its rest are one caller turn, answered once"
        )
    finally:
        await manager.end_conversation()
        await desk_store.aclose()
        await records.aclose()
