"""A local OpenAI-compatible HTTP server for offline tests of the real OpenAI plugin.

It answers `POST /v1/chat/completions` (streamed as Server-Sent Events exactly like
OpenAI: a role delta, content deltas, `tool_calls` deltas whose arguments are split across
chunks, a `finish_reason` chunk, a usage chunk when `stream_options.include_usage` is set,
then `data: [DONE]`; or a single JSON body when `stream` is false) and `GET /v1/models`.
It does not depend on livekit.

Program it with a queue of `Completion`s and read back what it received:

    async with FakeOpenAIServer(Completion("Hello there.")) as server:
        llm = openai.LLM(model="gpt-test", base_url=server.base_url, api_key="test-key")
        server.push(Completion(tool_calls=[FunctionCall("lookup", {"ref": "A1"})]))
        ...
        body = server.chat_requests[0].json          # the request body, parsed
        server.chat_requests[0].header("Authorization")   # "Bearer test-key"

`Completion(status=500)` answers with an OpenAI-style error body; `Completion(delay=5)`
waits before answering (to test client timeouts; closing the server releases it). With an
empty queue the in-process server answers 500 and records the request in `unanswered`;
`responder=` builds each answer from the request body instead of the queue.

Audio (testkit/fake_openai_audio.py): `POST /v1/audio/transcriptions`, the realtime
transcription websocket `/v1/realtime` and `POST /v1/audio/speech`, with `transcriber=` and
`synthesizer=` hooks. `profile=` (testkit/latency_profiles.py; default `instant`) delays
every answer like a hosted service: the LLM's first token and token rate, the STT's
batch and streaming delays, the TTS's first byte and speed.

Standalone, for subprocess tests (repeats the last reply once the queue is empty):

    python testkit/fake_openai_server.py --port 0 --reply "Hi." [--reply ...] [--record FILE]

prints `READY http://127.0.0.1:PORT/v1` on stdout once it listens; `--record` appends
each received request as a JSON line to FILE. It stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

if not __package__:  # run as a script (`python testkit/fake_openai_server.py`): the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.fake_openai_audio import AudioRoutes, Synthesizer, Transcriber, silent_synthesizer, silent_transcriber
from testkit.latency_profiles import INSTANT, LatencyProfile

__all__ = ["Completion", "FakeOpenAIServer", "FunctionCall", "RecordedRequest", "Usage"]


@dataclass(frozen=True)
class FunctionCall:
    """A tool call in a completion. `arguments` is JSON-encoded unless already a string."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(dict(self.arguments))


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


@dataclass(frozen=True)
class Completion:
    """One programmed answer: text and/or tool calls (or an HTTP error)."""

    text: str = ""
    tool_calls: Sequence[FunctionCall] = ()
    usage: Usage | None = None
    """Defaults to a rough word count of the request and the reply."""
    chunk_chars: int = 8
    """Content and tool arguments are streamed in pieces of this many characters."""
    status: int = 200
    """Anything but 200 answers with an OpenAI error body instead of a completion."""
    error_message: str = "fake server error"
    delay: float = 0.0
    """Seconds to wait before answering."""


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any

    def header(self, name: str) -> str | None:
        """A header's value, whatever the case of `name`."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "headers": self.headers, "json": self.json}


class FakeOpenAIServer:
    """See the module docstring. Use as `async with FakeOpenAIServer(...) as server:`."""

    def __init__(
        self,
        *replies: Completion,
        host: str = "127.0.0.1",
        port: int = 0,
        repeat_last: bool = False,
        record_path: Path | None = None,
        models: Sequence[str] = ("gpt-test",),
        profile: LatencyProfile = INSTANT,
        responder: Callable[[dict[str, Any]], Completion] | None = None,
        transcriber: Transcriber = silent_transcriber,
        synthesizer: Synthesizer = silent_synthesizer,
    ) -> None:
        self.profile = profile
        """The latency profile in force; may be changed between requests."""
        self._responder = responder
        self._queue: deque[Completion] = deque(replies)
        self._host = host
        self._port = port
        self._repeat_last = repeat_last
        self._last: Completion | None = None
        self._record_path = record_path
        self._models = list(models)
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        """`http://127.0.0.1:PORT/v1` once started."""
        self.requests: list[RecordedRequest] = []
        """Every request received, in order."""
        self.unanswered: list[RecordedRequest] = []
        """Chat requests that found the queue empty (answered with a 500)."""
        self.first_tokens: list[tuple[float, float]] = []
        """(received at, first content or tool-call chunk sent at) of every streamed completion."""
        self.audio = AudioRoutes(
            profile=lambda: self.profile,
            transcriber=transcriber,
            synthesizer=synthesizer,
            record=self._record_parsed,
            closing=self._closing,
        )

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def remaining(self) -> int:
        return len(self._queue)

    def push(self, *replies: Completion) -> None:
        self._queue.extend(replies)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._list_models)
        self.audio.add_to(app)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/v1"
        return self.base_url

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- handlers -------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> RecordedRequest:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        return self._record_parsed(request, body)

    def _record_parsed(self, request: web.Request, body: Any) -> RecordedRequest:
        rec = RecordedRequest(request.method, request.path, dict(request.headers), body)
        self.requests.append(rec)
        if self._record_path is not None:
            with self._record_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec.to_json()) + "\n")
        return rec

    async def _not_found(self, request: web.Request) -> web.Response:
        await self._record(request)
        return _error(404, f"fake server: no route for {request.method} {request.path}")

    async def _list_models(self, request: web.Request) -> web.Response:
        await self._record(request)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self._models]
        return web.json_response({"object": "list", "data": data})

    def _next_reply(self, body: Any) -> Completion | None:
        if self._responder is not None:
            return self._responder(body if isinstance(body, dict) else {})
        if self._queue:
            self._last = self._queue.popleft()
            return self._last
        return self._last if self._repeat_last else None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        received = time.monotonic()
        rec = await self._record(request)
        reply = self._next_reply(rec.json)
        if reply is None:
            self.unanswered.append(rec)
            return _error(500, "fake server: no completion queued for this request")
        if reply.delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), reply.delay)
        if reply.status != 200:
            return _error(reply.status, reply.error_message)
        body = rec.json if isinstance(rec.json, dict) else {}
        completion_id = f"chatcmpl-fake{next(self._ids)}"
        model = str(body.get("model", "gpt-test"))
        calls = [(tc, tc.id or f"call_fake{next(self._ids)}") for tc in reply.tool_calls]
        usage = reply.usage or _estimate_usage(body, reply)
        if not body.get("stream"):
            profile = self.profile
            tokens = len(reply.text) / CHARS_PER_TOKEN
            rest = tokens / profile.llm_tokens_per_s if profile.llm_tokens_per_s > 0 else 0.0
            await self._pace(received + profile.llm_first_token_s + rest)
            return web.json_response(_completion_json(completion_id, model, reply, calls, usage))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        try:
            return await self._stream(request, received, completion_id, model, reply, calls, usage, include_usage)
        except ConnectionResetError:  # the client stopped reading (a cancelled generation): normal
            return web.Response(status=499)

    async def _pace(self, deadline: float) -> None:
        if (delay := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)

    async def _stream(
        self,
        request: web.Request,
        received: float,
        completion_id: str,
        model: str,
        reply: Completion,
        calls: list[tuple[FunctionCall, str]],
        usage: Usage,
        include_usage: bool,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-request-id": f"req_{completion_id}",
            }
        )
        await resp.prepare(request)
        created = int(time.time())

        async def send(delta: dict[str, Any] | None, finish: str | None = None) -> None:
            chunk: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                chunk["usage"] = None
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": None if calls and not reply.text else "", "refusal": None})
        # the first token after the profile's delay, then one piece per its share of tokens/s
        profile = self.profile
        await self._pace(received + profile.llm_first_token_s)
        self.first_tokens.append((time.time() - (time.monotonic() - received), time.time()))
        tokens = 0.0
        first = time.monotonic()
        for piece in _pieces(reply.text, reply.chunk_chars):
            if profile.llm_tokens_per_s > 0 and tokens:
                await self._pace(first + tokens / profile.llm_tokens_per_s)
            tokens += len(piece) / CHARS_PER_TOKEN
            await send({"content": piece})
        for index, (tc, call_id) in enumerate(calls):
            await send(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": tc.name, "arguments": ""},
                        }
                    ]
                }
            )
            for piece in _pieces(tc.arguments_json, reply.chunk_chars):
                await send({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        await send({}, finish="tool_calls" if calls else "stop")
        if include_usage:
            final = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": usage.to_json(),
            }
            await resp.write(f"data: {json.dumps(final)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


CHARS_PER_TOKEN = 4
"""OpenAI's rule of thumb for English, used to pace a profile's tokens per second."""


def _error(status: int, message: str) -> web.Response:
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": None}}, status=status)


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _words(value: Any) -> int:
    return len(re.findall(r"\w+", json.dumps(value, ensure_ascii=False)))


def _estimate_usage(body: dict[str, Any], reply: Completion) -> Usage:
    completion = _words(reply.text) + sum(_words(tc.arguments_json) + 1 for tc in reply.tool_calls)
    return Usage(prompt_tokens=_words(body.get("messages", [])), completion_tokens=completion)


def _completion_json(
    completion_id: str, model: str, reply: Completion, calls: list[tuple[FunctionCall, str]], usage: Usage
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments_json}}
            for tc, call_id in calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if calls else "stop"}
        ],
        "usage": usage.to_json(),
    }


async def _serve_forever(args: argparse.Namespace) -> None:
    server = FakeOpenAIServer(
        *(Completion(text) for text in args.reply),
        host=args.host,
        port=args.port,
        repeat_last=True,
        record_path=args.record,
    )
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible chat completions server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--reply", action="append", default=[], help="a text reply (repeatable, in order)")
    parser.add_argument("--record", type=Path, default=None, help="append each request as JSON to FILE")
    args = parser.parse_args(argv)
    if not args.reply:
        parser.error("give at least one --reply")
    asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    sys.exit(main())
