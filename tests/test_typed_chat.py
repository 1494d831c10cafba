"""Typed chat from browser callers: off unless set, bounded, and stored marked as typed.

The callback is the one the worker gives RoomIO (`RoomOptions.text_input`); here it is fed
the `TextInputEvent` RoomIO would build from an `lk.chat` text stream, in a real text-mode call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from livekit.agents.voice import room_io

import prompts
from settings import Settings
from testkit.desk_world import World, open_call
from testkit.scripted_llm import Reply
from tools.typed_chat import typed_chat_input

WAIT = 10.0


def too_long(limit: int) -> str:
    return prompts.load("en", "typed_too_long", limit=limit)


async def until_llm_calls(call: object, n: int) -> None:
    async def poll() -> None:
        while len(call.llm.calls) < n:  # type: ignore[attr-defined]  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT)


def test_typed_chat_is_off_unless_set() -> None:
    settings = Settings.from_env({})
    assert settings.typed_chat is False and settings.typed_chat_max_chars == 500
    assert typed_chat_input(settings.typed_chat, max_chars=500, too_long=too_long) is False
    on = Settings.from_env({"TYPED_CHAT": "true", "TYPED_CHAT_MAX_CHARS": "80"})
    assert (on.typed_chat, on.typed_chat_max_chars) == (True, 80)
    assert isinstance(typed_chat_input(True, max_chars=80, too_long=too_long), room_io.TextInputOptions)


@pytest.mark.asyncio
async def test_a_typed_message_is_a_turn_stored_as_typed(world: World, tmp_path: Path) -> None:
    options = typed_chat_input(True, max_chars=80, too_long=too_long)
    assert isinstance(options, room_io.TextInputOptions)
    async with open_call(world, tmp_path) as call:
        await call.turn("Hello, can you hear me?", Reply("Yes, I can."))
        calls = len(call.llm.calls)
        call.llm.push(Reply("Of course, what is your ZIP code?"))
        await options.text_input_cb(call.session, room_io.TextInputEvent(text="  I want to book a visit  "))
        await until_llm_calls(call, calls + 1)
        assert call.llm.calls[-1].last_user_text == "I want to book a visit"
        # refused, not cut: a message over the limit never reaches the model
        await options.text_input_cb(call.session, room_io.TextInputEvent(text="x" * 81))
        await options.text_input_cb(call.session, room_io.TextInputEvent(text="   "))
        await asyncio.sleep(0.2)
        assert len(call.llm.calls) == calls + 1
    messages = call.manager.transcript.to_record().messages
    users = [m for m in messages if m["role"] == "user"]
    assert [(u["content"], u["metadata"].get("input")) for u in users] == [
        ("Hello, can you hear me?", None),
        ("I want to book a visit", "typed"),
    ]
    said = [m["content"] for m in messages if m["role"] == "assistant"]
    assert call.line("typed_too_long", limit=80) in said
