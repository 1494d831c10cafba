"""What each console page shows, as plain data: the HTML pages and their JSON twins both use it.

Request parameters are parsed here into values (never query syntax); anything out of range
is a `BadRequest` with a message that says what is accepted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conversation_manager.caller_details import normalize_phone
from conversation_manager.outcome import OUTCOMES
from storage.records import STATUSES, ConversationDetail, ConversationQuery, Report, Row, StatusStats

PAGE_SIZE = 50
MAX_PAGE = 10_000
MAX_PHONE_CHARS = 32
MAX_ID_CHARS = 200
MAX_STATS_DAYS = 366
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_METRICS = (
    ("e2e_ms", "end of speech to first audio"),
    ("eou_ms", "end of utterance"),
    ("llm_ttft_ms", "LLM first token"),
    ("tts_ttfb_ms", "TTS first byte"),
)


class BadRequest(ValueError):
    """A parameter the console cannot use; the message says what it accepts."""


@dataclass(frozen=True)
class ListFilters:
    status: str | None = None
    outcome: str | None = None
    language: str | None = None
    phone: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    slow: bool = False
    incomplete: bool = False
    page: int = 1

    @classmethod
    def parse(cls, params: Mapping[str, str], *, country_code: str) -> ListFilters:
        def text(name: str) -> str | None:
            value = params.get(name, "").strip()
            return value or None

        status, outcome, language = text("status"), text("outcome"), text("language")
        if status and status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        if outcome and outcome not in OUTCOMES:
            raise BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}")
        if language and not _LANGUAGE.match(language):
            raise BadRequest("language must be a language code such as en or ar")
        phone = text("phone")
        if phone is not None:
            if len(phone) > MAX_PHONE_CHARS:
                raise BadRequest(f"phone must be at most {MAX_PHONE_CHARS} characters")
            normalized = normalize_phone(phone, country_code)
            if normalized is None:
                raise BadRequest("phone must be a phone number, e.g. +963991234567 or 0991234567")
            phone = normalized
        date_from, date_to = _date(text("from"), "from"), _date(text("to"), "to")
        if date_from and date_to and date_to < date_from:
            raise BadRequest("the 'to' date is before the 'from' date")
        return cls(
            status=status,
            outcome=outcome,
            language=language,
            phone=phone,
            date_from=date_from,
            date_to=date_to,
            slow=_flag(params, "slow"),
            incomplete=_flag(params, "incomplete"),
            page=_bounded_int(params.get("page"), "page", default=1, low=1, high=MAX_PAGE),
        )

    def query(self) -> ConversationQuery:
        return ConversationQuery(
            status=self.status,
            outcome=self.outcome,
            language=self.language,
            phone=self.phone,
            since=_start_of(self.date_from) if self.date_from else None,
            until=_start_of(self.date_to + dt.timedelta(days=1)) if self.date_to else None,
            slow=self.slow,
            incomplete=self.incomplete,
            limit=PAGE_SIZE + 1,  # one more tells whether a next page exists
            offset=(self.page - 1) * PAGE_SIZE,
        )

    def as_params(self, **changes: Any) -> dict[str, str]:
        """The filters as URL parameters (for page links), with `changes` applied."""
        values = {
            "status": self.status,
            "outcome": self.outcome,
            "language": self.language,
            "phone": self.phone,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "slow": "1" if self.slow else None,
            "incomplete": "1" if self.incomplete else None,
            "page": str(self.page) if self.page > 1 else None,
        }
        values.update({k: (None if v is None else str(v)) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v is not None}

    def as_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in dataclasses.asdict(self).items()}


def _start_of(day: dt.date) -> str:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).isoformat()


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    if len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise BadRequest(f"'{name}' must be a date as YYYY-MM-DD")


def _flag(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name, "").strip().lower()
    if value in ("", "0", "false", "off"):
        return False
    if value in ("1", "true", "on", "yes"):
        return True
    raise BadRequest(f"{name} must be 1 or 0")


def _bounded_int(value: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if value is None or not value.strip():
        return default
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 7 or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(text)


def stats_days(params: Mapping[str, str]) -> int:
    return _bounded_int(params.get("days"), "days", default=7, low=1, high=MAX_STATS_DAYS)


def check_conversation_id(conversation_id: str) -> str:
    if not conversation_id or len(conversation_id) > MAX_ID_CHARS or not conversation_id.isprintable():
        raise BadRequest(f"a conversation id is 1 to {MAX_ID_CHARS} printable characters")
    return conversation_id


# ------------------------------------------------------------------------------ one call


@dataclass
class Section:
    """The part of a call one agent handled (an agent run), in order."""

    agent_type: str
    run_id: str | None
    started_at: str | None
    items: list[Row] = field(default_factory=list)


def _ms(value: Any) -> float | None:
    return round(value * 1000, 1) if isinstance(value, int | float) and value >= 0 else None


def call_view(detail: ConversationDetail) -> dict[str, Any]:
    """The call as a conversation: items in order (with who cut each interrupted reply),
    grouped into agent-run sections, and one latency point per reply."""
    runs = {r["run_id"]: r for r in detail.agent_runs}
    cut_by = {
        m["metadata"]["interrupts_seq"]: m["seq"]
        for m in detail.messages
        if m["role"] == "user" and isinstance((m.get("metadata") or {}).get("interrupts_seq"), int)
    }
    items: list[Row] = [
        {"kind": "message", **m, "cut_by_seq": cut_by.get(m["seq"]) if m["interrupted"] else None}
        for m in detail.messages
    ]
    items += [{"kind": "tool", **t} for t in detail.tool_calls]
    items.sort(key=lambda item: item["seq"])

    sections: list[Section] = []
    for item in items:
        run_id = item.get("agent_run_id")
        if not sections or sections[-1].run_id != run_id:
            run = runs.get(run_id, {})
            sections.append(Section(run.get("agent_type", "agent"), run_id, run.get("started_at")))
        sections[-1].items.append(item)
    return {"sections": sections, "latency": latency_points(detail.messages)}


def latency_points(messages: list[Row]) -> list[Row]:
    """One point per agent reply: end of speech to first audio (e2e) and the pieces the record has
    (end of utterance from the caller's turn before it, LLM first token, TTS first byte), in ms."""
    points: list[Row] = []
    last_user_metrics: Row = {}
    for m in messages:
        metrics = (m.get("metadata") or {}).get("metrics") or {}
        if m["role"] == "user":
            last_user_metrics = metrics
            continue
        if m["role"] != "assistant":
            continue
        points.append(
            {
                "seq": m["seq"],
                "reply": len(points) + 1,
                "e2e_ms": _ms(metrics.get("e2e_latency")),
                "eou_ms": _ms(last_user_metrics.get("end_of_turn_delay")),
                "llm_ttft_ms": _ms(metrics.get("llm_node_ttft")),
                "tts_ttfb_ms": _ms(metrics.get("tts_node_ttfb")),
                "interrupted": bool(m["interrupted"]),
            }
        )
        last_user_metrics = {}
    return points


def latency_series() -> list[dict[str, str]]:
    return [{"key": key, "label": label} for key, label in _METRICS]


# ------------------------------------------------------------------------------ stats


def stats_view(by_status: list[StatusStats], report: Report, days: int) -> dict[str, Any]:
    return {"days": days, "by_status": [dataclasses.asdict(s) for s in by_status], **dataclasses.asdict(report)}
