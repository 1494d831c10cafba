"""Warm transfer of a SIP caller to a human colleague, through the LiveKit server API.

The caller hears a short line, then hold music (LiveKit's bundled `BuiltinAudioClip.HOLD_MUSIC`
through a `BackgroundAudioPlayer` on the call's room) while the human's phone rings: a SIP
participant created in the call's own room over the outbound trunk (`CreateSIPParticipant`
with `wait_until_answered` and a bounded `ringing_timeout`). When the human answers, the
music stops and the agent speaks the briefing (desk/handover.py: facts from the call state)
to the human and the caller together, a warm introduction; then the agent leaves the two
talking. A decline (SIP 486/603/403 ...), no answer in time, or a human who hangs up during
the briefing is reported as not answered and the desk takes a callback request instead. A
caller who hangs up on hold stops the dial, and a human who joins afterwards is removed.

LiveKit 1.8.9's `WarmTransferTask` (beta) is not used: it needs a second room connection for
a private consultation and has the model summarise the call, where the briefing here is
built from the call state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from livekit import api, rtc
from livekit.agents import AgentSession
from livekit.agents.voice.background_audio import AudioConfig, BackgroundAudioPlayer, BuiltinAudioClip

from desk.handover import HandoverReport, HandoverResult

logger = logging.getLogger("tools.warm_transfer")

HUMAN_IDENTITY = "human-colleague"
DECLINED_SIP_CODES = frozenset({403, 486, 600, 603})
"""Forbidden, Busy Here, Busy Everywhere, Decline: the human (or their phone) said no."""
API_MARGIN = 5.0
"""Seconds the dial request may run past the ringing timeout before it is given up."""


class HoldAudio(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class HoldMusic:
    """LiveKit's bundled hold music on the call's room, looped until stopped."""

    def __init__(self, room: rtc.Room, *, volume: float = 0.8) -> None:
        self._room = room
        self._volume = volume
        self._player: BackgroundAudioPlayer | None = None
        self._handle: Any = None

    async def start(self) -> None:
        self._player = BackgroundAudioPlayer()  # one per hold: a closed player does not start again
        await self._player.start(room=self._room)
        self._handle = self._player.play(AudioConfig(BuiltinAudioClip.HOLD_MUSIC, volume=self._volume), loop=True)

    async def stop(self) -> None:
        if self._handle is not None:
            self._handle.stop()
            self._handle = None
        if self._player is not None:
            player, self._player = self._player, None
            await player.aclose()


class WarmTransfer:
    def __init__(
        self,
        *,
        lkapi: api.LiveKitAPI,
        room: rtc.EventEmitter[Any],
        room_name: str,
        session: AgentSession,
        hold: HoldAudio,
        caller_identity: str,
        trunk_id: str,
        number: str,
        ringing_timeout: float,
        on_answered: Callable[[], object] | None = None,
    ) -> None:
        self._api = lkapi
        self._room = room
        self._room_name = room_name
        self._session = session
        self._hold = hold
        self._caller = caller_identity
        self._trunk_id = trunk_id
        self._number = number
        self._ringing_timeout = ringing_timeout
        self._on_answered = on_answered
        """Called once the human has been briefed (the worker ends the agent's part of the call)."""
        self._wait_ended: float | None = None
        """When the caller's wait ended: the human answered, the dial failed, or the caller left."""
        self._late: asyncio.Future[None] | None = None
        """Hangs up on a human who answers after the transfer was given up."""

    async def __call__(self, briefing: str, hold_line: str) -> HandoverReport:
        started = time.time()
        self._wait_ended = None
        caller_left = asyncio.Event()
        human_left = asyncio.Event()

        def on_left(participant: Any) -> None:
            if participant.identity == self._caller:
                caller_left.set()
            elif participant.identity == HUMAN_IDENTITY:
                human_left.set()

        self._room.on("participant_disconnected", on_left)
        try:
            result = await self._transfer(briefing, hold_line, caller_left, human_left)
        finally:
            self._room.off("participant_disconnected", on_left)
        waited = (self._wait_ended or time.time()) - started
        report = HandoverReport("warm", started, result == "answered", waited, result)
        logger.info("warm transfer: %s after %.1fs", result, report.waited_seconds)
        if report.answered and self._on_answered is not None:
            self._on_answered()
        return report

    async def _transfer(
        self, briefing: str, hold_line: str, caller_left: asyncio.Event, human_left: asyncio.Event
    ) -> HandoverResult:
        await self._session.say(hold_line, allow_interruptions=False).wait_for_playout()
        await self._hold.start()
        holding = True
        dial = asyncio.ensure_future(self._dial())
        left = asyncio.ensure_future(caller_left.wait())
        try:
            done, _ = await asyncio.wait(
                {dial, left}, timeout=self._ringing_timeout + API_MARGIN, return_when=asyncio.FIRST_COMPLETED
            )
            self._wait_ended = time.time()
            if left in done:
                return "caller_left"
            if dial not in done:
                logger.warning("the dial did not finish within %.0fs", self._ringing_timeout + API_MARGIN)
                return "no_answer"
            failure = dial.exception()
            if failure is not None:
                return _dial_failure(failure)
            await self._hold.stop()
            holding = False
            briefed = asyncio.ensure_future(self._session.say(briefing, allow_interruptions=False).wait_for_playout())
            human_gone = asyncio.ensure_future(human_left.wait())
            done, _ = await asyncio.wait({briefed, human_gone, left}, return_when=asyncio.FIRST_COMPLETED)
            human_gone.cancel()
            if briefed not in done:
                briefed.cancel()
                with contextlib.suppress(RuntimeError):
                    self._session.interrupt(force=True)
                return "caller_left" if left in done else "declined"
            return "answered"
        finally:
            left.cancel()
            if holding:
                await self._hold.stop()
            if not dial.done():  # still ringing: whoever answers now is hung up on at once
                self._late = asyncio.ensure_future(self._hang_up_when_answered(dial))
            elif caller_left.is_set() and dial.exception() is None:
                await self._remove_human()

    async def _hang_up_when_answered(self, dial: asyncio.Future[api.SIPParticipantInfo]) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(dial, self._ringing_timeout + API_MARGIN)
            await self._remove_human()

    async def _dial(self) -> api.SIPParticipantInfo:
        request = api.CreateSIPParticipantRequest(
            sip_trunk_id=self._trunk_id,
            sip_call_to=self._number,
            room_name=self._room_name,
            participant_identity=HUMAN_IDENTITY,
            participant_name="Colleague",
            wait_until_answered=True,
        )
        request.ringing_timeout.FromNanoseconds(int(self._ringing_timeout * 1e9))
        return await self._api.sip.create_sip_participant(request)

    async def _remove_human(self) -> None:
        """A human who answered after the caller left is not left alone in the room."""
        with contextlib.suppress(Exception):  # best effort: the call goes on either way
            await self._api.room.remove_participant(
                api.RoomParticipantIdentity(room=self._room_name, identity=HUMAN_IDENTITY)
            )


def _dial_failure(error: BaseException) -> HandoverResult:
    """What a failed `CreateSIPParticipant` means for the caller: declined, not answered, or broken."""
    code = getattr(error, "sip_status_code", None)
    if code in DECLINED_SIP_CODES:
        return "declined"
    if code is not None or isinstance(error, TimeoutError):  # 408, 480, 487 ...: rang out or unreachable
        return "no_answer"
    if isinstance(error, api.ServerError) and error.code == "deadline_exceeded":
        return "no_answer"
    logger.warning("dialling the human failed: %s", str(error) or type(error).__name__)
    return "failed"
