"""The worker: `python agent.py dev|start|console [--text]`.

It composes; it does not decide. Settings are validated before LiveKit is touched, so a
broken deployment exits non-zero with one line per problem instead of a traceback and
exit code 0. Scaling out is more copies of this process registered with the same
LiveKit server or LiveKit Cloud; LiveKit dispatches, nothing here queues calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from livekit import rtc
from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, cli, inference, llm
from livekit.plugins import openai

import prompts
from avatar import AvatarConfig, AvatarLifecycle
from conversation_manager import ConversationManager, replay_pending
from conversation_manager.manager import new_conversation_id
from conversation_manager.session_events import attach
from conversation_manager.summary import written_summary
from desk import phrases
from desk.desk import AppointmentDesk, DeskConfig
from settings import Mode, Settings, load_or_exit
from storage.domain import AppointmentStore
from storage.factory import open_appointment_store, open_record_store
from storage.records import ConversationStore
from tools.agents import Persona, ReceptionAgent, transfer_sip_participant
from tools.room_status import RoomStatusPublisher
from turn_handling import BackchannelFilter, build_vad, turn_handling_for

logger = logging.getLogger("agent")

CALL_KEY = "call"
CALLER_JOIN_TIMEOUT = 60.0

CLI_MODES: dict[str, Mode] = {"dev": "dev", "start": "start", "console": "console", "connect": "connect"}


def prewarm(proc: JobProcess) -> None:
    """Runs once per job process before any call: load the VAD so the first call is not slow."""
    proc.userdata["vad"] = build_vad(Settings.from_env())  # validated at start-up: cannot fail here


def build_session(settings: Settings, *, vad: inference.VAD | None = None, avatar: bool = False) -> AgentSession:
    """The production pipeline: OpenAI-compatible STT, LLM and TTS, offline VAD and turn handling
    (turn_handling.py: end-of-turn rules, barge-in, backchannels ignored while the agent speaks)."""
    client_options = {"api_key": settings.openai_key_for_client}
    if settings.openai_base_url:
        client_options["base_url"] = settings.openai_base_url
    listener = BackchannelFilter(openai.STT(model=settings.stt_model, language=settings.language, **client_options))
    session = AgentSession(
        stt=listener,
        llm=openai.LLM(model=settings.llm_model, **client_options),
        tts=openai.TTS(model=settings.tts_model, voice=settings.tts_voice, **client_options),
        vad=vad or build_vad(settings),
        turn_handling=turn_handling_for(settings, avatar=avatar),
    )
    listener.watch(session)
    return session


def persona_for(settings: Settings) -> Persona:
    return Persona(
        language=settings.language,
        assistant_name=settings.assistant_name,
        company_name=settings.company_name,
    )


@dataclass
class Call:
    """What one job keeps until its session ends."""

    manager: ConversationManager
    store: ConversationStore
    appointments: AppointmentStore
    summarize: Callable[[], Awaitable[str | None]] | None = None
    """Asks the call's LLM for the end-of-call summary (None when it cannot in time)."""
    avatar: AvatarLifecycle | None = None


async def identify_caller(
    ctx: JobContext, manager: ConversationManager, desk: AppointmentDesk
) -> rtc.RemoteParticipant | None:
    """Wait for the caller (bounded); attach their identity and, for SIP, their phone number to the record."""
    try:
        participant = await asyncio.wait_for(ctx.wait_for_participant(), CALLER_JOIN_TIMEOUT)
    except TimeoutError:
        logger.warning("no caller joined within %.0fs", CALLER_JOIN_TIMEOUT)
        return None
    is_sip = participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
    # The session waits for this: a caller whose details cannot be attached still gets the call.
    try:
        manager.update_conversation(
            participant_identity=participant.identity, metadata={"channel": "sip" if is_sip else "webrtc"}
        )
        phone = participant.attributes.get("sip.phoneNumber") or participant.attributes.get("phone")
        phone = phone if isinstance(phone, str) else None  # console's simulated caller has no real attributes
        if phone:
            manager.set_caller_details(phone=phone)
        # The phone used for verification comes from the call, never from the LLM.
        desk.caller_identified(phone=phone, is_sip=is_sip, participant_identity=participant.identity)
    except Exception:
        logger.exception("could not attach the caller's details to the call")
    return participant


async def entrypoint(ctx: JobContext) -> None:
    # Tag every log line of the call, LiveKit's included, before anything else logs.
    conversation_id = new_conversation_id(ctx.room.name)
    ctx.log_context_fields = {**ctx.log_context_fields, "conversation_id": conversation_id}
    settings = Settings.from_env()
    store = await open_record_store(settings)
    manager = ConversationManager(
        store,
        journal_dir=settings.journal_dir,
        flush_timeout=settings.flush_timeout,
        default_country_code=settings.default_country_code,
        language=settings.language,
        slow_turn_ms=settings.slow_turn_ms,
    )
    appointments = await open_appointment_store(settings)
    ctx.proc.userdata[CALL_KEY] = call = Call(manager, store, appointments)
    await manager.start_conversation(conversation_id, ctx.room.name, None, {"job_id": ctx.job.id})

    status = RoomStatusPublisher(ctx.room)
    desk = AppointmentDesk(
        appointments,
        DeskConfig.from_settings(settings),
        record=manager,
        transfer=transfer_sip_participant,
        status=status,
    )
    # Who calls decides the avatar (never for a phone), so the caller is known before the session.
    participant = await identify_caller(ctx, manager, desk)
    console = cli.AgentsConsole.get_instance().enabled  # no video there, and no Tavus bill
    avatar_config = None if console else AvatarConfig.from_settings(settings)
    call.avatar = avatar = AvatarLifecycle.for_call(avatar_config, participant, record=manager)

    session = build_session(settings, vad=ctx.proc.userdata.get("vad"), avatar=avatar.enabled)
    if isinstance(model := session.llm, llm.LLM):
        ctx.proc.userdata[CALL_KEY].summarize = lambda: written_summary(
            model, settings.language, manager.transcript.messages, timeout=settings.summary_timeout
        )
    attach(session, manager)
    # A closed session (caller hung up, fatal error) ends the job, which runs on_session_end.
    session.on("close", lambda ev: ctx.shutdown(reason=f"session closed: {ev.reason}"))
    # The greeting starts when the avatar's video is up or it has failed (voice-only), not after a delay.
    avatar.attach(session)
    avatar.start(ctx.room)
    await session.start(agent=ReceptionAgent(persona_for(settings), desk=desk), room=ctx.room)


async def on_session_end(ctx: JobContext) -> None:
    """Write the call's record: SUMMARY_TIMEOUT for the LLM summary, then FLUSH_TIMEOUT for the write
    (together below SESSION_END_TIMEOUT)."""
    call: Call | None = ctx.proc.userdata.pop(CALL_KEY, None)
    if call is None:
        return
    # Tavus bills until a conversation ends: end them (bounded) while the record is written.
    avatar_closed = asyncio.ensure_future(call.avatar.aclose()) if call.avatar is not None else None
    try:
        summary = await call.summarize() if call.summarize is not None else None
        result = await call.manager.end_conversation(summary=summary)
        logger.info("call record: %s", result.as_dict())
    finally:
        if avatar_closed is not None:
            await avatar_closed
        await call.store.aclose()
        await call.appointments.aclose()


def replay_in_background(settings: Settings) -> threading.Thread:
    """At worker start, write journals that earlier runs could not (without delaying the worker)."""

    async def replay() -> None:
        store = await open_record_store(settings)
        try:
            await replay_pending(
                store,
                settings.journal_dir,
                timeout=settings.flush_timeout,
                retention_days=settings.journal_retention_days,
            )
        finally:
            await store.aclose()

    def run() -> None:
        try:
            asyncio.run(replay())
        except Exception:
            logger.exception("journal replay at start-up failed; run `python -m conversation_manager replay`")

    thread = threading.Thread(target=run, name="journal-replay", daemon=True)
    thread.start()
    return thread


def build_server(settings: Settings) -> AgentServer:
    options: dict[str, float | int] = {}
    if settings.num_idle_processes is not None:
        options["num_idle_processes"] = settings.num_idle_processes
    server = AgentServer(
        load_threshold=settings.load_threshold,
        job_memory_warn_mb=settings.job_memory_warn_mb,
        job_memory_limit_mb=settings.job_memory_limit_mb,
        shutdown_process_timeout=settings.shutdown_process_timeout,
        session_end_timeout=settings.session_end_timeout,
        setup_fnc=prewarm,
        **options,
    )
    server.rtc_session(entrypoint, agent_name=settings.agent_name, on_session_end=on_session_end)
    return server


def main(argv: list[str]) -> None:
    mode = CLI_MODES.get(argv[1]) if len(argv) > 1 else None
    if mode is None:  # --help, download-files, ...: nothing of ours to validate
        cli.run_app(build_server(Settings()))
        return
    settings = load_or_exit(mode)
    try:
        prompts.check(settings.language)
        phrases.check(settings.language, settings.clinic_timezone)
    except prompts.PromptError as e:
        sys.stderr.write(f"Prompt error; the worker did not start:\n  - {e}\n")
        raise SystemExit(2) from None
    if settings.log_level:
        # LiveKit's CLI sets up logging (JSON lines in `start`, readable text in `dev`).
        os.environ["LIVEKIT_LOG_LEVEL"] = settings.log_level
    replay_in_background(settings)
    cli.run_app(build_server(settings))


if __name__ == "__main__":
    main(sys.argv)
