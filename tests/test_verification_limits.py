"""Verification limits across calls, on both stores: redialling or calling in parallel buys no guesses.

- Whole calls (real text-mode sessions, scripted LLM): failures in earlier calls lock the
  phone in a new call, even with the right ZIP code; a success resets the phone's count; a
  browser identity trying several phones is stopped by the per-source limit.
- The store's claim itself: parallel claims for one phone from many connections (as from
  many calls) never exceed the limit; the window slides (old failures stop counting and
  the wait announced is when one leaves); an invalid phone or source never reaches a query.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

import prompts
from desk.call_state import DeskError
from desk.desk import AppointmentDesk, DeskConfig
from settings import Settings
from storage.domain import AppointmentStore, VerificationClaim, VerificationLimits
from storage.domain_sqlite import SQLiteAppointmentStore
from storage.domain_supabase import SupabaseAppointmentStore
from storage.records import StoreError
from testkit.desk_world import (
    HUDA,
    OMAR,
    SARA,
    TZ,
    World,
    last_output,
    open_call,
    outcome,
    sqlite_world,
    supabase_world,
    tool,
)
from testkit.local_supabase import Stack
from testkit.scripted_llm import Reply
from tools.agents import AppointmentsAgent, ReceptionAgent

LIMITS = VerificationLimits(window_seconds=3600, phone_limit=6, source_limit=10)
SETTINGS = Settings(clinic_timezone=TZ, default_country_code="963")


async def a_call_guessing(world: World, tmp_path: Path, zips: list[str], **options: object) -> list[str]:
    """One call whose caller says each ZIP in its own turn; the verify_caller outputs."""
    async with open_call(world, tmp_path, verification_limits=LIMITS, **options) as call:  # type: ignore[arg-type]
        for zip_code in zips:
            result = await call.turn(f"It is {zip_code}.", tool("verify_caller", zip_code=zip_code), Reply("OK."))
            if [e for e in result.events if e.type == "agent_handoff"]:
                assert isinstance(call.session.current_agent, AppointmentsAgent)
        return [o.output for o in call.outputs("verify_caller")]


@pytest.mark.asyncio
async def test_failures_in_earlier_calls_lock_the_phone_in_a_new_call(any_world: World, tmp_path: Path) -> None:
    world = any_world
    line = en_line
    first = await a_call_guessing(world, tmp_path, ["00001", "00002", "00003"])
    assert first == [line("verify_failed"), line("verify_failed_offer_human"), line("verify_locked_now")]
    # The second call locks the phone at the sixth failure: the caller hears the cross-call lock.
    second = await a_call_guessing(world, tmp_path, ["00004", "00005", "00006"])
    assert second[:2] == [line("verify_failed"), line("verify_failed_offer_human")]
    assert second[2] == line("verify_limit_reached", minutes=60)
    # A third call, with the right ZIP code: refused before any comparison, no handoff.
    async with open_call(world, tmp_path, verification_limits=LIMITS) as call:
        result = await call.turn("94103", tool("verify_caller", zip_code="94103"), Reply("Sorry."))
        assert last_output(result, "verify_caller").output == line("verify_limit_reached", minutes=60)
        assert not [e for e in result.events if e.type == "agent_handoff"]
        assert call.desk.state.locked and not call.desk.state.verified
        assert isinstance(call.session.current_agent, ReceptionAgent)
        assert call.desk.phrases.line("state_locked") in call.desk.call_context()
        # and it stays refused in the call, whatever the caller says next
        again = await call.turn("94103!", tool("verify_caller", zip_code="94103"), Reply("Sorry."))
        assert last_output(again, "verify_caller").output == line("verify_locked")
    assert outcome(call) == "verification_failed"
    # Another customer's phone is not affected.
    async with open_call(world, tmp_path, "ar", verification_limits=LIMITS) as call:
        result = await call.turn("١٢٣٤٥", tool("verify_caller", zip_code="١٢٣٤٥"), Reply("تم."))
        assert call.desk.state.customer == HUDA
        assert [e for e in result.events if e.type == "agent_handoff"]


@pytest.mark.asyncio
async def test_a_success_resets_the_phone(any_world: World, tmp_path: Path) -> None:
    world = any_world
    assert (await a_call_guessing(world, tmp_path, ["00001", "00002", "00003"]))[-1] == en_line("verify_locked_now")
    await a_call_guessing(world, tmp_path, ["00004", "00005", "94103"])  # five failures, then the right one
    # After the success, a full allowance again: six more failures before the lock.
    outputs = [
        *await a_call_guessing(world, tmp_path, ["10001", "10002", "10003"]),
        *await a_call_guessing(world, tmp_path, ["10004", "10005", "10006"]),
    ]
    assert outputs[-1] == en_line("verify_limit_reached", minutes=60)
    assert en_line("verify_limit_reached", minutes=60) not in outputs[:-1]


@pytest.mark.asyncio
async def test_one_browser_identity_trying_many_phones_hits_the_source_limit(any_world: World, tmp_path: Path) -> None:
    limits = VerificationLimits(window_seconds=3600, phone_limit=6, source_limit=4)
    refused = en_line("verify_limit_reached", minutes=60)
    outputs: list[str] = []
    for customer in (OMAR, HUDA, SARA):  # a browser call: no phone from the call, one identity
        async with open_call(any_world, tmp_path, phone=None, verification_limits=limits) as call:
            await call.turn(
                f"My number is {customer.phone}.", tool("provide_phone_number", phone=customer.phone), Reply("OK.")
            )
            for zip_code in ("00000", "11111"):
                await call.turn(zip_code, tool("verify_caller", zip_code=zip_code), Reply("Sorry."))
            outputs += [o.output for o in call.outputs("verify_caller")]
    # Two failures on Omar, two on Huda: the source is at its limit, even for Sarah's phone.
    assert outputs[:3] == [en_line("verify_failed"), en_line("verify_failed_offer_human"), en_line("verify_failed")]
    assert outputs[4] == refused
    async with open_call(any_world, tmp_path, phone=None, verification_limits=limits) as call:
        await call.turn("Mine.", tool("provide_phone_number", phone=SARA.phone), Reply("OK."))
        result = await call.turn("94103", tool("verify_caller", zip_code="94103"), Reply("Sorry."))
        assert last_output(result, "verify_caller").output == refused and not call.desk.state.verified
    # the same phone from another source (the customer's own line, a SIP call) still works
    async with open_call(any_world, tmp_path, is_sip=True, verification_limits=limits) as call:
        await call.turn("94103", tool("verify_caller", zip_code="94103"), Reply("Hello Sarah."))
        assert call.desk.state.customer == SARA


# ------------------------------------------------------------------------- the store's claim


async def claim(store: AppointmentStore, phone: str = SARA.phone, source: str | None = None) -> VerificationClaim:
    return await store.begin_verification_attempt(phone, source=source, conversation_id="c-1", limits=LIMITS)


@pytest.mark.asyncio
async def test_parallel_claims_from_many_connections_never_exceed_the_limit(any_world: World) -> None:
    stores = [any_world.store, *[await any_world.another_store() for _ in range(7)]]
    claims = await asyncio.gather(*(claim(stores[n % len(stores)], source=f"browser:attacker-{n}") for n in range(40)))
    claimed = [c for c in claims if c.status == "claimed"]
    assert len(claimed) == LIMITS.phone_limit
    assert sorted(c.failures for c in claimed) == list(range(1, LIMITS.phone_limit + 1))
    assert all(c.customer == SARA for c in claimed)
    locked = [c for c in claims if c.status == "locked"]
    assert len(locked) == 40 - LIMITS.phone_limit
    assert all(c.attempt_id is None and c.customer is None and 3500 < c.retry_after <= 3600 for c in locked)


@pytest.mark.asyncio
async def test_parallel_calls_guessing_at_once_reach_at_most_the_limit(any_world: World) -> None:
    """Twenty desks (calls) on their own connections, each guessing three ZIP codes at once."""

    async def one_call(n: int) -> AppointmentDesk:
        store = await any_world.another_store()
        config = DeskConfig.from_settings(SETTINGS, verification_limits=LIMITS)
        desk = AppointmentDesk(store, config)
        desk.caller_identified(phone=OMAR.phone, participant_identity=f"caller-{n}")
        for k in range(3):
            with pytest.raises(DeskError):
                await desk.verify(f"{n:03d}{k:02d}")
        return desk

    desks = await asyncio.gather(*(one_call(n) for n in range(20)))
    # A call counts an attempt only after a comparison; refusals by the store's lock count none.
    assert sum(d.state.failed_attempts for d in desks) == LIMITS.phone_limit
    assert all(d.state.locked for d in desks)


@pytest.mark.asyncio
async def test_a_claim_is_checked_before_any_query(any_world: World) -> None:
    for phone in ("0991234567", "+0991", "", "+1' or 1=1"):
        with pytest.raises(StoreError):
            await claim(any_world.store, phone=phone)
    with pytest.raises(StoreError):
        await claim(any_world.store, source="x" * 301)
    unknown = await claim(any_world.store, phone="+14155559999")
    assert unknown.status == "claimed" and unknown.customer is None and unknown.failures == 1


@pytest.mark.asyncio
async def test_the_window_slides_on_sqlite(tmp_path: Path) -> None:
    now = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    async with sqlite_world(tmp_path):
        store = await SQLiteAppointmentStore.open(tmp_path / "desk.sqlite3", clock=lambda: now)
        try:
            for minute in range(LIMITS.phone_limit):
                now = dt.datetime(2026, 3, 1, 9, minute * 10, tzinfo=dt.UTC)
                assert (await claim(store)).status == "claimed"
            now = dt.datetime(2026, 3, 1, 9, 55, tzinfo=dt.UTC)
            locked = await claim(store)
            assert locked.status == "locked" and locked.retry_after == pytest.approx(5 * 60)
            now = dt.datetime(2026, 3, 1, 10, 0, 1, tzinfo=dt.UTC)  # the 09:00 failure has left the window
            assert (await claim(store)).status == "claimed"
            assert (await claim(store)).status == "locked"
        finally:
            await store.aclose()


@pytest.mark.asyncio
async def test_the_window_slides_on_supabase(clean_db: Stack) -> None:
    async with supabase_world(clean_db) as world:
        for _ in range(LIMITS.phone_limit):
            assert (await claim(world.store)).status == "claimed"
        assert (await claim(world.store)).status == "locked"
        # the oldest failure is now 61 minutes old, the others 30: one attempt is allowed again
        clean_db.psql(
            "update verification_attempts set attempted_at = now() - interval '30 minutes';"
            "update verification_attempts set attempted_at = now() - interval '61 minutes' "
            "where id = (select id from verification_attempts order by attempted_at, id limit 1);"
        )
        again = await claim(world.store)
        assert again.status == "claimed" and again.failures == LIMITS.phone_limit
        locked = await claim(world.store)
        assert locked.status == "locked" and 29 * 60 < locked.retry_after <= 30 * 60


# ------------------------------------------------------------------------- helpers


def en_line(key: str, **fields: object) -> str:
    return prompts.load("en", key, **fields)


@pytest.mark.asyncio
async def test_an_unreachable_store_refuses_the_attempt_and_counts_nothing(supabase_stack: Stack) -> None:
    """No store, no comparison: the caller hears the store is unavailable and keeps every attempt."""
    dead = await SupabaseAppointmentStore.connect("http://127.0.0.1:9", supabase_stack.service_key, timeout=1.0)
    try:
        desk = AppointmentDesk(dead, DeskConfig.from_settings(SETTINGS, verification_limits=LIMITS))
        desk.caller_identified(phone=SARA.phone, participant_identity="caller-1")
        for _ in range(2):
            with pytest.raises(DeskError) as refused:
                await desk.verify("94103")
            assert refused.value.key == "store_unavailable"
        assert desk.state.failed_attempts == 0 and not desk.state.locked and not desk.state.verified
    finally:
        await dead.aclose()
