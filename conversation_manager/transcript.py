"""The call's record in memory, built by applying journal events.

The live call and the replay of a journal after a crash go through the same
`CallTranscript.apply`, so what recovery writes is exactly what the call would have.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from conversation_manager.caller_details import CallerDetails, accumulate, extract
from conversation_manager.journal import Event
from conversation_manager.outcome import built_summary, derive_outcome
from storage.records import CallRecord, Row

MAX_CONTENT_CHARS = 32_000
TRUNCATION_MARKER = "\n[... truncated {dropped} characters]"
ROLES = frozenset({"user", "assistant", "system", "developer"})
RUN_COUNTERS = ("llm_calls", "prompt_tokens", "completion_tokens", "tool_calls", "tool_errors")
"""Agent-run counters journaled as increments (`run_counts` events) rather than whole rows."""


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def clean_content(text: str) -> str:
    """Postgres text cannot hold NUL; everything else (controls, RTL marks) is kept as said."""
    text = text.replace("\x00", "")
    if len(text) > MAX_CONTENT_CHARS:
        dropped = len(text) - MAX_CONTENT_CHARS
        text = text[:MAX_CONTENT_CHARS] + TRUNCATION_MARKER.format(dropped=dropped)
    return text


_BLANK_CATEGORIES = frozenset({"Zs", "Cc", "Cf", "Zl", "Zp"})


def is_blank(text: str) -> bool:
    return all(unicodedata.category(c) in _BLANK_CATEGORIES for c in text)


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_summary(messages: list[Row], slow_turn_ms: float) -> Row:
    """p50/p95/max end-to-end latency of the agent's replies, and how many were slow."""
    e2e = sorted(
        m["metadata"]["metrics"]["e2e_latency"] * 1000
        for m in messages
        if m["role"] == "assistant" and "e2e_latency" in m.get("metadata", {}).get("metrics", {})
    )
    if not e2e:
        return {"latency_p50_ms": None, "latency_p95_ms": None, "latency_max_ms": None, "slow_turns": 0}
    return {
        "latency_p50_ms": round(_percentile(e2e, 0.50), 1),
        "latency_p95_ms": round(_percentile(e2e, 0.95), 1),
        "latency_max_ms": round(e2e[-1], 1),
        "slow_turns": sum(1 for v in e2e if v > slow_turn_ms),
    }


def language_metadata(changes: list[Row]) -> Row:
    """`language_source` (the first choice and its cause) and `language_switches` (each later
    change with its cause and caller turn) for the conversation's metadata."""
    if not changes:
        return {}
    first = changes[0]
    return {
        "language_source": {"language": first["language"], "cause": first["cause"]},
        "language_switches": [dict(c) for c in changes[1:]],
    }


@dataclass
class CallTranscript:
    conversation: Row = field(default_factory=dict)
    messages: list[Row] = field(default_factory=list)
    tool_calls: list[Row] = field(default_factory=list)
    agent_runs: dict[str, Row] = field(default_factory=dict)
    effects: list[str] = field(default_factory=list)
    language_changes: list[Row] = field(default_factory=list)
    """The call's first language and every switch: language, cause, turn, previous, seq."""
    extracted: CallerDetails = field(default_factory=CallerDetails)
    extracted_upto: int = 0
    """Messages already read for caller details: extraction runs when the details are asked
    for, not on every turn (it is off the call's hot path)."""
    explicit: CallerDetails = field(default_factory=CallerDetails)
    country_code: str = ""
    """DEFAULT_COUNTRY_CODE, from the call's start event (settings own the value)."""
    slow_turn_ms: float = math.inf
    """SLOW_TURN_MS, from the call's start event (settings own the value)."""
    started_ts: float = 0.0
    last_ts: float = 0.0
    ended: bool = False
    next_seq: int = 0
    events: int = 0
    """Events applied: how far along the record is (`record_events`); a journal's prefix has fewer."""
    failures: list[Row] = field(default_factory=list)
    """Unrecoverable LLM/STT/TTS errors and an error-closed session, in order."""
    unserved: bool = False
    """The last failure left the caller without a reply (no agent reply since, or the session closed)."""

    @property
    def conversation_id(self) -> str:
        return str(self.conversation.get("conversation_id", ""))

    @classmethod
    def from_events(cls, events: list[Event]) -> CallTranscript:
        transcript = cls()
        for event in events:
            transcript.apply(event)
        return transcript

    def apply(self, event: Event) -> None:
        kind = event["type"]
        self.events += 1
        self.last_ts = max(self.last_ts, float(event.get("ts", 0.0)))
        if kind == "start":
            self.conversation = dict(event["conversation"])
            self.country_code = event.get("country_code", self.country_code)
            self.slow_turn_ms = float(event.get("slow_turn_ms", self.slow_turn_ms))
            self.started_ts = float(event["ts"])
        elif kind == "message":
            row = event["row"]
            self.messages.append(row)
            self.next_seq = max(self.next_seq, row["seq"] + 1)
            if row["role"] == "assistant" and self.unserved and not any(f.get("fatal") for f in self.failures):
                self.unserved = False
        elif kind == "tool_call":
            self.tool_calls.append(event["row"])
            self.next_seq = max(self.next_seq, event["row"]["seq"] + 1)
        elif kind == "effect":
            self.effects.append(event["effect"])
        elif kind == "agent_run":
            self.agent_runs[event["row"]["run_id"]] = event["row"]
        elif kind == "run_counts":
            run = self.agent_runs.get(event["run_id"])
            if run is not None:
                for counter in RUN_COUNTERS:
                    run[counter] = run.get(counter, 0) + event.get(counter, 0)
                run["total_tokens"] = run["prompt_tokens"] + run["completion_tokens"]
        elif kind == "language":
            previous = self.conversation.get("language") if self.language_changes else None
            self.language_changes.append(
                {
                    "language": event["language"],
                    "cause": event["cause"],
                    "turn": int(event.get("turn", 0)),
                    "previous": previous,
                    "seq": self.next_seq,
                }
            )
            self.conversation["language"] = event["language"]
        elif kind == "language_undo":
            if len(self.language_changes) > 1:
                undone = self.language_changes.pop()
                self.conversation["language"] = undone["previous"]
        elif kind == "caller":
            given = CallerDetails(event.get("name"), event.get("phone"), event.get("email"))
            self.explicit = given.merged_over(self.explicit)
        elif kind == "conversation":
            fields: dict[str, Any] = dict(event["fields"])  # the event itself is journaled as it is
            metadata = {**self.conversation.get("metadata", {}), **fields.pop("metadata", {})}
            self.conversation.update(fields, metadata=metadata)
        elif kind == "failure":
            self.failures.append({k: event.get(k) for k in ("kind", "error", "fatal", "ts")})
            self.unserved = True
        elif kind == "end":
            self.ended = True
            self.conversation["status"] = event["status"]
            if event.get("summary"):
                self.conversation["summary"] = event["summary"]
        else:
            raise ValueError(f"unknown journal event type {kind!r}")

    @property
    def caller(self) -> CallerDetails:
        """What tools or the telephony layer stated wins over what was heard."""
        for row in self.messages[self.extracted_upto :]:
            if row["role"] == "user":
                self.extracted = accumulate(self.extracted, extract(row["content"], self.country_code))
        self.extracted_upto = len(self.messages)
        return self.explicit.merged_over(self.extracted)

    def _failure(self) -> Row:
        """`metadata.failure`: what failed (the last failure's kind and error type) and how often."""
        if not self.failures:
            return {}
        last = self.failures[-1]
        return {
            "failure": {
                "kind": last["kind"],
                "error": last["error"],
                "count": len(self.failures),
                "session_closed": any(f.get("fatal") for f in self.failures),
                "caller_unserved": self.unserved,
            }
        }

    def to_record(self) -> CallRecord:
        """The rows to write; a call that never ended is written as `abandoned`."""
        caller = self.caller
        caller_spoke = any(m["role"] == "user" for m in self.messages)
        outcome = derive_outcome(self.effects, ended=self.ended, caller_spoke=caller_spoke)
        language = str(self.conversation.get("language") or "en")
        conversation = {
            **self.conversation,
            "status": self.conversation.get("status", "active") if self.ended else "abandoned",
            "outcome": outcome,
            "summary": self.conversation.get("summary") or built_summary(language, outcome, caller),
            "metadata": {
                **self.conversation.get("metadata", {}),
                "effects": list(self.effects),
                **language_metadata(self.language_changes),
                **self._failure(),
            },
            "ended_at": iso(self.last_ts),
            "duration_seconds": round(max(0.0, self.last_ts - self.started_ts), 3),
            "message_count": len(self.messages),
            "user_name": caller.name,
            "user_phone": caller.phone,
            "user_email": caller.email,
            **latency_summary(self.messages, self.slow_turn_ms),
            "record_events": self.events,
        }
        cid = self.conversation_id
        return CallRecord(
            conversation=conversation,
            messages=[{**m, "conversation_id": cid} for m in self.messages],
            tool_calls=[{**t, "conversation_id": cid} for t in self.tool_calls],
            agent_runs=[{**r, "conversation_id": cid} for r in self.agent_runs.values()],
        )
