"""Feeds a LiveKit `AgentSession`'s events into a `ConversationManager` (thin glue)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from livekit.agents import AgentSession
from livekit.agents.metrics.usage import LLMModelUsage
from livekit.agents.voice.events import (
    CloseEvent,
    CloseReason,
    ConversationItemAddedEvent,
    ErrorEvent,
    FunctionToolsExecutedEvent,
    SessionUsageUpdatedEvent,
)

from conversation_manager.manager import ConversationManager

logger = logging.getLogger("conversation_manager.session_events")

_METRIC_KEYS = (
    "transcription_delay",
    "end_of_turn_delay",
    "on_user_turn_completed_delay",
    "llm_node_ttft",
    "tts_node_ttfb",
    "e2e_latency",
    "playback_latency",
    "started_speaking_at",
    "stopped_speaking_at",
)


def message_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The latency figures of a `ChatMessage.metrics` report that are set."""
    return {k: float(metrics[k]) for k in _METRIC_KEYS if isinstance(metrics.get(k), int | float)}


class CutOff(NamedTuple):
    """An assistant turn the caller's voice stopped, as recorded."""

    seq: int
    item_id: str
    stopped_speaking_at: float | None


def barge_in_link(cut_off: CutOff | None, user_metrics: Mapping[str, float]) -> dict[str, Any]:
    """Metadata linking a user turn to the interrupted reply it cut off: the reply just
    before it was interrupted and the caller had started speaking before it stopped."""
    if cut_off is None:
        return {}
    started = user_metrics.get("started_speaking_at")
    if started is not None and cut_off.stopped_speaking_at is not None and started > cut_off.stopped_speaking_at:
        return {}  # stopped by something else (a hand-over, the code), then the caller spoke
    return {"interrupts_seq": cut_off.seq, "interrupts_item_id": cut_off.item_id}


def attach(
    session: AgentSession, manager: ConversationManager, *, said_in: Callable[[str], str | None] | None = None
) -> None:
    """Record every turn, tool call and agent run the session produces.

    `said_in(item_id)` gives the language a caller turn was read in (messages otherwise carry
    the call's language)."""
    last_cut_off: list[CutOff] = []  # the last assistant turn, if interrupted, until the caller's next turn

    def on_item(ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if item.type == "message":
            metrics = message_metrics(item.metrics)
            metadata: dict[str, Any] = {"metrics": metrics, "item_id": item.id}
            if item.role == "user":
                metadata.update(barge_in_link(last_cut_off[0] if last_cut_off else None, metrics))
                if isinstance(source := item.extra.get("input"), str):  # e.g. "typed" (browser chat)
                    metadata["input"] = source
                last_cut_off.clear()
                if said_in is not None and (language := said_in(item.id)):
                    metadata["language"] = language
            seq = manager.add_message_to_local_transcript(
                item.role,
                item.text_content or "",
                metadata,
                interrupted=item.interrupted,
                created_at=item.created_at,
            )
            if item.role == "assistant":
                last_cut_off.clear()
                if item.interrupted and seq is not None:
                    last_cut_off.append(CutOff(seq, item.id, metrics.get("stopped_speaking_at")))
            if metrics:
                logger.info(
                    "turn %s %s",
                    seq,
                    item.role,
                    extra={"conversation_id": manager.conversation_id, "interrupted": item.interrupted, **metrics},
                )
        elif item.type == "agent_handoff":
            # Emitted as the new agent becomes active, before its first LLM call.
            manager.runs.open_run(type(session.current_agent).__name__)

    def on_tools(ev: FunctionToolsExecutedEvent) -> None:
        for call, output in ev.zipped():
            manager.add_tool_call(
                call.name,
                call.arguments,
                output.output,
                is_error=output.is_error,
                call_id=call.call_id,
                duration_ms=round((output.created_at - call.created_at) * 1000, 1),
                created_at=call.created_at,
            )

    def on_usage(ev: SessionUsageUpdatedEvent) -> None:
        llm = [u for u in ev.usage.model_usage if isinstance(u, LLMModelUsage)]
        manager.runs.session_usage(sum(u.input_tokens for u in llm), sum(u.output_tokens for u in llm))

    def on_error(ev: ErrorEvent) -> None:
        # Recoverable errors are retried by LiveKit, unnoticed; an unrecoverable one cost the caller a reply.
        error = ev.error
        if getattr(error, "recoverable", True):
            return
        manager.note_failure(str(getattr(error, "type", "session_error")), _error_kind(error))

    def on_close(ev: CloseEvent) -> None:
        if ev.reason == CloseReason.ERROR:
            kind = ev.error.type if ev.error is not None else "session_error"
            manager.note_failure(kind, _error_kind(ev.error), fatal=True)

    session.on("error", on_error)
    session.on("close", on_close)
    session.on("conversation_item_added", on_item)
    session.on("session_usage_updated", on_usage)
    session.on("function_tools_executed", on_tools)


def _error_kind(error: Any) -> str:
    """The failing exception's type name (its message can quote the caller, so it stays out)."""
    inner = getattr(error, "error", None)
    return type(inner).__name__ if isinstance(inner, BaseException) else "unknown"
