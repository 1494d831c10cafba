"""Human English speech for the audio harness, built from packages installed at test time
(never committed): Debian `fillets-ng-data` (voice-acted game clips, GPL-2+, used as test data
only) and PyPI `moonshine-voice` (`moonshine_voice/assets/`: a reading of A Tale of Two
Cities, Beckett, a two-voice dialogue). No package here holds natural Arabic sentences:
Arabic stays on espeak-ng (testkit/audio_clips.py).

Every transcript is what a real recogniser heard (testkit/whisper_stt.py, Whisper tiny.en),
mistakes included, and clip boundaries come from its word timestamps:

- `utterances()`: clauses cut from the readings at word boundaries where the reader paused;
- `paused()` / `held_out_paused()`: a clause with a 300-600 ms pause inserted at a word
  boundary in its middle, as two clips (before, after) whose transcripts the recogniser made
  from each part alone. `held_out_paused` comes from recordings the end-of-turn rules were
  never tuned on (the Beckett reading, the dialogue and the second half of the long reading);
- `barge_ins()`: short exclamations and clauses to say over the agent;
- `noises()`: human-voiced noises and backchannels (grunts, laughs, "mm-hm", "oh", "ah").

`ensure_sources()` installs what is missing (apt as root or with sudo, pip into this venv).
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from testkit.audio_clips import MIC_RATE, TRIM, Clip, speech_bounds
from testkit.whisper_stt import Recognition, Recognizer

__all__ = ["HumanSpeech", "PausedClause", "ensure_sources"]

FILLETS = Path("/usr/share/games/fillets-ng/sound")
FILLETS_PACKAGE = "fillets-ng-data"
MOONSHINE_REQUIREMENT = "moonshine-voice==0.1.5"
INSTALL_TIMEOUT = 900.0
DECODE_TIMEOUT = 60.0

CLAUSE_GAP = 0.12
"""A gap this long between two words, after a punctuated word, ends a clause."""
MIN_CLAUSE_S, MAX_CLAUSE_S = 1.0, 4.5
PAUSE_RANGE = (0.30, 0.60)

BARGE_IN_CLIPS = (
    "cabin1/en/k1-chob-3.ogg",  # "No way!"
    "cabin1/en/k1-chob-2.ogg",  # "No one!"
    "floppy/en/disk-x-au1.ogg",  # "I don't know."
    "aztec/en/bot-x-smich.ogg",  # "Let's go!"
    "bathroom/en/br-x-pracka.ogg",  # "You are here!"
    "warcraft/en/war-k-ready0.ogg",  # "Your Majesty?"
)
NOISE_CLIPS = (
    "barrel/en/bar-x-gr0.ogg",  # grunt
    "barrel/en/bar-x-gr1.ogg",  # grunt
    "barrel/en/bar-x-gr2.ogg",  # "ah"
    "ending/en/bar-x-suckano.ogg",  # "mm-hm"
    "cabin2/en/k1-chob-p.ogg",  # "oh"
    "columns/en/sl-m-jekot.ogg",  # "ah!"
    "barrel/en/bar-x-suckne.ogg",  # "oooh"
    "viking2/en/dr-7-sm2.ogg",  # a short laugh
    "viking2/en/dr-7-sm8.ogg",  # a chuckle
    "cabin1/en/k1-chob-p.ogg",  # a cry
)
READINGS = ("two_cities.wav", "beckett.wav", "endgame_nagg_nell.wav", "clone-test.wav")


def _moonshine_assets() -> Path | None:
    spec = importlib.util.find_spec("moonshine_voice")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "assets"
    return path if path.is_dir() else None


def ensure_sources() -> None:
    """Install the speech packages when missing; raises RuntimeError naming what failed."""
    if not FILLETS.is_dir():
        apt = shutil.which("apt-get")
        sudo = [] if _is_root() else [shutil.which("sudo") or "sudo"]
        if apt is None:
            raise RuntimeError(f"{FILLETS} is missing and there is no apt-get to install {FILLETS_PACKAGE}")
        for args in ([*sudo, apt, "update", "-qq"], [*sudo, apt, "install", "-y", "-qq", FILLETS_PACKAGE]):
            done = subprocess.run(args, capture_output=True, timeout=INSTALL_TIMEOUT, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.decode(errors='replace')[-400:]}")
    if _moonshine_assets() is None:
        args = [sys.executable, "-m", "pip", "install", "-q", MOONSHINE_REQUIREMENT]
        done = subprocess.run(args, capture_output=True, timeout=INSTALL_TIMEOUT, check=False)
        if done.returncode != 0 or _moonshine_assets() is None:
            raise RuntimeError(
                f"pip install {MOONSHINE_REQUIREMENT} failed: {done.stderr.decode(errors='replace')[-400:]}"
            )


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


def decode(path: Path, *, trim: bool = True) -> np.ndarray:
    """Any audio file sox reads, as 16 kHz int16 mono (leading/trailing silence trimmed)."""
    # -D: no dither, so the same file always gives the same samples (and the same transcripts)
    args = ["sox", "-D", str(path), "-t", "raw", "-r", str(MIC_RATE), "-e", "signed", "-b", "16", "-c", "1", "-"]
    if trim:
        args += TRIM
    done = subprocess.run(args, capture_output=True, timeout=DECODE_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sox could not decode {path}: {done.stderr.decode(errors='replace')[-300:]}")
    return np.frombuffer(done.stdout, dtype=np.int16)


@dataclass(frozen=True)
class PausedClause:
    """A clause said with a pause inside: `before`, `pause` seconds of silence, `after`."""

    before: Clip
    pause: float
    after: Clip
    source: str

    @property
    def text(self) -> str:
        return f"{self.before.transcript} … {self.after.transcript}"


def _words_timeline(recognition: Recognition) -> list[tuple[str, float, float]]:
    return [(w.text, w.start, w.end) for w in recognition.words if w.text]


def _clause_spans(recognition: Recognition, duration: float) -> list[tuple[float, float, int]]:
    """(start, end, words) of clauses: runs of words between punctuated words followed by a gap."""
    words = _words_timeline(recognition)
    spans: list[tuple[float, float, int]] = []
    first = 0
    for i, (text, _start, end) in enumerate(words):
        nxt = words[i + 1][1] if i + 1 < len(words) else duration
        if (text[-1:] in ".,?!;:" and nxt - end >= CLAUSE_GAP) or i + 1 == len(words):
            start = words[first][1]
            if MIN_CLAUSE_S <= end - start <= MAX_CLAUSE_S:
                spans.append((start, end, i + 1 - first))
            first = i + 1
    return spans


class HumanSpeech:
    """The human set, built once per process from the installed packages (cached on disk by
    the recogniser, so a second process pays only the audio decoding)."""

    def __init__(self, recognizer: Recognizer | None = None, *, seed: int = 17) -> None:
        ensure_sources()
        self._recognizer = recognizer or Recognizer.shared()
        self._seed = seed
        assets = _moonshine_assets()
        assert assets is not None
        self._assets = assets

    def _clip(self, samples: np.ndarray, label: str) -> Clip:
        recognition = self._recognizer.recognize(samples)
        words = tuple((w.text, w.end) for w in recognition.words)
        return Clip(samples, recognition.text, label, words=words)

    @cache  # noqa: B019 (one set per process; the instance lives as long)
    def _reading(self, name: str) -> tuple[np.ndarray, Recognition]:
        samples = decode(self._assets / name, trim=False)
        return samples, self._recognizer.recognize(samples)

    def _clauses(self, name: str) -> list[tuple[np.ndarray, str, int]]:
        samples, recognition = self._reading(name)
        out = []
        for start, end, words in _clause_spans(recognition, len(samples) / MIC_RATE):
            a, b = round(max(0.0, start - 0.03) * MIC_RATE), round((end + 0.05) * MIC_RATE)
            piece = samples[a:b]
            lo, hi = speech_bounds(piece)
            out.append((piece[lo:hi].copy(), f"{name}@{start:.2f}", words))
        return out

    def utterances(self) -> list[Clip]:
        """Clauses from every reading (the caller's turns), alternating between the readings."""
        per_reading = [self._clauses(name) for name in READINGS]
        ordered = [c for group in itertools.zip_longest(*per_reading) for c in group if c is not None]
        return [self._clip(s, f"human:{label}") for s, label, _ in ordered]

    def _paused(self, clauses: list[tuple[np.ndarray, str, int]], salt: str) -> list[PausedClause]:
        out = []
        for samples, label, words in clauses:
            if words < 4:
                continue
            rng = random.Random(int(hashlib.sha256(f"{self._seed}|{salt}|{label}".encode()).hexdigest()[:8], 16))
            recognition = self._recognizer.recognize(samples)
            timeline = _words_timeline(recognition)
            # a boundary inside the clause, between two words that follow each other closely
            candidates = [
                i
                for i in range(1, len(timeline))
                if 0.3 <= i / len(timeline) <= 0.7 and timeline[i][1] - timeline[i - 1][2] < CLAUSE_GAP
            ]
            if not candidates:
                continue
            i = rng.choice(candidates)
            cut = round((timeline[i - 1][2] + timeline[i][1]) / 2 * MIC_RATE)
            before, after = samples[:cut], samples[cut:]
            if speech_bounds(before)[1] - speech_bounds(before)[0] < MIC_RATE // 4 or len(after) < MIC_RATE // 4:
                continue
            pause = round(rng.uniform(*PAUSE_RANGE), 2)
            out.append(
                PausedClause(
                    self._clip(before, f"human:{label}:before"), pause, self._clip(after, f"human:{label}:after"), label
                )
            )
        return out

    def paused(self) -> list[PausedClause]:
        """Pauses in clauses from the first half of the long reading."""
        clauses = self._clauses("two_cities.wav")
        return self._paused(clauses[: len(clauses) // 2], "tuning")

    def held_out_paused(self) -> list[PausedClause]:
        """Pauses in recordings nothing was tuned on."""
        clauses = self._clauses("two_cities.wav")
        rest = clauses[len(clauses) // 2 :]
        for name in READINGS[1:]:
            rest += self._clauses(name)
        return self._paused(rest, "held-out")

    def barge_ins(self) -> list[Clip]:
        """Exclamations (game voices) and clauses from the Beckett reading, said over the agent."""
        clips = [self._clip(decode(FILLETS / rel), f"human:{rel}") for rel in BARGE_IN_CLIPS]
        clips += [self._clip(s, f"human:{label}") for s, label, _ in self._clauses("beckett.wav")]
        return [c for c in clips if c.duration >= 0.5]

    def noises(self) -> list[Clip]:
        """Grunts, laughs and backchannels; what the recogniser made of each is its transcript."""
        return [self._clip(decode(FILLETS / rel), f"human-noise:{rel}") for rel in NOISE_CLIPS]
