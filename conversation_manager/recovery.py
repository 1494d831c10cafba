"""Replay of journals that did not reach the store: failed flushes and calls whose worker died.

Safe to run any time, from any number of processes: a live call's journal is locked and
skipped (its call holds the lock until the journal's fate is decided), each journal is
claimed before it is read, and every write is an upsert keyed by worker-made ids, so
replaying twice (or after a partial write) never duplicates a row.

Replay never moves a record backwards: a journal is compared with what is stored first
(`RecordState`), and one the store is already as far along as (a partial journal whose
call was saved whole from memory, a journal whose archiving failed) is archived without
writing. The stores enforce the same rule on every write, for races.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from conversation_manager.journal import archive, claim, pending_journals, prune_archive, read_events
from conversation_manager.transcript import CallTranscript
from storage.records import ConversationStore, RecordState, StoreError

logger = logging.getLogger("conversation_manager.recovery")


@dataclass
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    live: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    superseded: list[str] = field(default_factory=list)
    """Journals the store was already as far along as: archived, nothing written."""
    pruned: int = 0


async def replay_pending(
    store: ConversationStore,
    journal_dir: Path,
    *,
    timeout: float = 10.0,
    retention_days: float | None = None,
    also: tuple[Path, ...] = (),
) -> ReplayReport:
    """Write every pending journal of `journal_dir` (and of the rescue directories `also`)."""
    report = ReplayReport()
    for path in pending_journals(journal_dir, *also):
        with claim(path) as claimed:
            if not claimed:
                report.live.append(path.name)
                continue
            await _replay_one(store, path, timeout, report)
    if retention_days is not None:
        report.pruned = sum(prune_archive(d, retention_days) for d in dict.fromkeys((journal_dir, *also)))
    if report.replayed or report.failed or report.superseded:
        logger.info(
            "journal replay: %d written (%d abandoned), %d already stored, %d failed, %d live",
            len(report.replayed),
            len(report.abandoned),
            len(report.superseded),
            len(report.failed),
            len(report.live),
        )
    return report


async def _replay_one(store: ConversationStore, path: Path, timeout: float, report: ReplayReport) -> None:
    events = read_events(path)
    if not events:
        archive(path)  # the process died before the first event: nothing to write
        return
    if events[0].get("type") != "start":
        report.failed[path.name] = "journal does not begin with a start event"
        return
    transcript = CallTranscript.from_events(events)
    record = transcript.to_record()
    cid = record.conversation_id
    try:
        stored = await asyncio.wait_for(store.record_state(cid), timeout)
        journaled = RecordState.of(record.conversation)
        as_far = stored is not None and (stored.events >= journaled.events or stored.moves_back(journaled))
        if stored is not None and stored.complete and as_far:
            archive(path)
            report.superseded.append(cid)
            logger.info(
                "journal of %s holds %d events, the store has %d (%s): archived, nothing written",
                cid,
                record.conversation["record_events"],
                stored.events,
                stored.status,
                extra={"conversation_id": cid},
            )
            return
        await asyncio.wait_for(store.write_call(record), timeout)
    except (StoreError, TimeoutError) as e:
        report.failed[cid] = str(e) or f"timed out after {timeout:g}s"
        logger.warning("replay of %s failed, journal kept: %s", cid, report.failed[cid], extra={"conversation_id": cid})
        return
    archive(path)
    report.replayed.append(cid)
    if not transcript.ended:
        report.abandoned.append(cid)
