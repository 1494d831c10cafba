"""Conversation records in an embedded SQLite file: the default when no Supabase is set."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from storage.records import (
    AGENT_RUN_COLUMNS,
    CONVERSATION_COLUMNS,
    JSON_COLUMNS,
    MESSAGE_COLUMNS,
    TOOL_CALL_COLUMNS,
    CallRecord,
    ConversationDetail,
    ConversationQuery,
    ConversationStore,
    RecordState,
    Report,
    Row,
    StatusStats,
    StoreError,
    pick,
    report_since,
)

SCHEMA = Path(__file__).with_name("sqlite_schema.sql")
BOOL_COLUMNS = frozenset({"interrupted", "is_error", "record_complete"})
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (table, column, definition): columns later migrations added, for files made before them
    ("conversations", "record_events", "integer not null default 0 check (record_events >= 0)"),
    ("conversations", "record_complete", "integer not null default 1"),
)


async def open_sqlite(
    path: Path, schema: Path, *, timeout: float, added_columns: tuple[tuple[str, str, str], ...] = ()
) -> aiosqlite.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, timeout=timeout)
    db.row_factory = aiosqlite.Row
    await db.execute("pragma journal_mode = wal")
    await db.execute("pragma foreign_keys = on")
    await _add_missing_columns(db, added_columns)
    await db.executescript(schema.read_text())
    await db.commit()
    return db


async def _add_missing_columns(db: aiosqlite.Connection, added: tuple[tuple[str, str, str], ...]) -> None:
    """An embedded file made by an older version gets the columns added since (`create table if
    not exists` leaves an existing table as it was)."""
    for table, column, definition in added:
        async with db.execute(f"pragma table_info({table})") as cursor:
            present = {row["name"] for row in await cursor.fetchall()}
        if present and column not in present:
            await db.execute(f"alter table {table} add column {column} {definition}")


def to_sql(value: Any, column: str) -> Any:
    if column in JSON_COLUMNS:
        return json.dumps(value if value is not None else {}, ensure_ascii=False)
    if column in BOOL_COLUMNS:
        return int(bool(value))
    return value


def from_sql(row: aiosqlite.Row) -> Row:
    out: Row = {}
    for key in row.keys():  # noqa: SIM118 - sqlite rows are not mappings
        value = row[key]
        if key in JSON_COLUMNS and isinstance(value, str):
            value = json.loads(value)
        elif key in BOOL_COLUMNS:
            value = bool(value)
        out[key] = value
    return out


def upsert_statement(table: str, columns: list[str], conflict: str, *, ignore_duplicates: bool = False) -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    keys = {c.strip() for c in conflict.split(",")}
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    action = f"do update set {updates}" if updates and not ignore_duplicates else "do nothing"
    return f"insert into {table} ({names}) values ({marks}) on conflict ({conflict}) {action}"


class SQLiteConversationStore(ConversationStore):
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path, *, timeout: float = 5.0) -> SQLiteConversationStore:
        return cls(await open_sqlite(path, SCHEMA, timeout=timeout, added_columns=ADDED_COLUMNS))

    async def _upsert(
        self,
        table: str,
        rows: list[Row],
        columns: tuple[str, ...],
        conflict: str,
        *,
        ignore_duplicates: bool = False,
    ) -> None:
        # Rows with different column sets (partial updates) need their own statements.
        groups: dict[tuple[str, ...], list[Row]] = {}
        for row in rows:
            picked = pick(row, columns)
            groups.setdefault(tuple(picked), []).append(picked)
        for cols, group in groups.items():
            sql = upsert_statement(table, list(cols), conflict, ignore_duplicates=ignore_duplicates)
            await self._db.executemany(sql, [[to_sql(r[c], c) for c in cols] for r in group])

    async def create_conversation(self, row: Row) -> None:
        try:
            await self._upsert("conversations", [row], CONVERSATION_COLUMNS, "conversation_id", ignore_duplicates=True)
            await self._db.commit()
        except sqlite3.Error as e:
            await self._db.rollback()
            raise StoreError(f"upsert conversation: {e}") from e

    async def _upsert_conversation(self, row: Row) -> bool:
        """Upsert one conversation row; False when the stored row is further along (the
        schema's trigger kept it)."""
        picked = pick(row, CONVERSATION_COLUMNS)
        sql = upsert_statement("conversations", list(picked), "conversation_id")
        cursor = await self._db.execute(sql, [to_sql(v, c) for c, v in picked.items()])
        return cursor.rowcount > 0

    async def write_call(self, record: CallRecord) -> int:
        # One transaction: the record is whole or absent, so it is complete as it lands.
        try:
            applied = await self._upsert_conversation({**record.conversation, "record_complete": True})
            if applied:
                await self._upsert("agent_runs", record.agent_runs, AGENT_RUN_COLUMNS, "run_id")
            await self._upsert(
                "messages", record.messages, MESSAGE_COLUMNS, "conversation_id, seq", ignore_duplicates=True
            )
            await self._upsert(
                "tool_calls", record.tool_calls, TOOL_CALL_COLUMNS, "conversation_id, seq", ignore_duplicates=True
            )
            await self._db.commit()
        except sqlite3.Error as e:
            await self._db.rollback()
            raise StoreError(f"write call {record.conversation_id}: {e}") from e
        return 1

    async def record_state(self, conversation_id: str) -> RecordState | None:
        found = await self._select(
            "select record_events, record_complete, status, message_count from conversations where conversation_id = ?",
            [conversation_id],
        )
        return RecordState.of(found[0]) if found else None

    async def mark_incomplete(self, record: CallRecord, reason: str) -> None:
        metadata = {**record.conversation.get("metadata", {}), "record_at_risk": reason}
        try:
            await self._upsert_conversation({**record.conversation, "record_complete": False, "metadata": metadata})
            await self._db.commit()
        except sqlite3.Error as e:
            await self._db.rollback()
            raise StoreError(f"mark {record.conversation_id} incomplete: {e}") from e

    async def _select(self, sql: str, params: list[Any]) -> list[Row]:
        try:
            async with self._db.execute(sql, params) as cursor:
                return [from_sql(r) for r in await cursor.fetchall()]
        except sqlite3.Error as e:
            raise StoreError(f"read: {e}") from e

    async def list_conversations(
        self,
        *,
        limit: int = 20,
        status: str | None = None,
        phone: str | None = None,
        today: bool = False,
    ) -> list[Row]:
        where, params = _filters(status=status, phone=phone, today=today)
        return await self._select(
            f"select * from conversations {where} order by started_at desc limit ?", [*params, limit]
        )

    async def search_conversations(self, query: ConversationQuery) -> list[Row]:
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("status", "outcome", "language"):
            if value := getattr(query, column):
                clauses.append(f"{column} = ?")
                params.append(value)
        if query.phone:
            clauses.append("user_phone = ?")
            params.append(query.phone)
        if query.since:
            clauses.append("started_at >= ?")
            params.append(query.since)
        if query.until:
            clauses.append("started_at < ?")
            params.append(query.until)
        if query.slow:
            clauses.append("slow_turns > 0")
        if query.incomplete:
            clauses.append("record_complete = 0")
        where = ("where " + " and ".join(clauses)) if clauses else ""
        return await self._select(
            f"select * from conversations {where} order by started_at desc, conversation_id desc limit ? offset ?",
            [*params, query.limit, query.offset],
        )

    async def get_conversation(self, conversation_id: str) -> ConversationDetail | None:
        found = await self._select("select * from conversations where conversation_id = ?", [conversation_id])
        if not found:
            return None

        async def rows(table: str, order: str) -> list[Row]:
            return await self._select(
                f"select * from {table} where conversation_id = ? order by {order}", [conversation_id]
            )

        return ConversationDetail(
            conversation=found[0],
            messages=await rows("messages", "seq"),
            tool_calls=await rows("tool_calls", "seq"),
            agent_runs=await rows("agent_runs", "started_at"),
        )

    async def stats_by_status(self, *, today: bool = False) -> list[StatusStats]:
        where, params = _filters(today=today)
        rows = await self._select(
            "select status, count(*) as count, avg(duration_seconds) as avg_duration_seconds, "
            f"avg(message_count) as avg_message_count from conversations {where} "
            "group by status order by status",
            params,
        )
        return [StatusStats(**row) for row in rows]

    async def report(self, *, days: int = 7) -> Report:
        """The same figures as the reporting views of `sql/migrations/0004_reporting_views.sql`."""
        since = [report_since(days)]
        volume = await self._select(
            "select substr(started_at, 1, 10) as day, count(*) as calls, "
            "sum(status = 'completed') as completed, sum(status = 'abandoned') as abandoned, "
            "sum(status = 'failed') as failed, avg(duration_seconds) as avg_duration_seconds "
            "from conversations where started_at >= ? group by 1 order by 1",
            since,
        )
        outcomes = await self._select(
            "select substr(started_at, 1, 10) as day, coalesce(outcome, 'unknown') as outcome, count(*) as calls "
            "from conversations where started_at >= ? group by 1, 2 order by 1, 2",
            since,
        )
        replies = await self._select(
            "select substr(c.started_at, 1, 10) as day, "
            "json_extract(m.metadata, '$.metrics.e2e_latency') * 1000.0 as ms "
            "from messages m join conversations c on c.conversation_id = m.conversation_id "
            "where m.role = 'assistant' and json_extract(m.metadata, '$.metrics.e2e_latency') is not null "
            "and c.started_at >= ? order by 1, 2",
            since,
        )
        agent_usage = await self._select(
            "select agent_type, count(*) as runs, sum(llm_calls) as llm_calls, sum(prompt_tokens) as prompt_tokens, "
            "sum(completion_tokens) as completion_tokens, sum(total_tokens) as total_tokens, "
            "sum(tool_calls) as tool_calls, sum(tool_errors) as tool_errors "
            "from agent_runs group by agent_type order by agent_type",
            [],
        )
        tool_errors = await self._select(
            "select name, count(*) as calls, sum(is_error) as errors, "
            "cast(sum(is_error) as real) / count(*) as error_rate, avg(duration_ms) as avg_duration_ms "
            "from tool_calls group by name order by name",
            [],
        )
        slow_turns = await self._select(
            "select substr(started_at, 1, 10) as day, count(*) as calls, "
            "coalesce(sum(slow_turns > 0), 0) as slow_calls, coalesce(sum(slow_turns), 0) as slow_turns "
            "from conversations where started_at >= ? group by 1 order by 1",
            since,
        )
        return Report(volume, outcomes, _daily_latency(replies), agent_usage, tool_errors, slow_turns)

    async def aclose(self) -> None:
        await self._db.close()


def _daily_latency(replies: list[Row]) -> list[Row]:
    by_day: dict[str, list[float]] = {}
    for r in replies:
        by_day.setdefault(r["day"], []).append(float(r["ms"]))
    return [
        {
            "day": day,
            "replies": len(ms),
            "p50_ms": percentile_cont(ms, 0.5),
            "p95_ms": percentile_cont(ms, 0.95),
            "max_ms": ms[-1],
        }
        for day, ms in by_day.items()
    ]


def percentile_cont(ordered: list[float], q: float) -> float:
    """Postgres's `percentile_cont`: linear interpolation between the closest ranks."""
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def _filters(*, status: str | None = None, phone: str | None = None, today: bool = False) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if status:
        clauses.append("status = ?")
        params.append(status)
    if phone:
        clauses.append("user_phone = ?")
        params.append(phone)
    if today:
        clauses.append("started_at >= ?")
        params.append(dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(), tzinfo=dt.UTC).isoformat())
    return ("where " + " and ".join(clauses)) if clauses else "", params
