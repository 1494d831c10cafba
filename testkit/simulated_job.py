"""The production worker (`agent.build_server`) run unregistered on one simulated call.

LiveKit's fake job (the mock room console mode uses; no LiveKit server) runs the real
entrypoint in a job process. Used by the scripts that run the worker as a child process
(testkit/simulated_worker.py for its logs, testkit/job_probe.py for its memory and CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from livekit.agents import AgentServer

import agent
from settings import Settings


@contextlib.asynccontextmanager
async def simulated_call(settings: Settings, room_name: str, *, timeout: float) -> AsyncIterator[AgentServer]:
    """Yields once the call's journal shows it is live; leaving shuts the worker down, which
    ends the call (`on_session_end` writes its record)."""
    server = agent.build_server(settings)
    started = asyncio.Event()
    server.on("worker_started", started.set)
    # devmode only for its free health-check port; the caller chose the log format
    running = asyncio.create_task(server.run(devmode=True, unregistered=True))
    try:
        await asyncio.wait_for(started.wait(), timeout)
        await server.simulate_job(room_name, fake_job=True)
        pending = settings.journal_dir / "pending"
        deadline = time.monotonic() + timeout
        while not list(pending.glob("*.jsonl")) and time.monotonic() < deadline:  # noqa: ASYNC110 (a file, no event)
            await asyncio.sleep(0.05)
        yield server
    finally:
        await server.aclose()
        await running
