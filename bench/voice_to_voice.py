"""Voice to voice with human speech and hosted-service delays: caller stops -> agent's first audio.

    python bench/voice_to_voice.py              # every figure, 20 trials each
    python bench/voice_to_voice.py --trials 6   # a quicker look

Real time: human English speech (testkit/human_speech.py, transcripts and cut points from a
real recogniser, Whisper tiny.en) through the simulated microphone into production sessions
(`agent.build_session`: the real openai STT, LLM and TTS plugins, our VAD and turn handling),
against the local OpenAI-compatible server under a latency profile
(testkit/latency_profiles.py), replies spoken by espeak-ng into the recording loudspeaker.
LiveKit's defaults (a bare AgentSession with the same plugins and server) run in the same run.

- voice to voice, median and p95: `hosted` with batch STT and with streaming STT, `fast` with
  streaming; LiveKit defaults under `hosted`;
- overhead: voice to voice minus the unavoidable path (the longer of the VAD silence window
  and the STT final delay, or their sum for batch STT, + LLM first token + TTS first byte);
- reaction: the caller's onset -> the agent's audio paused or cleared, on human barge-ins;
- false stops: replies ended by human-voiced noises and backchannels;
- premature replies: held-out human clauses with a 300-600 ms pause inside;
- the latency budget of the median turn, and a job's memory and CPU (testkit/job_probe.py).

Configurations run a few sessions at a time, interleaved (each needs about 10% of a core).
Last line: RESULT v2v_ms=.. v2v_p95_ms=.. v2v_batch_ms=.. v2v_fast_ms=.. overhead_ms=.. reaction_ms=..
false_stops=n/N premature=n/N default_v2v_ms=.. job_rss_mb=..
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from settings import Settings
from testkit.audio_harness import Clip, Clips, VoiceCall
from testkit.bench_jobs import gather_limited
from testkit.human_speech import HumanSpeech
from testkit.job_probe import JobCost, measure_job
from testkit.latency_profiles import FAST, HOSTED, LatencyProfile
from testkit.voice_rig import ProfiledCall, livekit_defaults_call, production_call
from turn_handling import build_vad

LONG_REPLY = (
    "Your next appointment is on Monday at ten in the morning with Doctor Rana Khoury at the main clinic. "
    "Please arrive fifteen minutes early so that the front desk can check your details. "
    "Bring your insurance card, a photo identity card and the list of medicines you take every day. "
    "There is free parking behind the building and the entrance is on the left side of the street."
)
SHORT_REPLIES = (
    "Okay, I can help with that.",
    "Your appointment is on Monday at ten in the morning.",
    "Sure, let me check that for you.",
    "I can book that for you right now.",
)
"""Replies to the caller's turns: half open with a short clause, half are one plain sentence."""
LIVEKIT_DEFAULT_SILENCE = 0.25
"""`min_silence_duration` of the VAD a bare AgentSession picks (`inference.VAD()`)."""


@dataclass
class Turn:
    v2v_ms: float
    budget: dict[str, float]


@dataclass
class Figures:
    turns: list[Turn] = field(default_factory=list)
    reaction_ms: list[float] = field(default_factory=list)
    false_stops: int = 0
    stop_trials: int = 0
    stopped_by: list[str] = field(default_factory=list)
    premature: int = 0
    premature_trials: int = 0

    @property
    def v2v(self) -> list[float]:
        return [t.v2v_ms for t in self.turns]


@dataclass(frozen=True)
class Config:
    name: str
    profile: LatencyProfile
    streaming: bool
    defaults: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def silence(self) -> float:
        if self.defaults:
            return LIVEKIT_DEFAULT_SILENCE
        return build_vad(self.settings)._opts.min_silence_duration

    @property
    def settings(self) -> Settings:
        return dataclasses.replace(Settings(), stt_streaming=self.streaming, **self.overrides)

    def unavoidable_ms(self, audio_seconds: float) -> float:
        return self.profile.unavoidable_ms(
            vad_silence_s=self.silence, streaming=self.streaming, audio_seconds=audio_seconds
        )


def reply_for(text: str) -> str:
    if text.rstrip(".?! ").lower().endswith("question"):
        return LONG_REPLY
    return SHORT_REPLIES[sum(map(ord, text)) % len(SHORT_REPLIES)]


@contextlib.asynccontextmanager
async def open_call(config: Config, clips: Clips, reply: Callable[[str], str]) -> AsyncIterator[ProfiledCall]:
    if config.defaults:
        async with livekit_defaults_call(config.profile, clips, reply) as call:
            yield call
    else:
        async with production_call(config.settings, config.profile, clips, reply) as call:
            yield call


def watch_states(call: VoiceCall) -> list[tuple[float, str]]:
    log: list[tuple[float, str]] = []
    call.session.on("user_state_changed", lambda ev: log.append((time.time(), f"user:{ev.new_state}")))
    return log


def last_before(times: list[float], limit: float, since: float) -> float | None:
    found = [t for t in times if since <= t <= limit]
    return max(found) if found else None


def budget_of(call: ProfiledCall, states: list[tuple[float, str]], onset: float, end: float, started: float) -> dict:
    """Where the turn's time went, from the end of speech to the first audio played (ms)."""
    server = call.server
    vad = next((t for t, s in states if s == "user:listening" and t >= end - 0.05), None)
    if call.streaming:
        stt = last_before([u.final_at for u in server.audio.utterances if u.final_at], started, onset)
    else:
        stt = last_before([answered for _, answered, _ in server.audio.batch_transcripts], started, onset)
    llm = [(r, s) for r, s in server.first_tokens if onset <= r <= started]
    tts = [(r, s) for r, s, _ in server.audio.speech_requests if onset <= r <= started]
    if vad is None or stt is None or not llm or not tts:
        return {}
    llm_in, llm_out = llm[-1]
    tts_in, tts_out = tts[-1]
    heard = max(vad, stt)
    return {
        "VAD end of speech": (vad - end) * 1000,
        "STT final": (stt - end) * 1000,
        "endpointing (to LLM request)": (llm_in - heard) * 1000,
        "LLM first token": (llm_out - llm_in) * 1000,
        "first sentence (to TTS request)": (tts_in - llm_out) * 1000,
        "TTS first byte": (tts_out - tts_in) * 1000,
        "playout (to first audio)": (started - tts_out) * 1000,
    }


async def voice_to_voice(config: Config, clips: Clips, speech: list[Clip], trials: int, figures: Figures) -> None:
    async with open_call(config, clips, reply_for) as call:
        states = watch_states(call.call)
        await asyncio.sleep(0.5)
        for i in range(trials):
            clip = speech[i % len(speech)]
            played = await call.call.mic.say(clip)
            onset, end = call.call.mic.onset(played), call.call.mic.speech_end(played)
            started = await call.call.sink.wait_for("started", since=onset, timeout=20)
            if started.t >= end:  # a reply before the caller finished is no latency figure
                budget = budget_of(call, states, onset, end, started.t)
                figures.turns.append(Turn((started.t - end) * 1000, budget))
            call.call.session.interrupt(force=True)
            await call.call.quiet()


async def reactions(config: Config, clips: Clips, barge_ins: list[Clip], trials: int, figures: Figures) -> None:
    question = clips.speech("I have a question")
    async with open_call(config, clips, reply_for) as call:
        await asyncio.sleep(0.5)
        for i in range(trials):
            await call.call.mic.say(question)
            await call.call.sink.wait_until_playing(1.0 + 1.5 * i / max(1, trials - 1), timeout=20)
            played = await call.call.mic.say(barge_ins[i % len(barge_ins)])
            onset = call.call.mic.onset(played)
            await asyncio.sleep(1.0)
            stopped = call.call.sink.first({"pause", "clear"}, since=onset)
            if stopped is not None:
                figures.reaction_ms.append((stopped.t - onset) * 1000)
            call.call.session.interrupt(force=True)
            await call.call.quiet()


async def false_stops(config: Config, clips: Clips, noises: list[Clip], trials: int, figures: Figures) -> None:
    question = clips.speech("I have a question")
    async with open_call(config, clips, reply_for) as call:
        await asyncio.sleep(0.5)
        for i in range(trials):
            await call.call.mic.say(question)
            await call.call.sink.wait_until_playing(1.0, timeout=20)
            sound = noises[i % len(noises)]
            played = await call.call.mic.say(sound)
            onset = call.call.mic.onset(played)
            await asyncio.sleep(config.settings.false_interruption_timeout + 2.0)  # resumed or stopped by now
            figures.stop_trials += 1
            if call.call.sink.first({"clear"}, since=onset) is not None:
                figures.false_stops += 1
                figures.stopped_by.append(f"{sound.label.split('/')[-1]} ({sound.transcript!r})")
            call.call.session.interrupt(force=True)
            await call.call.quiet()


async def premature(config: Config, clips: Clips, paused: list[Any], trials: int, figures: Figures) -> None:
    async with open_call(config, clips, reply_for) as call:
        await asyncio.sleep(0.5)
        for i in range(trials):
            clause = paused[i % len(paused)]
            first = call.call.mic.play(clause.before)
            call.call.mic.play(Clip.silence(clause.pause))
            last = await call.call.mic.say(clause.after)
            started = await call.call.sink.wait_for("started", since=call.call.mic.onset(first), timeout=20)
            figures.premature_trials += 1
            figures.premature += started.t < call.call.mic.speech_end(last)
            call.call.session.interrupt(force=True)
            await call.call.quiet()


def ms(values: list[float], q: float = 0.5) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]:.0f}"


def median_turn(figures: Figures) -> Turn | None:
    with_budget = sorted((t for t in figures.turns if t.budget), key=lambda t: t.v2v_ms)
    return with_budget[len(with_budget) // 2] if with_budget else None


async def main(trials: int, parallel: int, with_job: bool) -> None:
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("livekit").setLevel(logging.ERROR)
    began = time.perf_counter()
    human = HumanSpeech()
    clips = Clips()
    speech = human.utterances()
    held_out = human.held_out_paused()
    barge_ins, noises = human.barge_ins(), human.noises()
    batch = Config("ours, hosted, batch STT", HOSTED, streaming=False)
    stream = Config("ours, hosted, streaming STT", HOSTED, streaming=True)
    fast = Config("ours, fast, streaming STT", FAST, streaming=True)
    defaults = Config("LiveKit defaults, hosted, batch STT", HOSTED, streaming=False, defaults=True)
    model = Config(
        "ours, hosted, streaming, v1-mini model", HOSTED, streaming=True, overrides={"turn_detection": "model"}
    )
    configs = [stream, batch, fast, defaults, model]
    v2v = {c.name: Figures() for c in configs}
    behaviour = {c.name: Figures() for c in (stream, batch, model)}
    # interleaved: each configuration's sessions alternate with the others' under the same load
    jobs: list[Awaitable[None]] = []
    for c in configs:
        jobs.append(voice_to_voice(c, clips, speech, trials, v2v[c.name]))
    for c in (stream, batch):
        jobs += [
            reactions(c, clips, barge_ins, trials, behaviour[c.name]),
            false_stops(c, clips, noises, trials, behaviour[c.name]),
            premature(c, clips, held_out, trials, behaviour[c.name]),
        ]
    jobs.append(premature(model, clips, held_out, trials, behaviour[model.name]))
    failures = await gather_limited(jobs, parallel)
    job: JobCost | None = await measure_job() if with_job else None

    print(
        f"\n{trials} trials per figure, {time.perf_counter() - began:.0f} s, {parallel} sessions at a time. Human "
        f"English speech ({len(speech)} clauses, {len(barge_ins)} barge-ins, {len(noises)} noises, "
        f"{len(held_out)} held-out paused clauses); transcripts by Whisper tiny.en; espeak-ng replies."
    )
    print(f"\n{'voice to voice (ms)':42} {'median':>7} {'p95':>6} {'unavoidable':>12} {'overhead':>9}")
    overhead: dict[str, list[float]] = {}
    for c in configs:
        f = v2v[c.name]
        audio = statistics.median([s.duration for s in speech])
        path = c.unavoidable_ms(audio)
        overhead[c.name] = [v - path for v in f.v2v]
        print(f"{c.name:42} {ms(f.v2v):>7} {ms(f.v2v, 0.95):>6} {path:>12.0f} {ms(overhead[c.name]):>9}")
    for c in configs:
        turn = median_turn(v2v[c.name])
        if turn is None:
            continue
        print(f"\nlatency budget of the median turn, {c.name} ({turn.v2v_ms:.0f} ms):")
        for part, value in turn.budget.items():
            print(f"  {part:36} {value:>6.0f} ms")
    print(f"\n{'behaviour (human speech)':42} {'reaction median/max':>20} {'false stops':>12} {'premature':>10}")
    for name, f in behaviour.items():
        print(
            f"{name:42} {ms(f.reaction_ms) + ' / ' + ms(f.reaction_ms, 1.0):>20} "
            f"{f.false_stops:>10}/{f.stop_trials} {f.premature:>8}/{f.premature_trials}"
        )
        for what in f.stopped_by:
            print(f"    stopped by {what}")
    if job is not None:
        print(f"\n{job.describe()}")
    for failure in failures:
        print(f"FAILED {failure}")
    mine = behaviour[stream.name if Settings().stt_streaming else batch.name]
    chosen = stream if Settings().stt_streaming else batch
    print(
        f"RESULT v2v_ms={ms(v2v[stream.name].v2v)} v2v_p95_ms={ms(v2v[stream.name].v2v, 0.95)} "
        f"v2v_batch_ms={ms(v2v[batch.name].v2v)} v2v_fast_ms={ms(v2v[fast.name].v2v)} "
        f"overhead_ms={ms(overhead[chosen.name])} reaction_ms={ms(mine.reaction_ms)} "
        f"false_stops={mine.false_stops}/{mine.stop_trials} premature={mine.premature}/{mine.premature_trials} "
        f"default_v2v_ms={ms(v2v[defaults.name].v2v)} job_rss_mb={f'{job.rss_mb:.0f}' if job else '-'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4, help="sessions at once")
    parser.add_argument("--no-job", action="store_true", help="skip the job process memory and CPU figures")
    args = parser.parse_args()
    asyncio.run(main(args.trials, args.parallel, not args.no_job))
