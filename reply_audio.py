"""How the agent's reply text is cut into TTS requests: sentences, except the first clause.

The OpenAI TTS is not streaming, so LiveKit sends it one sentence at a time, and a sentence
goes out only once it is complete and some text after it has arrived. The caller hears
nothing until then: with a hosted LLM at 80 tokens/s, "Sure, I can check that for you."
waits about 100 ms for its last word. `FirstClauseTokenizer` sends the reply's first clause
("Sure,") as soon as it ends, then sentences as before; the next request is made while the
first clause plays, so no gap opens (bench/voice_to_voice.py: the "first sentence" line of the
latency budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from livekit.agents import tokenize, utils
from livekit.agents.tokenize.tokenizer import TokenData

__all__ = ["FirstClauseTokenizer"]

CLAUSE_END = re.compile(r"[,;:،؛](?=\s)|\s[-–—](?=\s)|(?<=\w{3})[.!?؟](?=\s)")
"""A clause ends at a comma, semicolon or colon (Latin or Arabic), a dash, or the end of a
sentence, before a space ("Dr." and "St." are not sentence ends: three letters at least)."""


class FirstClauseTokenizer(tokenize.SentenceTokenizer):
    """LiveKit's sentence tokenizer, except that a reply's first clause is its own token."""

    def __init__(self, inner: tokenize.SentenceTokenizer | None = None, *, min_words: int = 1) -> None:
        self._inner = inner or tokenize.blingfire.SentenceTokenizer(retain_format=True)
        self._min_words = min_words

    def tokenize(self, text: str, *, language: str | None = None) -> list[str]:
        return self._inner.tokenize(text, language=language)

    def stream(self, *, language: str | None = None) -> tokenize.SentenceStream:
        return _FirstClauseStream(self._inner.stream(language=language), self._min_words)


class _FirstClauseStream(tokenize.SentenceStream):
    def __init__(self, inner: tokenize.SentenceStream, min_words: int) -> None:
        super().__init__()
        self._inner = inner
        self._min_words = min_words
        self._head = ""
        self._first_sent = False
        self._segment = utils.shortuuid()
        self._forward = asyncio.create_task(self._forward_inner(), name="FirstClauseStream.forward")

    def push_text(self, text: str) -> None:
        if self._first_sent:
            self._inner.push_text(text)
            return
        self._head += text
        for match in CLAUSE_END.finditer(self._head):
            clause = self._head[: match.end()].strip()
            if len(clause.split()) >= self._min_words:
                self._first_sent = True
                self._event_ch.send_nowait(TokenData(segment_id=self._segment, token=clause))
                if rest := self._head[match.end() :].lstrip():
                    self._inner.push_text(rest)
                return

    def _release(self) -> None:
        """No clause ended before the end of the text: it all goes the sentence way."""
        if not self._first_sent:
            self._first_sent = True
            if self._head:
                self._inner.push_text(self._head)

    def flush(self) -> None:
        self._release()
        self._inner.flush()

    def end_input(self) -> None:
        self._release()
        self._inner.end_input()

    async def _forward_inner(self) -> None:
        try:
            async for token in self._inner:
                self._event_ch.send_nowait(token)
        finally:
            self._event_ch.close()

    async def aclose(self) -> None:
        await self._inner.aclose()
        with contextlib.suppress(asyncio.CancelledError):
            await utils.aio.cancel_and_wait(self._forward)
        self._event_ch.close()
