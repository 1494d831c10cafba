"""Opening both record backends for the contract tests, and comparing what they return."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from storage.records import ConversationStore
from storage.sqlite_records import SQLiteConversationStore
from storage.supabase_records import SupabaseConversationStore
from testkit.local_supabase import Stack

BACKENDS = ("sqlite", "supabase")


async def open_store(backend: str, *, tmp_path: Path, stack: Stack | None, timeout: float = 5.0) -> ConversationStore:
    if backend == "sqlite":
        return await SQLiteConversationStore.open(tmp_path / "records.sqlite3", timeout=timeout)
    assert stack is not None
    return await SupabaseConversationStore.connect(stack.url, stack.service_key, timeout=timeout)


def same_instant(a: Any, b: Any) -> bool:
    """Postgres re-renders timestamps; compare the instants, not the strings."""
    return dt.datetime.fromisoformat(str(a)) == dt.datetime.fromisoformat(str(b))


def without_ids(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("id", "updated_at")}
