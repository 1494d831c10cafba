"""First contact with a real deployment, against the fakes: who the caller is (trusted attributes
only), the cold transfer's request to LiveKit SIP, conversation ids without the caller's number,
and the worker options LiveKit Cloud cares about."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from livekit import api, rtc
from livekit.agents import JobContext, utils
from livekit.agents.worker import _default_load_threshold

import agent
import calls
from conversation_manager import ConversationManager, new_conversation_id
from conversation_manager.journal import PENDING
from settings import Settings
from storage.sqlite_records import SQLiteConversationStore
from testkit.avatar_rig import LIVEKIT_KEY, LIVEKIT_SECRET, job_context
from testkit.fake_room import FakeLiveKitAPI, FakeRemoteParticipant, FakeRoom
from tools.agents import TRANSFER_RINGING_TIMEOUT, transfer_sip_participant
from tools.caller_identity import caller_identity

SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
STANDARD = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
CONNECTOR = rtc.ParticipantKind.PARTICIPANT_KIND_CONNECTOR
CLAIMED = "+963991234567"  # a demo customer's number (testkit/desk_world.py, seed data)


# -------------------------------------------------------------------------- who is calling


@pytest.mark.parametrize(
    ("kind", "attributes", "trusted", "channel", "phone"),
    [
        (STANDARD, {"phone": CLAIMED}, frozenset(), "webrtc", None),
        (STANDARD, {"phone": CLAIMED}, frozenset({"phone"}), "webrtc", CLAIMED),
        (CONNECTOR, {"phone": CLAIMED}, frozenset(), "connector", None),
        (CONNECTOR, {"phone": CLAIMED}, frozenset({"phone"}), "connector", CLAIMED),
        (SIP, {"sip.phoneNumber": CLAIMED}, frozenset(), "sip", CLAIMED),
        (SIP, {"phone": CLAIMED}, frozenset({"phone"}), "sip", None),  # a SIP caller's number is sip.phoneNumber
        (STANDARD, {"sip.phoneNumber": CLAIMED}, frozenset({"phone"}), "webrtc", None),  # set by a browser: no
    ],
)
def test_only_trusted_attributes_name_the_callers_phone(
    kind: rtc.ParticipantKind.ValueType,
    attributes: dict[str, str],
    trusted: frozenset[str],
    channel: str,
    phone: str | None,
) -> None:
    caller = caller_identity(FakeRemoteParticipant("caller", kind, attributes), trusted)
    assert (caller.identity, caller.channel, caller.phone, caller.is_sip) == ("caller", channel, phone, kind == SIP)


@dataclass
class Room:
    room: FakeRoom
    ctx: JobContext
    call: calls.Call
    livekit: FakeLiveKitAPI


@contextlib.asynccontextmanager
async def call_in_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> AsyncIterator[Room]:
    """A call opened as the worker opens it (`calls.open_call`), in a simulated room whose LiveKit
    server API is a local fake."""
    room = FakeRoom("call-room")
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), **env})
    call = await calls.open_call(settings, room_name=room.name, transfer=transfer_sip_participant)
    try:
        async with (
            utils.http_context.open(),
            FakeLiveKitAPI(room, api_key=LIVEKIT_KEY, api_secret=LIVEKIT_SECRET) as lk,
        ):
            for name, value in (("URL", lk.url), ("API_KEY", LIVEKIT_KEY), ("API_SECRET", LIVEKIT_SECRET)):
                monkeypatch.setenv(f"LIVEKIT_{name}", value)  # what the job's LiveKit API client reads
            async with job_context(room) as ctx:
                yield Room(room, ctx, call, lk)
    finally:
        await call.aclose()


async def identify(
    where: Room, kind: rtc.ParticipantKind.ValueType, attributes: dict[str, str]
) -> rtc.RemoteParticipant | None:
    asyncio.get_running_loop().call_later(0.02, lambda: where.room.join("caller", kind=kind, attributes=attributes))
    return await agent.identify_caller(where.ctx, where.call)


async def record_of(where: Room) -> dict[str, object]:
    """The conversation row once the call's record is written (the stores stay open until aclose)."""
    await where.call.manager.end_conversation()
    detail = await where.call.manager.get_conversation_with_messages(where.call.conversation_id)
    assert detail is not None
    return detail.conversation


@pytest.mark.asyncio
async def test_a_browser_callers_phone_attribute_is_ignored_unless_declared_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with call_in_room(tmp_path, monkeypatch) as where:
        await identify(where, STANDARD, {"phone": CLAIMED})
        desk = where.call.desk
        # the claim binds nothing: the caller must say a number, which verification then checks
        assert (desk.state.phone, desk.state.phone_source) == (None, None)
        desk.provide_phone("0944 556 677")
        assert desk.state.phone == "+963944556677"
        row = await record_of(where)
    assert (row["user_phone"], row["participant_identity"]) == ("+963944556677", "caller")
    assert row["metadata"]["channel"] == "webrtc"  # type: ignore[index]


@pytest.mark.asyncio
async def test_a_declared_trusted_phone_attribute_is_the_calls_own_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with call_in_room(tmp_path, monkeypatch, TRUSTED_CALLER_ATTRIBUTES="phone") as where:
        await identify(where, STANDARD, {"phone": "0991 234 567"})
        assert (where.call.desk.state.phone, where.call.desk.state.phone_source) == (CLAIMED, "call")
        row = await record_of(where)
    assert row["user_phone"] == CLAIMED


@pytest.mark.asyncio
async def test_a_connector_caller_is_recorded_as_such_and_its_attributes_are_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with call_in_room(tmp_path, monkeypatch) as where:
        await identify(where, CONNECTOR, {"phone": CLAIMED})
        assert where.call.desk.state.phone is None
        row = await record_of(where)
    assert (row["user_phone"], row["metadata"]["channel"]) == (None, "connector")  # type: ignore[index]


# -------------------------------------------------------------------------- cold transfer


@pytest.mark.asyncio
async def test_a_cold_transfer_plays_a_dial_tone_to_the_normalised_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with call_in_room(tmp_path, monkeypatch, ESCALATION_PHONE_NUMBER="0991 234 000") as where:
        await identify(where, SIP, {"sip.phoneNumber": CLAIMED})
        await where.call.desk.transfer("wants a person")
        [transfer] = where.livekit.transfers
        assert (transfer.room_name, transfer.participant_identity) == (where.room.name, "caller")
        assert transfer.transfer_to == "tel:+963991234000"
        assert transfer.play_dialtone is True
        assert transfer.ringing_timeout.seconds == TRANSFER_RINGING_TIMEOUT
        row = await record_of(where)
    assert row["outcome"] == "transferred"


@pytest.mark.asyncio
async def test_a_failed_transfer_raises_so_the_desk_takes_a_callback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with call_in_room(tmp_path, monkeypatch, ESCALATION_PHONE_NUMBER="+963991234000") as where:
        where.livekit.transfer_status = api.SIPTransferStatus.STS_TRANSFER_FAILED
        await identify(where, SIP, {"sip.phoneNumber": CLAIMED})
        with pytest.raises(RuntimeError, match="SIP transfer failed"):
            await transfer_sip_participant("caller", "tel:+963991234000")
        await where.call.desk.transfer("wants a person")
        assert len(where.livekit.transfers) == 2  # both reached LiveKit SIP, which refused them
        row = await record_of(where)
    assert row["outcome"] == "callback_requested"


# -------------------------------------------------------------------------- the caller's number in ids


@pytest.mark.parametrize(
    "room_name",
    ["call-_+963991234567_AbC9dEf", "call-_00963991234567_q1W2e3", "sip-0991 234 567", "_+963991234567_"],
)
def test_a_room_named_after_the_callers_number_gives_an_id_without_it(room_name: str) -> None:
    cid = new_conversation_id(room_name)
    slug, tail = cid.rsplit("-", 1)
    assert not re.search(r"\d", slug)
    assert re.fullmatch(r"[0-9a-f]{12}", tail)


@pytest.mark.asyncio
async def test_the_record_keeps_the_room_name_and_the_journal_file_has_no_number(tmp_path: Path) -> None:
    room_name = "call-_+963991234567_AbC9dEf"
    store = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    try:
        manager = ConversationManager.from_settings(store, Settings(journal_dir=tmp_path / "journal"))
        cid = await manager.start_conversation(None, room_name, "sip_+963991234567")
        [journal] = (tmp_path / "journal" / PENDING).iterdir()
        assert "991234567" not in journal.name and "991234567" not in cid
        await manager.end_conversation()
        detail = await manager.get_conversation_with_messages(cid)
        assert detail is not None and detail.conversation["room_name"] == room_name
    finally:
        await store.aclose()


# -------------------------------------------------------------------------- worker options


def test_load_threshold_is_passed_to_livekit_only_when_set() -> None:
    server = agent.build_server(Settings.from_env({}))
    assert server._load_threshold is _default_load_threshold  # what LiveKit Cloud hosting expects
    server = agent.build_server(Settings.from_env({"LOAD_THRESHOLD": "0.5"}))
    assert server._load_threshold == 0.5


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kind", "mode", "warm", "keypad"),
    [
        (rtc.ParticipantKind.PARTICIPANT_KIND_SIP, "warm", True, True),
        (rtc.ParticipantKind.PARTICIPANT_KIND_SIP, "cold", False, True),
        (rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, "warm", False, False),
    ],
)
async def test_the_phone_line_is_wired_for_sip_callers_only(
    tmp_path: Path, kind: rtc.ParticipantKind.ValueType, mode: str, warm: bool, keypad: bool
) -> None:
    """`Call.open_phone_line` (what the entrypoint runs): keypad entry and the warm hand-over for
    a SIP caller; LiveKit's server API is touched only when a warm hand-over is wired."""
    settings = Settings(
        data_dir=tmp_path,
        journal_dir=tmp_path / "journal",
        escalation_phone_number="+963944000999",
        sip_outbound_trunk_id="ST_trunk",
        transfer_mode=mode,
    )
    room = FakeRoom()
    caller = room.join("caller", kind=kind, attributes={"sip.phoneNumber": "+963933000111"})
    call = await calls.open_call(settings, room_name=room.name, transfer=transfer_sip_participant)
    asked_for_api: list[bool] = []

    def server_api() -> api.LiveKitAPI:
        asked_for_api.append(True)
        return FakeLiveKitAPI(room, api_key=LIVEKIT_KEY, api_secret=LIVEKIT_SECRET)  # type: ignore[return-value]

    try:
        call.caller_joined(caller)  # type: ignore[arg-type]
        listener = call.open_phone_line(server_api, room, None, caller, on_handed_over=lambda: None)  # type: ignore[arg-type]
        assert call.desk.warm is warm
        assert bool(asked_for_api) is warm
        assert (listener is not None) is keypad
    finally:
        await call.aclose()
