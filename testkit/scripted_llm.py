"""A scripted, offline `livekit.agents.llm.LLM` for conversation tests.

`ScriptedLLM` plays a list of *steps*, one per LLM call the session makes, and records
every call. It is a real `llm.LLM` whose `chat()` returns a real `llm.LLMStream`, so the
session, tool execution, `RunResult.expect`, usage and metrics all run unmodified.

A step is a `Reply`:

    Reply("Sure, one moment.")                                  # text, streamed in chunks
    Reply(tool_calls=[ToolCall("verify_caller", {"phone": "0999"})])
    Reply("Let me check.", tool_calls=[ToolCall("a", {}), ToolCall("b", {})])  # parallel
    Reply("Done.", usage=usage(prompt=120, completion=8))       # feeds session.usage
    Reply(error=APIConnectionError(retryable=False))            # the LLM call fails

or a callable that receives the `LLMCall` being answered (its `chat_ctx`, the tools
offered, helpers such as `last_tool_output()`) and returns a `Reply`, to answer from what
a tool returned:

    lambda call: Reply(f"Your reference is {call.last_tool_output().output}.")

Typical scenario test (text mode, no audio, no network):

    llm = ScriptedLLM(
        Reply(tool_calls=[ToolCall("lookup", {"ref": "A1"})]),  # 1st call: use a tool
        Reply("You are booked."),                              # 2nd call: after the tool ran
    )
    async with AgentSession(llm=llm, vad=None, turn_handling={"turn_detection": None}) as s:
        await s.start(MyAgent(), capture_run=True)  # waits for on_enter (e.g. the greeting)
        result = await s.run(user_input="Book me in")
    result.expect.next_event().is_function_call(name="lookup", arguments={"ref": "A1"})
    assert llm.calls[1].tool_names == ["lookup", ...]
    llm.assert_done()

Running out of steps fails loudly: the call raises `ScriptExhausted` (an
`AssertionError`) inside the LLM stream, which `session.run()` re-raises to the test, and
the error is also kept in `llm.errors` for calls no `run()` watches. Pass
`default=Reply(...)` to answer every extra call with that reply instead. `push()` appends
steps later, e.g. turn by turn; `assert_done()` checks every step was used and no call
failed.

Await `session.start(agent, capture_run=True)` before the first `run()`: plain `start()`
returns before `on_enter` has spoken, and a user turn sent at once lands in the history
*before* the greeting.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import llm
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)
from livekit.agents.utils import is_given

__all__ = [
    "LLMCall",
    "Reply",
    "ScriptExhausted",
    "ScriptedLLM",
    "Step",
    "ToolCall",
    "usage",
]


@dataclass(frozen=True)
class ToolCall:
    """One function call the model makes: tool `name` with JSON-able `args`."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    raw_arguments: str | None = None
    """Sent verbatim instead of `json.dumps(args)`, e.g. to test malformed arguments."""
    call_id: str | None = None
    """Defaults to a unique `call_<n>`."""

    @property
    def arguments(self) -> str:
        return self.raw_arguments if self.raw_arguments is not None else json.dumps(dict(self.args))


@dataclass(frozen=True)
class Reply:
    """What the model answers to one call: text and/or tool calls, then optional usage."""

    text: str = ""
    tool_calls: Sequence[ToolCall] = ()
    usage: llm.CompletionUsage | None = None
    chunks: int = 3
    """The text is streamed in (at most) this many chunks, split at word boundaries."""
    delay: float = 0.0
    """Seconds to wait before the first chunk (simulated time to first token)."""
    error: Exception | None = None
    """Raised after streaming the text/tool calls. Use a non-retryable `APIError` (or any
    other exception) unless the test wants the framework's retries to replay it."""


def usage(prompt: int, completion: int, *, cached: int = 0) -> llm.CompletionUsage:
    """Shorthand for `llm.CompletionUsage` with a consistent total."""
    return llm.CompletionUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        prompt_cached_tokens=cached,
        total_tokens=prompt + completion,
    )


@dataclass
class LLMCall:
    """One `chat()` call as the session made it (a snapshot of its chat context)."""

    index: int
    chat_ctx: llm.ChatContext
    tools: list[llm.Tool]
    tool_choice: Any = None
    reply: Reply | None = None
    """The reply served, once the step was resolved."""

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered to the model on this call, sorted."""
        return sorted(t.id for t in self.tools)

    @property
    def messages(self) -> list[llm.ChatMessage]:
        return [i for i in self.chat_ctx.items if isinstance(i, llm.ChatMessage)]

    @property
    def instructions(self) -> str:
        """Text of the system/developer messages (the agent's instructions)."""
        return "\n".join(m.text_content or "" for m in self.messages if m.role in ("system", "developer"))

    @property
    def last_user_text(self) -> str | None:
        users = [m for m in self.messages if m.role == "user"]
        return users[-1].text_content if users else None

    @property
    def function_calls(self) -> list[llm.FunctionCall]:
        return [i for i in self.chat_ctx.items if isinstance(i, llm.FunctionCall)]

    @property
    def tool_outputs(self) -> list[llm.FunctionCallOutput]:
        return [i for i in self.chat_ctx.items if isinstance(i, llm.FunctionCallOutput)]

    def last_tool_output(self, name: str | None = None) -> llm.FunctionCallOutput:
        """The most recent tool result in the context (of tool `name` if given)."""
        outputs = [o for o in self.tool_outputs if name is None or o.name == name]
        if not outputs:
            raise AssertionError(
                f"LLM call #{self.index}: no tool output{f' from {name!r}' if name else ''} "
                f"in the chat context (items: {[i.type for i in self.chat_ctx.items]})"
            )
        return outputs[-1]


Step = Reply | Callable[[LLMCall], Reply]


class ScriptExhausted(AssertionError):
    """The session called the LLM more times than the script has steps."""


class ScriptedLLM(llm.LLM):
    """An `llm.LLM` that answers each call with the next programmed step. See module doc."""

    def __init__(
        self,
        *steps: Step,
        default: Step | None = None,
        model: str = "scripted",
        provider: str = "scripted",
    ) -> None:
        super().__init__()
        self._steps: deque[Step] = deque(steps)
        self._default = default
        self._model = model
        self._provider = provider
        self._call_ids = itertools.count(1)
        self.calls: list[LLMCall] = []
        """Every call, in order."""
        self.errors: list[BaseException] = []
        """Errors raised by calls (script exhausted, a failing step callable, Reply.error)."""

    @property
    def model(self) -> str:
        return self._model

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def remaining(self) -> int:
        """Steps not played yet."""
        return len(self._steps)

    def push(self, *steps: Step) -> None:
        """Append steps to the script."""
        self._steps.extend(steps)

    def assert_done(self) -> None:
        """Fail if steps are left over or if any call failed."""
        if self.errors:
            raise AssertionError(f"scripted LLM calls failed: {self.errors!r}")
        if self._steps:
            raise AssertionError(f"{len(self._steps)} scripted step(s) never used after {len(self.calls)} call(s)")

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        call = LLMCall(
            index=len(self.calls),
            chat_ctx=chat_ctx.copy(),
            tools=list(tools or []),
            tool_choice=tool_choice if is_given(tool_choice) else None,
        )
        self.calls.append(call)
        step: Step | None = self._steps.popleft() if self._steps else self._default
        return _ScriptedStream(
            self, call=call, step=step, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )

    def _next_call_id(self) -> str:
        return f"call_{next(self._call_ids)}"


class _ScriptedStream(llm.LLMStream):
    def __init__(
        self,
        owner: ScriptedLLM,
        *,
        call: LLMCall,
        step: Step | None,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
    ) -> None:
        self._owner = owner
        self._call = call
        self._step = step
        super().__init__(owner, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)

    def _resolve(self) -> Reply:
        if self._call.reply is not None:  # a framework retry replays the same reply
            return self._call.reply
        if self._step is None:
            raise ScriptExhausted(
                f"scripted LLM has no step for call #{self._call.index} "
                f"(last user text: {self._call.last_user_text!r}); add a step or pass default="
            )
        reply = self._step(self._call) if callable(self._step) else self._step
        if not isinstance(reply, Reply):
            raise TypeError(f"a scripted step must produce a Reply, got {reply!r}")
        self._call.reply = reply
        return reply

    async def _run(self) -> None:
        try:
            reply = self._resolve()
        except BaseException as e:
            self._owner.errors.append(e)
            raise
        chunk_id = f"scripted-{self._call.index}"
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        for piece in _split(reply.text, reply.chunks):
            self._event_ch.send_nowait(
                llm.ChatChunk(id=chunk_id, delta=llm.ChoiceDelta(role="assistant", content=piece))
            )
            await asyncio.sleep(0)  # let consumers see the text streamed, not all at once
        if reply.tool_calls:
            calls = [
                llm.FunctionToolCall(
                    name=tc.name,
                    arguments=tc.arguments,
                    call_id=tc.call_id or self._owner._next_call_id(),
                )
                for tc in reply.tool_calls
            ]
            self._event_ch.send_nowait(
                llm.ChatChunk(id=chunk_id, delta=llm.ChoiceDelta(role="assistant", tool_calls=calls))
            )
        if reply.usage is not None:
            self._event_ch.send_nowait(llm.ChatChunk(id=chunk_id, usage=reply.usage))
        if reply.error is not None:
            self._owner.errors.append(reply.error)
            raise reply.error


def _split(text: str, n: int) -> list[str]:
    """Split `text` into at most `n` non-empty pieces at word boundaries; "".join() == text."""
    if not text:
        return []
    words = re.findall(r"\s*\S+\s*", text) or [text]
    n = max(1, min(n, len(words)))
    size = -(-len(words) // n)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]
