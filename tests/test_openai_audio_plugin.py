"""The production STT and TTS wiring: the real `livekit.plugins.openai` STT (batch and
realtime streaming) and TTS against the local OpenAI-compatible server's audio endpoints
(testkit/fake_openai_audio.py), and the latency profiles' order of events.
Asserts what arrives and in which order, never how long it took."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from livekit import rtc
from livekit.agents import APIConnectOptions, APIStatusError, stt, utils
from livekit.plugins import openai

from testkit.fake_openai_server import Completion, FakeOpenAIServer
from testkit.latency_profiles import FAST, HOSTED, INSTANT, profile

pytestmark = pytest.mark.asyncio

RATE = 24_000
WAIT = 20.0
ONCE = APIConnectOptions(max_retry=0, retry_interval=0.0, timeout=5.0)


def tone(seconds: float, amplitude: int = 6000) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def frames(samples: np.ndarray, frame_s: float = 0.02) -> list[rtc.AudioFrame]:
    n = round(RATE * frame_s)
    out = []
    for start in range(0, len(samples), n):
        chunk = samples[start : start + n]
        if len(chunk) < n:
            chunk = np.concatenate([chunk, np.zeros(n - len(chunk), dtype=np.int16)])
        out.append(rtc.AudioFrame(chunk.tobytes(), RATE, 1, n))
    return out


class Heard:
    """A transcriber that reports the loud seconds it was given (and records each call)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, bool]] = []

    async def __call__(self, samples: np.ndarray, rate: int, *, final: bool) -> str:
        loud = float(np.count_nonzero(np.abs(samples.astype(np.int32)) > 500)) / rate
        self.calls.append((len(samples) / rate, final))
        words = max(1, round(loud * 4))
        return " ".join(["word"] * words) + ("." if final else "")


async def speak(text: str) -> bytes:
    return tone(0.3 * len(text.split())).tobytes()


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(transcriber=Heard(), synthesizer=speak) as s:
        yield s


async def test_batch_transcription_through_the_plugin(server: FakeOpenAIServer) -> None:
    model = openai.STT(model="gpt-4o-mini-transcribe", base_url=server.base_url, api_key="k", language="en")
    try:
        event = await asyncio.wait_for(model.recognize(frames(tone(1.0)), conn_options=ONCE), WAIT)
    finally:
        await model.aclose()
    assert event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    assert event.alternatives[0].text.startswith("word")
    request = next(r for r in server.requests if r.path == "/v1/audio/transcriptions")
    assert request.json["model"] == "gpt-4o-mini-transcribe" and request.json["language"] == "en"


async def test_batch_transcription_refuses_what_is_not_wav(server: FakeOpenAIServer) -> None:
    import openai as openai_sdk

    client = openai_sdk.AsyncClient(api_key="k", base_url=server.base_url, max_retries=0)
    with pytest.raises(openai_sdk.BadRequestError):
        await client.audio.transcriptions.create(file=("a.wav", b"not audio", "audio/wav"), model="m")
    await client.close()


async def test_realtime_transcription_streams_interims_then_final(server: FakeOpenAIServer) -> None:
    server.profile = HOSTED
    model = openai.STT(
        model="gpt-4o-mini-transcribe", base_url=server.base_url, api_key="k", language="en", use_realtime=True
    )
    assert model.capabilities.streaming
    events: list[stt.SpeechEvent] = []
    try:
        async with utils.http_context.open(), model.stream(conn_options=ONCE) as stream:

            async def feed() -> None:
                audio = np.concatenate([np.zeros(RATE // 5, np.int16), tone(1.2), np.zeros(RATE // 2, np.int16)])
                for frame in frames(audio):
                    stream.push_frame(frame)
                    await asyncio.sleep(0.02)  # real time, as a microphone sends it

            feeder = asyncio.create_task(feed())

            async def read() -> None:
                async for ev in stream:
                    events.append(ev)
                    if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                        return

            await asyncio.wait_for(read(), WAIT)
            await utils.aio.cancel_and_wait(feeder)
    finally:
        await model.aclose()
    kinds = [e.type for e in events]
    assert kinds[0] == stt.SpeechEventType.START_OF_SPEECH
    assert stt.SpeechEventType.INTERIM_TRANSCRIPT in kinds, kinds
    final = events[-1]
    assert final.alternatives[0].text.startswith("word") and final.alternatives[0].text.endswith(".")
    assert kinds.index(stt.SpeechEventType.INTERIM_TRANSCRIPT) < kinds.index(stt.SpeechEventType.FINAL_TRANSCRIPT)
    (utterance,) = server.audio.utterances
    # the server's clock is the audio's: the utterance spans the tone, not the silence around it
    assert 150 <= utterance.audio_start_ms <= 260 and 1350 <= (utterance.audio_end_ms or 0) <= 1460
    connect = next(r for r in server.requests if r.path == "/v1/realtime")
    assert connect.json == {"intent": "transcription", "model": "gpt-4o-mini-transcribe"}


async def test_realtime_rejects_unknown_events_with_an_error_event(server: FakeOpenAIServer) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        url = server.base_url.replace("http", "ws", 1) + "/realtime?intent=transcription"
        async with http.ws_connect(url) as ws:
            created = await asyncio.wait_for(ws.receive_json(), WAIT)
            assert created["type"] == "session.created"
            await ws.send_json({"type": "response.create"})
            error = await asyncio.wait_for(ws.receive_json(), WAIT)
            assert error["type"] == "error" and error["error"]["code"] == "unknown_event"
            await ws.send_str("not json")
            error = await asyncio.wait_for(ws.receive_json(), WAIT)
            assert error["error"]["code"] == "invalid_json"


async def test_speech_streams_pcm_through_the_plugin(server: FakeOpenAIServer) -> None:
    server.profile = FAST
    model = openai.TTS(model="gpt-4o-mini-tts", voice="alloy", base_url=server.base_url, api_key="k")
    try:
        audio = [ev.frame async for ev in model.synthesize("one two three", conn_options=ONCE)]
    finally:
        await model.aclose()
    samples = sum(f.samples_per_channel for f in audio)
    assert audio[0].sample_rate == RATE
    assert abs(samples - round(0.9 * RATE)) <= RATE // 50  # all of it, at 24 kHz


async def test_speech_without_input_is_a_clear_400(server: FakeOpenAIServer) -> None:
    model = openai.TTS(model="gpt-4o-mini-tts", voice="alloy", base_url=server.base_url, api_key="k")
    try:
        with pytest.raises(APIStatusError) as raised:
            async for _ in model.synthesize("", conn_options=ONCE):
                pass
    finally:
        await model.aclose()
    assert raised.value.status_code == 400


async def test_profile_paces_the_llm_after_its_first_token(server: FakeOpenAIServer) -> None:
    server.profile = HOSTED
    server.push(Completion("x" * 80, chunk_chars=4))
    model = openai.LLM(model="gpt-test", base_url=server.base_url, api_key="k")
    from livekit.agents import llm

    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="hi")
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()
    try:
        async with model.chat(chat_ctx=ctx) as stream:
            async for chunk in stream:
                if chunk.delta and chunk.delta.content:
                    arrivals.append(loop.time())
    finally:
        await model.aclose()
    # 20 tokens at 80 tokens/s arrive spread out, not in one burst
    assert len(arrivals) == 20 and arrivals[-1] - arrivals[0] > 0.1
    assert len(server.first_tokens) == 1


async def test_profiles_are_the_fixed_ones() -> None:
    assert profile("hosted") is HOSTED and profile("instant") is INSTANT
    assert HOSTED.stt_batch_delay(2.0) == pytest.approx(0.38)
    assert HOSTED.unavoidable_ms(vad_silence_s=0.2, streaming=True) == pytest.approx(200 + 450 + 250)
    assert FAST.unavoidable_ms(vad_silence_s=0.2, streaming=True) == pytest.approx(200 + 150 + 90)
    assert HOSTED.unavoidable_ms(vad_silence_s=0.2, streaming=False, audio_seconds=2.0) == pytest.approx(
        200 + 380 + 450 + 250
    )
    assert INSTANT.unavoidable_ms(vad_silence_s=0.2, streaming=True) == pytest.approx(200)
    with pytest.raises(ValueError, match="hosted, fast, instant"):
        profile("slow")
