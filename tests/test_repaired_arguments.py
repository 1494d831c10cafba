"""Tool arguments the model broke are refused, never repaired into values and acted on.

LiveKit repairs malformed tool-call JSON (`json_repair`) before a tool runs: a truncated
`{"zip_code": "941` reaches the tool as "941", `{"confirmed": t` as "t", which lax
validation reads as true. Here a real session with a scripted model sends exactly those
and the effects are checked: no verification attempt counted, nothing booked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from desk import arguments
from desk.call_state import DeskError
from testkit.desk_world import SARA, World, last_output, list_tomorrow, open_call, tool, verify
from testkit.scripted_llm import Reply, ToolCall
from tools.agents import strict_json_object


@pytest.mark.asyncio
async def test_a_truncated_zip_code_is_refused_and_costs_no_attempt(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path, max_verification_attempts=1) as call:
        result = await call.turn(
            "My ZIP code is 9 4 1...",
            Reply(tool_calls=[ToolCall("verify_caller", raw_arguments='{"zip_code": "941')]),
            Reply("Could you repeat the ZIP code?"),
        )
        refused = last_output(result, "verify_caller")
        assert (refused.is_error, refused.output) == (True, call.line("arguments_broken"))
        assert call.desk.state.failed_attempts == 0 and call.desk.state.customer is None
        # One attempt allowed, and it is still there: the right code verifies.
        await verify(call)
        assert call.desk.state.customer is not None and call.desk.state.customer.id == SARA.id


@pytest.mark.asyncio
async def test_a_truncated_confirmation_changes_nothing(world: World, tmp_path: Path) -> None:
    async with open_call(world, tmp_path) as call:
        await verify(call)
        await list_tomorrow(call, world)
        await call.turn("The first one.", tool("book_appointment", slot_ref="S1"), Reply("Shall I book it?"))
        before = await world.rows()
        for broken in ('{"confirmed": t', '{"confirmed": "true"}', '{"confirmed": 1}'):
            result = await call.turn(
                "Yes.", Reply(tool_calls=[ToolCall("confirm_pending_change", raw_arguments=broken)]), Reply("Sorry?")
            )
            assert last_output(result, "confirm_pending_change").is_error, broken
            assert await world.rows() == before, broken
        # The proposal is still open: a real JSON true books it.
        await call.turn("Yes, book it.", tool("confirm_pending_change", confirmed=True), Reply("Booked."))
        assert world.tomorrow_slots()[0].id in (await world.scheduled(SARA)).values()


def test_only_a_json_object_as_sent_counts_as_arguments() -> None:
    for sent in ('{"zip_code": "94103"}', "", "  ", "null", "{}", '"{\\"a\\": 1}"'):
        assert strict_json_object(sent), sent
    for broken in ('{"zip_code": "941', '{"confirmed": t', "{'a': 1}", "[1, 2]", '{"a": 1,}', "<|call|>{}"):
        assert not strict_json_object(broken), broken


@pytest.mark.parametrize("value", ["t", "true", "yes", 1, 0, None, "", [True]])
def test_a_confirmation_must_be_a_json_boolean(value: object) -> None:
    with pytest.raises(DeskError) as refused:
        arguments.confirmation(value)
    assert refused.value.key == "confirmation_not_boolean"
    assert arguments.confirmation(True) is True and arguments.confirmation(False) is False
