"""Production voice sessions on the audio harness: `agent.build_session` (the real openai STT,
LLM and TTS plugins, our VAD and turn handling) against the local OpenAI-compatible server
under a latency profile, fed by the simulated microphone and played into the recording
loudspeaker, in real time. `livekit_defaults_call` is the same with a bare `AgentSession`
(LiveKit's defaults, the same plugins and server), to compare in one run.

The server hears what the caller played: its transcriber answers with the recogniser's
transcript of the clips the utterance contained (testkit/human_speech.py made them with
Whisper), interim transcripts with the words said so far. It speaks with espeak-ng.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
from livekit.agents import Agent, AgentSession, utils
from livekit.plugins import openai

import agent as worker
from settings import Settings
from testkit.audio_harness import Clips, MicSimulator, RecordingSink, VoiceCall, run_voice_call
from testkit.fake_openai_server import Completion, FakeOpenAIServer
from testkit.latency_profiles import LatencyProfile
from turn_handling import BackchannelFilter, build_vad

__all__ = ["ClipTranscriber", "EspeakSynthesizer", "ProfiledCall", "livekit_defaults_call", "production_call"]

API_KEY = "test-key"
HARNESS_OPTIONS: dict[str, Any] = {"aec_warmup_duration": None, "user_away_timeout": None}
"""The harness measures barge-in itself: no echo-cancellation warm-up, no away timer."""


class ClipTranscriber:
    """The server's recogniser: the transcripts of the clips the caller played."""

    def __init__(self, mic: MicSimulator) -> None:
        self._mic = mic

    async def __call__(self, samples: np.ndarray, rate: int, *, final: bool) -> str:
        return self._mic.take_words(time.time(), len(samples) / rate, peek=not final)


class EspeakSynthesizer:
    def __init__(self, clips: Clips, language: str = "en") -> None:
        self._clips = clips
        self._language = language

    async def __call__(self, text: str) -> bytes:
        return await asyncio.to_thread(self._clips.tts_pcm, text, self._language)


@dataclasses.dataclass
class ProfiledCall:
    call: VoiceCall
    server: FakeOpenAIServer
    profile: LatencyProfile
    streaming: bool


def _responder(reply: Callable[[str], str]) -> Callable[[dict[str, Any]], Completion]:
    def respond(body: dict[str, Any]) -> Completion:
        users = [m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
        content = users[-1].get("content", "") if users else ""
        if isinstance(content, list):  # content parts
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        return Completion(reply(str(content)), chunk_chars=4)

    return respond


@contextlib.asynccontextmanager
async def _served(
    profile: LatencyProfile, clips: Clips, mic: MicSimulator, reply: Callable[[str], str]
) -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(
        profile=profile,
        responder=_responder(reply),
        transcriber=ClipTranscriber(mic),
        synthesizer=EspeakSynthesizer(clips),
    ) as server:
        yield server


@contextlib.asynccontextmanager
async def production_call(
    settings: Settings,
    profile: LatencyProfile,
    clips: Clips,
    reply: Callable[[str], str],
    *,
    agent: Agent | None = None,
) -> AsyncIterator[ProfiledCall]:
    """`build_session(settings)` against a local server under `profile`."""
    mic, sink = MicSimulator(), RecordingSink(pausable=True)
    async with utils.http_context.open(), _served(profile, clips, mic, reply) as server:
        configured = dataclasses.replace(settings, openai_base_url=server.base_url, openai_api_key=API_KEY)
        session = worker.build_session(configured, vad=build_vad(configured), **HARNESS_OPTIONS)
        listener = session.stt
        assert isinstance(listener, BackchannelFilter)
        async with run_voice_call(
            session,
            agent or Agent(instructions="You answer callers."),
            mic=mic,
            sink=sink,
            recogniser=listener,
            clips=clips,
        ) as call:
            yield ProfiledCall(call, server, profile, settings.stt_streaming)


@contextlib.asynccontextmanager
async def livekit_defaults_call(
    profile: LatencyProfile, clips: Clips, reply: Callable[[str], str], *, stt_model: str = "gpt-4o-mini-transcribe"
) -> AsyncIterator[ProfiledCall]:
    """A bare `AgentSession` with the openai plugins and LiveKit's defaults for everything else
    (its default VAD, turn detector and endpointing), against the same kind of server."""
    mic, sink = MicSimulator(), RecordingSink(pausable=True)
    async with _served(profile, clips, mic, reply) as server:
        options = {"base_url": server.base_url, "api_key": API_KEY}
        recogniser = openai.STT(model=stt_model, language="en", **options)
        session = AgentSession(
            stt=recogniser,
            llm=openai.LLM(model="gpt-4.1-mini", **options),
            tts=openai.TTS(model="gpt-4o-mini-tts", voice="alloy", **options),
            **HARNESS_OPTIONS,
        )
        async with run_voice_call(
            session, Agent(instructions="You answer callers."), mic=mic, sink=sink, recogniser=recogniser, clips=clips
        ) as call:
            yield ProfiledCall(call, server, profile, streaming=False)
