"""What both Supabase stores share: a bounded client, one error mapping, and closing."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import ClassVar, Self, TypeVar

import httpx
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from storage.records import StoreError

T = TypeVar("T")


async def connect_supabase(url: str, key: str, *, timeout: float) -> tuple[AsyncClient, httpx.AsyncClient]:
    """A client whose every request is bounded by `timeout` seconds (sub-second values honoured)."""
    http = httpx.AsyncClient(timeout=httpx.Timeout(timeout), http2=False)
    client = await acreate_client(url, key, options=AsyncClientOptions(httpx_client=http, postgrest_client_retry=False))
    return client, http


class SupabaseBackend:
    """Base of the Supabase stores. Every failure leaves as a `StoreError` (or a subclass)."""

    errors_by_code: ClassVar[dict[str, type[StoreError]]] = {}
    """Postgres/PostgREST error codes that mean something more specific than `StoreError`."""

    def __init__(self, client: AsyncClient, http: httpx.AsyncClient) -> None:
        self._client = client
        self._http = http

    @classmethod
    async def connect(cls, url: str, key: str, *, timeout: float) -> Self:
        return cls(*await connect_supabase(url, key, timeout=timeout))

    async def _call(self, what: str, request: Awaitable[T]) -> T:
        try:
            return await request
        except APIError as e:
            code = e.code or ""
            if error := self.errors_by_code.get(code):
                raise error(f"{what}: {e.message}") from e
            raise StoreError(f"{what}: {code or 'error'} {e.message}") from e
        except httpx.HTTPError as e:
            raise StoreError(f"{what}: {type(e).__name__} {e}") from e
        except UnicodeEncodeError as e:  # a lone surrogate cannot become a URL or a JSON body
            raise StoreError(f"{what}: the request cannot be encoded ({e.reason})") from e

    async def aclose(self) -> None:
        await self._client.postgrest.aclose()
        await self._http.aclose()
