"""Choose the backend from settings: Supabase when configured, else the embedded SQLite file."""

from __future__ import annotations

from settings import Settings
from storage.records import ConversationStore


async def open_record_store(settings: Settings) -> ConversationStore:
    if settings.supabase_url:
        from storage.supabase_records import SupabaseConversationStore

        return await SupabaseConversationStore.connect(
            settings.supabase_url, settings.supabase_service_role_key, timeout=settings.store_timeout
        )
    from storage.sqlite_records import SQLiteConversationStore

    return await SQLiteConversationStore.open(settings.data_dir / "records.sqlite3", timeout=settings.store_timeout)
