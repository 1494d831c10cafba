"""A local HTTP server that answers like the Tavus conversations API (v2), for offline tests.

Routes, as `livekit-plugins-tavus` and the worker call them:

    POST /v2/conversations               create: {"conversation_id", "conversation_url", "status", ...}
    POST /v2/conversations/{id}/end      end a conversation

Every request needs the `x-api-key` header the server was built with (401 otherwise,
as Tavus does). Each create consumes the next scripted `Answer` (or the default one):
an HTTP status (401, 500, ...), a delay before answering (a slow API), and what the
replica does once the conversation exists (`Replica`: join after a delay, never join,
leave early). The replica itself lives in the simulated room (`tests/fake_room.py`);
`on_created` / `on_ended` hooks connect the two. Every request is recorded.

    async with FakeTavusServer(api_key="test-key") as tavus:
        tavus.script(Answer(status=500), Answer(replica=Replica(join_after=0.2)))
        ... AvatarSession(api_url=tavus.api_url, api_key="test-key") ...
        assert [r.path for r in tavus.requests] == ["/v2/conversations", ...]
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Replica:
    """What the replica of a created conversation does in the room."""

    join_after: float | None = 0.2
    """Seconds after the create until it joins the room; None: it never joins."""
    video_after: float = 0.05
    """Seconds between joining and publishing its video track."""
    leave_after: float | None = None
    """Seconds after publishing its video until it leaves the room on its own; None: it stays."""
    playout_delay: float = 0.0
    """Seconds between the first audio of a reply reaching it and its face playing it (Tavus buffers)."""


@dataclass(frozen=True)
class Answer:
    status: int = 200
    delay: float = 0.0
    replica: Replica = field(default_factory=Replica)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    json: Any
    api_key: str | None
    at: float


@dataclass
class Conversation:
    conversation_id: str
    body: dict[str, Any]
    replica: Replica
    ended: bool = False


class FakeTavusServer:
    def __init__(self, *, api_key: str, default: Answer | None = None) -> None:
        self.api_key = api_key
        self.default = default or Answer()
        self.end_answer = Answer()
        """How end requests are answered (status, delay)."""
        self.requests: list[RecordedRequest] = []
        self.conversations: dict[str, Conversation] = {}
        self.on_created: Callable[[Conversation], None] | None = None
        self.on_ended: Callable[[Conversation], None] | None = None
        self._answers: deque[Answer] = deque()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def api_url(self) -> str:
        """What `tavus.AvatarSession(api_url=...)` takes (the plugin's DEFAULT_API_URL counterpart)."""
        return f"{self.base_url}/v2"

    def script(self, *answers: Answer) -> None:
        self._answers.extend(answers)

    def creates(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v2/conversations"]

    def ends(self) -> list[str]:
        """Conversation ids of the end requests, in order."""
        return [r.path.split("/")[3] for r in self.requests if r.path.endswith("/end")]

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v2/conversations", self._create)
        app.router.add_post("/v2/conversations/{conversation_id}/end", self._end)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTavusServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _record(self, request: web.Request) -> RecordedRequest:
        body: Any = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = None
        recorded = RecordedRequest(request.method, request.path, body, request.headers.get("x-api-key"), time.time())
        self.requests.append(recorded)
        return recorded

    def _unauthorized(self, recorded: RecordedRequest) -> web.Response | None:
        if recorded.api_key != self.api_key:
            return web.json_response({"message": "Invalid access token"}, status=401)
        return None

    async def _create(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        answer = self._answers.popleft() if self._answers else self.default
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if (denied := self._unauthorized(recorded)) is not None:
            return denied
        if answer.status != 200:
            return web.json_response({"message": f"fake Tavus error {answer.status}"}, status=answer.status)
        if not isinstance(recorded.json, dict) or "properties" not in recorded.json:
            return web.json_response({"message": "properties are required"}, status=400)
        conversation = Conversation(f"c{next(self._ids):06x}", recorded.json, answer.replica)
        self.conversations[conversation.conversation_id] = conversation
        if self.on_created is not None:
            self.on_created(conversation)
        return web.json_response(
            {
                "conversation_id": conversation.conversation_id,
                "conversation_name": recorded.json.get("conversation_name", ""),
                "conversation_url": f"https://tavus.example/{conversation.conversation_id}",
                "status": "active",
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )

    async def _end(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        if self.end_answer.delay:
            await asyncio.sleep(self.end_answer.delay)
        if (denied := self._unauthorized(recorded)) is not None:
            return denied
        if self.end_answer.status != 200:
            return web.json_response(
                {"message": f"fake Tavus error {self.end_answer.status}"}, status=self.end_answer.status
            )
        conversation = self.conversations.get(request.match_info["conversation_id"])
        if conversation is None:
            return web.json_response({"message": "Conversation not found"}, status=404)
        if not conversation.ended:
            conversation.ended = True
            if self.on_ended is not None:
                self.on_ended(conversation)
        return web.Response(status=200)
