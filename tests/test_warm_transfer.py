"""Warm transfer against a local counterpart of the LiveKit server API (no LiveKit server runs here).

`FakeLiveKitAPI` answers the Twirp calls the transfer makes (`SIP/CreateSIPParticipant`,
`RoomService/RemoveParticipant`) as LiveKit documents them, on a simulated room; the call
itself is a real text-mode session with the scripted LLM. Asserted: what was dialled, hold
started and stopped around the wait, the briefing's facts against the call state, the
record's transfer entry and outcome, and the callback request when nobody took the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import api, rtc

from testkit.desk_world import SARA, World, open_call, outcome, tool, verify
from testkit.fake_room import FakeLiveKitAPI, FakeRoom, HumanPhone
from testkit.scripted_llm import Reply
from tools.warm_transfer import HUMAN_IDENTITY, HoldMusic, WarmTransfer

KEY, SECRET = "APItransfer", "transfer-secret-of-at-least-thirty-two-chars"
NUMBER = "+963112223344"
TRUNK = "ST_outbound"
CALLER = "sip_caller"


@dataclass
class RecordingHold:
    """Hold audio that records when it played (the production one is LiveKit's hold music)."""

    periods: list[list[float]] = field(default_factory=list)

    async def start(self) -> None:
        self.periods.append([time.monotonic()])

    async def stop(self) -> None:
        self.periods[-1].append(time.monotonic())

    @property
    def playing(self) -> bool:
        return bool(self.periods) and len(self.periods[-1]) == 1


@dataclass
class TransferCall:
    call: Any
    room: FakeRoom
    server: FakeLiveKitAPI
    hold: RecordingHold
    answered: list[bool]

    def transfer_record(self) -> dict[str, Any]:
        return self.call.manager.transcript.to_record().conversation["metadata"]["transfer"]

    def said(self) -> list[str]:
        return [m["content"] for m in self.call.manager.transcript.to_record().messages if m["role"] == "assistant"]


async def never_cold(identity: str, destination: str) -> None:
    raise AssertionError("a warm transfer was configured: no cold transfer")


@contextlib.asynccontextmanager
async def transfer_call(
    world: World, tmp_path: Path, human: HumanPhone, ringing: float = 1.0, music: bool = False
) -> AsyncIterator[TransferCall]:
    room = FakeRoom(name="desk-room")
    room.join(CALLER, kind=rtc.ParticipantKind.PARTICIPANT_KIND_SIP)
    async with (
        FakeLiveKitAPI(room, api_key=KEY, api_secret=SECRET) as server,
        open_call(world, tmp_path, is_sip=True, escalation=NUMBER, transfer=never_cold) as call,
    ):
        server.human = human
        hold = RecordingHold()
        answered: list[bool] = []
        # the production hold music when the test listens to it, else a recorder of when it played
        audio: Any = HoldMusic(room) if music else hold
        lkapi = api.LiveKitAPI(url=server.url, api_key=KEY, api_secret=SECRET)
        try:
            call.desk.set_warm_transfer(
                WarmTransfer(
                    lkapi=lkapi,
                    room=room,
                    room_name=room.name,
                    session=call.session,
                    hold=audio,
                    caller_identity=CALLER,
                    trunk_id=TRUNK,
                    number=NUMBER,
                    ringing_timeout=ringing,
                    on_answered=lambda: answered.append(True),
                )
            )
            yield TransferCall(call, room, server, hold, answered)
        finally:
            await lkapi.aclose()


async def ask_for_a_human(k: TransferCall, then: str = "Connecting you.") -> Any:
    return await k.call.turn(
        "I want to talk to a person.", tool("transfer_to_human", reason="billing question"), Reply(then)
    )


@pytest.mark.asyncio
async def test_the_human_answers_is_briefed_and_takes_the_call(world: World, tmp_path: Path) -> None:
    async with transfer_call(world, tmp_path, HumanPhone(answer=True, after=0.3)) as k:
        await verify(k.call, Reply("Hello Sarah."))
        await ask_for_a_human(k)
        # what was dialled: the trunk and number from settings, into the call's room, bounded
        (dial,) = k.server.dialled
        assert (dial.sip_trunk_id, dial.sip_call_to, dial.room_name) == (TRUNK, NUMBER, "desk-room")
        assert dial.wait_until_answered and dial.ringing_timeout.ToNanoseconds() == 1_000_000_000
        assert dial.participant_identity == HUMAN_IDENTITY in k.room.remote_participants
        # the caller heard the hold line, then hold audio until the human answered
        said = k.said()
        assert k.call.line("transfer_hold") in said
        (period,) = k.hold.periods
        assert len(period) == 2 and period[1] - period[0] >= 0.25
        # the briefing is built from the call state: the verified customer, their number
        briefing = k.call.desk.briefing("billing question")
        assert briefing in said
        assert k.call.line("handover_caller_verified", customer=SARA.name, phone=" ".join(SARA.phone)) in briefing
        assert k.call.line("handover_done_none") in briefing
        assert k.answered == [True]
        record = k.transfer_record()
        assert record["kind"] == "warm" and record["answered"] is True and record["result"] == "answered"
        assert record["waited_seconds"] >= 0.3
        assert outcome(k.call) == "transferred"
        assert await world.callbacks() == []


@pytest.mark.asyncio
async def test_nobody_answers_the_caller_is_told_and_a_callback_is_recorded(world: World, tmp_path: Path) -> None:
    async with transfer_call(world, tmp_path, HumanPhone(answer=False), ringing=0.4) as k:
        result = await ask_for_a_human(k, "Nobody is free, a colleague will call you back.")
        outputs = [e.item for e in result.events if e.type == "function_call_output"]
        assert outputs[-1].output == k.call.line("transfer_no_answer_callback")
        assert not k.hold.playing and len(k.hold.periods) == 1
        record = k.transfer_record()
        assert (record["answered"], record["result"]) == (False, "no_answer")
        assert record["waited_seconds"] >= 0.4
        (callback,) = await world.callbacks()
        assert callback["phone"] == SARA.phone and callback["reason"] == "billing question"
        assert outcome(k.call) == "callback_requested"
        assert k.answered == []


@pytest.mark.asyncio
async def test_the_human_declines(world: World, tmp_path: Path) -> None:
    async with transfer_call(world, tmp_path, HumanPhone(answer=False, after=0.1, sip_status=(486, "Busy Here"))) as k:
        await ask_for_a_human(k, "They are busy.")
        assert k.call.outputs("transfer_to_human")[-1].output == k.call.line("transfer_declined_callback")
        assert k.transfer_record()["result"] == "declined" and outcome(k.call) == "callback_requested"
        assert len(await world.callbacks()) == 1 and not k.hold.playing
        # the briefing the human never heard was not said to the caller either
        assert k.call.desk.briefing("billing question") not in k.said()


@pytest.mark.asyncio
async def test_the_caller_hangs_up_on_hold(world: World, tmp_path: Path) -> None:
    async with transfer_call(world, tmp_path, HumanPhone(answer=True, after=0.6)) as k:

        async def hang_up_while_holding() -> None:
            while not k.hold.playing:  # noqa: ASYNC110 (the hold is a plain recorder)
                await asyncio.sleep(0.01)
            k.room.leave(CALLER)

        hanging_up = asyncio.ensure_future(hang_up_while_holding())
        await ask_for_a_human(k, "Goodbye.")
        await hanging_up
        record = k.transfer_record()
        assert (record["answered"], record["result"]) == (False, "caller_left")
        assert outcome(k.call) != "transferred" and not k.hold.playing
        # the human who picks up afterwards is not left alone in the room
        for _ in range(200):
            if HUMAN_IDENTITY in k.server.removed:
                break
            await asyncio.sleep(0.01)
        assert HUMAN_IDENTITY in k.server.removed and HUMAN_IDENTITY not in k.room.remote_participants
        assert len(await world.callbacks()) == 1, "the caller asked for a human: someone calls back"


@pytest.mark.asyncio
async def test_an_unverified_callers_briefing_says_so(world: World, tmp_path: Path) -> None:
    async with transfer_call(world, tmp_path, HumanPhone(answer=True, after=0.05)) as k:
        await k.call.turn("It's 00000.", tool("verify_caller", zip_code="00000"), Reply("Sorry."))
        await ask_for_a_human(k)
        briefing = k.call.desk.briefing("billing question")
        assert k.call.line("handover_caller_unverified", phone=" ".join(SARA.phone)) in briefing
        assert k.call.line("handover_verification_failed", attempts=1) in briefing
        assert briefing in k.said() and outcome(k.call) == "transferred"


@pytest.mark.asyncio
async def test_hold_music_plays_while_the_caller_waits(world: World, tmp_path: Path) -> None:
    """The production hold (LiveKit's BackgroundAudioPlayer with its bundled hold music), listened to."""
    async with transfer_call(world, tmp_path, HumanPhone(answer=True, after=1.0), music=True) as k:
        heard: list[float] = []

        async def listen() -> None:
            while not k.room.local_participant.track_publications:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            (publication,) = k.room.local_participant.track_publications.values()
            async for event in rtc.AudioStream(publication.track, sample_rate=48000, num_channels=1):
                samples = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float64)
                heard.append(float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0)

        listening = asyncio.ensure_future(listen())
        await ask_for_a_human(k)
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        assert k.transfer_record()["result"] == "answered"
        # the clip fades in; silence would be 0 (a muted or unfed track)
        assert sum(rms > 50 for rms in heard) >= 20, "the caller heard music, not silence, while waiting"
        assert k.room.events("agent_published", "background_audio")
        assert k.room.events("agent_unpublished", "background_audio"), "the music stopped when the human answered"
        assert not k.room.local_participant.track_publications


@pytest.mark.asyncio
@pytest.mark.parametrize("works", [True, False], ids=["taken", "failed"])
async def test_a_cold_transfer_is_recorded_too(works: bool, world: World, tmp_path: Path) -> None:
    asked: list[tuple[str, str]] = []

    async def cold(identity: str, destination: str) -> None:
        asked.append((identity, destination))
        if not works:
            raise RuntimeError("SIP transfer failed: STR_RINGING_TIMEOUT")

    async with open_call(world, tmp_path, is_sip=True, escalation=NUMBER, transfer=cold) as call:
        await call.turn("A person, please.", tool("transfer_to_human", reason="billing question"), Reply("OK."))
        record = call.manager.transcript.to_record().conversation["metadata"]["transfer"]
    assert asked == [(CALLER, f"tel:{NUMBER}")]
    assert (record["kind"], record["answered"], record["result"]) == (
        ("cold", True, "answered") if works else ("cold", False, "failed")
    )
    assert outcome(call) == ("transferred" if works else "callback_requested")
