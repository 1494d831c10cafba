"""Feeds a LiveKit `AgentSession`'s events into a `ConversationManager` (thin glue)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.metrics.usage import LLMModelUsage
from livekit.agents.voice.events import (
    ConversationItemAddedEvent,
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


def attach(session: AgentSession, manager: ConversationManager) -> None:
    """Record every turn, tool call and agent run the session produces."""

    def on_item(ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if item.type == "message":
            metrics = message_metrics(item.metrics)
            seq = manager.add_message_to_local_transcript(
                item.role,
                item.text_content or "",
                {"metrics": metrics, "item_id": item.id},
                interrupted=item.interrupted,
                created_at=item.created_at,
            )
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

    session.on("conversation_item_added", on_item)
    session.on("session_usage_updated", on_usage)
    session.on("function_tools_executed", on_tools)
