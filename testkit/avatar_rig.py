"""One browser (or SIP) call with a Tavus avatar, offline: shared by tests/test_avatar.py and
bench/avatar_ready.py.

Real parts: `AgentSession` (audio mode, the real `ReceptionAgent` and its greeting), the Tavus
plugin (`AvatarSession`, `TavusAPI`, `DataStreamAudioOutput`), the worker's `AvatarLifecycle`,
`ConversationManager` on the embedded SQLite store, and the same output chain RoomIO builds
(`TranscriptSynchronizer` over the room's audio track). Simulated at the edge: the room and
LiveKit's server API (`tests/fake_room.py`), the Tavus API (`tests/fake_tavus_server.py`) and
its replica (`tests/fake_replica.py`), and the room's audio track itself (`RoomAudioSink`,
which plays frames in real time, standing in for RoomIO's `_ParticipantAudioOutput`, which
needs a connected native room). TTS is `CountingTTS`: sample k of the call's audio has the
value `counted(k)` (never 0, which only silence the framework inserts has), so what the caller
heard can be checked for gaps and repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from array import array
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from livekit import api, rtc
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, AgentSession, APIConnectOptions, JobContext, tts, utils
from livekit.agents.testing import fake_job_context
from livekit.agents.voice.io import AudioOutput, AudioOutputCapabilities, TextOutput
from livekit.agents.voice.speech_handle import SpeechHandle
from livekit.agents.voice.transcription import TranscriptSynchronizer

from avatar import AvatarConfig, AvatarLifecycle
from conversation_manager import ConversationManager
from conversation_manager.session_events import attach
from settings import Settings
from storage.records import ConversationDetail
from storage.sqlite_records import SQLiteConversationStore
from testkit.fake_replica import SimulatedReplica
from testkit.fake_room import FakeLiveKitAPI, FakeRoom
from testkit.fake_tavus_server import Answer, Conversation, FakeTavusServer
from testkit.scripted_llm import Reply, ScriptedLLM
from tools.agents import Persona, ReceptionAgent

T = TypeVar("T")
LIVEKIT_KEY = "lk-test-key"
LIVEKIT_SECRET = "lk-test-secret-not-a-real-one-0000"
TAVUS_KEY = "tavus-test-key"
SAMPLE_RATE = 24000
PERSONA = Persona(language="en", assistant_name="Sara", company_name="Nour Clinic")
HANG_AFTER = 15.0
"""Seconds after which a wait of the rig is a hang, reported as a failure: every call here
decides within its join timeout (at most a few seconds) and greets in about a second, and
pytest's own timeout would stop the run without the rig's teardown."""


async def within_hang_bound(awaitable: Awaitable[T], waiting_for: str) -> T:
    """`awaitable`'s result, or an AssertionError naming what never happened."""
    try:
        return await asyncio.wait_for(awaitable, HANG_AFTER)
    except TimeoutError:
        raise AssertionError(f"{waiting_for}: nothing after {HANG_AFTER:g}s") from None


def counted(k: int) -> int:
    return k % 32000 + 1


def voiced(samples: list[int] | bytes | bytearray) -> list[int]:
    """The TTS samples among `samples` (int16 values or bytes), without inserted silence."""
    values = list(memoryview(bytes(samples)).cast("h")) if isinstance(samples, bytes | bytearray) else samples
    return [v for v in values if v]


def expected(start: int, stop: int) -> list[int]:
    """What CountingTTS produced for samples start..stop-1 of the call."""
    return [counted(k) for k in range(start, stop)]


class CountingTTS(tts.TTS):
    """Offline TTS: `seconds_per_char` of audio per character, samples counting up across the call."""

    def __init__(self, *, seconds_per_char: float = 0.004) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=SAMPLE_RATE, num_channels=1)
        self.seconds_per_char = seconds_per_char
        self.next_sample = 0

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _CountingStream(tts=self, input_text=text, conn_options=conn_options)


class _CountingStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner = cast(CountingTTS, self._tts)
        count = max(int(len(self._input_text) * owner.seconds_per_char * SAMPLE_RATE), SAMPLE_RATE // 20)
        start, owner.next_sample = owner.next_sample, owner.next_sample + count
        samples = array("h", (counted(start + i) for i in range(count)))
        output_emitter.initialize(
            request_id=f"tts-{start}", sample_rate=SAMPLE_RATE, num_channels=1, mime_type="audio/pcm", frame_size_ms=20
        )
        output_emitter.push(samples.tobytes())
        output_emitter.flush()


class RoomAudioSink(AudioOutput):
    """The agent's own audio track in the room: frames play in real time, one after another."""

    def __init__(self) -> None:
        super().__init__(label="RoomAudio", capabilities=AudioOutputCapabilities(pause=True), sample_rate=SAMPLE_RATE)
        self.played: list[tuple[float, rtc.AudioFrame]] = []  # (perf_counter when it began playing, frame)
        self._queue: asyncio.Queue[rtc.AudioFrame | None] = asyncio.Queue()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._clearing = False
        self._task = asyncio.create_task(self._playout())

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        self._queue.put_nowait(frame)

    def flush(self) -> None:
        super().flush()
        self._queue.put_nowait(None)

    def clear_buffer(self) -> None:
        if self._pending_playback_count:
            self._clearing = True

    def pause(self) -> None:
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def samples(self) -> list[int]:
        return [s for _, frame in self.played for s in frame.data]

    async def aclose(self) -> None:
        await utils.aio.cancel_and_wait(self._task)

    async def _playout(self) -> None:
        position, started, clock = 0.0, False, 0.0
        while True:
            frame = await self._queue.get()
            if frame is None:
                if started or self._clearing:
                    self.on_playback_finished(playback_position=position, interrupted=self._clearing)
                position, started, self._clearing = 0.0, False, False
                continue
            if self._clearing:
                continue
            await self._resumed.wait()
            if not started:
                started, clock = True, time.perf_counter()
                self.on_playback_started(created_at=time.time())
            self.played.append((time.perf_counter(), frame))
            clock += frame.duration
            position += frame.duration
            await asyncio.sleep(max(0.0, clock - time.perf_counter()))


class TextRecorder(TextOutput):
    def __init__(self) -> None:
        super().__init__(label="TextRecorder", next_in_chain=None)
        self.text = ""

    async def capture_text(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        self.text += "\n"


@dataclass
class AvatarCall:
    room: FakeRoom
    tavus: FakeTavusServer
    livekit: FakeLiveKitAPI
    manager: ConversationManager
    store: SQLiteConversationStore
    session: AgentSession
    avatar: AvatarLifecycle
    room_audio: RoomAudioSink
    caller: Any
    replicas: list[SimulatedReplica] = field(default_factory=list)
    speeches: list[SpeechHandle] = field(default_factory=list)
    started_at: float = 0.0  # perf_counter when the call's avatar and session were started
    ended: bool = False
    new_speech: asyncio.Event = field(default_factory=asyncio.Event)

    def on_speech(self, ev: Any) -> None:
        self.speeches.append(ev.speech_handle)
        self.new_speech.set()

    async def begin(self) -> None:
        """What agent.py's entrypoint does once the caller is known."""
        self.started_at = time.perf_counter()
        self.avatar.start(cast(rtc.Room, self.room))
        await self.session.start(agent=ReceptionAgent(PERSONA))

    async def decided(self) -> str | None:
        """The avatar's status once the greeting can start (ready, or why voice-only)."""
        return await within_hang_bound(self.avatar.decided(), "the avatar never became ready nor gave up")

    async def greeting_heard(self) -> SpeechHandle:
        """The greeting (the session's first speech), once it has fully played."""
        await within_hang_bound(self.new_speech.wait(), "the session never started its greeting")
        await within_hang_bound(self.speeches[0].wait_for_playout(), "the greeting never finished playing")
        return self.speeches[0]

    async def say(self, text: str) -> None:
        """A later reply of the agent, until it has played."""
        await within_hang_bound(self.session.say(text).wait_for_playout(), "the reply never finished playing")

    def replica(self, number: int) -> SimulatedReplica:
        return self.replicas[number - 1]

    async def end(self) -> ConversationDetail:
        """What the job does when the call ends (the session closes, then `on_session_end`)."""
        if not self.ended:
            self.ended = True
            await self.session.aclose()
            await self.avatar.aclose()
            await self.manager.end_conversation()
        detail = await self.manager.get_conversation_with_messages(self.manager.conversation_id)
        assert detail is not None
        return detail


def avatar_config(api_url: str, **overrides: Any) -> AvatarConfig:
    values: dict[str, Any] = {
        "api_key": TAVUS_KEY,
        "face_id": "face-test",
        "pal_id": "pal-test",
        "join_timeout": 1.0,
        "late_join_window": 0.3,
        "left_early_window": 20.0,
        "playout_latency": 0.0,  # the simulated replica plays at once unless its plan says otherwise
        "api_url": api_url,
        "end_timeout": 2.0,
        "retry_interval": 0.05,
    }
    values.update(overrides)
    return AvatarConfig(**values)


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.asynccontextmanager
async def job_context(room: FakeRoom) -> AsyncIterator[JobContext]:
    """A job context on the simulated room, with a real agent token (the plugin reads its identity)."""
    with fake_job_context(room=cast(rtc.Room, room), agent_identity=room.local_participant.identity) as ctx:
        ctx._info = dataclasses.replace(ctx._info, token=agent_token(room))
        try:
            yield ctx
        finally:
            await ctx._on_cleanup()  # as the job process does at the end (removes the job's temp dir)


def agent_token(room: FakeRoom) -> str:
    return (
        api.AccessToken(LIVEKIT_KEY, LIVEKIT_SECRET)
        .with_kind("agent")
        .with_identity(room.local_participant.identity)
        .with_grants(api.VideoGrants(room_join=True, room=room.name, agent=True))
        .to_jwt()
    )


@contextlib.asynccontextmanager
async def avatar_call(
    tmp_path: Path,
    *,
    configured: bool = True,
    caller_kind: rtc.ParticipantKind.ValueType = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
    answers: tuple[Answer, ...] = (),
    tts_seconds_per_char: float = 0.004,
    **config: Any,
) -> AsyncIterator[AvatarCall]:
    """A call up to (not including) `begin()`; on exit the call ends as the worker ends it."""
    async with utils.http_context.open(), FakeTavusServer(api_key=TAVUS_KEY) as tavus:
        room = FakeRoom()
        async with FakeLiveKitAPI(room, api_key=LIVEKIT_KEY, api_secret=LIVEKIT_SECRET) as livekit:
            with _env(LIVEKIT_URL=livekit.url, LIVEKIT_API_KEY=LIVEKIT_KEY, LIVEKIT_API_SECRET=LIVEKIT_SECRET):
                tavus.script(*answers)
                parts = (tmp_path, room, tavus, livekit, configured, caller_kind, tts_seconds_per_char, config)
                async with job_context(room), _call(*parts) as call:
                    yield call


@contextlib.asynccontextmanager
async def _call(
    tmp_path: Path,
    room: FakeRoom,
    tavus: FakeTavusServer,
    livekit: FakeLiveKitAPI,
    configured: bool,
    caller_kind: rtc.ParticipantKind.ValueType,
    tts_seconds_per_char: float,
    config: dict[str, Any],
) -> AsyncIterator[AvatarCall]:
    store = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    manager = ConversationManager.from_settings(store, Settings(journal_dir=tmp_path / "journal"))
    await manager.start_conversation(None, room.name, "caller-1")
    caller = room.join("caller-1", kind=caller_kind)
    avatar = AvatarLifecycle.for_call(
        avatar_config(tavus.api_url, **config) if configured else None, cast(rtc.Participant, caller), record=manager
    )
    session = AgentSession(
        llm=ScriptedLLM(default=Reply("Sure.")),
        tts=CountingTTS(seconds_per_char=tts_seconds_per_char),
        vad=None,
        turn_handling={"turn_detection": None, "interruption": {"resume_false_interruption": not avatar.enabled}},
        aec_warmup_duration=None,
        user_away_timeout=None,
    )
    room_audio = RoomAudioSink()
    synchronizer = TranscriptSynchronizer(next_in_chain_audio=room_audio, next_in_chain_text=TextRecorder())
    session.output.audio = synchronizer.audio_output
    session.output.transcription = synchronizer.text_output
    attach(session, manager)
    avatar.attach(session)
    call = AvatarCall(room, tavus, livekit, manager, store, session, avatar, room_audio, caller)
    session.on("speech_created", call.on_speech)

    def on_created(conversation: Conversation) -> None:
        verifier = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET)
        replica = SimulatedReplica(room, conversation, livekit_url=livekit.url, verifier=verifier)
        call.replicas.append(replica)
        replica.start()

    tavus.on_created = on_created
    tavus.on_ended = lambda conversation: next(r.end() for r in call.replicas if r.conversation is conversation)
    try:
        yield call
    finally:
        await call.end()
        await room_audio.aclose()
        await synchronizer.aclose()
        for replica in call.replicas:
            replica.end()
        await store.aclose()
