"""Streaming speech-to-text in the production session: `build_session` with STT_STREAMING=true
(the real openai plugin over the realtime transcription API) against the local server, a caller
speaking into it in real time. Effects only: what the LLM was asked, whether the reply was
cleared, what the backchannel filter dropped. Plus the settings and start-up pieces of issue 17.
"""

from __future__ import annotations

import dataclasses

import pytest
from livekit.agents.worker import ServerEnvOption

from settings import Settings, SettingsError
from testkit.audio_harness import Clips
from testkit.latency_profiles import INSTANT
from testkit.voice_rig import production_call
from turn_handling import PRELOAD_LOCAL_INFERENCE, BackchannelFilter, skip_unused_model_preload

WAIT = 20.0
LONG = (
    "Your appointment is on Monday at ten in the morning with Doctor Rana Khoury. "
    "Please arrive fifteen minutes early so that the front desk can check your insurance details. "
    "Bring a photo identity card and the list of medicines you take."
)
STREAMING = dataclasses.replace(Settings(), stt_streaming=True)


@pytest.fixture(scope="module")
def clips() -> Clips:
    return Clips()


def llm_heard(call: object) -> list[str]:
    server = call.server  # type: ignore[attr-defined]
    heard = []
    for request in server.chat_requests:
        users = [m for m in request.json["messages"] if m.get("role") == "user"]
        heard.append(users[-1]["content"] if users else "")
    return heard


@pytest.mark.asyncio
async def test_a_streamed_transcript_is_answered(clips: Clips) -> None:
    async with production_call(STREAMING, INSTANT, clips, lambda text: "Sure.") as call:
        voice = call.call
        listener = voice.session.stt
        assert isinstance(listener, BackchannelFilter) and listener.capabilities.streaming
        said = await voice.mic.say(clips.speech("When is my appointment"))
        await voice.sink.wait_for("started", since=voice.mic.onset(said), timeout=WAIT)
        await voice.quiet()
        assert any("when is my appointment" in text.lower() for text in llm_heard(call))
        assert call.server.audio.utterances and call.server.audio.utterances[-1].transcript
        assert not call.server.audio.batch_transcripts, "nothing went to the batch endpoint"


@pytest.mark.asyncio
async def test_a_streamed_backchannel_does_not_stop_the_reply_but_words_do(clips: Clips) -> None:
    async with production_call(STREAMING, INSTANT, clips, lambda text: LONG) as call:
        voice = call.call
        listener = voice.session.stt
        assert isinstance(listener, BackchannelFilter)
        said = await voice.mic.say(clips.speech("When is my appointment"))
        await voice.sink.wait_for("started", since=voice.mic.onset(said), timeout=WAIT)
        await voice.sink.wait_until_playing(1.0, timeout=WAIT)
        backchannel = await voice.mic.say(clips.backchannel("en"))
        await voice.sink.wait_until_playing(6.0, timeout=WAIT)  # played on past the backchannel
        assert voice.sink.first({"clear"}, since=voice.mic.onset(backchannel)) is None, "the reply went on"
        assert listener.dropped >= 1, "the backchannel's final transcript was dropped"
        assert len(call.server.chat_requests) == 1, "the backchannel was no turn"

        stop = await voice.mic.say(clips.speech("Stop, please cancel it"))
        await voice.sink.wait_for("clear", since=voice.mic.onset(stop), timeout=WAIT)
        await voice.quiet()
        assert any("cancel" in text.lower() for text in llm_heard(call)), "the barge-in was answered"


def test_stt_streaming_is_a_setting() -> None:
    assert Settings.from_env({"STT_STREAMING": "true"}).stt_streaming is True
    assert Settings.from_env({"STT_STREAMING": "false"}).stt_streaming is False
    with pytest.raises(SettingsError, match="STT_STREAMING"):
        Settings.from_env({"STT_STREAMING": "sometimes"})


def test_the_turn_model_is_preloaded_only_when_used() -> None:
    environ: dict[str, str] = {}
    assert skip_unused_model_preload(Settings(turn_detection="rules"), environ)
    assert environ == {PRELOAD_LOCAL_INFERENCE: "0"}
    environ = {}
    assert not skip_unused_model_preload(Settings(turn_detection="model"), environ)
    assert environ == {}
    environ = {PRELOAD_LOCAL_INFERENCE: "1"}  # the operator's choice wins
    assert not skip_unused_model_preload(Settings(turn_detection="vad"), environ)
    assert environ == {PRELOAD_LOCAL_INFERENCE: "1"}


def test_start_keeps_at_least_one_process_warm() -> None:
    import agent

    server = agent.build_server(Settings())
    assert ServerEnvOption.getvalue(server._num_idle_processes, devmode=False) >= 1
    pinned = agent.build_server(dataclasses.replace(Settings(), num_idle_processes=3))
    assert ServerEnvOption.getvalue(pinned._num_idle_processes, devmode=False) == 3
