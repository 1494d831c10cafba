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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit.agents.cli.log import setup_logging

from settings import Settings
from testkit.simulated_job import simulated_call

LIVE_TIMEOUT = 60.0


async def main() -> None:
    settings = Settings.from_env(mode="console")
    setup_logging("DEBUG", devmode=False, console=False)
    async with simulated_call(settings, "logged-room", timeout=LIVE_TIMEOUT):
        await asyncio.sleep(1.0)  # let the greeting attempt run


if __name__ == "__main__":  # job processes re-import this module
    asyncio.run(main())
