"""The operator console on a real uvicorn server in a background thread, for tests and benchmarks.

The console opens its own store in its own event loop (as `serve` does); the caller seeds the
same store through the conversation manager from its loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from conversation_manager.console import build_app
from conversation_manager.console.server import listening_socket
from settings import Settings
from testkit.local_supabase import Stack

START_TIMEOUT = 30.0
TOKEN = "operator-secret-0123456789"
"""The operator credential the console tests configure."""


@dataclass(frozen=True)
class RunningConsole:
    url: str
    settings: Settings


@contextmanager
def running_console(settings: Settings) -> Iterator[RunningConsole]:
    sock = listening_socket("127.0.0.1", 0)  # the same socket `serve` makes (TCP_NODELAY on connections)
    port = sock.getsockname()[1]
    config = uvicorn.Config(build_app(settings), log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="console", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console did not start")
        time.sleep(0.02)
    try:
        yield RunningConsole(f"http://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT)
        sock.close()


def console_settings(tmp_path: Path, stack: Stack | None, **extra: object) -> Settings:
    """The console over the embedded file in `tmp_path`, or over `stack`, with the test credential."""
    settings = Settings(data_dir=tmp_path, journal_dir=tmp_path / "journal", console_token=TOKEN, store_timeout=5.0)
    if stack is not None:
        settings = replace(settings, supabase_url=stack.url, supabase_service_role_key=stack.service_key)
    return replace(settings, **extra)
