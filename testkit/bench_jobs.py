"""Running a benchmark's trials a few at a time (they share this machine's cores)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def gather_limited(jobs: list[Awaitable[None]], limit: int) -> list[str]:
    """Run the jobs `limit` at a time; a failing job is reported, the others go on."""
    gate = asyncio.Semaphore(limit)
    failures: list[str] = []

    async def one(job: Awaitable[None]) -> None:
        async with gate:
            try:
                await job
            except Exception as e:
                failures.append(f"{getattr(job, '__qualname__', job)}: {type(e).__name__}: {e}")

    await asyncio.gather(*(one(j) for j in jobs))
    return failures
