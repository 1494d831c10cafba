"""Calls in progress on this worker, read from their journals (which already hold every turn).

A journal in `pending/` whose lock is held belongs to a running call; one that is not locked
is a call that ended without reaching the store (it waits for replay). Reading never writes:
the console only opens journals read-only, and a torn last line is skipped as replay does.
Calls on other workers are not here: their journals are on their machines.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from conversation_manager.journal import journal_path, pending_journals, read_events
from conversation_manager.transcript import CallTranscript
from storage.records import ConversationDetail, Row


@dataclass(frozen=True)
class JournalCall:
    detail: ConversationDetail
    live: bool
    """True while the call's worker holds the journal's lock."""


def is_locked(path: Path) -> bool:
    """Whether a live call holds the journal. A shared probe lock, released at once."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the probe lock
    return False


def _detail(path: Path, *, live: bool) -> JournalCall | None:
    try:
        events = read_events(path)
    except OSError:
        return None  # archived (the call ended) between listing and reading
    if not events or events[0].get("type") != "start":
        return None
    try:
        transcript = CallTranscript.from_events(events)
    except (KeyError, TypeError, ValueError):
        return None  # not a journal this version can read; replay reports it
    record = transcript.to_record()
    conversation: Row = dict(record.conversation)
    if live:
        conversation["status"] = "active"
        conversation["ended_at"] = None
    return JournalCall(ConversationDetail(conversation, record.messages, record.tool_calls, record.agent_runs), live)


def live_calls(journal_dir: Path) -> list[JournalCall]:
    """Calls running on this worker now, most recent first."""
    calls = [
        call
        for path in pending_journals(journal_dir)
        if is_locked(path) and (call := _detail(path, live=True)) is not None
    ]
    return sorted(calls, key=lambda c: str(c.detail.conversation.get("started_at") or ""), reverse=True)


def journal_call(journal_dir: Path, conversation_id: str) -> JournalCall | None:
    """The pending journal of one call, live or waiting for replay, if this worker has it."""
    path = journal_path(journal_dir, conversation_id)
    if not path.is_file():
        return None
    found = _detail(path, live=is_locked(path))
    if found is None or found.detail.conversation.get("conversation_id") != conversation_id:
        return None
    return found
