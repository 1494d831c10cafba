"""The end-of-call summary written by the LLM: two sentences within a small time budget.

`written_summary` asks the call's LLM for a two-sentence summary in the call's language
and gives up (returns None) on any error, timeout, or an answer that is empty or too long
to be a summary; the record then carries `outcome.built_summary`, which never fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from livekit.agents import APIConnectOptions, llm

import prompts
from storage.records import Row

logger = logging.getLogger("conversation_manager.summary")

TRANSCRIPT_CHARS = 12_000
"""The end of a long call is what the summary needs; older turns are cut to bound cost."""
MAX_SUMMARY_CHARS = 600


def transcript_text(messages: Sequence[Row]) -> str:
    lines = [f"{m['role']}: {m['content']}" for m in messages if m.get("role") in ("user", "assistant")]
    text = "\n".join(lines)
    return text[-TRANSCRIPT_CHARS:]


async def written_summary(model: llm.LLM, language: str, messages: Sequence[Row], *, timeout: float) -> str | None:
    """The LLM's two-sentence summary, or None if it cannot give one within `timeout` seconds."""
    talk = transcript_text(messages)
    if not talk:
        return None
    chat_ctx = llm.ChatContext()
    chat_ctx.add_message(role="system", content=prompts.load(language, "summary_instructions"))
    chat_ctx.add_message(role="user", content=talk)
    try:
        text = await asyncio.wait_for(_complete(model, chat_ctx), timeout)
    except TimeoutError:
        logger.warning("no LLM summary within %.1fs; using the built summary", timeout)
        return None
    except Exception as e:  # any provider failure: the built summary takes over
        logger.warning("LLM summary failed (%s); using the built summary", str(e) or type(e).__name__)
        return None
    text = " ".join(text.split())
    if not text or len(text) > MAX_SUMMARY_CHARS:
        logger.warning("LLM summary unusable (%d chars); using the built summary", len(text))
        return None
    return text


async def _complete(model: llm.LLM, chat_ctx: llm.ChatContext) -> str:
    parts: list[str] = []
    # One attempt: the caller of this function bounds the time, retries would outlive it.
    async with model.chat(chat_ctx=chat_ctx, conn_options=APIConnectOptions(max_retry=0)) as stream:
        async for chunk in stream:
            if chunk.delta is not None and chunk.delta.content:
                parts.append(chunk.delta.content)
    return "".join(parts)
