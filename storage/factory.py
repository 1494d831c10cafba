"""Choose the backend from settings: Supabase when configured, else the embedded SQLite file."""

from __future__ import annotations

from settings import Settings
from storage.domain import AppointmentStore
from storage.records import ConversationStore


async def open_record_store(settings: Settings) -> ConversationStore:
    if settings.supabase_url:
        from storage.supabase_records import SupabaseConversationStore

        return await SupabaseConversationStore.connect(
            settings.supabase_url, settings.supabase_service_role_key, timeout=settings.store_timeout
        )
    from storage.sqlite_records import SQLiteConversationStore

    return await SQLiteConversationStore.open(settings.data_dir / "records.sqlite3", timeout=settings.store_timeout)


async def open_appointment_store(settings: Settings) -> AppointmentStore:
    """The appointment desk's store; the embedded one gets the demo data when it is empty.

    Supabase is never seeded from here: its demo data is sql/seed_demo.sql, run on purpose.
    """
    if settings.supabase_url:
        from storage.domain_supabase import SupabaseAppointmentStore

        return await SupabaseAppointmentStore.connect(
            settings.supabase_url, settings.supabase_service_role_key, timeout=settings.store_timeout
        )
    from storage.demo_data import load_demo_data
    from storage.domain_sqlite import SQLiteAppointmentStore

    store = await SQLiteAppointmentStore.open(settings.data_dir / "desk.sqlite3", timeout=settings.store_timeout)
    try:
        await load_demo_data(store, timezone=settings.clinic_timezone, open_days=settings.clinic_open_days)
    except BaseException:
        await store.aclose()
        raise
    return store
