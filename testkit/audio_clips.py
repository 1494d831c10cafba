"""Caller audio for the real-time tests and the barge-in bench: espeak-ng speech (English and
Arabic) and sox noise bursts and backchannels, synthesised once and cached on disk by content
(`$TMPDIR/bargein-clips`, shared by processes), plus the agent's espeak-ng voice.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

MIC_RATE = 16_000
TTS_RATE = 24_000
ONSET_LEVEL = 500
"""|sample| above this counts as the caller's speech (onset and end of speech)."""
VOICES = {"en": "en-us", "ar": "ar"}
SUBPROCESS_TIMEOUT = 20.0
CACHE_DIR = Path(tempfile.gettempdir()) / "bargein-clips"


@dataclass(frozen=True)
class Clip:
    """Caller audio (int16 mono at MIC_RATE) and what an STT would hear in it."""

    samples: np.ndarray
    transcript: str | None
    label: str
    words: tuple[tuple[str, float], ...] = ()
    """(word, seconds into the clip where it ends), when a recogniser's timestamps are known:
    a streaming STT's interim transcripts."""

    @property
    def duration(self) -> float:
        return len(self.samples) / MIC_RATE

    @staticmethod
    def silence(seconds: float) -> Clip:
        return Clip(np.zeros(round(seconds * MIC_RATE), dtype=np.int16), None, f"silence:{seconds:g}s")


def _run(args: list[str], stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, timeout=SUBPROCESS_TIMEOUT, check=False)
    except FileNotFoundError as e:
        raise RuntimeError(f"{args[0]} is not installed (apt-get install espeak-ng sox)") from e
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {done.stderr.decode(errors='replace')[-300:]}")
    return done.stdout


def _sox_raw(extra: list[str], *, rate: int, stdin: bytes | None, source: list[str]) -> bytes:
    return _run(
        ["sox", *source, "-t", "raw", "-r", str(rate), "-e", "signed", "-b", "16", "-c", "1", "-", *extra], stdin
    )


TRIM = ["silence", "1", "0.01", "0.5%", "reverse", "silence", "1", "0.01", "0.5%", "reverse"]
"""sox: drop leading and trailing silence, so clip boundaries are speech boundaries."""


class Clips:
    """espeak-ng + sox synthesis, cached on disk by content (safe across processes)."""

    def __init__(self, cache_dir: Path = CACHE_DIR) -> None:
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)

    def _cached(self, key: str, make: Callable[[], bytes]) -> bytes:
        path = self.cache_dir / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".pcm")
        if path.exists():
            return path.read_bytes()
        data = make()
        tmp = path.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return data

    def _espeak(self, text: str, lang: str, rate: int, out_rate: int, trim: bool) -> bytes:
        wav = _run(["espeak-ng", "-v", VOICES[lang], "-s", str(rate), "--stdout", text])
        return _sox_raw(TRIM if trim else [], rate=out_rate, stdin=wav, source=["-t", "wav", "-"])

    def speech(self, text: str, lang: str = "en", *, rate: int = 160, transcript: str | None = None) -> Clip:
        """The caller saying `text` (trimmed to its speech); the STT hears `transcript` or `text`."""
        pcm = self._cached(f"speech|{lang}|{rate}|{text}", lambda: self._espeak(text, lang, rate, MIC_RATE, True))
        return Clip(np.frombuffer(pcm, dtype=np.int16), transcript or text, f"{lang}:{text[:24]}")

    BACKCHANNELS: ClassVar[dict[str, list[tuple[str, int]]]] = {
        "en": [("uh-huh", 170), ("mm-hm", 280)],
        "ar": [("اها", 170), ("امم", 170)],
    }
    """(text, espeak rate): each about 0.4-0.5 s once trimmed, like a listener's "mm-hm"."""

    def backchannel(self, lang: str = "en", variant: int = 0) -> Clip:
        """A short backchannel ("uh-huh", "mm-hm"; "اها", "امم"): espeak-ng, trimmed by sox."""
        text, rate = self.BACKCHANNELS[lang][variant % len(self.BACKCHANNELS[lang])]
        clip = self.speech(text, lang, rate=rate)
        return Clip(clip.samples, text, f"{lang}:backchannel:{text}")

    def noise_burst(self, ms: int = 150) -> Clip:
        """A cough-like burst: `ms` of pink noise with a fast attack and decay (sox). No transcript."""
        seconds = ms / 1000

        def make() -> bytes:
            return _sox_raw(
                [
                    "synth",
                    f"{seconds:g}",
                    "pinknoise",
                    "fade",
                    "q",
                    "0.005",
                    f"{seconds:g}",
                    f"{seconds / 2:g}",
                    "gain",
                    "-3",
                ],
                rate=MIC_RATE,
                stdin=None,
                source=["-n"],
            )

        pcm = self._cached(f"noise|{ms}", make)
        return Clip(np.frombuffer(pcm, dtype=np.int16), None, f"noise:{ms}ms")

    def voiced_burst(self, ms: int = 150) -> Clip:
        """A grunt or throat-clear: `ms` of a 130 Hz buzz through two formant band-passes (sox).
        Unlike plain noise, the VAD takes it for about 0.2 s of speech. No transcript."""
        seconds = ms / 1000

        def make() -> bytes:
            return _sox_raw(
                [
                    "synth",
                    f"{seconds:g}",
                    "sawtooth",
                    "130",
                    "bandpass",
                    "700",
                    "300",
                    "bandpass",
                    "1200",
                    "600",
                    "fade",
                    "q",
                    "0.005",
                    f"{seconds:g}",
                    f"{seconds / 2:g}",
                    "gain",
                    "-n",
                    "-3",
                ],
                rate=MIC_RATE,
                stdin=None,
                source=["-n"],
            )

        pcm = self._cached(f"voiced|{ms}", make)
        return Clip(np.frombuffer(pcm, dtype=np.int16), None, f"voiced:{ms}ms")

    def tts_pcm(self, text: str, lang: str) -> bytes:
        """The agent's voice: 24 kHz int16 mono, untrimmed (espeak's own pauses are kept)."""
        return self._cached(f"tts|{lang}|{text}", lambda: self._espeak(text, lang, 175, TTS_RATE, False))


def speech_bounds(samples: np.ndarray) -> tuple[int, int]:
    """First and last sample index louder than ONSET_LEVEL."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > ONSET_LEVEL)
    if not len(loud):
        return 0, len(samples)
    return int(loud[0]), int(loud[-1]) + 1
