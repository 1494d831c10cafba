"""The production worker (`agent.build_server`) on one simulated call, logging as `start` does.

    python testkit/simulated_worker.py

LiveKit's fake job (the mock room console mode uses; no LiveKit server) runs the real
entrypoint in a job process; logs are LiveKit's JSON lines on stdout, as in `start`. The
call ends as soon as its journal shows it is live, and the worker shuts down, which runs
`on_session_end`. Settings come from the environment (point DATA_DIR at a scratch dir).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit.agents.cli.log import setup_logging

import agent
from settings import Settings

LIVE_TIMEOUT = 60.0


async def main() -> None:
    settings = Settings.from_env(mode="console")
    setup_logging("DEBUG", devmode=False, console=False)
    server = agent.build_server(settings)
    started = asyncio.Event()
    server.on("worker_started", started.set)
    # devmode only for its free health-check port; the log format was chosen above
    running = asyncio.create_task(server.run(devmode=True, unregistered=True))
    await asyncio.wait_for(started.wait(), LIVE_TIMEOUT)
    await server.simulate_job("logged-room", fake_job=True)
    pending = settings.journal_dir / "pending"
    deadline = time.monotonic() + LIVE_TIMEOUT
    while not list(pending.glob("*.jsonl")) and time.monotonic() < deadline:  # noqa: ASYNC110 (a file, no event)
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # let the greeting attempt run
    await server.aclose()
    await running


if __name__ == "__main__":  # job processes re-import this module
    asyncio.run(main())
