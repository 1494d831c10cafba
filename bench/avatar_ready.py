"""How soon the caller hears the greeting with a Tavus avatar: ours vs the fixed 5-second sleep.

    python bench/avatar_ready.py

Offline, on the test rig (testkit/avatar_rig.py): a real AgentSession greeting through the real
Tavus plugin, a local Tavus API and a simulated room whose replica joins and publishes its
video 0.5, 2 and 4 s after the conversation is created, or never. TTS is instant, so the
figures are the lifecycle's own delay (the greeting is synthesised while the avatar joins).

- greet_after_join: from the replica's video track appearing to the replica receiving the
  greeting's first audio frame. Ours (event-driven) vs the system we replace (start the avatar,
  sleep 5 s, then greet), measured in the same run.
- fallback: the replica never joins; from the start of the call to the greeting's first frame
  on the room's audio track, minus the join timeout (6 s). The old system never greets at all
  (the plugin's audio output waits for a video track that never comes).

Last line: RESULT greet_after_join_ms=<worst over the delays> fallback_extra_ms=<ms>
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

from livekit.plugins import tavus

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.avatar_rig import PERSONA, TAVUS_KEY, AvatarCall, avatar_call
from testkit.fake_tavus_server import Answer, Replica
from tools.agents import ReceptionAgent

JOIN_DELAYS = (0.5, 2.0, 4.0)
JOIN_TIMEOUT = 6.0  # the production default (AVATAR_JOIN_TIMEOUT)
OLD_FIXED_SLEEP = 5.0
SILENCE_WATCH = JOIN_TIMEOUT + 2.0


def greet_after_video_ms(call: AvatarCall, identity: str) -> float:
    video = call.room.events("video_published", identity)[0]
    first_audio = call.room.events("avatar_audio", identity)[0]
    return (first_audio - video) * 1000


async def ours_join(delay: float) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        answer = Answer(replica=Replica(join_after=delay, video_after=0.0))
        async with avatar_call(Path(tmp), answers=(answer,), join_timeout=JOIN_TIMEOUT) as call:
            await call.begin()
            await call.greeting_heard()
            return greet_after_video_ms(call, "tavus-avatar-1")


async def ours_fallback() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        answer = Answer(replica=Replica(join_after=None))
        async with avatar_call(Path(tmp), answers=(answer,), join_timeout=JOIN_TIMEOUT) as call:
            await call.begin()
            await call.greeting_heard()
            first_frame = call.room_audio.played[0][0]
            return (first_frame - call.started_at - JOIN_TIMEOUT) * 1000


async def old_system(delay: float | None) -> float | None:
    """The replaced flow: plugin start (it swaps the audio output itself), sleep 5 s, greet."""
    with tempfile.TemporaryDirectory() as tmp:
        answer = Answer(replica=Replica(join_after=delay, video_after=0.0))
        async with avatar_call(Path(tmp), configured=False, answers=(answer,)) as call:
            plugin = tavus.AvatarSession(
                face_id="face-test", pal_id="pal-test", api_key=TAVUS_KEY, api_url=call.tavus.api_url
            )
            call.started_at = time.perf_counter()
            await plugin.start(call.session, call.room)  # type: ignore[arg-type]
            await asyncio.sleep(OLD_FIXED_SLEEP)
            await call.session.start(agent=ReceptionAgent(PERSONA))
            if delay is None:
                await asyncio.sleep(SILENCE_WATCH - OLD_FIXED_SLEEP)
                heard = call.room.events("avatar_audio") or [f for f, _ in call.room_audio.played]
                return None if not heard else (heard[0] - call.started_at - JOIN_TIMEOUT) * 1000
            await call.greeting_heard()
            return greet_after_video_ms(call, plugin.avatar_identity)


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    print(f"join timeout {JOIN_TIMEOUT:g} s; the replaced system sleeps {OLD_FIXED_SLEEP:g} s before greeting")
    print(f"{'video after':>12} {'ours ms':>9} {'fixed sleep ms':>15} {'ratio':>7}")
    ours: list[float] = []
    for delay in JOIN_DELAYS:
        mine, old = await ours_join(delay), await old_system(delay)
        assert old is not None
        ours.append(mine)
        print(f"{delay:>11g}s {mine:>9.1f} {old:>15.1f} {old / max(mine, 0.001):>6.0f}x")
    extra = await ours_fallback()
    old_fallback = await old_system(None)
    old_text = "silent (no greeting)" if old_fallback is None else f"{old_fallback:.1f} ms"
    print(f"never joins: voice-only greeting {extra:.1f} ms after the {JOIN_TIMEOUT:g} s timeout;")
    print(f"             fixed sleep: {old_text} after {SILENCE_WATCH:g} s")
    print(f"RESULT greet_after_join_ms={max(ours):.1f} fallback_extra_ms={extra:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
