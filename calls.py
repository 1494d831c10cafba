"""One place that wires a call: `open_call()` builds everything one call keeps (its record,
stores, desk, status publisher) from settings, and `Call.aclose()` ends it (summary, the
end-of-call write, avatar conversations ended, stores closed).

The worker's entrypoint, the tests and the benchmarks all open calls here, so what they
exercise is the production wiring. Stores passed in (a test's seeded world) stay open:
only what `open_call` opened is closed by `aclose`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, llm, room_io
from livekit.api import LiveKitAPI

from avatar import AvatarConfig, AvatarLifecycle
from conversation_manager import ConversationManager, EndResult
from conversation_manager.session_events import attach
from conversation_manager.summary import written_summary
from desk import AppointmentDesk, DeskConfig, Transfer
from desk.call_language import LanguageChange, choose_start
from desk.status import StatusSink
from settings import Settings
from storage.domain import AppointmentStore
from storage.factory import open_appointment_store, open_record_store
from storage.records import ConversationStore
from tools.agents import Persona, ReceptionAgent
from tools.call_language import follow_language
from tools.caller_identity import caller_identity
from tools.keypad import KeypadListener
from tools.typed_chat import typed_chat_input
from tools.warm_transfer import HoldMusic, WarmTransfer

logger = logging.getLogger("calls")


def persona_for(settings: Settings) -> Persona:
    return Persona(
        language=settings.language,
        assistant_name=settings.assistant_name,
        company_name=settings.company_name,
    )


@dataclass(eq=False)
class Call:
    """What one call keeps until it ends."""

    settings: Settings
    manager: ConversationManager
    desk: AppointmentDesk
    records: ConversationStore
    appointments: AppointmentStore
    avatar: AvatarLifecycle | None = None
    summarize: Callable[[], Awaitable[str | None]] | None = None
    """Asks the call's LLM for the end-of-call summary (None when it cannot in time)."""
    _owned: list[ConversationStore | AppointmentStore] = field(default_factory=list, repr=False)

    @property
    def conversation_id(self) -> str:
        return self.manager.conversation_id

    def caller_joined(self, participant: rtc.RemoteParticipant) -> None:
        """Who is calling, from the call (never the LLM): the desk owns it and tells the record.
        Only a number the call vouches for counts (tools/caller_identity.py: the SIP caller id, or
        a browser attribute the deployment declares trusted)."""
        caller = caller_identity(
            participant, self.settings.trusted_caller_attributes, conversation_id=self.conversation_id
        )
        self.desk.caller_identified(
            phone=caller.phone, is_sip=caller.is_sip, participant_identity=caller.identity, channel=caller.channel
        )

    def start_avatar(self, participant: rtc.Participant | None, *, allowed: bool = True) -> AvatarLifecycle:
        """The call's avatar (never for a phone; `allowed=False` where no video can be shown)."""
        config = AvatarConfig.from_settings(self.settings) if allowed else None
        self.avatar = AvatarLifecycle.for_call(config, participant, record=self.manager)
        return self.avatar

    async def choose_language(self, participant: rtc.RemoteParticipant | None, *metadata: str | None) -> LanguageChange:
        """The call's first language, before the greeting: the dispatch's (the caller's `language`
        attribute, then the job's or the room's JSON `metadata`), a known SIP caller's, or the default."""
        attributes = participant.attributes if participant is not None else None
        return await choose_start(
            self.desk.language,
            self.desk.language_of_caller,
            attributes if isinstance(attributes, dict) else None,
            *(m if isinstance(m, str) else None for m in metadata),
        )

    def attach(self, session: AgentSession) -> None:
        """Record the session's turns, tool calls and agent runs; follow the call's language (STT
        signal, TTS voice); summarise with its LLM, in the language the call ended in."""
        attach(session, self.manager, said_in=self.desk.said_in.get)
        follow_language(session, self.desk, self.settings.voice_for)
        if isinstance(model := session.llm, llm.LLM):
            settings, language = self.settings, self.desk.language
            self.summarize = lambda: written_summary(
                model, language.current, self.manager.transcript.messages, timeout=settings.summary_timeout
            )

    def room_options(self) -> room_io.RoomOptions:
        """How the session reads the room: typed chat as the deployment allows it (TYPED_CHAT)."""
        settings = self.settings
        typed = typed_chat_input(
            settings.typed_chat,
            max_chars=settings.typed_chat_max_chars,
            too_long=lambda limit: self.desk.phrases.line("typed_too_long", limit=limit),  # in the call's language
        )
        return room_io.RoomOptions(text_input=typed)

    def open_phone_line(
        self,
        api: Callable[[], LiveKitAPI],
        room: rtc.Room,
        session: AgentSession,
        participant: rtc.RemoteParticipant | None,
        *,
        on_handed_over: Callable[[], object],
    ) -> KeypadListener | None:
        """A SIP caller's phone-line features: keypad entry of digits (ZIP code, phone number), and
        the warm hand-over when the deployment has an outbound trunk (else transfers stay cold).
        `api` is asked for LiveKit's server API only when a warm hand-over is wired (`console` has
        none); `on_handed_over` ends the agent's part once a colleague has been briefed."""
        if participant is None or participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_SIP:
            return None
        settings = self.settings
        keypad = KeypadListener.for_caller(room, session, self.desk, participant, timeout=settings.keypad_timeout)
        number = (settings.escalation_phone_number or "").removeprefix("tel:")
        if settings.transfer_mode != "warm" or not settings.sip_outbound_trunk_id or not number:
            return keypad
        self.desk.set_warm_transfer(
            WarmTransfer(
                lkapi=api(),
                room=room,
                room_name=room.name,
                session=session,
                hold=HoldMusic(room),
                caller_identity=participant.identity,
                trunk_id=settings.sip_outbound_trunk_id,
                number=number,
                ringing_timeout=settings.transfer_ringing_timeout,
                on_answered=on_handed_over,
            )
        )
        return keypad

    def reception_agent(self) -> ReceptionAgent:
        """The call's first agent, over this call's desk."""
        return ReceptionAgent(persona_for(self.settings), desk=self.desk)

    async def aclose(self, *, status: str = "completed") -> EndResult:
        """End the call: SUMMARY_TIMEOUT for the LLM summary, then FLUSH_TIMEOUT for the write
        (together below SESSION_END_TIMEOUT). Idempotent."""
        # Tavus bills until a conversation ends: end them (bounded) while the record is written.
        avatar_closed = asyncio.ensure_future(self.avatar.aclose()) if self.avatar is not None else None
        try:
            summary = await self.summarize() if self.summarize is not None else None
            return await self.manager.end_conversation(summary=summary, status=status)
        finally:
            if avatar_closed is not None:
                await avatar_closed
            for store in self._owned:
                await store.aclose()
            self._owned.clear()


async def open_call(
    settings: Settings,
    *,
    room_name: str,
    conversation_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    records: ConversationStore | None = None,
    appointments: AppointmentStore | None = None,
    transfer: Transfer | None = None,
    status: StatusSink | None = None,
    desk_overrides: dict[str, Any] | None = None,
) -> Call:
    """Open one call's record and desk; the `active` row is written in the background."""
    owned: list[ConversationStore | AppointmentStore] = []
    if records is None:
        records = await open_record_store(settings)
        owned.append(records)
    try:
        if appointments is None:
            appointments = await open_appointment_store(settings)
            owned.append(appointments)
        manager = ConversationManager.from_settings(records, settings)
        await manager.start_conversation(conversation_id, room_name, None, metadata)
    except BaseException:
        for store in owned:
            await store.aclose()
        raise
    desk = AppointmentDesk(
        appointments,
        DeskConfig.from_settings(settings, **(desk_overrides or {})),
        record=manager,
        transfer=transfer,
        status=status,
    )
    return Call(settings, manager, desk, records, appointments, _owned=owned)
