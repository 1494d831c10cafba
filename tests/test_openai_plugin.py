"""The production LLM wiring: the real `livekit.plugins.openai.LLM` against a local
OpenAI-compatible server (tests/fake_openai_server.py). No network, no mocks of livekit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import openai as openai_sdk
import pytest
import pytest_asyncio
from livekit.agents import (
    Agent,
    AgentSession,
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    APITimeoutError,
    function_tool,
    llm,
)
from livekit.agents.metrics import LLMMetrics
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.events import ErrorEvent
from livekit.plugins import openai

from testkit.fake_openai_server import Completion, FakeOpenAIServer, FunctionCall, Usage

pytestmark = pytest.mark.asyncio

MODEL = "gpt-test"
API_KEY = "test-key"
WAIT = 15.0
"""Upper bound for any single await in these tests; they normally take milliseconds."""
FAST_FAIL = APIConnectOptions(max_retry=0, retry_interval=0.0, timeout=2.0)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as s:
        yield s
        assert not s.unanswered, f"requests reached the fake server with nothing queued: {s.unanswered}"


@pytest_asyncio.fixture
async def model(server: FakeOpenAIServer) -> AsyncIterator[openai.LLM]:
    m = openai.LLM(model=MODEL, base_url=server.base_url, api_key=API_KEY)
    yield m
    await m.aclose()


def user_ctx(text: str) -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content="You are a test.")
    ctx.add_message(role="user", content=text)
    return ctx


async def collect_chunks(stream: llm.LLMStream) -> list[llm.ChatChunk]:
    async def run() -> list[llm.ChatChunk]:
        async with stream:
            return [chunk async for chunk in stream]

    return await asyncio.wait_for(run(), WAIT)


@function_tool
async def get_weather(city: str, days: int) -> str:
    """Weather forecast for a city.

    Args:
        city: The city name.
        days: How many days ahead.
    """
    return f"sunny in {city} for {days} days"


async def test_streams_text_reply(server: FakeOpenAIServer, model: openai.LLM) -> None:
    text = "Your appointment is on Monday at nine in the morning."
    server.push(Completion(text, chunk_chars=10))

    chunks = await collect_chunks(model.chat(chat_ctx=user_ctx("When is my appointment?")))

    contents = [c.delta.content for c in chunks if c.delta and c.delta.content]
    assert "".join(contents) == text
    assert len(contents) > 1, "the reply should arrive as several streamed chunks"
    assert all(c.delta.role == "assistant" for c in chunks if c.delta)

    [request] = server.chat_requests
    assert request.header("authorization") == f"Bearer {API_KEY}"
    body = request.json
    assert body["model"] == MODEL
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "You are a test."},
        {"role": "user", "content": "When is my appointment?"},
    ]
    assert "tools" not in body


async def test_streams_tool_call_with_split_arguments(server: FakeOpenAIServer, model: openai.LLM) -> None:
    args = {"city": "Damascus", "days": 3}
    server.push(Completion(tool_calls=[FunctionCall("get_weather", args, id="call_w1")], chunk_chars=4))

    chunks = await collect_chunks(model.chat(chat_ctx=user_ctx("Weather in Damascus?"), tools=[get_weather]))

    calls = [tc for c in chunks if c.delta for tc in c.delta.tool_calls]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert calls[0].call_id == "call_w1"
    assert json.loads(calls[0].arguments) == args
    assert not any(c.delta.content for c in chunks if c.delta)

    [tool] = server.chat_requests[0].json["tools"]
    assert tool["type"] == "function"
    fn = tool["function"]
    assert fn["name"] == "get_weather"
    assert fn["description"].startswith("Weather forecast for a city.")
    assert fn["strict"] is True
    params = fn["parameters"]
    assert params["type"] == "object"
    assert params["properties"]["city"]["type"] == "string"
    assert params["properties"]["city"]["description"] == "The city name."
    assert params["properties"]["days"]["type"] == "integer"
    assert sorted(params["required"]) == ["city", "days"]
    assert params["additionalProperties"] is False


async def test_parallel_tool_calls_and_text_in_one_response(server: FakeOpenAIServer, model: openai.LLM) -> None:
    server.push(
        Completion(
            "Checking both.",
            tool_calls=[
                FunctionCall("get_weather", {"city": "Homs", "days": 1}),
                FunctionCall("get_weather", {"city": "Aleppo", "days": 2}),
            ],
        )
    )

    response = await asyncio.wait_for(
        model.chat(chat_ctx=user_ctx("Weather in Homs and Aleppo?"), tools=[get_weather]).collect(), WAIT
    )

    assert response.text == "Checking both."
    assert [json.loads(tc.arguments) for tc in response.tool_calls] == [
        {"city": "Homs", "days": 1},
        {"city": "Aleppo", "days": 2},
    ]
    assert len({tc.call_id for tc in response.tool_calls}) == 2


async def test_reports_usage(server: FakeOpenAIServer, model: openai.LLM) -> None:
    server.push(Completion("Done.", usage=Usage(prompt_tokens=31, completion_tokens=9, cached_tokens=4)))
    metrics: list[LLMMetrics] = []
    model.on("metrics_collected", metrics.append)

    chunks = await collect_chunks(model.chat(chat_ctx=user_ctx("hi")))

    [usage] = [c.usage for c in chunks if c.usage is not None]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (31, 9, 40)
    assert usage.prompt_cached_tokens == 4
    # closing the stream (collect_chunks) awaits the metrics task, so metrics are in
    assert [(m.prompt_tokens, m.completion_tokens) for m in metrics] == [(31, 9)]


async def test_fake_server_answers_non_streaming_and_models(server: FakeOpenAIServer) -> None:
    server.push(Completion("Plain answer.", tool_calls=[FunctionCall("get_weather", {"city": "Hama"})]))
    client = openai_sdk.AsyncClient(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    try:
        completion = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        models = await client.models.list()
    finally:
        await client.close()

    message = completion.choices[0].message
    assert message.content == "Plain answer."
    assert message.tool_calls[0].function.name == "get_weather"
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Hama"}
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert [m.id for m in models.data] == [MODEL]


# -- a real AgentSession in text mode over the plugin ---------------------------------------


class WeatherAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You report the weather.")
        self.looked_up: list[str] = []

    @function_tool
    async def lookup_weather(self, city: str) -> str:
        """Current weather in a city.

        Args:
            city: The city name.
        """
        self.looked_up.append(city)
        return f"sunny in {city}"


def text_session(model: openai.LLM, **kwargs: object) -> AgentSession:
    return AgentSession(llm=model, vad=None, turn_handling={"turn_detection": None}, **kwargs)


async def test_session_runs_tool_and_replies(server: FakeOpenAIServer, model: openai.LLM) -> None:
    server.push(
        Completion(tool_calls=[FunctionCall("lookup_weather", {"city": "Paris"})], usage=Usage(50, 6)),
        Completion("It is sunny in Paris.", usage=Usage(70, 7)),
    )
    agent = WeatherAgent()

    async with text_session(model) as session:
        await asyncio.wait_for(session.start(agent), WAIT)
        result = await asyncio.wait_for(session.run(user_input="Weather in Paris?"), WAIT)

        result.expect.next_event().is_function_call(name="lookup_weather", arguments={"city": "Paris"})
        result.expect.next_event().is_function_call_output(output="sunny in Paris", is_error=False)
        reply = result.expect.next_event().is_message(role="assistant").event().item
        assert reply.text_content == "It is sunny in Paris."
        result.expect.no_more_events()
        assert agent.looked_up == ["Paris"]

        [usage] = session.usage.model_usage
        assert (usage.model, usage.input_tokens, usage.output_tokens) == (MODEL, 120, 13)

    first, second = (r.json for r in server.chat_requests)
    assert first["messages"][0] == {"role": "system", "content": "You report the weather."}
    assert first["messages"][-1] == {"role": "user", "content": "Weather in Paris?"}
    assert [t["function"]["name"] for t in first["tools"]] == ["lookup_weather"]
    # the second call carries the tool call and its result back to the model
    assistant, tool_msg = second["messages"][-2:]
    [sent_call] = assistant["tool_calls"]
    assert sent_call["function"]["name"] == "lookup_weather"
    assert json.loads(sent_call["function"]["arguments"]) == {"city": "Paris"}
    assert tool_msg == {"role": "tool", "tool_call_id": sent_call["id"], "content": "sunny in Paris"}


# -- errors surface, fast -------------------------------------------------------------------


async def test_http_500_raises_status_error(server: FakeOpenAIServer, model: openai.LLM) -> None:
    server.push(Completion(status=500, error_message="upstream exploded"))
    errors: list[llm.LLMError] = []
    model.on("error", errors.append)

    started = time.monotonic()
    with pytest.raises(APIStatusError) as info:
        await collect_chunks(model.chat(chat_ctx=user_ctx("hi"), conn_options=FAST_FAIL))

    assert info.value.status_code == 500
    assert "upstream exploded" in info.value.message
    assert [(type(e.error), e.recoverable) for e in errors] == [(APIStatusError, False)]
    assert time.monotonic() - started < 5


async def test_retries_then_gives_up(server: FakeOpenAIServer, model: openai.LLM) -> None:
    server.push(Completion(status=503), Completion(status=503))
    errors: list[llm.LLMError] = []
    model.on("error", errors.append)
    options = APIConnectOptions(max_retry=1, retry_interval=0.0, timeout=2.0)

    with pytest.raises(APIConnectionError, match="after 2 attempts"):
        await collect_chunks(model.chat(chat_ctx=user_ctx("hi"), conn_options=options))

    assert len(server.chat_requests) == 2
    assert [e.recoverable for e in errors] == [True, False]


async def test_timeout_raises_timeout_error(server: FakeOpenAIServer, model: openai.LLM) -> None:
    server.push(Completion("too late", delay=60))
    options = APIConnectOptions(max_retry=0, retry_interval=0.0, timeout=0.5)

    started = time.monotonic()
    with pytest.raises(APITimeoutError):
        await collect_chunks(model.chat(chat_ctx=user_ctx("hi"), conn_options=options))
    assert time.monotonic() - started < 5


async def test_session_emits_error_and_run_fails(server: FakeOpenAIServer, model: openai.LLM) -> None:
    server.push(Completion(status=500))
    errors: asyncio.Queue[ErrorEvent] = asyncio.Queue()

    async with text_session(model, conn_options=SessionConnectOptions(llm_conn_options=FAST_FAIL)) as session:
        session.on("error", errors.put_nowait)
        await asyncio.wait_for(session.start(WeatherAgent()), WAIT)
        with pytest.raises(APIStatusError):
            await asyncio.wait_for(session.run(user_input="hi"), WAIT)

        event = await asyncio.wait_for(errors.get(), WAIT)
        assert event.source is model
        assert isinstance(event.error, llm.LLMError)
        assert isinstance(event.error.error, APIStatusError)
        assert event.error.error.status_code == 500
        assert event.error.recoverable is False
