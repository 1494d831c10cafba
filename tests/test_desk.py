"""`AppointmentDesk` directly, over the embedded store (no session, no LLM): the domain's rules
hold on their own. The same rules through a session and the scripted LLM: test_desk_scenarios.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import calls
from conversation_manager import ConversationManager
from desk import AppointmentDesk, DeskConfig, DeskError
from settings import Settings
from storage.sqlite_records import SQLiteConversationStore
from testkit.desk_world import HUDA, OMAR, SARA, TZ, World

SETTINGS = Settings(clinic_timezone=TZ, default_country_code="963")


def desk_for(
    world: World, phone: str | None = SARA.phone, *, record: ConversationManager | None = None
) -> AppointmentDesk:
    desk = AppointmentDesk(world.store, DeskConfig.from_settings(SETTINGS), record=record)
    desk.caller_identified(phone=phone, is_sip=True, participant_identity="caller")
    return desk


def turn(desk: AppointmentDesk, n: int) -> None:
    desk.state.note_user_message(f"turn-{n}", f"caller turn {n}")


@pytest.mark.asyncio
async def test_the_right_zip_binds_the_call_to_its_customer(world: World) -> None:
    desk = desk_for(world, HUDA.phone)
    turn(desk, 1)
    verified = await desk.verify("١٢٣٤٥")  # Arabic-Indic digits, the same ZIP
    assert (verified.customer.id, verified.newly) == (HUDA.id, True)
    assert desk.state.verified and desk.state.failed_attempts == 0
    again = await desk.verify("00000")  # a verified call stays verified: nothing is compared again
    assert (again.customer.id, again.newly) == (HUDA.id, False)


@pytest.mark.asyncio
async def test_wrong_zips_lock_the_call_and_a_locked_call_stays_locked(world: World) -> None:
    desk = desk_for(world)
    keys = []
    for n, guess in enumerate(["11111", "22222", "33333"]):
        turn(desk, n)
        with pytest.raises(DeskError) as failed:
            await desk.verify(guess)
        keys.append(failed.value.key)
    assert keys == ["verify_failed", "verify_failed_offer_human", "verify_locked_now"]
    assert desk.state.locked
    with pytest.raises(DeskError) as locked:
        await desk.verify(SARA.zip_code)  # even the right ZIP: no fourth comparison
    assert locked.value.key == "verify_locked"
    with pytest.raises(DeskError):
        await desk.list_appointments()


@pytest.mark.asyncio
async def test_an_unknown_phone_fails_like_a_wrong_zip(world: World) -> None:
    desk = desk_for(world, "+963955000999")
    turn(desk, 1)
    with pytest.raises(DeskError) as failed:
        await desk.verify(SARA.zip_code)
    assert failed.value.key == "verify_failed" and desk.state.failed_attempts == 1


@pytest.mark.asyncio
async def test_a_change_is_written_only_when_confirmed_in_a_later_turn(world: World) -> None:
    desk = desk_for(world)
    turn(desk, 1)
    await desk.verify(SARA.zip_code)
    day = world.tomorrow.isoformat()
    await desk.list_slots(day, day, "any")
    turn(desk, 2)
    await desk.propose_booking("S1")
    with pytest.raises(DeskError) as same_turn:
        await desk.confirm(True)
    assert same_turn.value.key == "confirm_same_turn"
    assert len(await world.scheduled(SARA)) == 1, "nothing written in the proposing turn"
    turn(desk, 3)
    await desk.confirm(True)
    booked = await world.scheduled(SARA)
    assert len(booked) == 2 and world.tomorrow_slots()[0].id in booked.values()
    with pytest.raises(DeskError) as nothing:
        await desk.confirm(True)  # the same yes twice books once
    assert nothing.value.key == "nothing_pending"


@pytest.mark.asyncio
async def test_two_callers_racing_for_one_slot_get_one_booking(world: World) -> None:
    desks = [desk_for(world, SARA.phone), desk_for(world, OMAR.phone)]
    day = world.tomorrow.isoformat()
    for desk, zip_code in zip(desks, (SARA.zip_code, OMAR.zip_code), strict=True):
        turn(desk, 1)
        await desk.verify(zip_code)
        await desk.list_slots(day, day, "any")
        turn(desk, 2)
        await desk.propose_booking("S1")
        turn(desk, 3)
    results = await asyncio.gather(*(d.confirm(True) for d in desks), return_exceptions=True)
    refused = [r for r in results if isinstance(r, DeskError)]
    assert len(refused) == 1 and refused[0].key == "slot_taken"
    first = world.tomorrow_slots()[0].id
    holders = [c for c in (SARA, OMAR) if first in (await world.scheduled(c)).values()]
    assert len(holders) == 1


@pytest.mark.asyncio
async def test_the_desk_tells_the_record_who_is_calling(world: World, tmp_path: Path) -> None:
    store = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    try:
        manager = ConversationManager.from_settings(store, SETTINGS, journal_dir=tmp_path / "journal")
        await manager.start_conversation(None, "desk-room")
        desk_for(world, "0933 000 111", record=manager)  # a national number: E.164 in the desk and the record
        unparseable = desk_for(world, "call me", record=None)
        assert unparseable.state.phone is None
        assert manager.transcript.caller.phone == desk_for(world, "0933 000 111").state.phone == "+963933000111"
        conversation = manager.transcript.to_record().conversation
        assert (conversation["participant_identity"], conversation["metadata"]["channel"]) == ("caller", "sip")
        await manager.end_conversation()
    finally:
        await store.aclose()


@pytest.mark.asyncio
async def test_a_call_that_cannot_open_its_desk_store_closes_what_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "desk.sqlite3").mkdir()  # the appointment store cannot open: a directory in its place
    closed: list[str] = []
    real_close = SQLiteConversationStore.aclose

    async def recording_close(self: SQLiteConversationStore) -> None:
        closed.append("records")
        await real_close(self)

    monkeypatch.setattr(SQLiteConversationStore, "aclose", recording_close)
    with pytest.raises(Exception):  # noqa: B017, PT011 (whatever the store raises, the caller sees it)
        await calls.open_call(Settings(data_dir=tmp_path, journal_dir=tmp_path / "journal"), room_name="room")
    assert closed == ["records"], "the record store open_call opened is closed again"
