"""Keypad entry for phone (SIP) callers: the room's `sip_dtmf_received` keys, gathered into an
entry (desk/keypad.py) and handed to the desk as if said, "say it, or type it and press #".

`#` ends an entry, and so does a pause of `timeout` seconds after the last key; `*` starts
over. Only the caller's own keys count (never another participant's). The desk decides what
the digits are (the phone number while the call has none, else the ZIP code) and validates
them as it does speech; a ZIP code typed and said at once is one attempt. Then the agent is
told what happened (never the digits) and answers, or the verified caller is handed over to
the appointments agent. Keys and entries are never logged, only how many keys an entry had.

LiveKit 1.8.9's `GetDtmfTask` is not used: it is an LLM task for a fixed number of digits
that hands the digits to the model and logs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession

from desk.desk import AppointmentDesk
from desk.keypad import KeypadBuffer
from tools.agents import ReceptionAgent

logger = logging.getLogger("tools.keypad")

DEFAULT_TIMEOUT = 5.0


class KeypadListener:
    def __init__(
        self,
        room: rtc.EventEmitter[Any],
        session: AgentSession,
        desk: AppointmentDesk,
        *,
        caller_identity: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._room = room
        self._session = session
        self._desk = desk
        self._caller = caller_identity
        self._timeout = timeout
        self._buffer = KeypadBuffer()
        self._pause: asyncio.TimerHandle | None = None
        self._entries: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    @classmethod
    def for_caller(
        cls,
        room: rtc.EventEmitter[Any],
        session: AgentSession,
        desk: AppointmentDesk,
        participant: rtc.RemoteParticipant | None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> KeypadListener | None:
        """A listener attached to the room for a SIP caller; None for anyone else (browsers have no keypad)."""
        if participant is None or participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_SIP:
            return None
        listener = cls(room, session, desk, caller_identity=participant.identity, timeout=timeout)
        room.on("sip_dtmf_received", listener.on_key)
        return listener

    def on_key(self, event: rtc.SipDTMF) -> None:
        if event.participant is None or event.participant.identity != self._caller:
            return
        self._cancel_pause()
        entry = self._buffer.press(event.digit)
        if entry is not None:
            self._submit(entry)
        elif self._buffer.pending:
            self._pause = asyncio.get_running_loop().call_later(self._timeout, self._on_pause)

    def _on_pause(self) -> None:
        self._pause = None
        entry = self._buffer.take()
        if entry is not None:
            self._submit(entry)

    def _cancel_pause(self) -> None:
        if self._pause is not None:
            self._pause.cancel()
            self._pause = None

    def _submit(self, entry: str) -> None:
        task = asyncio.create_task(self._handle(entry), name="keypad-entry")
        self._entries.add(task)
        task.add_done_callback(self._entries.discard)

    async def _handle(self, entry: str) -> None:
        async with self._lock:  # entries are handled in the order they were typed
            keys = len(entry)
            try:
                result = await self._desk.keypad_entry(entry)
            except Exception:
                logger.exception("keypad entry of %d keys failed", keys)
                return
            if result is None:
                logger.info("keypad entry of %d keys not needed (already answered or verified)", keys)
                return
            logger.info("keypad entry of %d keys used", keys)
            session = self._session
            current = session.current_agent
            if result.verified is not None and isinstance(current, ReceptionAgent):
                session.update_agent(current.after_verification(current))
                return
            session.generate_reply(instructions=self._desk.phrases.line("keypad_entry", result=result.line))

    async def aclose(self) -> None:
        self._room.off("sip_dtmf_received", self.on_key)
        self._cancel_pause()
        for task in list(self._entries):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
