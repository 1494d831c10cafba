"""The conversation-record interface every backend implements, and the rows it moves."""

from __future__ import annotations

import abc
import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]

CONVERSATION_COLUMNS = (
    "conversation_id",
    "room_name",
    "participant_identity",
    "status",
    "started_at",
    "ended_at",
    "duration_seconds",
    "message_count",
    "user_name",
    "user_phone",
    "user_email",
    "customer_id",
    "language",
    "outcome",
    "summary",
    "avatar_status",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_max_ms",
    "slow_turns",
    "metadata",
    "record_events",
    "record_complete",
)
MESSAGE_COLUMNS = (
    "conversation_id",
    "seq",
    "role",
    "content",
    "interrupted",
    "created_at",
    "agent_run_id",
    "metadata",
)
TOOL_CALL_COLUMNS = (
    "conversation_id",
    "seq",
    "call_id",
    "name",
    "arguments",
    "output",
    "is_error",
    "duration_ms",
    "created_at",
    "agent_run_id",
)
AGENT_RUN_COLUMNS = (
    "run_id",
    "conversation_id",
    "agent_type",
    "parent_run_id",
    "started_at",
    "ended_at",
    "llm_calls",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "tool_calls",
    "tool_errors",
    "feedback",
    "metadata",
)
JSON_COLUMNS = frozenset({"metadata", "arguments"})
STATUSES = ("active", "completed", "failed", "abandoned")
STATUS_RANK = {"active": 0, "abandoned": 1, "completed": 2, "failed": 2}
"""How far along a call a status says it got: a write never lowers it (0006_record_integrity.sql)."""


class StoreError(Exception):
    """A backend could not complete a read or write (unreachable, timed out, rejected)."""


@dataclass
class CallRecord:
    """Everything one call leaves behind, as rows ready for a bulk write."""

    conversation: Row
    messages: list[Row] = field(default_factory=list)
    tool_calls: list[Row] = field(default_factory=list)
    agent_runs: list[Row] = field(default_factory=list)

    @property
    def conversation_id(self) -> str:
        return str(self.conversation["conversation_id"])


@dataclass(frozen=True)
class RecordState:
    """How far along the stored record of a call is (the columns of 0006_record_integrity.sql)."""

    events: int
    complete: bool
    status: str
    message_count: int

    @classmethod
    def of(cls, row: Row) -> RecordState:
        return cls(
            events=int(row.get("record_events") or 0),
            complete=bool(row.get("record_complete", True)),
            status=str(row.get("status") or "active"),
            message_count=int(row.get("message_count") or 0),
        )

    def moves_back(self, incoming: RecordState) -> bool:
        """Would writing `incoming` over this lose something? The rule both stores enforce in the
        database (a trigger) for every writer: fewer events, fewer messages or an earlier status
        never replace more, and an as-far incomplete write never replaces a whole one."""
        return (
            incoming.events < self.events
            or incoming.message_count < self.message_count
            or STATUS_RANK.get(incoming.status, 0) < STATUS_RANK.get(self.status, 0)
            or (incoming.events == self.events > 0 and self.complete and not incoming.complete)
        )


@dataclass
class ConversationDetail:
    conversation: Row
    messages: list[Row]
    tool_calls: list[Row]
    agent_runs: list[Row]


@dataclass
class StatusStats:
    status: str
    count: int
    avg_duration_seconds: float | None
    avg_message_count: float | None


@dataclass(frozen=True)
class Report:
    """What operators read about recent days (the `sql/` reporting views, in both backends).

    Daily sections cover the last `days` UTC days; agent usage and tool errors are all-time.
    """

    volume: list[Row]
    """day, calls, completed, abandoned, failed, avg_duration_seconds"""
    outcomes: list[Row]
    """day, outcome, calls"""
    latency: list[Row]
    """day, replies, p50_ms, p95_ms, max_ms (end-to-end latency of agent replies)"""
    agent_usage: list[Row]
    """agent_type, runs, llm_calls, prompt_tokens, completion_tokens, total_tokens, tool_calls, tool_errors"""
    tool_errors: list[Row]
    """name, calls, errors, error_rate, avg_duration_ms"""
    slow_turns: list[Row] = field(default_factory=list)
    """day, calls, slow_calls, slow_turns (replies slower than SLOW_TURN_MS, per the rows' `slow_turns`)"""


MAX_PAGE_ROWS = 500
"""The most conversations one search returns: a page, not an export."""


@dataclass(frozen=True)
class ConversationQuery:
    """Which conversations a search returns: every filter is a value, never query syntax.

    `since` and `until` are ISO dates or instants (UTC); `since` is inclusive, `until` exclusive.
    `slow`: at least one reply slower than SLOW_TURN_MS. `incomplete`: not every row of the
    record landed (`record_complete = false`). Newest first; `offset` pages.
    """

    status: str | None = None
    outcome: str | None = None
    language: str | None = None
    phone: str | None = None
    since: str | None = None
    until: str | None = None
    slow: bool = False
    incomplete: bool = False
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE_ROWS:
            raise ValueError(f"limit must be 1..{MAX_PAGE_ROWS}, got {self.limit}")
        if self.offset < 0:
            raise ValueError(f"offset must not be negative, got {self.offset}")


def is_incomplete(conversation: Row) -> bool:
    """Whether not every row of the record landed (`record_complete = false`; migration 0006)."""
    return not conversation.get("record_complete", True)


def report_since(days: int) -> str:
    """The first UTC day a `days`-day report covers (today counts as one), as YYYY-MM-DD."""
    return (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=max(1, days) - 1)).isoformat()


class ConversationStore(abc.ABC):
    """Conversation records. Every write is an idempotent upsert keyed by worker-made ids."""

    @abc.abstractmethod
    async def create_conversation(self, row: Row) -> None:
        """Insert the conversation row unless it exists (a late start never clobbers the end)."""

    @abc.abstractmethod
    async def write_call(self, record: CallRecord) -> int:
        """Write a whole call in bulk; returns the number of requests/statements it took.

        Never moves a stored record backwards (`RecordState.moves_back`): when the stored row is
        further along, only the messages and tool calls it lacks are added (a stored one is
        never overwritten) and its row and agent runs stay. While the rows of a write are on
        their way the row says `record_complete = false`, so a write cut half-way is visible.
        """

    @abc.abstractmethod
    async def record_state(self, conversation_id: str) -> RecordState | None:
        """How far along the stored record is; None when no row exists."""

    @abc.abstractmethod
    async def mark_incomplete(self, record: CallRecord, reason: str) -> None:
        """Say on the row that the worker held `record` (more than is stored) and why it may be
        lost: `record_complete = false`, `metadata.record_at_risk = reason`. Never moves it back."""

    @abc.abstractmethod
    async def list_conversations(
        self,
        *,
        limit: int = 20,
        status: str | None = None,
        phone: str | None = None,
        today: bool = False,
    ) -> list[Row]:
        """Most recent first."""

    @abc.abstractmethod
    async def search_conversations(self, query: ConversationQuery) -> list[Row]:
        """A page of conversations matching every filter of `query`, most recent first."""

    @abc.abstractmethod
    async def get_conversation(self, conversation_id: str) -> ConversationDetail | None: ...

    @abc.abstractmethod
    async def stats_by_status(self, *, today: bool = False) -> list[StatusStats]: ...

    @abc.abstractmethod
    async def report(self, *, days: int = 7) -> Report: ...

    @abc.abstractmethod
    async def aclose(self) -> None: ...


def pick(row: Row, columns: tuple[str, ...]) -> Row:
    """Only the known columns of `row` that are present (absent means "leave unchanged"), storable."""
    return {c: storable(row[c]) for c in columns if c in row}


def storable(value: Any) -> Any:
    """`value` as every backend can hold it, so one odd character cannot block a call's whole write
    (and every replay of it): no NUL (Postgres text and jsonb refuse it), no lone surrogate (not
    UTF-8; JSON tool arguments can carry one), no NaN or infinity (not JSON)."""
    if isinstance(value, str):
        value = value.replace("\x00", "")
        try:
            value.encode()
        except UnicodeEncodeError:
            value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value
