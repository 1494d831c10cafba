"""One call's Tavus avatar, from "should we?" to the end call.

    avatar = AvatarLifecycle.for_call(AvatarConfig.from_settings(settings), participant, record=manager)
    session = build_session(settings, avatar=avatar.enabled)
    avatar.attach(session)        # before session.start(): the first words wait for the decision
    avatar.start(ctx.room)        # a fresh Tavus conversation, then its replica's video, bounded
    await session.start(agent, room=ctx.room)
    ...
    await avatar.aclose()         # at the end of the call: end every conversation it created

The greeting is held (see `AvatarAudioRouter`) until the replica has joined and published its
video track (the plugin's event-driven `wait_for_join`), or until the attempt failed: then it
plays on the room's audio track at once. Creation and join share one deadline,
`join_timeout`, so the caller never waits longer than that. An avatar that leaves within
`left_early_window` of joining is replaced once by a new conversation; meanwhile, and if that
fails too, the call goes on voice-only, the reply in progress included. `avatar_status` on the
call's record says what happened: ready, join_timeout, api_error: ..., left_early,
disabled_sip, disabled_connector, not_configured; ready_late when the replica came after
`join_timeout` (the greeting went out voice-only) and the face took over from the next reply.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from livekit import api, rtc
from livekit.agents import APIConnectOptions, get_job_context, utils
from livekit.agents.voice.events import CloseEvent, SpeechCreatedEvent
from livekit.agents.voice.io import AudioOutput
from livekit.plugins.tavus.api import DEFAULT_API_URL

from avatar.router import AvatarAudioRouter
from avatar.tavus import (
    SinkCapture,
    TavusAvatar,
    conversation_properties,
    describe_failure,
    discard_sink,
    end_conversation,
)

if TYPE_CHECKING:
    from livekit.agents import AgentSession

    from settings import Settings

logger = logging.getLogger("avatar")


class AvatarRecord(Protocol):
    """What the lifecycle needs from the call's record (`ConversationManager`)."""

    @property
    def conversation_id(self) -> str: ...

    def update_conversation(self, **fields: Any) -> None: ...


@dataclass(frozen=True)
class AvatarConfig:
    api_key: str = field(repr=False)
    face_id: str
    pal_id: str | None
    join_timeout: float = 6.0
    left_early_window: float = 20.0
    max_call_duration: float = 3600.0
    participant_left_timeout: float = 10.0
    late_join_window: float = 15.0
    """After `join_timeout`: a replica joining this much later still takes over from the next reply."""
    playout_latency: float = 0.5
    """Seconds Tavus buffers our audio before its face plays it (see `AvatarAudioRouter`)."""
    api_url: str = DEFAULT_API_URL
    end_timeout: float = 3.0
    create_retries: int = 2
    retry_interval: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> AvatarConfig | None:
        if not settings.tavus_enabled or settings.tavus_face_id is None:
            return None
        return cls(
            api_key=settings.tavus_api_key,
            face_id=settings.tavus_face_id,
            pal_id=settings.tavus_pal_id,
            join_timeout=settings.avatar_join_timeout,
            left_early_window=settings.avatar_left_early_window,
            max_call_duration=settings.avatar_max_call_duration,
            participant_left_timeout=settings.avatar_participant_left_timeout,
            late_join_window=settings.avatar_late_join_window,
            playout_latency=settings.avatar_playout_latency,
        )

    def properties(self) -> dict[str, int]:
        return conversation_properties(
            max_call_duration=self.max_call_duration, participant_left_timeout=self.participant_left_timeout
        )

    def conn_options(self) -> APIConnectOptions:
        """Retries of the create call (5xx, 429, connection errors) that fit in the join deadline."""
        return APIConnectOptions(
            max_retry=self.create_retries, retry_interval=self.retry_interval, timeout=self.join_timeout
        )


@dataclass(eq=False)
class _Attempt:
    number: int
    plugin: TavusAvatar
    conversation_id: str | None = None
    sink: AudioOutput | None = None
    joined_at: float = 0.0
    ended: asyncio.Task[None] | None = None


class AvatarLifecycle:
    def __init__(self, config: AvatarConfig | None, *, record: AvatarRecord, status: str | None = None) -> None:
        self._config = config
        self._record = record
        self.status: str | None = None
        self._session: AgentSession | None = None
        self._room: rtc.Room | None = None
        self._router: AvatarAudioRouter | None = None
        self._current: _Attempt | None = None
        self._late: _Attempt | None = None
        """Created, its replica not in the room in time: it may still join and take over."""
        self._attempts: list[_Attempt] = []
        self._abandoned: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._chores: set[asyncio.Task[Any]] = set()
        self._context: contextvars.Context | None = None
        self._decided = asyncio.Event()
        if status is not None:
            self._set_status(status)
            self._decided.set()

    @classmethod
    def for_call(
        cls, config: AvatarConfig | None, participant: rtc.Participant | None, *, record: AvatarRecord
    ) -> AvatarLifecycle:
        if config is None:
            return cls(None, record=record, status="not_configured")
        if participant is None:  # nobody joined: no face to show
            return cls(None, record=record)
        if participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD:
            # Phones (SIP) and phone connectors (Twilio, WhatsApp) have no screen: no billed Tavus conversation.
            kind = rtc.ParticipantKind.Name(participant.kind).removeprefix("PARTICIPANT_KIND_").lower()
            return cls(None, record=record, status=f"disabled_{kind}")
        return cls(config, record=record)

    @property
    def enabled(self) -> bool:
        """Whether this call tries an avatar (its output cannot pause: see `turn_handling_for`)."""
        return self._config is not None

    @property
    def router(self) -> AvatarAudioRouter | None:
        return self._router

    @property
    def conversation_ids(self) -> list[str]:
        """Every Tavus conversation this call created, in order."""
        return [a.conversation_id for a in self._attempts if a.conversation_id]

    async def decided(self) -> str | None:
        """Wait until the greeting can start (avatar ready, or voice-only); returns `status`."""
        await self._decided.wait()
        return self.status

    def attach(self, session: AgentSession) -> None:
        """Before `session.start()`: its first speech waits until the avatar is ready or has failed."""
        if not self.enabled:
            return
        self._session = session
        session.on("speech_created", self._on_speech_created)
        session.on("close", self._on_session_close)

    def start(self, room: rtc.Room) -> None:
        """Create the call's Tavus conversation and wait for its replica, in the background."""
        if not self.enabled or self._task is not None:
            return
        if self._session is None:
            raise RuntimeError("AvatarLifecycle.start() before attach(session)")
        self._room = room
        # Room and session callbacks may run outside the job's context (job context, HTTP
        # session); the lifecycle's own tasks always run in the one it was started from.
        self._context = contextvars.copy_context()
        room.on("participant_connected", self._on_participant_connected)
        self._task = asyncio.create_task(self._run(room), name="avatar_lifecycle")

    async def aclose(self) -> None:
        """End of the call: end every Tavus conversation not ended yet and remove the replicas.

        Bounded by `end_timeout` per call; never raises (the call's record is written next)."""
        if self._task is not None:
            await utils.aio.cancel_and_wait(self._task)
        if self._room is not None:
            self._room.off("participant_connected", self._on_participant_connected)
        for attempt in self._attempts:
            self._abandon(attempt)
        if self._chores:
            await asyncio.gather(*self._chores, return_exceptions=True)

    # -- the attempts ---------------------------------------------------------------------

    async def _run(self, room: rtc.Room) -> None:
        assert self._config is not None
        for number in (1, 2):
            joined = await self._attempt(room, number)
            status = "ready"
            if isinstance(joined, str):
                await self._fall_back(joined if number == 1 else "left_early")
                joined, status = await self._join_late(), "ready_late"
                if joined is None:
                    return
            self._use(joined, status)
            early, left_at = await self._until_left(room, joined)
            await self._fall_back("left_early" if early else None, left_at=left_at)
            self._abandon(joined)
            if not early:
                return

    async def _attempt(self, room: rtc.Room, number: int) -> _Attempt | str:
        """A new conversation whose replica is in the room with its video, or why not."""
        assert self._config is not None and self._session is not None
        config = self._config
        deadline = time.monotonic() + config.join_timeout
        capture = SinkCapture(self._session)
        try:
            plugin = TavusAvatar(
                api_key=config.api_key,
                api_url=config.api_url,
                face_id=config.face_id,
                pal_id=config.pal_id,
                identity=f"tavus-avatar-{number}",
                conn_options=config.conn_options(),
                properties=config.properties(),
            )
        except Exception as e:
            self._log(logging.WARNING, "avatar %d could not be set up: %s", number, e)
            return describe_failure(e, timeout=config.join_timeout)
        attempt = _Attempt(number, plugin)
        self._attempts.append(attempt)
        try:
            await asyncio.wait_for(plugin.start(capture.as_session(), room), timeout=config.join_timeout)
        except Exception as e:
            attempt.conversation_id, attempt.sink = plugin.conversation_id, capture.sink  # Tavus was just too late
            status = describe_failure(e, timeout=config.join_timeout)
            self._log(logging.WARNING, "avatar %d: no Tavus conversation (%s)", number, status, attempt=attempt)
            self._abandon(attempt)
            return status
        attempt.conversation_id, attempt.sink = plugin.conversation_id, capture.sink
        self._log(logging.INFO, "avatar %d: Tavus conversation created", number, attempt=attempt)
        try:
            await plugin.wait_for_join(timeout=max(0.0, deadline - time.monotonic()))
        except (TimeoutError, RuntimeError):
            self._log(
                logging.WARNING,
                "avatar %d: replica not in the room within %gs",
                number,
                config.join_timeout,
                attempt=attempt,
            )
            self._late = attempt  # not abandoned yet: see _join_late
            return "join_timeout"
        attempt.joined_at = time.monotonic()
        return attempt

    async def _join_late(self) -> _Attempt | None:
        """The call went on voice-only; a replica that still joins within `late_join_window` takes
        over from the next reply (cheaper for the caller than no face for the whole call)."""
        assert self._config is not None
        attempt, self._late = self._late, None
        if attempt is None:
            return None
        window = self._config.late_join_window
        try:
            if window <= 0:
                raise TimeoutError
            await attempt.plugin.wait_for_join(timeout=window)
        except (TimeoutError, RuntimeError):
            self._log(
                logging.WARNING, "avatar %d: not in the room %gs later either", attempt.number, window, attempt=attempt
            )
            self._abandon(attempt)
            return None
        attempt.joined_at = time.monotonic()
        late = "avatar %d joined late: the face takes over from the next reply"
        self._log(logging.INFO, late, attempt.number, attempt=attempt)
        return attempt

    def _use(self, attempt: _Attempt, status: str = "ready") -> None:
        assert attempt.sink is not None
        self._current = attempt
        if self._router is not None:
            self._router.use_avatar(attempt.sink)
        else:
            self._install_router()
        self._set_status(status)
        self._log(logging.INFO, "avatar %d ready", attempt.number, attempt=attempt)
        self._decided.set()

    async def _until_left(self, room: rtc.Room, attempt: _Attempt) -> tuple[bool, float]:
        """Wait until the replica leaves the room: (within the early-leave window?, when, wall clock)."""
        assert self._config is not None
        identity = attempt.plugin.avatar_identity
        left: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        def on_disconnected(participant: rtc.RemoteParticipant) -> None:
            if participant.identity == identity and not left.done():
                left.set_result(time.time())

        room.on("participant_disconnected", on_disconnected)
        try:
            left_at = await left if identity in room.remote_participants else time.time()
        finally:
            room.off("participant_disconnected", on_disconnected)
        stayed = time.monotonic() - attempt.joined_at
        self._log(logging.WARNING, "avatar %d left the room after %.1fs", attempt.number, stayed, attempt=attempt)
        return stayed <= self._config.left_early_window, left_at

    async def _fall_back(self, status: str | None, *, left_at: float | None = None) -> None:
        self._current = None
        if status is not None:
            self._set_status(status)
        if self._router is not None:
            await self._router.fall_back(left_at=left_at)
        self._decided.set()

    def _abandon(self, attempt: _Attempt) -> None:
        """Stop using an attempt: its replica may not come (back), its conversation is ended."""
        self._abandoned.add(attempt.plugin.avatar_identity)
        discard_sink(attempt.sink)
        if attempt.ended is None:
            attempt.ended = self._chore(self._close_attempt(attempt))

    async def _close_attempt(self, attempt: _Attempt) -> None:
        assert self._config is not None
        config = self._config
        if attempt.conversation_id is not None:
            http = utils.http_context.http_session()
            error = await end_conversation(
                http,
                api_url=config.api_url,
                api_key=config.api_key,
                conversation_id=attempt.conversation_id,
                timeout=config.end_timeout,
            )
            if error is None:
                self._log(logging.INFO, "avatar %d: Tavus conversation ended", attempt.number, attempt=attempt)
            else:
                self._log(
                    logging.WARNING,
                    "avatar %d: Tavus conversation not ended: %s",
                    attempt.number,
                    error,
                    attempt=attempt,
                )
        try:  # removes the replica from the room through the LiveKit API
            await asyncio.wait_for(attempt.plugin.aclose(), timeout=config.end_timeout)
        except Exception as e:
            self._log(
                logging.WARNING, "avatar %d: closing the avatar session failed: %r", attempt.number, e, attempt=attempt
            )

    # -- session and room events ----------------------------------------------------------

    def _on_speech_created(self, _ev: SpeechCreatedEvent) -> None:
        # Synchronous, before the speech makes a sound: the earliest point the session's audio
        # chain exists (RoomIO builds it inside session.start()).
        if self._router is None and (not self._decided.is_set() or self._current is not None or self._late is not None):
            self._install_router()

    def _on_session_close(self, _ev: CloseEvent) -> None:
        if self._task is not None:
            self._task.cancel()

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        # A replica of a conversation we gave up on (slow create, late join) must not sit in the call.
        if participant.identity in self._abandoned and self._room is not None:
            self._chore(self._evict(self._room.name, participant.identity))

    async def _evict(self, room_name: str, identity: str) -> None:
        assert self._config is not None
        try:
            await asyncio.wait_for(
                get_job_context().api.room.remove_participant(
                    api.RoomParticipantIdentity(room=room_name, identity=identity)
                ),
                timeout=self._config.end_timeout,
            )
            self._log(logging.INFO, "removed late avatar %s from the room", identity)
        except Exception as e:
            self._log(logging.WARNING, "could not remove late avatar %s: %s", identity, e)

    # -- helpers -----------------------------------------------------------------------------

    def _install_router(self) -> AvatarAudioRouter | None:
        assert self._session is not None
        output = self._session.output
        if output.audio is None:  # no audio output (text-only): nothing to hold or route
            return None
        tail = output.audio
        while tail.next_in_chain is not None:
            tail = tail.next_in_chain
        assert self._config is not None
        self._router = AvatarAudioRouter(tail, playout_latency=self._config.playout_latency)
        output.replace_audio_tail(self._router)
        if self._current is not None:  # the avatar was ready before the session said anything
            assert self._current.sink is not None
            self._router.release(self._current.sink)
        elif self._decided.is_set():  # voice-only for now, a late replica may still take over
            self._router.release(self._router.room_audio)
        return self._router

    def _set_status(self, status: str) -> None:
        self.status = status
        self._record.update_conversation(avatar_status=status)
        self._log(logging.INFO, "avatar_status=%s", status)

    def _chore(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, context=self._context)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)
        return task

    def _log(self, level: int, message: str, *args: Any, attempt: _Attempt | None = None) -> None:
        """Every line carries the call's conversation id and, when there is one, Tavus's."""
        extra = {"conversation_id": self._record.conversation_id}
        if attempt is not None and attempt.conversation_id:
            extra["tavus_conversation_id"] = attempt.conversation_id
            message += " [tavus %s, call %s]"
            args = (*args, attempt.conversation_id, self._record.conversation_id)
        logger.log(level, message, *args, extra=extra)
