"""The first clause of a reply goes to the TTS on its own, the rest as sentences."""

from __future__ import annotations

import asyncio

import pytest

from reply_audio import FirstClauseTokenizer

pytestmark = pytest.mark.asyncio


async def tokens_for(pieces: list[str]) -> list[str]:
    stream = FirstClauseTokenizer().stream()
    for piece in pieces:
        stream.push_text(piece)
        await asyncio.sleep(0)
    stream.end_input()
    out = [t.token async for t in stream]
    await stream.aclose()
    return out


def chars(text: str) -> list[str]:
    return [text[i : i + 3] for i in range(0, len(text), 3)]  # an LLM's small deltas


async def test_the_first_clause_is_a_token_of_its_own() -> None:
    text = "Sure, I can check that for you. Your next appointment is on Monday at ten."
    tokens = await tokens_for(chars(text))
    assert tokens[0] == "Sure,"
    assert " ".join(tokens).split() == text.split(), "nothing lost or repeated"


async def test_the_first_clause_goes_out_before_the_sentence_ends() -> None:
    stream = FirstClauseTokenizer().stream()
    for piece in chars("Of course, let me look"):
        stream.push_text(piece)
    first = await asyncio.wait_for(stream.__anext__(), 5)
    assert first.token == "Of course,"
    stream.end_input()
    rest = [t.token async for t in stream]
    await stream.aclose()
    assert rest == ["let me look"]


async def test_a_first_sentence_without_a_comma_is_not_held_back() -> None:
    text = "Your appointment is on Monday. Please bring your card, and arrive early."
    tokens = await tokens_for(chars(text))
    assert tokens[0] == "Your appointment is on Monday."
    assert " ".join(tokens).split() == text.split()


async def test_abbreviations_do_not_end_the_first_clause() -> None:
    tokens = await tokens_for(chars("Dr. Khoury sees you at ten, on Monday."))
    assert tokens[0] == "Dr. Khoury sees you at ten,"


async def test_arabic_clauses() -> None:
    tokens = await tokens_for(chars("حسناً، موعدك يوم الاثنين."))
    assert tokens[0] == "حسناً،"
