"""`ConversationManager`: the record of one call, from the first word to the bulk write.

While the call runs nothing here touches the network: turns go to memory and to the
journal. The only database writes are the background `active` row at the start and
the bulk write at the end, bounded by `flush_timeout`. A failed write leaves the journal
pending for `replay`; the call itself never waits on, or fails because of, the store.

When the write fails and the journal is not whole (its disk refused it), the record is
not given up quietly: a whole journal is written to the first of `rescue_dirs` that takes
it; failing that, the row is marked incomplete (if the store answers a small write) and
the write is retried for `retry_timeout` seconds, with one error line saying what is at
risk and, if it never lands, one saying what was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conversation_manager.agent_runs import AgentRunTracker
from conversation_manager.caller_details import CallerDetails
from conversation_manager.journal import Event, Journal, journal_path
from conversation_manager.outcome import EFFECTS
from conversation_manager.transcript import ROLES, CallTranscript, clean_content, is_blank, iso
from desk.phone import normalize_phone
from storage.records import CallRecord, ConversationDetail, ConversationStore, Row, StoreError

if TYPE_CHECKING:
    from settings import Settings

logger = logging.getLogger("conversation_manager")


def new_conversation_id(room_name: str) -> str:
    """Unique per call even when rooms are reused: the room's letters for humans, a random tail.

    No digit of the room name is kept: with LiveKit's individual SIP dispatch rule the room is
    named after the caller's number, and this id names journal files and tags every log line.
    The room name itself is stored in its own column.
    """
    slug = re.sub(r"[^A-Za-z_]+", "-", room_name)
    slug = re.sub(r"[-_]*-[-_]*", "-", slug).strip("-_")[:40].strip("-_") or "call"
    return f"{slug}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class EndResult:
    """What `end_conversation` saved (figures operators see in the worker log)."""

    conversation_id: str
    status: str
    saved: bool
    messages_saved: int
    tool_calls_saved: int
    agent_runs_saved: int
    duration_seconds: float
    flush_ms: float
    requests: int
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConversationManager:
    """The record of one call. Create one per call (one per job)."""

    def __init__(
        self,
        store: ConversationStore,
        *,
        journal_dir: Path,
        flush_timeout: float,
        default_country_code: str,
        slow_turn_ms: float,
        language: str | None,
        rescue_dirs: Sequence[Path] = (),
        retry_timeout: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._journal_dir = journal_dir
        self._rescue_dirs = [journal_dir, *(d for d in rescue_dirs if d != journal_dir)]
        self._retry_timeout = retry_timeout
        self._flush_timeout = flush_timeout
        self._country_code = default_country_code
        self._slow_turn_ms = slow_turn_ms
        self._language = language
        self._clock = clock
        self._transcript = CallTranscript(country_code=default_country_code, slow_turn_ms=slow_turn_ms)
        self._journal: Journal | None = None
        self._start_write: asyncio.Task[None] | None = None
        self._result: EndResult | None = None
        self.runs = AgentRunTracker(self.record_agent_run, self._record_run_counts, clock)

    @classmethod
    def from_settings(cls, store: ConversationStore, settings: Settings, **overrides: Any) -> ConversationManager:
        """The record of one call as the deployment configures it (settings own every default)."""
        values: dict[str, Any] = {
            "journal_dir": settings.journal_dir,
            "flush_timeout": settings.flush_timeout,
            "default_country_code": settings.default_country_code,
            "slow_turn_ms": settings.slow_turn_ms,
            "language": settings.language,
            "rescue_dirs": [settings.journal_fallback_dir],
            "retry_timeout": settings.record_retry_timeout,
        }
        values.update(overrides)
        return cls(store, **values)

    # -- the call -------------------------------------------------------------------------

    @property
    def conversation_id(self) -> str:
        return self._transcript.conversation_id

    @property
    def transcript(self) -> CallTranscript:
        return self._transcript

    @property
    def journal(self) -> Journal | None:
        return self._journal

    def _record(self, event: Event) -> None:
        event.setdefault("ts", self._clock())
        self._transcript.apply(event)
        if self._journal is not None:
            self._journal.append(event)

    async def start_conversation(
        self,
        conversation_id: str | None,
        room_name: str,
        participant_identity: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Open the journal and write the `active` row in the background; returns the id."""
        if self._journal is not None:
            raise RuntimeError("this manager already recorded a conversation; use one per call")
        conversation_id = conversation_id or new_conversation_id(room_name)
        self._journal = Journal(journal_path(self._journal_dir, conversation_id), conversation_id=conversation_id)
        now = self._clock()
        row: Row = {
            "conversation_id": conversation_id,
            "room_name": room_name,
            "participant_identity": participant_identity,
            "status": "active",
            "started_at": iso(now),
            "language": self._language,
            "metadata": dict(metadata or {}),
        }
        self._record(
            {
                "type": "start",
                "ts": now,
                "conversation": row,
                "country_code": self._country_code,
                "slow_turn_ms": self._slow_turn_ms,
            }
        )
        self._start_write = asyncio.get_running_loop().create_task(self._write_active_row(dict(row)))
        logger.info("conversation started", extra={"conversation_id": conversation_id})
        return conversation_id

    async def _write_active_row(self, row: Row) -> None:
        try:
            await asyncio.wait_for(self._store.create_conversation(row), self._flush_timeout)
        except (StoreError, TimeoutError) as e:
            logger.warning(
                "could not write the active row (the end-of-call write will create it): %s",
                e or "timeout",
                extra={"conversation_id": row["conversation_id"]},
            )

    def add_message_to_local_transcript(
        self,
        role: str,
        content: str,
        metadata: dict[str, Any] | None = None,
        *,
        interrupted: bool = False,
        created_at: float | None = None,
        agent_run_id: str | None = None,
    ) -> int | None:
        """Buffer one turn (memory + journal, no network). Returns its seq, None if skipped."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {sorted(ROLES)}, got {role!r}")
        if not isinstance(content, str) or is_blank(content):
            return None
        seq = self._transcript.next_seq
        self._record(
            {
                "type": "message",
                "row": {
                    "seq": seq,
                    "role": role,
                    "content": clean_content(content),
                    "interrupted": bool(interrupted),
                    "created_at": iso(created_at if created_at is not None else self._clock()),
                    "agent_run_id": agent_run_id or self.runs.current_run_id,
                    "metadata": self._with_language(metadata),
                },
            }
        )
        return seq

    def _with_language(self, metadata: dict[str, Any] | None) -> dict[str, Any]:
        """Every message carries the language it was said in (the call's, unless the caller's
        turn was read otherwise)."""
        if self._language is None or (metadata and metadata.get("language")):
            return dict(metadata or {})
        return {**(metadata or {}), "language": self._language}

    def record_language(self, language: str, cause: str, turn: int) -> None:
        """The call's language was chosen or switched (`cause`: default, dispatch, customer,
        speech, request) at caller turn `turn`; later messages are in it."""
        self._language = language
        self._record({"type": "language", "language": language, "cause": cause, "turn": turn})

    def undo_language(self) -> None:
        """The last switch did not stand (the whole turn did not bear it out): forget it."""
        self._record({"type": "language_undo"})
        self._language = self._transcript.conversation.get("language") or self._language

    @property
    def language(self) -> str | None:
        return self._language

    def add_tool_call(
        self,
        name: str,
        arguments: dict[str, Any] | str,
        output: str | None,
        *,
        is_error: bool = False,
        call_id: str | None = None,
        duration_ms: float | None = None,
        created_at: float | None = None,
        agent_run_id: str | None = None,
    ) -> int:
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                arguments = {"_raw": arguments}
        if not isinstance(arguments, dict):
            arguments = {"_value": arguments}
        seq = self._transcript.next_seq
        self.runs.tool_call(is_error=is_error)
        self._record(
            {
                "type": "tool_call",
                "row": {
                    "seq": seq,
                    "call_id": call_id,
                    "name": name,
                    "arguments": arguments,
                    "output": clean_content(output) if output is not None else None,
                    "is_error": bool(is_error),
                    "duration_ms": duration_ms,
                    "created_at": iso(created_at if created_at is not None else self._clock()),
                    "agent_run_id": agent_run_id or self.runs.current_run_id,
                },
            }
        )
        return seq

    def record_agent_run(self, row: Row) -> None:
        """Store the latest snapshot of an agent run (keyed by its `run_id`)."""
        self._record({"type": "agent_run", "row": dict(row)})

    def _record_run_counts(self, run_id: str, counts: dict[str, int]) -> None:
        self._record({"type": "run_counts", "run_id": run_id, **counts})

    def set_caller_details(
        self, name: str | None = None, phone: str | None = None, email: str | None = None
    ) -> CallerDetails:
        """Details stated by a tool or the telephony layer; they win over extracted ones. A phone
        is kept in E.164 only (the desk's rule): what cannot be a number is not recorded as one."""
        if phone:
            phone = normalize_phone(phone, self._country_code)
        self._record({"type": "caller", "name": name or None, "phone": phone or None, "email": email or None})
        return self._transcript.caller

    def add_effect(self, effect: str) -> None:
        """Something a tool did (booked, cancelled, verification_failed...): the outcome is built from these."""
        if effect not in EFFECTS:
            raise ValueError(f"effect must be one of {sorted(EFFECTS)}, got {effect!r}")
        self._record({"type": "effect", "effect": effect})

    def update_conversation(self, **fields: Any) -> None:
        """Set conversation columns known mid-call (avatar_status, customer_id, ...)."""
        self._record({"type": "conversation", "fields": fields})

    def note_failure(self, kind: str, error: str, *, fatal: bool = False) -> None:
        """The LLM, STT or TTS failed in a way the caller noticed (`kind`: llm_error, stt_error,
        tts_error, session_error; `error`: the exception's type, never its text, which can quote
        the caller), or the session closed on an error (`fatal`). A call still unserved at its
        end is stored as `failed`, the failure in `metadata.failure`."""
        self._record({"type": "failure", "kind": kind, "error": error, "fatal": fatal})
        logger.warning(
            "the caller was not served: %s (%s)%s",
            kind,
            error,
            ", the session closed" if fatal else "",
            extra={"conversation_id": self.conversation_id},
        )

    # -- the end --------------------------------------------------------------------------

    async def end_conversation(
        self,
        user_name: str | None = None,
        user_phone: str | None = None,
        user_email: str | None = None,
        summary: str | None = None,
        *,
        status: str = "completed",
    ) -> EndResult:
        """Write the whole call in one bulk write within `flush_timeout`. Idempotent."""
        if self._result is not None:
            return self._result
        if self._journal is None:
            raise RuntimeError("end_conversation() before start_conversation()")
        deadline = time.monotonic() + self._flush_timeout
        cid = self.conversation_id
        journal = self._journal
        if user_name or user_phone or user_email:
            self.set_caller_details(user_name, user_phone, user_email)
        self.runs.close_run()
        if status == "completed" and self._transcript.unserved:
            status = "failed"
        self._record({"type": "end", "status": status, "summary": summary})
        await journal.seal()
        record = self._transcript.to_record()
        began = time.perf_counter()
        try:
            if self._start_write is not None and not self._start_write.done():
                # The active row is insert-if-absent, so letting it finish first is only tidiness.
                await asyncio.wait({self._start_write}, timeout=max(0.0, deadline - time.monotonic()))
            began = time.perf_counter()
            requests, error = await self._write(record, max(0.05, deadline - time.monotonic()))
            flush_ms = (time.perf_counter() - began) * 1000
            if error is None:
                journal.archive()
                logger.info(
                    "conversation saved: %d messages, %d tool calls in %.0f ms",
                    len(record.messages),
                    len(record.tool_calls),
                    flush_ms,
                    extra={"conversation_id": cid},
                )
            else:
                requests, error = await self._keep_unsaved(record, error, requests)
                flush_ms = (time.perf_counter() - began) * 1000
        finally:
            journal.release()  # the journal's fate is decided (archived, or pending for replay)
        saved = error is None
        self._result = EndResult(
            conversation_id=cid,
            status=record.conversation["status"],
            saved=saved,
            messages_saved=len(record.messages) if saved else 0,
            tool_calls_saved=len(record.tool_calls) if saved else 0,
            agent_runs_saved=len(record.agent_runs) if saved else 0,
            duration_seconds=record.conversation["duration_seconds"],
            flush_ms=round(flush_ms, 1),
            requests=requests,
            error=error,
        )
        return self._result

    async def _write(self, record: CallRecord, timeout: float) -> tuple[int, str | None]:
        """One bounded attempt at the bulk write: (requests, error or None)."""
        try:
            return await asyncio.wait_for(self._store.write_call(record), timeout), None
        except (StoreError, TimeoutError) as e:
            return 0, str(e) or f"timed out after {timeout:g}s"
        except Exception as e:  # whatever else a store does wrong, the record is kept for another try
            logger.exception("end-of-call write raised", extra={"conversation_id": record.conversation_id})
            return 0, f"{type(e).__name__}: {e}"

    async def _keep_unsaved(self, record: CallRecord, error: str, requests: int) -> tuple[int, str | None]:
        """The write failed: keep the record where a replay finds it, or say loudly what is at risk."""
        journal = self._journal
        assert journal is not None
        cid = record.conversation_id
        if journal.state != "written":
            journal.rescue(self._rescue_dirs)
        if journal.state == "written":
            logger.error(
                "conversation NOT saved, journal kept for replay (%s): %s",
                journal.path,
                error,
                extra={"conversation_id": cid},
            )
            return requests, error
        at_risk = (
            f"{len(record.messages)} messages, {len(record.tool_calls)} tool calls, its status and outcome; "
            f"journal {journal.state}: {journal.at_risk}"
        )
        logger.error(
            "RECORD AT RISK: conversation %s NOT saved (%s) and no journal could be kept (%s); held in memory "
            "(%s), retrying the write for %gs before this process exits",
            cid,
            error,
            journal.failed,
            at_risk,
            self._retry_timeout,
            extra={"conversation_id": cid},
        )
        retry_until = time.monotonic() + self._retry_timeout
        pause = 0.25
        while (left := retry_until - time.monotonic()) > 0:
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 2.0)
            requests, error = await self._write(record, max(0.05, min(self._flush_timeout, left)))
            if error is None:
                logger.warning("conversation saved on a retry of the final write", extra={"conversation_id": cid})
                journal.archive()
                return requests, None
        # After the retries (each rewrites the row): the row says what is missing, if the store answers.
        with contextlib.suppress(StoreError, TimeoutError):
            await asyncio.wait_for(
                self._store.mark_incomplete(record, f"worker could not save the record or its journal: {error}"),
                min(self._flush_timeout, 2.0),
            )
        logger.error(
            "RECORD LOST: conversation %s could not be saved (%s); lost unless a partial journal remains: %s",
            cid,
            error,
            at_risk,
            extra={"conversation_id": cid},
        )
        return requests, error

    # -- reading past calls ---------------------------------------------------------------

    async def get_conversation_list(
        self, limit: int = 20, status: str | None = None, phone: str | None = None
    ) -> list[Row]:
        if phone:
            phone = normalize_phone(phone, self._country_code) or phone
        return await self._store.list_conversations(limit=limit, status=status, phone=phone)

    async def get_conversation_with_messages(self, conversation_id: str) -> ConversationDetail | None:
        return await self._store.get_conversation(conversation_id)
