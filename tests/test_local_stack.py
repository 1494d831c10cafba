"""The local Supabase stack behaves like a Supabase project for the worker's purposes:
the service key reads and writes, anon and authenticated are refused (no grants, and RLS), the
gateway checks the apikey, and every public table has RLS enabled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from testkit.local_supabase import Stack


@asynccontextmanager
async def client_for(stack: Stack, apikey: str, bearer: str | None = None) -> AsyncIterator[AsyncClient]:
    """A supabase-py async client; ``bearer`` sets the JWT PostgREST sees (default: the apikey)."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    client = await acreate_client(
        stack.url,
        apikey,
        options=AsyncClientOptions(headers=headers, postgrest_client_timeout=10),
    )
    try:
        yield client
    finally:
        await client.postgrest.aclose()


def conversation_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "conversation_id": f"test-{uuid.uuid4()}",
        "room_name": "room-1",
        "participant_identity": "caller-1",
        "status": "active",
        "user_phone": "+963991234567",
        "metadata": {"source": "test_local_stack"},
    }
    row.update(overrides)
    return row


@pytest.mark.asyncio
async def test_service_key_upserts_and_reads_back(clean_db: Stack) -> None:
    row = conversation_row()
    async with client_for(clean_db, clean_db.service_key) as sb:
        first = await sb.table("conversations").upsert(row, on_conflict="conversation_id").execute()
        assert first.data[0]["conversation_id"] == row["conversation_id"]

        # Same key again: an update, not a second row.
        updated = {**row, "status": "completed", "message_count": 3}
        await sb.table("conversations").upsert(updated, on_conflict="conversation_id").execute()

        got = (
            await sb.table("conversations")
            .select("conversation_id,status,message_count,metadata", count="exact")
            .eq("conversation_id", row["conversation_id"])
            .execute()
        )
    assert got.count == 1
    assert got.data == [
        {
            "conversation_id": row["conversation_id"],
            "status": "completed",
            "message_count": 3,
            "metadata": {"source": "test_local_stack"},
        }
    ]


@pytest.mark.asyncio
async def test_anon_key_cannot_write_or_read(clean_db: Stack) -> None:
    async with client_for(clean_db, clean_db.service_key) as service:
        await service.table("conversations").insert(conversation_row()).execute()

    async with client_for(clean_db, clean_db.anon_key) as anon:
        with pytest.raises(APIError) as denied:
            await anon.table("conversations").insert(conversation_row()).execute()
        assert denied.value.code == "42501"
        with pytest.raises(APIError) as refused:  # no grant: refused, not an empty answer
            await anon.table("conversations").select("*").execute()
        assert refused.value.code == "42501"
    assert clean_db.psql("select count(*) from public.conversations").strip() == "1"


@pytest.mark.asyncio
async def test_authenticated_key_cannot_write(clean_db: Stack) -> None:
    # As a signed-in user would call it: the anon apikey plus the user's JWT.
    async with client_for(clean_db, clean_db.anon_key, bearer=clean_db.authenticated_key) as user:
        with pytest.raises(APIError) as denied:
            await user.table("conversations").insert(conversation_row()).execute()
        assert denied.value.code == "42501"
        with pytest.raises(APIError) as refused:
            await user.table("conversations").select("*").execute()
        assert refused.value.code == "42501"
    # The authenticated key as the apikey itself passes the gateway and is refused by RLS too.
    async with client_for(clean_db, clean_db.authenticated_key) as user:
        with pytest.raises(APIError) as denied:
            await user.table("conversations").insert(conversation_row()).execute()
        assert denied.value.code == "42501"
    assert clean_db.psql("select count(*) from public.conversations").strip() == "0"


@pytest.mark.asyncio
async def test_gateway_requires_a_known_apikey(supabase_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=supabase_stack.url, timeout=10) as http:
        assert (await http.get("/health")).status_code == 200

        missing = await http.get("/rest/v1/conversations")
        assert missing.status_code == 401
        assert missing.json() == {"message": "No API key found in request"}

        unknown = await http.get("/rest/v1/conversations", headers={"apikey": "not-a-key"})
        assert unknown.status_code == 401
        assert unknown.json() == {"message": "Invalid API key"}

        # A well-formed JWT signed with the right secret is still unknown to the gateway.
        forged = supabase_stack.make_jwt("service_role", note="not an issued key")
        assert (await http.get("/rest/v1/conversations", headers={"apikey": forged})).status_code == 401

        ok = await http.get("/rest/v1/conversations", headers={"apikey": supabase_stack.service_key})
        assert ok.status_code == 200


def test_every_public_table_has_rls_enabled(supabase_stack: Stack) -> None:
    rows = supabase_stack.psql(
        """
        select c.relname, c.relrowsecurity
          from pg_class c
          join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p')
         order by c.relname
        """
    )
    tables = dict(line.split("|") for line in rows.splitlines() if line)
    assert "conversations" in tables
    assert [name for name, rls in tables.items() if rls != "t"] == []
