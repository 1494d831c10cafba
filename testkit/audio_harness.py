"""Real-time audio for an `AgentSession` without a room: a caller's microphone, a recording
loudspeaker, a scripted STT and an espeak-ng TTS.

- `Clips` (tests/audio_clips.py) synthesises caller audio with espeak-ng (English and Arabic)
  and sox (resampling, trimming, noise bursts, backchannels), cached by content in a temp dir.
- `MicSimulator` is the session's `AudioInput`: 20 ms, 16 kHz frames paced to the wall clock,
  silence unless a queued clip is playing; it knows when each clip's speech started and ended.
- `RecordingSink` is the session's `AudioOutput`: a 20 ms playout loop that emits the playback
  events LiveKit needs and logs every pause, resume and clear with its time.
- `ScriptedSTT` returns, at the end of each VAD segment, the transcript of the clips that
  segment heard (noise has none), as a non-streaming STT such as OpenAI's does.
- `EspeakTTS` speaks the agent's text with espeak-ng (real audio, about 20 ms per sentence).

`open_voice_call` wires them like production: the sink sits behind LiveKit's
`TranscriptSynchronizer` (as RoomIO puts it), so an interrupted reply is stored with the
text that was played. See shared/notes/offline-audio.md for the facts behind the doubles.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import Agent, AgentSession, inference, stt, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.voice.io import AudioInput, AudioOutput, AudioOutputCapabilities
from livekit.agents.voice.transcription import TranscriptSynchronizer

from testkit.audio_clips import MIC_RATE, TTS_RATE, Clip, Clips, speech_bounds

__all__ = [
    "MIC_RATE",
    "TTS_RATE",
    "Clip",
    "Clips",
    "EspeakTTS",
    "MicSimulator",
    "RecordingSink",
    "ScriptedSTT",
    "VoiceCall",
    "open_voice_call",
    "run_voice_call",
]

FRAME_S = 0.02


# ------------------------------------------------------------------------- microphone


@dataclass
class Playback:
    """One clip played into the microphone; times are wall-clock (time.time())."""

    clip: Clip
    start_sample: int | None = None
    consumed: bool = False
    """Its transcript was returned by the STT (or it was heard by none)."""
    words_taken: int = 0
    """How many of its words a streaming recogniser has finalised (`take_words`)."""
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def _at(self, offset: int, t0: float) -> float:
        assert self.start_sample is not None, "the clip has not started playing"
        return t0 + (self.start_sample + offset) / MIC_RATE


class MicSimulator(AudioInput):
    """The caller's microphone: silence, or the queued clips one after another, in real time."""

    def __init__(self) -> None:
        super().__init__(label="mic-simulator")
        self._samples_per_frame = round(MIC_RATE * FRAME_S)
        self._queue: deque[Playback] = deque()
        self._current: Playback | None = None
        self._offset = 0
        self._sample = 0
        self._t0: float | None = None
        self._closed = False
        self.playbacks: list[Playback] = []

    @property
    def t0(self) -> float:
        assert self._t0 is not None, "the session has not read the microphone yet"
        return self._t0

    def play(self, clip: Clip) -> Playback:
        """Queue `clip`; it starts at the next frame boundary after the clips before it."""
        playback = Playback(clip)
        self._queue.append(playback)
        self.playbacks.append(playback)
        return playback

    async def say(self, clip: Clip, timeout: float = 30.0) -> Playback:
        """Play `clip` and wait until all of it went into the session."""
        playback = self.play(clip)
        await asyncio.wait_for(playback.finished.wait(), timeout)
        return playback

    def onset(self, playback: Playback) -> float:
        """Wall time of the first loud sample of `playback` (the caller starts speaking)."""
        return playback._at(speech_bounds(playback.clip.samples)[0], self.t0)

    def speech_end(self, playback: Playback) -> float:
        """Wall time just after the last loud sample of `playback` (the caller stops)."""
        return playback._at(speech_bounds(playback.clip.samples)[1], self.t0)

    def take_transcripts(self, now: float, heard_seconds: float) -> str:
        """What an STT finds in the audio of the last `heard_seconds` before `now`: the
        transcripts of clips that ended and overlapped that stretch. Older clips nobody
        transcribed (e.g. discarded while the agent could not be interrupted) are dropped."""
        texts: list[str] = []
        for p in self.playbacks:
            if p.consumed or p.start_sample is None or not p.finished.is_set():
                continue
            p.consumed = True
            end = p._at(len(p.clip.samples), self.t0)
            if p.clip.transcript and end > now - heard_seconds - FRAME_S:
                texts.append(p.clip.transcript)
        return " ".join(texts)

    def take_words(self, now: float, heard_seconds: float, *, peek: bool = False) -> str:
        """What a recogniser that follows the words finds by `now`: every word said (its end
        time passed) and not taken yet, from clips with word timings (else the clip's whole
        transcript at its end). Words older than the audio heard, plus a second, are dropped
        (nobody transcribed them). `peek` leaves them for the final transcript (interims)."""
        texts: list[str] = []
        for p in self.playbacks:
            if p.start_sample is None:
                continue
            timed = p.clip.words or (((p.clip.transcript, p.clip.duration),) if p.clip.transcript else ())
            taken = p.words_taken
            for word, end in timed[taken:]:
                said_at = p._at(round(end * MIC_RATE), self.t0)
                if said_at > now + FRAME_S:
                    break
                taken += 1
                if said_at >= now - heard_seconds - 1.0:
                    texts.append(word)
            if not peek:
                p.words_taken = taken
        return " ".join(texts)

    def close(self) -> None:
        self._closed = True

    async def __anext__(self) -> rtc.AudioFrame:
        if self._closed:
            raise StopAsyncIteration
        if self._t0 is None:
            self._t0 = time.time()
        n = self._samples_per_frame
        due = self._t0 + (self._sample + n) / MIC_RATE
        if (delay := due - time.time()) > 0:
            await asyncio.sleep(delay)
        frame = np.zeros(n, dtype=np.int16)
        filled = 0
        while filled < n:
            if self._current is None:
                if not self._queue:
                    break
                self._current = self._queue.popleft()
                self._current.start_sample = self._sample + filled
                self._offset = 0
            clip = self._current.clip.samples
            take = min(n - filled, len(clip) - self._offset)
            frame[filled : filled + take] = clip[self._offset : self._offset + take]
            filled += take
            self._offset += take
            if self._offset >= len(clip):
                self._current.finished.set()
                self._current = None
        self._sample += n
        return rtc.AudioFrame(frame.tobytes(), MIC_RATE, 1, n)


# ------------------------------------------------------------------------- loudspeaker


@dataclass(frozen=True)
class SinkEvent:
    t: float
    kind: str
    """capture | started | pause | resume | clear | finished"""
    segment: int
    position: float = 0.0


@dataclass
class _Segment:
    index: int
    pcm: bytearray = field(default_factory=bytearray)
    played_bytes: int = 0
    flushed: bool = False
    started: bool = False


class RecordingSink(AudioOutput):
    """The caller's loudspeaker: plays captured audio in real time and logs what happened."""

    def __init__(self, *, pausable: bool = True) -> None:
        super().__init__(
            label="recording-sink", capabilities=AudioOutputCapabilities(pause=pausable), sample_rate=TTS_RATE
        )
        self._bytes_per_tick = round(TTS_RATE * FRAME_S) * 2
        self._segments: deque[_Segment] = deque()
        self._capturing: _Segment | None = None
        self._count = 0
        self._paused = False
        self._task: asyncio.Task[None] | None = None
        self.events: list[SinkEvent] = []
        self.played: dict[int, bytes] = {}
        """Segment index -> the audio that actually played."""
        self.captured: dict[int, int] = {}
        """Segment index -> bytes of audio the agent sent for it."""

    def _log(self, kind: str, segment: _Segment | None) -> None:
        position = segment.played_bytes / 2 / TTS_RATE if segment else 0.0
        self.events.append(SinkEvent(time.time(), kind, segment.index if segment else -1, position))

    def kinds(self, *, since: float = 0.0) -> list[str]:
        return [e.kind for e in self.events if e.t >= since]

    def first(self, kinds: set[str], *, since: float = 0.0) -> SinkEvent | None:
        return next((e for e in self.events if e.kind in kinds and e.t >= since), None)

    async def wait_for(self, kind: str, *, since: float = 0.0, timeout: float = 20.0) -> SinkEvent:
        deadline = time.time() + timeout
        while (found := self.first({kind}, since=since)) is None:
            if time.time() > deadline:
                raise TimeoutError(f"the agent's audio never reached {kind!r}; events: {self.kinds(since=since)}")
            await asyncio.sleep(FRAME_S)
        return found

    async def wait_until_playing(self, seconds: float, *, timeout: float = 20.0) -> _Segment:
        """Wait until the current segment has played `seconds` of audio."""
        deadline = time.time() + timeout
        while True:
            head = self._segments[0] if self._segments else None
            if head is not None and head.played_bytes / 2 / TTS_RATE >= seconds:
                return head
            if time.time() > deadline:
                raise TimeoutError(f"the agent did not play {seconds:g}s of audio; events: {self.kinds()}")
            await asyncio.sleep(FRAME_S)

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def idle(self) -> bool:
        """Nothing captured is waiting to play."""
        return not self._segments and self._capturing is None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._capturing is None:
            self._capturing = _Segment(self._count)
            self._count += 1
            self._segments.append(self._capturing)
            self._log("capture", self._capturing)
        self._capturing.pcm.extend(bytes(frame.data))
        if self._task is None:
            self._task = asyncio.create_task(self._playout(), name="RecordingSink.playout")

    def flush(self) -> None:
        super().flush()
        if self._capturing is not None:
            self._capturing.flushed = True
            self._capturing = None

    def clear_buffer(self) -> None:
        self._log("clear", self._segments[0] if self._segments else None)
        while self._segments:
            segment = self._segments.popleft()
            self._finish(segment, interrupted=True)
        self._capturing = None

    def pause(self) -> None:
        if not self._paused:
            self._log("pause", self._segments[0] if self._segments else None)
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._log("resume", self._segments[0] if self._segments else None)
        self._paused = False

    def _finish(self, segment: _Segment, *, interrupted: bool) -> None:
        self.played[segment.index] = bytes(segment.pcm[: segment.played_bytes])
        self.captured[segment.index] = len(segment.pcm)
        self._log("finished", segment)
        self.on_playback_finished(playback_position=segment.played_bytes / 2 / TTS_RATE, interrupted=interrupted)

    async def _playout(self) -> None:
        tick = time.time()
        while True:
            tick += FRAME_S
            await asyncio.sleep(max(0.0, tick - time.time()))
            if time.time() - tick > 0.2:  # the loop stalled (CPU contention): do not burst
                tick = time.time()
            if self._paused or not self._segments:
                continue
            segment = self._segments[0]
            if segment.played_bytes < len(segment.pcm):
                if not segment.started:
                    segment.started = True
                    self._log("started", segment)
                    self.on_playback_started(created_at=time.time())
                segment.played_bytes = min(len(segment.pcm), segment.played_bytes + self._bytes_per_tick)
            elif segment.flushed:
                self._segments.popleft()
                self._finish(segment, interrupted=False)

    async def aclose(self) -> None:
        if self._task is not None:
            await utils.aio.cancel_and_wait(self._task)


# ------------------------------------------------------------------------- models


class ScriptedSTT(stt.STT):
    """Non-streaming STT: each VAD segment's transcript is that of the clips it heard."""

    def __init__(self, mic: MicSimulator, language: str = "en", *, latency: float = 0.0) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._mic = mic
        self._language = language
        self._latency = latency
        """Seconds each transcript takes, like a hosted STT (0: instant)."""
        self.heard: list[str] = []

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "audio-harness"

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        frames = buffer if isinstance(buffer, list) else [buffer]
        seconds = sum(f.samples_per_channel / f.sample_rate for f in frames)
        text = self._mic.take_transcripts(time.time(), seconds)
        self.heard.append(text)
        if self._latency > 0:
            await asyncio.sleep(self._latency)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(text=text, language=self._language)],
        )


class EspeakTTS(tts.TTS):
    """Non-streaming TTS speaking with espeak-ng (LiveKit adds sentence streaming around it)."""

    def __init__(self, clips: Clips, language: str = "en") -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=TTS_RATE, num_channels=1)
        self.clips = clips
        self.language = language

    def update_options(self, *, voice: str) -> None:
        """As the production TTS changes voice on a language switch: here the voice is espeak-ng's language."""
        self.language = voice

    @property
    def model(self) -> str:
        return "espeak-ng"

    @property
    def provider(self) -> str:
        return "audio-harness"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _EspeakStream(tts=self, input_text=text, conn_options=conn_options)


class _EspeakStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        engine: EspeakTTS = self._tts  # type: ignore[assignment]
        pcm = await asyncio.to_thread(engine.clips.tts_pcm, self.input_text, engine.language)
        output_emitter.initialize(
            request_id=uuid.uuid4().hex[:8], sample_rate=TTS_RATE, num_channels=1, mime_type="audio/pcm"
        )
        output_emitter.push(pcm)
        output_emitter.flush()


# ------------------------------------------------------------------------- a call


@dataclass
class VoiceCall:
    session: AgentSession
    mic: MicSimulator
    sink: RecordingSink
    stt: stt.STT
    clips: Clips
    false_interruptions: list[bool] = field(default_factory=list)
    """`resumed` of every agent_false_interruption event."""

    async def quiet(self, *, for_s: float = 1.0, timeout: float = 30.0) -> None:
        """Wait until neither side speaks nor is about to: the agent's audio is played out,
        no reply is pending, and for `for_s` neither the caller nor the agent made a sound
        (longer than the endpointing of a finished-sounding turn)."""
        deadline = time.time() + timeout
        while True:
            speech = self.session.current_speech
            busy = (
                not self.sink.idle
                or (speech is not None and not speech.done())
                or self.session.user_state == "speaking"
                or self.session.agent_state in ("thinking", "speaking")
                or any(not p.finished.is_set() for p in self.mic.playbacks)
            )
            heard = [self.sink.events[-1].t] if self.sink.events else []
            said = [self.mic.speech_end(p) for p in self.mic.playbacks if p.finished.is_set()]
            last = max([0.0, *heard, *said])
            if not busy and time.time() - last >= for_s:
                return
            if time.time() > deadline:
                raise TimeoutError(
                    f"the call never went quiet; agent {self.session.agent_state}, "
                    f"user {self.session.user_state}, sink {self.sink.kinds()[-6:]}"
                )
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def open_voice_call(
    agent: Agent,
    *,
    llm: Any,
    turn_handling: dict[str, Any],
    clips: Clips,
    language: str = "en",
    pausable: bool = True,
    vad: inference.VAD | None = None,
    listen: Callable[[stt.STT], stt.STT] | None = None,
    stt_latency: float = 0.0,
    stt_language: str | None = None,
    on_session: Callable[[AgentSession], None] | None = None,
) -> AsyncIterator[VoiceCall]:
    """A running session wired to the simulated caller. `listen` wraps the STT the way
    production does (e.g. the backchannel filter); `on_session` runs before start (attach
    the conversation record there); `stt_language` is the language the STT reports (default
    `language`, as a hinted STT does; "" for one that detects and reports none)."""
    mic = MicSimulator()
    sink = RecordingSink(pausable=pausable)
    scripted_stt = ScriptedSTT(mic, language if stt_language is None else stt_language, latency=stt_latency)
    session_stt = listen(scripted_stt) if listen is not None else scripted_stt
    session = AgentSession(
        vad=vad or inference.VAD(),
        stt=session_stt,
        llm=llm,
        tts=EspeakTTS(clips, language),
        turn_handling=turn_handling,
        aec_warmup_duration=None,
        user_away_timeout=None,
        session_close_transcript_timeout=0.3,  # the scripted STT answers at once; closing need not wait 2 s
    )
    watch = getattr(session_stt, "watch", None)
    if callable(watch):
        watch(session)
    async with run_voice_call(
        session, agent, mic=mic, sink=sink, recogniser=scripted_stt, clips=clips, on_session=on_session
    ) as call:
        yield call


@contextlib.asynccontextmanager
async def run_voice_call(
    session: AgentSession,
    agent: Agent,
    *,
    mic: MicSimulator,
    sink: RecordingSink,
    recogniser: stt.STT,
    clips: Clips,
    on_session: Callable[[AgentSession], None] | None = None,
) -> AsyncIterator[VoiceCall]:
    """Start `session` (built by the caller, e.g. production's `build_session`) on the simulated
    microphone and loudspeaker, behind LiveKit's transcript synchronizer as RoomIO puts it."""
    synchronizer = TranscriptSynchronizer(next_in_chain_audio=sink, next_in_chain_text=None)
    session.input.audio = mic
    session.output.audio = synchronizer.audio_output
    session.output.transcription = synchronizer.text_output
    call = VoiceCall(session, mic, sink, recogniser, clips)
    session.on("agent_false_interruption", lambda ev: call.false_interruptions.append(ev.resumed))
    if on_session is not None:
        on_session(session)
    await session.start(agent=agent, record=False)
    try:
        yield call
    finally:
        mic.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.aclose(), 10.0)
        await synchronizer.aclose()
        await sink.aclose()
