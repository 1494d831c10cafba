"""Agent runs: one trace per activation of an agent, with what it cost.

A run opens when an agent becomes active (the first agent of the call and every
handoff, re-entering an agent type included) and closes at the next activation or at
the end of the call. LLM calls and tokens come from the session's cumulative usage; the
tracker turns the running totals into per-run deltas, so the runs of a call always add
up to the session totals.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conversation_manager.transcript import iso


@dataclass
class AgentRun:
    run_id: str
    agent_type: str
    parent_run_id: str | None
    started_ts: float
    ended_ts: float | None = None
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "agent_type": self.agent_type,
            "parent_run_id": self.parent_run_id,
            "started_at": iso(self.started_ts),
            "ended_at": iso(self.ended_ts) if self.ended_ts is not None else None,
            "llm_calls": self.llm_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "tool_calls": self.tool_calls,
            "tool_errors": self.tool_errors,
            "metadata": self.metadata,
        }


class AgentRunTracker:
    """Counts per run. `on_change` receives a run's whole row when it opens or closes, and
    `on_counts(run_id, increments)` each growth of its counters in between: a few numbers
    per LLM call instead of a whole row keeps the journal off the turn's critical path."""

    def __init__(
        self,
        on_change: Callable[[dict[str, Any]], None],
        on_counts: Callable[[str, dict[str, int]], None],
        clock: Callable[[], float],
    ) -> None:
        self._on_change = on_change
        self._on_counts = on_counts
        self._clock = clock
        self.current: AgentRun | None = None
        self._seen_prompt = 0
        self._seen_completion = 0

    @property
    def current_run_id(self) -> str | None:
        return self.current.run_id if self.current else None

    def _publish(self) -> None:
        if self.current is not None:
            self._on_change(self.current.row())

    def open_run(self, agent_type: str) -> str:
        parent = self.close_run()
        self.current = AgentRun(
            run_id=f"run_{uuid.uuid4().hex}",
            agent_type=agent_type,
            parent_run_id=parent,
            started_ts=self._clock(),
        )
        self._publish()
        return self.current.run_id

    def close_run(self) -> str | None:
        """End the current run; returns its id."""
        run = self.current
        if run is None:
            return None
        run.ended_ts = self._clock()
        self._publish()
        self.current = None
        return run.run_id

    def tool_call(self, *, is_error: bool) -> None:
        if self.current is not None:
            self.current.tool_calls += 1
            self.current.tool_errors += int(is_error)
            self._on_counts(self.current.run_id, {"tool_calls": 1, "tool_errors": int(is_error)})

    def session_usage(self, prompt_total: int, completion_total: int) -> None:
        """Cumulative LLM tokens of the whole session; the growth belongs to the current run.

        Each LLM call reports its usage once, so a growth of the totals is one LLM call.
        """
        grew_prompt = prompt_total - self._seen_prompt
        grew_completion = completion_total - self._seen_completion
        self._seen_prompt, self._seen_completion = prompt_total, completion_total
        if self.current is not None and (grew_prompt or grew_completion):
            self.current.llm_calls += 1
            self.current.prompt_tokens += grew_prompt
            self.current.completion_tokens += grew_completion
            counts = {"llm_calls": 1, "prompt_tokens": grew_prompt, "completion_tokens": grew_completion}
            self._on_counts(self.current.run_id, counts)
