"""Keypad entry (DTMF) for phone callers: simulated `sip_dtmf_received` events in a real text-mode call.

The simulated room (testkit/fake_room.py) emits the events LiveKit's room emits for a SIP
participant's keys; `KeypadListener` is the production glue. The tests assert the desk's
state, the store's attempts and what the model was told, never wording beyond the prompt it
comes from.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from livekit import rtc

from desk.keypad import KeypadBuffer
from testkit.desk_world import SARA, World, open_call, tool
from testkit.fake_room import FakeRoom
from testkit.log_capture import every_log_line
from testkit.scripted_llm import Reply
from tools.agents import AppointmentsAgent, ReceptionAgent
from tools.keypad import KeypadListener

CALLER = "sip_caller"  # the identity open_call gives the caller
WAIT = 10.0


async def until(condition: Callable[[], bool], what: str) -> None:
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 (the conditions are plain state, no event to wait on)
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), WAIT)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None


@dataclass
class KeypadCall:
    call: Any
    room: FakeRoom
    listener: KeypadListener

    def press(self, keys: str) -> None:
        self.room.press(CALLER, keys)

    async def settled(self) -> None:
        """Every entry typed so far has been handled."""
        await until(lambda: not self.listener._entries, "keypad entries handled")

    def told(self) -> str:
        """Every instruction and message the model has seen, as one text."""
        return told(self.call)


def told(call: Any) -> str:
    return "\n".join(m.text_content or "" for c in call.llm.calls for m in c.messages)


@contextlib.asynccontextmanager
async def keypad_call(
    world: World, tmp_path: Path, *, timeout: float = 5.0, **options: Any
) -> AsyncIterator[KeypadCall]:
    async with open_call(world, tmp_path, is_sip=True, **options) as call:
        room = FakeRoom()
        participant = room.join(CALLER, kind=rtc.ParticipantKind.PARTICIPANT_KIND_SIP)
        listener = KeypadListener.for_caller(room, call.session, call.desk, participant, timeout=timeout)  # type: ignore[arg-type]
        assert listener is not None
        try:
            yield KeypadCall(call, room, listener)
        finally:
            await listener.aclose()


# ------------------------------------------------------------------------- verifying by keypad


@pytest.mark.asyncio
async def test_a_typed_zip_verifies_and_hands_over(world: World, tmp_path: Path) -> None:
    with every_log_line() as logs:
        async with keypad_call(world, tmp_path) as k:
            await k.call.turn("Hello, I want my appointments.", Reply("Please say or type your ZIP code."))
            assert k.call.line("hint_keypad") in k.told(), "a phone caller is offered the keypad"
            k.call.llm.push(Reply("Thank you, you are verified. How can I help?"))  # the appointments agent
            k.press("94103#")
            await until(lambda: isinstance(k.call.session.current_agent, AppointmentsAgent), "handover")
            await k.settled()
            assert k.call.desk.state.customer == SARA and k.call.desk.state.failed_attempts == 0
            effects = k.call.manager.transcript.to_record().conversation["metadata"]["effects"]
            assert "verified" in effects
    digits_seen = [line for line in logs.lines if "94103" in line or "9 4 1 0 3" in line]
    assert digits_seen == [], "keypad digits are never logged"


@pytest.mark.asyncio
async def test_browser_callers_get_no_keypad(world: World, tmp_path: Path) -> None:
    room = FakeRoom()
    browser = room.join("web-caller")
    async with open_call(world, tmp_path) as call:
        assert KeypadListener.for_caller(room, call.session, call.desk, browser) is None  # type: ignore[arg-type]
        assert KeypadListener.for_caller(room, call.session, call.desk, None) is None
        await call.turn("Hello.", Reply("Hi, what is your ZIP code?"))
        assert call.line("hint_keypad") not in told(call)


@pytest.mark.asyncio
async def test_only_the_callers_own_keys_count(world: World, tmp_path: Path) -> None:
    async with keypad_call(world, tmp_path) as k:
        k.room.join("sip_other", kind=rtc.ParticipantKind.PARTICIPANT_KIND_SIP)
        k.room.press("sip_other", "94103#")
        await asyncio.sleep(0.05)
        await k.settled()
        assert not k.call.desk.state.verified and isinstance(k.call.session.current_agent, ReceptionAgent)


# ------------------------------------------------------------------------- typing and speaking at once


@pytest.mark.asyncio
async def test_typing_and_saying_a_zip_at_once_is_one_attempt(world: World, tmp_path: Path) -> None:
    async with keypad_call(world, tmp_path) as k:
        k.call.llm.push(Reply("Sorry, that does not match."))  # the keypad entry's answer
        k.press("11111#")
        await k.settled()
        assert k.call.desk.state.failed_attempts == 1
        # what the caller said at the same moment (heard a little later) is the same attempt
        result = await k.call.turn("One one one one two.", tool("verify_caller", zip_code="11112"), Reply("Sorry."))
        outputs = [e.item for e in result.events if e.type == "function_call_output"]
        assert [o.output for o in outputs] == [k.call.line("verify_failed")]
        assert k.call.desk.state.failed_attempts == 1


@pytest.mark.asyncio
async def test_speech_then_keypad_at_once_counts_once(world: World, tmp_path: Path) -> None:
    async with keypad_call(world, tmp_path) as k:
        await k.call.turn("Three three three three three.", tool("verify_caller", zip_code="33333"), Reply("Sorry."))
        assert k.call.desk.state.failed_attempts == 1
        calls = len(k.call.llm.calls)
        k.press("33333#")
        await k.settled()
        assert k.call.desk.state.failed_attempts == 1
        assert len(k.call.llm.calls) == calls, "the caller already had the answer: no second one"


@pytest.mark.asyncio
async def test_without_a_merge_window_typing_and_saying_are_two_attempts(world: World, tmp_path: Path) -> None:
    """The rule above is what makes them one: with a zero window they count twice."""
    async with keypad_call(world, tmp_path, keypad_merge_window=0.0) as k:
        k.call.llm.push(Reply("Sorry."))
        k.press("11111#")
        await k.settled()
        await k.call.turn("One one one one one.", tool("verify_caller", zip_code="11111"), Reply("Sorry."))
        assert k.call.desk.state.failed_attempts == 2


# ------------------------------------------------------------------------- #, *, pauses and validation


@pytest.mark.asyncio
async def test_star_starts_over_and_a_lone_hash_does_nothing(world: World, tmp_path: Path) -> None:
    async with keypad_call(world, tmp_path) as k:
        calls = len(k.call.llm.calls)
        k.press("#")
        k.press("#")
        await k.settled()
        assert len(k.call.llm.calls) == calls and k.call.desk.state.failed_attempts == 0
        k.call.llm.push(Reply("Welcome back."))
        k.press("99*94103#")
        await until(lambda: k.call.desk.state.verified, "verified after the restart")
        assert k.call.desk.state.failed_attempts == 0


@pytest.mark.asyncio
async def test_a_pause_ends_the_entry(world: World, tmp_path: Path) -> None:
    async with keypad_call(world, tmp_path, timeout=0.2) as k:
        k.call.llm.push(Reply("Welcome back."))
        k.press("941")
        await asyncio.sleep(0.05)  # shorter than the pause: still typing
        k.press("03")
        assert not k.call.desk.state.verified
        await until(lambda: k.call.desk.state.verified, "verified after the pause")
        assert k.call.desk.state.failed_attempts == 0


@pytest.mark.asyncio
async def test_typed_digits_are_validated_like_spoken_ones(world: World, tmp_path: Path) -> None:
    async with keypad_call(world, tmp_path) as k:
        k.call.llm.push(Reply("That seems too short; please try again."))
        k.press("12#")
        await k.settled()
        entry = k.call.line("keypad_entry", result=k.call.line("zip_invalid"))
        await until(lambda: entry in k.told(), "the model is told")
        assert k.call.desk.state.failed_attempts == 0 and not k.call.desk.state.verified
        assert "12" not in entry


@pytest.mark.asyncio
async def test_a_phone_number_can_be_typed_when_the_call_has_none(world: World, tmp_path: Path) -> None:
    with every_log_line() as logs:
        async with keypad_call(world, tmp_path, phone=None) as k:
            k.call.llm.push(Reply("Thanks. Now your ZIP code, please."))
            k.press("0014155550100#")
            await k.settled()
            assert k.call.desk.state.phone == SARA.phone and k.call.desk.state.phone_source == "caller"
            k.call.llm.push(Reply("Welcome back."))
            k.press("94103#")
            await until(lambda: k.call.desk.state.verified, "verified")
            assert k.call.desk.state.customer == SARA
    assert not [line for line in logs.lines if "0014155550100" in line or "94103" in line]


def test_the_buffer_keeps_at_most_fifteen_digits_and_ignores_other_keys() -> None:
    buffer = KeypadBuffer()
    for key in "12A34B5678901234567":
        assert buffer.press(key) is None
    assert buffer.press("#") == "123456789012345"
    assert buffer.press("#") is None
    for key in "987":
        buffer.press(key)
    assert repr(buffer) == "KeypadBuffer(keys=3)"  # never the digits
