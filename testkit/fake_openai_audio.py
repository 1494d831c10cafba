"""The audio half of the local OpenAI-compatible server (testkit/fake_openai_server.py):
speech-to-text over `POST /v1/audio/transcriptions` and over the realtime transcription
websocket (`GET /v1/realtime?intent=transcription`), and text-to-speech over
`POST /v1/audio/speech`, each answering with a latency profile's delays
(testkit/latency_profiles.py).

What is heard and said comes from two hooks, so the server needs no model of its own:

- a `Transcriber` turns the audio of a request or of a streaming segment into text (the
  audio harness answers with the recogniser's transcript of the clip the caller played);
- a `Synthesizer` turns text into 24 kHz 16-bit mono PCM (the harness uses espeak-ng).

The realtime protocol is the one OpenAI documents for transcription sessions and that
livekit-plugins-openai 1.8.9 speaks (`STT(use_realtime=True)`): the client sends
`session.update` and `input_audio_buffer.append` (base64 PCM16, 24 kHz); the server answers
`session.created` / `session.updated`, and per utterance `input_audio_buffer.speech_started`,
`conversation.item.input_audio_transcription.delta` (interim text, every
`stt_interim_every_s` of speech), `input_audio_buffer.speech_stopped`,
`input_audio_buffer.committed` and `conversation.item.input_audio_transcription.completed`.
Its end-of-speech detection is the profile's: an utterance ends, and its final transcript
goes out, once `stt_final_s` of silence followed the last loud sample (audio time, which the
client sends in real time). `input_audio_buffer.commit` ends the current utterance at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import itertools
import json
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from aiohttp import WSMsgType, web

from testkit.latency_profiles import LatencyProfile

__all__ = ["AudioRoutes", "Synthesizer", "Transcriber"]

PCM_RATE = 24_000
"""The realtime API's and the TTS's PCM rate."""
LOUD = 500
"""|sample| above this is speech, for the realtime end-of-speech detection."""
WINDOW = PCM_RATE // 100
"""Detection works on 10 ms windows."""
MIN_ENDPOINT_S = 0.06
"""Silence that ends an utterance even with an instant profile (a gap inside a word is shorter)."""
TTS_CHUNK_S = 0.05


class Transcriber(Protocol):
    async def __call__(self, samples: np.ndarray, rate: int, *, final: bool) -> str:
        """Text for int16 mono `samples`; `final` False is an interim look at speech still going on."""
        ...


class Synthesizer(Protocol):
    async def __call__(self, text: str) -> bytes:
        """24 kHz int16 mono PCM speaking `text`."""
        ...


async def silent_transcriber(samples: np.ndarray, rate: int, *, final: bool) -> str:
    return ""


async def silent_synthesizer(text: str) -> bytes:
    """The server's voice when a test brings none: 60 ms of silence per word, as real PCM, so a
    reply still takes time to play and can be interrupted."""
    return np.zeros(int(PCM_RATE * 0.06) * max(1, len(text.split())), dtype=np.int16).tobytes()


@dataclass
class StreamingTranscript:
    """One realtime utterance, as the server reported it."""

    item_id: str
    started_at: float
    audio_start_ms: int
    stopped_at: float | None = None
    audio_end_ms: int | None = None
    final_at: float | None = None
    transcript: str = ""
    interims: list[tuple[float, str]] = field(default_factory=list)


class AudioRoutes:
    """Registers the audio endpoints on an aiohttp app; the server owns the profile and hooks."""

    def __init__(
        self,
        *,
        profile: Callable[[], LatencyProfile],
        transcriber: Transcriber,
        synthesizer: Synthesizer,
        record: Callable[[web.Request, Any], None],
        closing: asyncio.Event,
    ) -> None:
        self._profile = profile
        self.transcriber = transcriber
        self.synthesizer = synthesizer
        self._record = record
        self._closing = closing
        self._ids = itertools.count(1)
        self.utterances: list[StreamingTranscript] = []
        """Every realtime utterance, in order (for tests and the latency budget)."""
        self.batch_transcripts: list[tuple[float, float, str]] = []
        """(received at, answered at, text) of every transcription request."""
        self.speech_requests: list[tuple[float, float, str]] = []
        """(received at, first byte at, text) of every speech request."""

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_get("/v1/realtime", self._realtime)

    async def _sleep_until(self, deadline: float) -> None:
        if (delay := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)

    # -- batch transcription ------------------------------------------------------------

    async def _transcriptions(self, request: web.Request) -> web.Response:
        received = time.monotonic()
        wall = time.time()
        form = await request.post()
        upload = form.get("file")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        self._record(request, fields)
        if upload is None or isinstance(upload, str):
            return _error(400, "fake server: a `file` part is required")
        try:
            samples, rate = _read_wav(upload.file.read())
        except (wave.Error, EOFError, ValueError) as e:
            return _error(400, f"fake server: the audio is not a 16-bit PCM WAV file ({e})")
        seconds = len(samples) / rate
        text = await self.transcriber(samples, rate, final=True)
        await self._sleep_until(received + self._profile().stt_batch_delay(seconds))
        self.batch_transcripts.append((wall, time.time(), text))
        body: dict[str, Any] = {
            "text": text,
            "usage": {"type": "duration", "seconds": round(seconds, 3)},
        }
        if fields.get("response_format") == "verbose_json":
            body.update({"task": "transcribe", "language": fields.get("language") or "english", "duration": seconds})
        return web.json_response(body)

    # -- speech -------------------------------------------------------------------------

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        received = time.monotonic()
        wall = time.time()
        try:
            body = await request.json()
        except ValueError:
            body = None
        self._record(request, body)
        if not isinstance(body, dict) or not isinstance(body.get("input"), str) or not body["input"].strip():
            return _error(400, "fake server: `input` (non-empty text) is required")
        profile = self._profile()
        pcm = await self.synthesizer(body["input"])
        await self._sleep_until(received + profile.tts_first_byte_s)
        resp = web.StreamResponse(headers={"Content-Type": "audio/pcm", "x-request-id": f"req_tts{next(self._ids)}"})
        await resp.prepare(request)
        self.speech_requests.append((wall, time.time(), body["input"]))
        chunk = int(PCM_RATE * TTS_CHUNK_S) * 2
        first = time.monotonic()
        try:
            for i, start in enumerate(range(0, len(pcm), chunk)):
                if profile.tts_speed > 0 and i:
                    await self._sleep_until(first + i * TTS_CHUNK_S / profile.tts_speed)
                await resp.write(pcm[start : start + chunk])
            await resp.write_eof()
        except ConnectionResetError:  # the client hung up (an interrupted reply): normal
            pass
        return resp

    # -- realtime transcription ---------------------------------------------------------

    async def _realtime(self, request: web.Request) -> web.WebSocketResponse:
        self._record(request, dict(request.query))
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        session = _RealtimeSession(self, ws)
        await session.run()
        return ws


class _RealtimeSession:
    def __init__(self, routes: AudioRoutes, ws: web.WebSocketResponse) -> None:
        self._routes = routes
        self._ws = ws
        self._config: dict[str, Any] = {}
        self._samples = 0
        """Audio received, in samples at PCM_RATE (the session's audio clock)."""
        self._pending = np.zeros(0, dtype=np.int16)
        self._utterance: StreamingTranscript | None = None
        self._audio: list[np.ndarray] = []
        self._last_loud = 0
        self._next_interim = 0
        self._interim_text = ""
        self._previous_item: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()

    async def _send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", f"event_{next(self._routes._ids)}")
        async with self._send_lock:
            if not self._ws.closed:
                await self._ws.send_json(event)

    def _ms(self, samples: int) -> int:
        return samples * 1000 // PCM_RATE

    async def run(self) -> None:
        await self._send({"type": "session.created", "session": {"type": "transcription", "id": "sess_fake"}})
        try:
            async for msg in self._ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    event = json.loads(msg.data)
                except ValueError:
                    await self._error("invalid_json", "the message is not JSON")
                    continue
                kind = event.get("type")
                if kind == "session.update":
                    self._config = event.get("session") or {}
                    await self._send({"type": "session.updated", "session": self._config})
                elif kind == "input_audio_buffer.append":
                    try:
                        audio = np.frombuffer(base64.b64decode(event.get("audio", "")), dtype=np.int16)
                    except ValueError:
                        await self._error("invalid_audio", "audio must be base64 PCM16")
                        continue
                    await self._append(audio)
                elif kind == "input_audio_buffer.commit":
                    if self._utterance is not None:
                        await self._finish()
                elif kind == "input_audio_buffer.clear":
                    self._utterance, self._audio = None, []
                    await self._send({"type": "input_audio_buffer.cleared"})
                else:
                    await self._error("unknown_event", f"unsupported event type {kind!r}")
        finally:
            for task in self._tasks:
                task.cancel()

    async def _error(self, code: str, message: str) -> None:
        await self._send(
            {"type": "error", "error": {"type": "invalid_request_error", "code": code, "message": message}}
        )

    async def _append(self, audio: np.ndarray) -> None:
        profile = self._routes._profile()
        endpoint = round(max(profile.stt_final_s, MIN_ENDPOINT_S) * PCM_RATE)
        data = np.concatenate([self._pending, audio])
        whole = len(data) // WINDOW * WINDOW
        self._pending = data[whole:]
        for start in range(0, whole, WINDOW):
            window = data[start : start + WINDOW]
            self._samples += WINDOW
            loud = bool(np.abs(window.astype(np.int32)).max() > LOUD)
            if self._utterance is None:
                if not loud:
                    continue
                await self._start()
            self._audio.append(window)
            if loud:
                self._last_loud = self._samples
            if self._samples - self._last_loud >= endpoint:
                await self._finish()
            elif profile.stt_interim_every_s > 0 and self._samples >= self._next_interim:
                self._next_interim = self._samples + round(profile.stt_interim_every_s * PCM_RATE)
                self._spawn(self._interim(self._utterance, np.concatenate(self._audio)))

    async def _start(self) -> None:
        item_id = f"item_fake{next(self._routes._ids)}"
        start = self._samples - WINDOW
        self._utterance = StreamingTranscript(item_id, time.time(), self._ms(start))
        self._routes.utterances.append(self._utterance)
        self._audio = []
        self._interim_text = ""
        self._next_interim = self._samples + round(self._routes._profile().stt_interim_every_s * PCM_RATE)
        await self._send(
            {"type": "input_audio_buffer.speech_started", "item_id": item_id, "audio_start_ms": self._ms(start)}
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _interim(self, utterance: StreamingTranscript, samples: np.ndarray) -> None:
        text = await self._routes.transcriber(samples, PCM_RATE, final=False)
        if utterance is not self._utterance or utterance.final_at is not None:
            return
        # the client appends deltas: only an extension of what it already has can be sent
        if text and text.startswith(self._interim_text) and text != self._interim_text:
            delta, self._interim_text = text[len(self._interim_text) :], text
            utterance.interims.append((time.time(), text))
            await self._send(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": utterance.item_id,
                    "content_index": 0,
                    "delta": delta,
                }
            )

    async def _finish(self) -> None:
        utterance, samples = self._utterance, np.concatenate(self._audio) if self._audio else np.zeros(0, np.int16)
        assert utterance is not None
        self._utterance, self._audio = None, []
        end_ms = self._ms(self._last_loud)
        utterance.stopped_at, utterance.audio_end_ms = time.time(), end_ms
        await self._send(
            {"type": "input_audio_buffer.speech_stopped", "item_id": utterance.item_id, "audio_end_ms": end_ms}
        )
        await self._send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": utterance.item_id,
                "previous_item_id": self._previous_item,
            }
        )
        self._previous_item = utterance.item_id
        transcript = await self._routes.transcriber(samples, PCM_RATE, final=True)
        utterance.final_at, utterance.transcript = time.time(), transcript
        seconds = len(samples) / PCM_RATE
        await self._send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": utterance.item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {"type": "duration", "seconds": round(seconds, 3)},
            }
        )


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2:
            raise ValueError("16-bit samples expected")
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        channels, rate = w.getnchannels(), w.getframerate()
    if channels > 1:
        frames = frames.reshape(-1, channels)[:, 0].copy()
    return frames, rate


def _error(status: int, message: str) -> web.Response:
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": None}}, status=status)
