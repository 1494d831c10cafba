"""The stores behind one set of interfaces: Supabase in production, SQLite embedded.

Nothing else in the project talks to a database. `storage.factory` picks the backend from
settings: Supabase when `SUPABASE_URL` is set, else the embedded file. The interfaces
(`storage.records`, `storage.domain`) import nothing but the standard library.
"""
