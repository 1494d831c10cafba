"""Typed chat from browser callers, as a deliberate setting (LiveKit takes `lk.chat` text by default).

With `TYPED_CHAT=false` (the default) the room does not listen for typed text at all: a
caller's words come only from their voice. With it on, a typed message is a caller turn like
a spoken one, bounded by `TYPED_CHAT_MAX_CHARS` (a longer one is refused with a spoken line,
not cut), and it reaches the record marked `"input": "typed"` in the message's metadata.
Phone callers have no chat.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice import room_io

logger = logging.getLogger("tools.typed_chat")

TYPED = "typed"
"""The `input` a typed caller message carries, in the chat item's `extra` and the stored metadata."""


def typed_chat_input(
    enabled: bool, *, max_chars: int, too_long: Callable[[int], str]
) -> room_io.TextInputOptions | bool:
    """What `RoomOptions.text_input` should be: off, or a bounded callback that marks messages typed.
    `too_long(limit)` is the line a caller whose message is refused hears (in the call's language)."""
    if not enabled:
        return False

    async def on_typed(session: AgentSession, event: room_io.TextInputEvent) -> None:
        text = event.text.strip()
        if not text:
            return
        if len(text) > max_chars:
            logger.warning("typed message refused: %d characters, the limit is %d", len(text), max_chars)
            session.say(too_long(max_chars))
            return
        message = llm.ChatMessage(role="user", content=[text], extra={"input": TYPED})
        # As LiveKit's own text input does: the typed turn takes the floor from the agent.
        claim: Any = getattr(session, "_claim_user_turn", None)
        async with claim() if claim is not None else contextlib.nullcontext():
            with contextlib.suppress(RuntimeError):  # an uninterruptible reply keeps playing; the turn queues
                await session.interrupt()
            session.generate_reply(user_input=message)

    return room_io.TextInputOptions(text_input_cb=on_typed)
