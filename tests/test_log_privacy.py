"""Logs without callers' data: a whole scripted call at DEBUG, through a real AgentSession, the
desk on both stores and the embedded record store, leaves no caller name, phone or message text
in any log line (its message, its extra fields, its traceback); LiveKit's transcript fields come
back only with LOG_TRANSCRIPTS=true. Also the start-up endpoint check."""

from __future__ import annotations

import http.server
import logging
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit.agents import inference

import logs
from settings import Settings
from startup_checks import openai_endpoint_problem
from testkit.desk_world import CALLER, World, list_tomorrow, open_call, verify
from testkit.scripted_llm import Reply
from tests.test_access_control import every_log_line

SAID = "My name is {name}, my number is {phone}, I would like the first slot tomorrow please."
REPLY = "Certainly {name}, you are booked."


@pytest.fixture(autouse=True)
def log_hygiene() -> Iterator[None]:
    logs.install()
    yield
    logs.install()  # another test's keep_transcripts must not leak into the next


def leaks(lines: list[str], secrets: list[str]) -> list[str]:
    return [s for s in secrets if any(s in line for line in lines)]


@pytest.mark.asyncio
async def test_a_whole_call_at_debug_logs_no_caller_data(any_world: World, tmp_path: Path) -> None:
    caller = CALLER["en"]
    national = "0" + caller.phone.removeprefix("+1")
    said = SAID.format(name=caller.name, phone=national)
    reply = REPLY.format(name=caller.name)
    with every_log_line() as captured:
        async with open_call(any_world, tmp_path) as call:
            await call.turn(said, Reply(reply))
            await verify(call)
            await list_tomorrow(call, any_world)
    lines = captured.lines
    assert any("conversation saved" in line for line in lines), "the call ran and logged its own lines"
    assert any("chars not logged" in line for line in lines), "LiveKit logged transcript fields, emptied"
    digits = re.sub(r"\D", "", caller.phone)
    secrets = [caller.name, caller.name.split()[0], caller.phone, national, digits[-7:], said, said[:40], reply]
    assert leaks(lines, secrets) == []
    stored = call.manager.transcript.to_record().conversation
    assert stored["user_name"] == caller.name or stored["user_phone"] == caller.phone, "the record has them"


@pytest.mark.asyncio
async def test_transcripts_in_livekit_lines_only_when_asked(world: World, tmp_path: Path) -> None:
    logs.install(keep_transcripts=True)
    with every_log_line() as captured:
        async with open_call(world, tmp_path) as call:
            await call.turn("a distinctive caller sentence 7731", Reply("ok"))
    assert any("a distinctive caller sentence 7731" in line and "lk.pii" in line for line in captured.lines)


def test_the_unused_turn_detector_warning_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_INFERENCE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIVEKIT_DEV_MODE", "1")
    with every_log_line() as captured:
        inference.TurnDetector()  # what AgentSession builds as its unused default
    assert not [line for line in captured.lines if logs.UNUSED_DETECTOR_WARNING in line]


def test_store_libraries_stay_quiet_at_debug() -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for name in ("aiosqlite", "httpx", "hpack", "postgrest"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name


class _Models(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"data": []}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def models_server() -> Iterator[tuple[str, type[_Models]]]:
    handler = type("Handler", (_Models,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_endpoint_check(models_server: tuple[str, type[_Models]]) -> None:
    url, handler = models_server
    assert openai_endpoint_problem(Settings(openai_base_url=url)) is None
    handler.status = 404
    assert openai_endpoint_problem(Settings(openai_base_url=url)) is None, "reachable, no model list"
    handler.status = 401
    assert "key was refused" in (openai_endpoint_problem(Settings(openai_base_url=url)) or "")
    handler.status = 503
    assert "server error (HTTP 503)" in (openai_endpoint_problem(Settings(openai_base_url=url)) or "")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    problem = openai_endpoint_problem(Settings(openai_base_url=closed)) or ""
    assert problem.startswith(f"OpenAI-compatible endpoint {closed}: cannot connect")


def test_a_silent_endpoint_is_bounded() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        problem = openai_endpoint_problem(Settings(openai_base_url=url), timeout=0.5) or ""
    assert problem == f"OpenAI-compatible endpoint {url}: no answer within 0.5s"
