"""The real HTTP path to the local stack with one kind of fault switched on: the network edge.

`FaultyTransport` forwards every request to the stack unchanged, except those its `refuse`
rule matches (they fail as a dropped connection does, before reaching PostgREST) and those
its `hold` rule matches (they wait until `release()`). `faulty_store` opens the real
Supabase record store over it, so a test can cut an end-of-call write after its first
chunks, or keep it in flight, exactly where a network fault would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from supabase import AsyncClientOptions, acreate_client

from storage.supabase_records import SupabaseConversationStore

Rule = Callable[[httpx.Request], bool]


def never(request: httpx.Request) -> bool:
    return False


def writes_to(table: str) -> Rule:
    def rule(request: httpx.Request) -> bool:
        return request.method in ("POST", "PATCH") and request.url.path.endswith(f"/rest/v1/{table}")

    return rule


def after(allowed: int, rule: Rule) -> Rule:
    """`rule`'s requests after the first `allowed` of them."""
    seen = [0]

    def counted(request: httpx.Request) -> bool:
        if not rule(request):
            return False
        seen[0] += 1
        return seen[0] > allowed

    return counted


class FaultyTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.refuse: Rule = never
        self.hold: Rule = never
        self.refused = 0
        self.holding = asyncio.Event()
        """Set once a held request is waiting."""
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refuse(request):
            self.refused += 1
            raise httpx.ConnectError("connection reset (injected by FaultyTransport)", request=request)
        if self.hold(request):
            self.holding.set()
            await self._released.wait()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def faulty_store(
    url: str, key: str, *, timeout: float = 5.0, chunk_rows: int | None = None
) -> tuple[SupabaseConversationStore, FaultyTransport]:
    transport = FaultyTransport()
    http = httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport)
    client = await acreate_client(url, key, options=AsyncClientOptions(httpx_client=http, postgrest_client_retry=False))
    store = SupabaseConversationStore(client, http)
    if chunk_rows is not None:
        store.chunk_rows = chunk_rows
    return store, transport
