"""Calls for the operator console's tests, written by the real ConversationManager.

Each call has what a page must show: agent runs and a handoff, tool calls, an interrupted
reply and the caller turn that cut it, per-reply latency metrics, a slow reply, a hostile
message (markup, script, terminal escapes), an incomplete mark, and an older call for the
date filters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from conversation_manager import ConversationManager
from settings import Settings
from storage.records import ConversationStore

HOSTILE_TEXT = (
    '<script>window.__console_xss = 1</script> <img src=x onerror="window.__console_xss = 2"> '
    "\x1b[2J\x1b]0;pwned\x07 tail\rover"
)
CALLER_NAME = "Omar"
CALLER_PHONE = "+963991234567"


@dataclass(frozen=True)
class SeededCalls:
    booked: str
    """ar, booked, 3 replies (the second interrupted by caller turn 4), a handoff, two tool calls"""
    slow: str
    """en, cancelled, one reply slower than SLOW_TURN_MS"""
    hostile: str
    """ended as abandoned, a hostile caller message, marked incomplete"""
    old: str
    """information_only, three days ago"""


class StepClock:
    """A clock that moves 0.5 s per reading from `start`, so rows have distinct, ordered times."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


def metrics(e2e: float, llm: float = 0.4, tts: float = 0.2) -> dict[str, dict[str, float]]:
    return {"metrics": {"e2e_latency": e2e, "llm_node_ttft": llm, "tts_node_ttfb": tts}}


def caller_metrics(eou: float) -> dict[str, dict[str, float]]:
    return {"metrics": {"end_of_turn_delay": eou}}


async def seed_calls(store: ConversationStore, journal_dir: Path, *, now: float | None = None) -> SeededCalls:
    start = now if now is not None else time.time() - 600

    def manager(language: str, at: float) -> ConversationManager:
        return ConversationManager.from_settings(
            store,
            Settings(),
            journal_dir=journal_dir,
            default_country_code="963",
            language=language,
            clock=StepClock(at),
        )

    m = manager("ar", start)
    booked = await m.start_conversation(None, "console-room", "caller-a")
    m.runs.open_run("ReceptionAgent")
    m.add_message_to_local_transcript("assistant", "مرحبا، كيف أساعدك؟", metadata=metrics(0.8))
    m.add_message_to_local_transcript(
        "user", f"my name is {CALLER_NAME}, number 0991234567", metadata=caller_metrics(0.3)
    )
    m.add_tool_call("verify_caller", {"zip_code": "11001"}, "verified", duration_ms=35.0)
    m.runs.open_run("AppointmentsAgent")
    cut = m.add_message_to_local_transcript(
        "assistant", "You have two appointments, the first", interrupted=True, metadata=metrics(1.1)
    )
    m.add_message_to_local_transcript(
        "user", "book the Monday one", metadata={"interrupts_seq": cut, **caller_metrics(0.25)}
    )
    m.add_tool_call("book_appointment", {"slot": "monday"}, "proposed", duration_ms=50.0)
    m.add_effect("booked")
    m.add_message_to_local_transcript("assistant", "Booked for Monday.", metadata=metrics(0.9))
    m.update_conversation(avatar_status="ready")
    await m.end_conversation()

    m = manager("en", start + 60)
    slow = await m.start_conversation(None, "console-room", "caller-b")
    m.add_message_to_local_transcript("user", "cancel my appointment", metadata=caller_metrics(0.4))
    m.add_tool_call("cancel_appointment", {"ref": "x"}, "no such appointment", is_error=True, duration_ms=20.0)
    m.add_effect("cancelled")
    m.add_message_to_local_transcript("assistant", "It is cancelled.", metadata=metrics(3.5))
    await m.end_conversation()

    m = manager("en", start + 120)
    hostile = await m.start_conversation(None, "console-room", "caller-c")
    m.add_message_to_local_transcript("user", HOSTILE_TEXT)
    m.add_message_to_local_transcript("assistant", "Sorry?", metadata=metrics(0.7))
    await m.end_conversation(status="abandoned")
    # The worker held one more turn than reached the store: the record is marked incomplete (issue 13's mark).
    m.add_message_to_local_transcript("user", "a turn that never reached the store")
    await store.mark_incomplete(m.transcript.to_record(), "journal lost: disk full")

    m = manager("en", start - 3 * 86400)
    old = await m.start_conversation(None, "console-room", "caller-d")
    m.add_message_to_local_transcript("user", "what are your opening hours")
    m.add_message_to_local_transcript("assistant", "From nine to five.", metadata=metrics(0.6))
    await m.end_conversation()
    return SeededCalls(booked=booked, slow=slow, hostile=hostile, old=old)
