"""Conversation records in Supabase (PostgREST) through the async `supabase` client."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from postgrest import ReturnMethod

from storage.records import (
    AGENT_RUN_COLUMNS,
    CONVERSATION_COLUMNS,
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
    pick,
    report_since,
)
from storage.supabase_client import SupabaseBackend

logger = logging.getLogger("storage.supabase")

CHUNK_ROWS = 500
"""Rows per bulk request: big enough to amortise HTTP, small enough for the gateway's body limit."""
PAGE_ROWS = 1000
"""PostgREST's db-max-rows on hosted Supabase; reads page at this size."""


class SupabaseConversationStore(SupabaseBackend, ConversationStore):
    chunk_rows = CHUNK_ROWS

    async def _upsert(self, table: str, rows: list[Row], on_conflict: str, *, ignore_duplicates: bool = False) -> int:
        requests = 0
        for start in range(0, len(rows), self.chunk_rows):
            chunk = rows[start : start + self.chunk_rows]
            query = self._client.table(table).upsert(
                chunk,
                on_conflict=on_conflict,
                returning=ReturnMethod.minimal,
                ignore_duplicates=ignore_duplicates,
            )
            await self._call(f"upsert {table}", query.execute())
            requests += 1
        return requests

    async def create_conversation(self, row: Row) -> None:
        await self._upsert(
            "conversations", [pick(row, CONVERSATION_COLUMNS)], "conversation_id", ignore_duplicates=True
        )

    async def _upsert_conversation(self, row: Row) -> bool:
        """Upsert one conversation row; False when the stored row is further along (the
        0006 trigger kept it, so nothing came back)."""
        query = self._client.table("conversations").upsert(
            pick(row, CONVERSATION_COLUMNS), on_conflict="conversation_id", returning=ReturnMethod.representation
        )
        result = await self._call("upsert conversations", query.execute())
        return bool(result.data)

    async def write_call(self, record: CallRecord) -> int:
        # The conversation row goes first (the other tables reference it), saying the record is
        # on its way; the last request says it is whole.
        applied = await self._upsert_conversation({**record.conversation, "record_complete": False})
        requests = 1
        if applied:
            runs = [pick(r, AGENT_RUN_COLUMNS) for r in record.agent_runs]
            requests += await self._upsert("agent_runs", runs, "run_id")
        messages = [pick(r, MESSAGE_COLUMNS) for r in record.messages]
        requests += await self._upsert("messages", messages, "conversation_id,seq", ignore_duplicates=True)
        tool_calls = [pick(r, TOOL_CALL_COLUMNS) for r in record.tool_calls]
        requests += await self._upsert("tool_calls", tool_calls, "conversation_id,seq", ignore_duplicates=True)
        if applied:
            query = (
                self._client.table("conversations")
                .update({"record_complete": True}, returning=ReturnMethod.minimal)
                .eq("conversation_id", record.conversation_id)
                .eq("record_events", int(record.conversation.get("record_events") or 0))
            )
            await self._call("complete conversation", query.execute())
            requests += 1
        return requests

    async def record_state(self, conversation_id: str) -> RecordState | None:
        query = (
            self._client.table("conversations")
            .select("record_events,record_complete,status,message_count")
            .eq("conversation_id", conversation_id)
        )
        found = (await self._call("read record state", query.execute())).data
        return RecordState.of(found[0]) if found else None

    async def mark_incomplete(self, record: CallRecord, reason: str) -> None:
        metadata = {**record.conversation.get("metadata", {}), "record_at_risk": reason}
        await self._upsert_conversation({**record.conversation, "record_complete": False, "metadata": metadata})

    async def list_conversations(
        self,
        *,
        limit: int = 20,
        status: str | None = None,
        phone: str | None = None,
        today: bool = False,
    ) -> list[Row]:
        query = self._client.table("conversations").select("*")
        if status:
            query = query.eq("status", status)
        if phone:
            query = query.eq("user_phone", phone)
        if today:
            query = query.gte("started_at", _start_of_today_utc())
        result = await self._call("list conversations", query.order("started_at", desc=True).limit(limit).execute())
        return list(result.data)

    async def search_conversations(self, query: ConversationQuery) -> list[Row]:
        q = self._client.table("conversations").select("*")
        for column in ("status", "outcome", "language"):
            if value := getattr(query, column):
                q = q.eq(column, value)
        if query.phone:
            q = q.eq("user_phone", query.phone)
        if query.since:
            q = q.gte("started_at", query.since)
        if query.until:
            q = q.lt("started_at", query.until)
        if query.slow:
            q = q.gt("slow_turns", 0)
        if query.incomplete:
            q = q.eq("record_complete", "false")
        q = q.order("started_at", desc=True).order("conversation_id", desc=True)
        result = await self._call(
            "search conversations", q.range(query.offset, query.offset + query.limit - 1).execute()
        )
        return list(result.data)

    async def _all_rows(self, table: str, conversation_id: str, order: str) -> list[Row]:
        rows: list[Row] = []
        while True:
            query = (
                self._client.table(table)
                .select("*")
                .eq("conversation_id", conversation_id)
                .order(order)
                .range(len(rows), len(rows) + PAGE_ROWS - 1)
            )
            page = (await self._call(f"read {table}", query.execute())).data
            rows.extend(page)
            if len(page) < PAGE_ROWS:
                return rows

    async def get_conversation(self, conversation_id: str) -> ConversationDetail | None:
        query = self._client.table("conversations").select("*").eq("conversation_id", conversation_id)
        found = (await self._call("read conversation", query.execute())).data
        if not found:
            return None
        return ConversationDetail(
            conversation=found[0],
            messages=await self._all_rows("messages", conversation_id, "seq"),
            tool_calls=await self._all_rows("tool_calls", conversation_id, "seq"),
            agent_runs=await self._all_rows("agent_runs", conversation_id, "started_at"),
        )

    async def stats_by_status(self, *, today: bool = False) -> list[StatusStats]:
        view = "conversation_stats_today" if today else "conversation_stats_by_status"
        rows = (await self._call("stats", self._client.table(view).select("*").order("status").execute())).data
        return [StatusStats(**row) for row in rows]

    async def _daily_latency(self, since: str) -> list[Row]:
        """The daily_latency view's figures from `since` (migration 0010: read per call, by index)."""
        result = await self._call(
            "report daily_latency", self._client.rpc("daily_latency_since", {"since": since}).execute()
        )
        return list(result.data)

    async def report(self, *, days: int = 7) -> Report:
        since = report_since(days)

        async def view(name: str, order: str, *, daily: bool) -> list[Row]:
            query = self._client.table(name).select("*")
            if daily:
                query = query.gte("day", since)
            for column in order.split(","):
                query = query.order(column)
            return list((await self._call(f"report {name}", query.execute())).data)

        sections = await asyncio.gather(
            view("daily_call_volume", "day", daily=True),
            view("daily_outcomes", "day,outcome", daily=True),
            self._daily_latency(since),
            view("agent_usage_by_type", "agent_type", daily=False),
            view("tool_error_rates", "name", daily=False),
            view("daily_slow_turns", "day", daily=True),
        )
        return Report(*sections)


def _start_of_today_utc() -> str:
    today = dt.datetime.now(dt.UTC).date()
    return dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC).isoformat()
