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
from typing import Any

from livekit import rtc
from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, cli, inference, tts
from livekit.plugins import openai

import logs
import prompts
from calls import Call, open_call
from conversation_manager import replay_pending
from conversation_manager.journal_volume import warn_if_volatile
from conversation_manager.manager import new_conversation_id
from desk import phrases
from reply_audio import FirstClauseTokenizer
from settings import Mode, Settings, load_or_exit
from startup_checks import openai_endpoint_problem
from storage.factory import open_record_store
from tools.agents import transfer_sip_participant
from tools.call_language import stt_language_options
from tools.room_status import RoomStatusPublisher
from turn_handling import BackchannelFilter, build_vad, skip_unused_model_preload, turn_handling_for

logger = logging.getLogger("agent")

CALL_KEY = "call"
CALLER_JOIN_TIMEOUT = 60.0

CLI_MODES: dict[str, Mode] = {"dev": "dev", "start": "start", "console": "console", "connect": "connect"}


def prewarm(proc: JobProcess) -> None:
    """Runs once per job process before any call: log hygiene (filters do not cross processes),
    and the VAD loaded so the first call is not slow."""
    settings = Settings.from_env()  # validated at start-up: cannot fail here
    # `console` runs its job in this process, and its text UI shows the agent's words only
    # through LiveKit's transcript log lines: the person at the keyboard is the caller.
    logs.install(keep_transcripts=settings.log_transcripts or cli.AgentsConsole.get_instance().enabled)
    proc.userdata["vad"] = build_vad(settings)


def build_session(
    settings: Settings, *, vad: inference.VAD | None = None, avatar: bool = False, **session_options: Any
) -> AgentSession:
    """The production pipeline: OpenAI-compatible STT, LLM and TTS, offline VAD and turn handling
    (turn_handling.py: end-of-turn rules, barge-in, backchannels ignored while the agent speaks).
    `session_options` go to `AgentSession` as they are (the audio harness turns off its warm-ups)."""
    client_options = {"api_key": settings.openai_key_for_client}
    if settings.openai_base_url:
        client_options["base_url"] = settings.openai_base_url
    hint = stt_language_options(settings.stt_model, settings.languages)
    recogniser = openai.STT(model=settings.stt_model, use_realtime=settings.stt_streaming, **hint, **client_options)
    listener = BackchannelFilter(recogniser, settings.languages)
    session = AgentSession(
        stt=listener,
        llm=openai.LLM(model=settings.llm_model, **client_options),
        # the reply's first clause is spoken as soon as it is written (reply_audio.py)
        tts=tts.StreamAdapter(
            tts=openai.TTS(model=settings.tts_model, voice=settings.voice_for(settings.language), **client_options),
            sentence_tokenizer=FirstClauseTokenizer(),
        ),
        vad=vad or build_vad(settings),
        turn_handling=turn_handling_for(settings, avatar=avatar),
        **session_options,
    )
    listener.watch(session)
    return session


async def identify_caller(ctx: JobContext, call: Call) -> rtc.RemoteParticipant | None:
    """Wait for the caller (bounded); the desk takes who they are from the call (`Call.caller_joined`)."""
    try:
        participant = await asyncio.wait_for(ctx.wait_for_participant(), CALLER_JOIN_TIMEOUT)
    except TimeoutError:
        logger.warning("no caller joined within %.0fs", CALLER_JOIN_TIMEOUT)
        return None
    # The session waits for this: a caller whose details cannot be attached still gets the call.
    try:
        call.caller_joined(participant)
    except Exception:
        logger.exception("could not attach the caller's details to the call")
    return participant


async def entrypoint(ctx: JobContext) -> None:
    # Tag every log line of the call, LiveKit's included, before anything else logs.
    conversation_id = new_conversation_id(ctx.room.name)
    ctx.log_context_fields = {**ctx.log_context_fields, "conversation_id": conversation_id}
    settings = Settings.from_env()
    call = await open_call(
        settings,
        room_name=ctx.room.name,
        conversation_id=conversation_id,
        metadata={"job_id": ctx.job.id},
        transfer=transfer_sip_participant,
        status=RoomStatusPublisher(ctx.room),
    )
    ctx.proc.userdata[CALL_KEY] = call
    # Who calls decides the avatar (never for a phone), so the caller is known before the session.
    participant = await identify_caller(ctx, call)
    # Before the greeting: the dispatch's language, a known SIP caller's, or the default.
    await call.choose_language(participant, ctx.job.metadata, ctx.room.metadata if ctx.room.isconnected() else None)
    console = cli.AgentsConsole.get_instance().enabled  # no video there, and no Tavus bill
    avatar = call.start_avatar(participant, allowed=not console)

    session = build_session(settings, vad=ctx.proc.userdata.get("vad"), avatar=avatar.enabled)
    call.attach(session)
    # A closed session (caller hung up, fatal error) ends the job, which runs on_session_end.
    session.on("close", lambda ev: ctx.shutdown(reason=f"session closed: {ev.reason}"))
    # The greeting starts when the avatar's video is up or it has failed (voice-only), not after a delay.
    avatar.attach(session)
    avatar.start(ctx.room)
    await session.start(agent=call.reception_agent(), room=ctx.room, room_options=call.room_options())
    # Keypad digits for a phone caller, a warm hand-over when the deployment has an outbound trunk.
    call.open_phone_line(
        lambda: ctx.api,
        ctx.room,
        session,
        participant,
        on_handed_over=lambda: ctx.shutdown(reason="handed over to a human"),
    )


async def on_session_end(ctx: JobContext) -> None:
    """Write the call's record (`Call.aclose`: summary, then the end-of-call write)."""
    call: Call | None = ctx.proc.userdata.pop(CALL_KEY, None)
    if call is None:
        return
    result = await call.aclose()
    logger.info("call record: %s", result.as_dict())


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
                also=(settings.journal_fallback_dir,),
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
    # Only what is set: LiveKit Cloud hosting warns about, and overrides, a custom load_threshold.
    options: dict[str, float | int] = {}
    if settings.num_idle_processes is not None:
        options["num_idle_processes"] = settings.num_idle_processes
    if settings.load_threshold is not None:
        options["load_threshold"] = settings.load_threshold
    server = AgentServer(
        job_memory_warn_mb=settings.job_memory_warn_mb,
        job_memory_limit_mb=settings.job_memory_limit_mb,
        shutdown_process_timeout=settings.shutdown_process_timeout,
        session_end_timeout=settings.session_end_timeout,
        setup_fnc=prewarm,
        **options,
    )
    server.rtc_session(entrypoint, agent_name=settings.agent_name, on_session_end=on_session_end)
    return server


def prompt_problems(settings: Settings) -> list[str]:
    """Every listed language must have every prompt (checked before the worker registers)."""
    problems = []
    for language in settings.languages:
        try:
            prompts.check(language)
            phrases.check(language, settings.clinic_timezone)
        except prompts.PromptError as e:
            problems.append(str(e))
    return problems


def check_endpoint_or_exit(settings: Settings, mode: Mode) -> None:
    """A dead LLM endpoint stops `start` (a deployment that cannot answer must not take calls);
    in dev and console it is one warning line and the worker starts anyway."""
    problem = openai_endpoint_problem(settings)
    if problem is None:
        return
    if mode == "start":
        sys.stderr.write(f"Start-up check failed; the worker did not start:\n  - {problem}\n")
        raise SystemExit(1)
    sys.stderr.write(f"warning: {problem} (the first reply will fail until it answers)\n")


def main(argv: list[str]) -> None:
    mode = CLI_MODES.get(argv[1]) if len(argv) > 1 else None
    if mode is None:  # --help, download-files, ...: nothing of ours to validate
        cli.run_app(build_server(Settings()))
        return
    settings = load_or_exit(mode)
    problems = prompt_problems(settings)
    if problems:
        sys.stderr.write("Prompt error; the worker did not start:\n")
        sys.stderr.write("".join(f"  - {problem}\n" for problem in problems))
        raise SystemExit(2)
    if settings.log_level:
        # LiveKit's CLI sets up logging (JSON lines in `start`, readable text in `dev`).
        os.environ["LIVEKIT_LOG_LEVEL"] = settings.log_level
    warn_if_volatile(settings.journal_dir)
    logs.install(keep_transcripts=settings.log_transcripts or mode == "console")
    check_endpoint_or_exit(settings, mode)
    skip_unused_model_preload(settings, os.environ)
    replay_in_background(settings)
    cli.run_app(build_server(settings))


if __name__ == "__main__":
    main(sys.argv)
