"""Hosted-service delays for the local OpenAI-compatible server, fixed so figures compare across
runs and sessions (issue 17; README "Turn handling and barge-in" cites the published
measurements they resemble).

- `hosted` (the default): STT batch 300 ms + 40 ms per second of audio; STT streaming final
  150 ms after the end of speech, interim transcripts every 300 ms while speaking; LLM first
  token 450 ms, then 80 tokens/s; TTS first byte 250 ms, then faster than real time.
- `fast` (the best hosted services today): STT streaming final 100 ms; LLM first token 150 ms,
  300 tokens/s; TTS first byte 90 ms (the rest as `hosted`).
- `instant`: all zero.

The unavoidable path of a turn is what no agent framework can save under a profile: the
longer of the VAD silence window and the STT final delay (streaming; a batch request can only
start once the silence window has passed, so there the two add), plus the LLM's first token,
plus the TTS's first byte. Voice to voice minus that path is the overhead, the part we own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["PROFILES", "LatencyProfile", "profile"]


@dataclass(frozen=True)
class LatencyProfile:
    name: str
    stt_batch_s: float
    """A transcription request: this long, plus `stt_batch_per_audio_s` per second of audio."""
    stt_batch_per_audio_s: float
    stt_final_s: float
    """Streaming: the final transcript this long after the end of speech."""
    stt_interim_every_s: float
    """Streaming: an interim transcript this often while the caller speaks (0: none)."""
    llm_first_token_s: float
    llm_tokens_per_s: float
    """0: all the rest at once."""
    tts_first_byte_s: float
    tts_speed: float
    """The rest of the audio streams this many times faster than real time (0: at once)."""

    def stt_batch_delay(self, audio_seconds: float) -> float:
        return self.stt_batch_s + self.stt_batch_per_audio_s * audio_seconds

    def unavoidable_ms(self, *, vad_silence_s: float, streaming: bool, audio_seconds: float = 0.0) -> float:
        """The unavoidable path of one turn, in ms (see the module docstring)."""
        if streaming:
            listening = max(vad_silence_s, self.stt_final_s)
        else:
            listening = vad_silence_s + self.stt_batch_delay(audio_seconds)
        return (listening + self.llm_first_token_s + self.tts_first_byte_s) * 1000


HOSTED = LatencyProfile(
    name="hosted",
    stt_batch_s=0.300,
    stt_batch_per_audio_s=0.040,
    stt_final_s=0.150,
    stt_interim_every_s=0.300,
    llm_first_token_s=0.450,
    llm_tokens_per_s=80.0,
    tts_first_byte_s=0.250,
    tts_speed=4.0,
)
FAST = replace(
    HOSTED, name="fast", stt_final_s=0.100, llm_first_token_s=0.150, llm_tokens_per_s=300.0, tts_first_byte_s=0.090
)
INSTANT = LatencyProfile(
    name="instant",
    stt_batch_s=0.0,
    stt_batch_per_audio_s=0.0,
    stt_final_s=0.0,
    stt_interim_every_s=0.0,
    llm_first_token_s=0.0,
    llm_tokens_per_s=0.0,
    tts_first_byte_s=0.0,
    tts_speed=0.0,
)
PROFILES = {p.name: p for p in (HOSTED, FAST, INSTANT)}


def profile(name: str) -> LatencyProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"latency profile must be one of {', '.join(PROFILES)}, got {name!r}") from None
