"""The stores behind one set of interfaces: Supabase in production, SQLite embedded.

Nothing else in the project talks to a database. `open_record_store()` picks the
backend from settings: Supabase when `SUPABASE_URL` is set, else the embedded file.
"""

from storage.factory import open_record_store
from storage.records import CallRecord, ConversationStore, StoreError

__all__ = ["CallRecord", "ConversationStore", "StoreError", "open_record_store"]
