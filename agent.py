"""The worker: `python agent.py dev|start|console [--text]`.

It composes; it does not decide. Settings are validated before LiveKit is touched, so a
broken deployment exits non-zero with one line per problem instead of a traceback and
exit code 0. Scaling out is more copies of this process registered with the same
LiveKit server or LiveKit Cloud; LiveKit dispatches, nothing here queues calls.
"""

from __future__ import annotations

import logging
import sys

from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, cli, inference
from livekit.plugins import openai

import prompts
from settings import Mode, Settings, load_or_exit
from tools.agents import Persona, ReceptionAgent

logger = logging.getLogger("agent")

CLI_MODES: dict[str, Mode] = {"dev": "dev", "start": "start", "console": "console", "connect": "connect"}


def prewarm(proc: JobProcess) -> None:
    """Runs once per job process before any call: load the VAD so the first call is not slow."""
    proc.userdata["vad"] = inference.VAD()


def build_session(settings: Settings, *, vad: inference.VAD | None = None) -> AgentSession:
    """The production pipeline: OpenAI-compatible STT, LLM and TTS, offline VAD and turn detection."""
    client_options = {"api_key": settings.openai_key_for_client}
    if settings.openai_base_url:
        client_options["base_url"] = settings.openai_base_url
    return AgentSession(
        stt=openai.STT(model=settings.stt_model, language=settings.language, **client_options),
        llm=openai.LLM(model=settings.llm_model, **client_options),
        tts=openai.TTS(model=settings.tts_model, voice=settings.tts_voice, **client_options),
        vad=vad or inference.VAD(),
        turn_handling={"turn_detection": inference.TurnDetector(version="v1-mini")},
    )


def persona_for(settings: Settings) -> Persona:
    return Persona(
        language=settings.language,
        assistant_name=settings.assistant_name,
        company_name=settings.company_name,
    )


async def entrypoint(ctx: JobContext) -> None:
    settings = Settings.from_env()
    ctx.log_context_fields = {**ctx.log_context_fields, "room": ctx.room.name}
    session = build_session(settings, vad=ctx.proc.userdata.get("vad"))
    await session.start(agent=ReceptionAgent(persona_for(settings)), room=ctx.room)


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
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    return server


def main(argv: list[str]) -> None:
    mode = CLI_MODES.get(argv[1]) if len(argv) > 1 else None
    if mode is None:  # --help, download-files, ...: nothing of ours to validate
        cli.run_app(build_server(Settings()))
        return
    settings = load_or_exit(mode)
    try:
        prompts.check(settings.language)
    except prompts.PromptError as e:
        sys.stderr.write(f"Prompt error; the worker did not start:\n  - {e}\n")
        raise SystemExit(2) from None
    cli.run_app(build_server(settings))


if __name__ == "__main__":
    main(sys.argv)
