"""The Tavus avatar lifecycle of a call, offline: a real AgentSession greeting through the real
Tavus plugin, a local Tavus API, a simulated room and replica (see tests/avatar_rig.py).

Effects asserted: requests the Tavus API received (create, end), what the replica and the
room's audio track played (sample by sample: CountingTTS numbers every sample of the call),
the order of room events, and the call's record (`avatar_status`, the greeting message).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from livekit import api, rtc
from livekit.agents.types import ATTRIBUTE_PUBLISH_ON_BEHALF

import agent
import calls
from avatar import AvatarConfig, AvatarLifecycle
from settings import Settings
from storage.sqlite_records import SQLiteConversationStore
from testkit.avatar_rig import (
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    AvatarCall,
    avatar_call,
    avatar_config,
    expected,
    job_context,
    voiced,
)
from testkit.fake_room import FakeRoom
from testkit.fake_tavus_server import Answer, Replica

SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
CONNECTOR = rtc.ParticipantKind.PARTICIPANT_KIND_CONNECTOR


def tts_total(call: AvatarCall) -> int:
    return call.session.tts.next_sample  # type: ignore[union-attr]


def heard_by_replica(call: AvatarCall, number: int) -> list[int]:
    return [v for segment in call.replica(number).heard for v in voiced(segment.data)]


def on_room_audio(call: AvatarCall) -> list[int]:
    return voiced(call.room_audio.samples())


async def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Poll state spread over the fakes and the lifecycle (no single event says it)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def assert_greeting_recorded(detail) -> None:  # type: ignore[no-untyped-def]
    [greeting] = detail.messages
    assert (greeting["role"], greeting["interrupted"]) == ("assistant", False)
    assert greeting["content"].startswith("Hello, thank you for calling Nour Clinic")


# -------------------------------------------------------------------------- the avatar is ready


@pytest.mark.asyncio
async def test_one_create_with_the_plugin_token_and_the_greeting_after_the_video(tmp_path: Path) -> None:
    # the replica joins, then publishes its video later: the greeting waits for the video
    replica = Replica(join_after=0.1, video_after=0.3)
    async with avatar_call(tmp_path, answers=(Answer(replica=replica),)) as call:
        await call.begin()
        assert await call.decided() == "ready"
        await call.greeting_heard()

        [create] = call.tavus.creates()
        body = create.json
        assert (create.api_key, body["face_id"], body["pal_id"]) == ("tavus-test-key", "face-test", "pal-test")
        properties = body["properties"]
        assert properties["livekit_ws_url"] == call.livekit.url
        claims = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(properties["livekit_room_token"])
        assert (claims.identity, claims.kind) == ("tavus-avatar-1", "agent")
        assert (claims.video.room_join, claims.video.room) == (True, call.room.name)
        assert claims.attributes == {ATTRIBUTE_PUBLISH_ON_BEHALF: call.room.local_participant.identity}
        assert {k: properties[k] for k in ("max_call_duration", "participant_left_timeout")} == {
            "max_call_duration": 3600,
            "participant_left_timeout": 10,
        }
        # left to Tavus's default: its meaning for a LiveKit-transport replica is undocumented
        assert "participant_absent_timeout" not in properties

        joined = call.room.events("participant_connected", "tavus-avatar-1")
        video = call.room.events("video_published", "tavus-avatar-1")
        first_audio = call.room.events("avatar_audio", "tavus-avatar-1")
        assert joined[0] < video[0] < first_audio[0]
        assert heard_by_replica(call, 1) == expected(0, tts_total(call))  # the whole greeting, on the face
        assert call.room_audio.played == []
        assert call.tavus.ends() == []  # not before the call ends
        chain, output = [], call.session.output.audio
        while output is not None:
            chain.append(output)
            output = output.next_in_chain
        # the router replaced the room track at the bottom of the chain RoomIO builds, keeping it as fallback
        assert chain[-1] is call.avatar.router and call.avatar.router.room_audio is call.room_audio

        detail = await call.end()
    assert call.tavus.ends() == [call.avatar.conversation_ids[0]]
    assert detail.conversation["avatar_status"] == "ready"
    assert_greeting_recorded(detail)


@pytest.mark.asyncio
async def test_log_lines_carry_both_conversation_ids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="avatar")
    async with avatar_call(tmp_path) as call:
        await call.begin()
        await call.greeting_heard()
        tavus_id = call.avatar.conversation_ids[0]
        cid = call.manager.conversation_id
    created = [r for r in caplog.records if r.name == "avatar" and "created" in r.getMessage()]
    assert created
    assert tavus_id in created[0].getMessage() and cid in created[0].getMessage()
    assert (created[0].conversation_id, created[0].tavus_conversation_id) == (cid, tavus_id)


@pytest.mark.asyncio
async def test_a_barge_in_stops_the_face_and_the_next_reply_still_uses_it(tmp_path: Path) -> None:
    # the avatar cannot pause: an interruption clears its buffer (lk.clear_buffer RPC) for good
    async with avatar_call(tmp_path, tts_seconds_per_char=0.012) as call:
        await call.begin()
        await wait_until(lambda: call.room.events("avatar_audio"))
        await asyncio.sleep(0.2)
        await call.session.interrupt()
        greeting = await call.greeting_heard()
        assert greeting.interrupted
        [segment] = call.replica(1).heard
        assert segment.finished and len(voiced(segment.data)) == tts_total(call)  # all sent, cut while playing
        before = tts_total(call)
        await call.say("How can I help?")
        assert heard_by_replica(call, 1)[-(tts_total(call) - before) :] == expected(before, tts_total(call))
        assert call.room_audio.played == []
        detail = await call.end()
    assert [m["interrupted"] for m in detail.messages] == [True, False]
    assert detail.messages[0]["content"] != ""  # what the face said before the cut


# -------------------------------------------------------------------------- voice-only fallback


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "replica",
    [Replica(join_after=None), Replica(join_after=0.05, video_after=30.0)],
    ids=["never_joins", "joins_without_video"],
)
async def test_join_timeout_greets_on_the_room_audio(tmp_path: Path, replica: Replica) -> None:
    async with avatar_call(tmp_path, answers=(Answer(replica=replica),), join_timeout=0.4) as call:
        await call.begin()
        assert await call.decided() == "join_timeout"
        await call.greeting_heard()
        assert on_room_audio(call) == expected(0, tts_total(call))
        assert call.room.events("avatar_audio") == []
        # the abandoned conversation is ended once the late-join window is over, not at the end of the call
        await wait_until(lambda: len(call.tavus.ends()) == 1)
        assert "tavus-avatar-1" not in call.room.remote_participants
        detail = await call.end()
    assert len(call.tavus.creates()) == 1
    assert call.tavus.ends() == call.avatar.conversation_ids
    assert detail.conversation["avatar_status"] == "join_timeout"
    assert_greeting_recorded(detail)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("config", "answers", "status", "creates"),
    [
        ({"api_key": "revoked-key"}, (), "api_error: HTTP 401", 1),
        ({"create_retries": 2}, (Answer(status=500),) * 3, "api_error: HTTP 500", 3),
        ({"create_retries": 1}, (Answer(status=503), Answer(status=200)), "ready", 2),
        ({"join_timeout": 0.3}, (Answer(delay=0.8),), "api_error: no answer within 0.3s", 1),
    ],
    ids=["bad_key", "5xx_after_retries", "5xx_then_ok", "slow"],
)
async def test_api_errors_greet_on_the_room_audio(
    tmp_path: Path, config: dict, answers: tuple[Answer, ...], status: str, creates: int
) -> None:
    async with avatar_call(tmp_path, answers=answers, **config) as call:
        await call.begin()
        assert await call.decided() == status
        await call.greeting_heard()
        assert len(call.tavus.creates()) == creates
        if status == "ready":
            assert heard_by_replica(call, 1) == expected(0, tts_total(call))
        else:
            assert on_room_audio(call) == expected(0, tts_total(call))
            assert call.avatar.conversation_ids == []
        detail = await call.end()
    assert call.tavus.ends() == call.avatar.conversation_ids
    assert detail.conversation["avatar_status"] == status
    assert_greeting_recorded(detail)


@pytest.mark.asyncio
async def test_a_replica_of_a_timed_out_create_is_removed_when_it_shows_up(tmp_path: Path) -> None:
    # Tavus created the conversation after we stopped waiting: its replica must not sit in the call
    answers = (Answer(delay=0.5, replica=Replica(join_after=0.05)),)
    async with avatar_call(tmp_path, answers=answers, join_timeout=0.2) as call:
        await call.begin()
        assert (await call.decided()).startswith("api_error")
        await wait_until(lambda: call.livekit.removed == ["tavus-avatar-1"])
        assert "tavus-avatar-1" not in call.room.remote_participants
        await call.greeting_heard()
        assert call.room.events("avatar_audio") == []


@pytest.mark.asyncio
async def test_a_late_replica_takes_over_from_the_next_reply(tmp_path: Path) -> None:
    # created in time, but the replica joins after the timeout: greeting voice-only, then the face
    answers = (Answer(replica=Replica(join_after=0.5)),)
    async with avatar_call(tmp_path, answers=answers, join_timeout=0.2, late_join_window=3.0) as call:
        await call.begin()
        assert await call.decided() == "join_timeout"
        await call.greeting_heard()
        greeting_total = tts_total(call)
        assert on_room_audio(call) == expected(0, greeting_total)
        await wait_until(lambda: call.avatar.status == "ready_late")
        assert call.replica(1).present and call.livekit.removed == []  # kept, not evicted
        assert call.tavus.ends() == []
        room_frames = len(call.room_audio.played)
        await call.say("Your appointment is on Monday at ten.")
        assert heard_by_replica(call, 1) == expected(greeting_total, tts_total(call))
        assert len(call.room_audio.played) == room_frames
        detail = await call.end()
    assert len(call.tavus.creates()) == 1
    assert call.tavus.ends() == call.avatar.conversation_ids
    assert detail.conversation["avatar_status"] == "ready_late"
    assert [m["interrupted"] for m in detail.messages] == [False, False]


@pytest.mark.asyncio
async def test_a_replica_later_than_the_late_window_is_removed_and_ended(tmp_path: Path) -> None:
    answers = (Answer(replica=Replica(join_after=0.8)),)
    async with avatar_call(tmp_path, answers=answers, join_timeout=0.2, late_join_window=0.2) as call:
        await call.begin()
        assert await call.decided() == "join_timeout"
        await wait_until(lambda: len(call.tavus.ends()) == 1)  # given up once the window is over
        await call.greeting_heard()
        before = tts_total(call)
        await call.say("Anything else?")
        assert on_room_audio(call) == expected(0, tts_total(call)) and before > 0
        assert call.room.events("avatar_audio") == []
        assert call.avatar.status == "join_timeout"


# -------------------------------------------------------------------------- leaving early


def assert_reply_kept(call: AvatarCall, total: int) -> None:
    """Avatar 1 left during the greeting: the room track played the rest, nothing lost."""
    replica = call.replica(1)
    assert replica.left_at is not None
    [segment] = replica.heard
    face = voiced(segment.played_samples(replica.left_at))
    room = on_room_audio(call)
    assert face == expected(0, len(face)) and 0 < len(face) < total
    resumed_at = room[0] - 1  # the sample the room track started with
    assert room == expected(resumed_at, total)  # one stretch, up to the greeting's end
    assert resumed_at <= len(face)  # no gap: at most a repeat (REPLAY_OVERLAP)
    assert resumed_at > 0  # not replayed from the start


@pytest.mark.asyncio
async def test_early_leave_retries_once_and_keeps_the_reply(tmp_path: Path) -> None:
    answers = (
        Answer(replica=Replica(join_after=0.05, leave_after=0.4)),
        Answer(replica=Replica(join_after=0.1)),
    )
    async with avatar_call(tmp_path, answers=answers, tts_seconds_per_char=0.012) as call:
        await call.begin()
        await call.greeting_heard()
        greeting_total = tts_total(call)
        assert_reply_kept(call, greeting_total)
        await wait_until(lambda: call.avatar.status == "ready" and len(call.tavus.creates()) == 2)
        first, second = call.avatar.conversation_ids
        assert call.tavus.ends() == [first]  # the one that left is ended right away
        claims = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(
            call.tavus.creates()[1].json["properties"]["livekit_room_token"]
        )
        assert claims.identity == "tavus-avatar-2"

        await wait_until(lambda: call.replica(2).present)
        room_frames = len(call.room_audio.played)
        await call.say("Your appointment is on Monday at ten.")
        assert heard_by_replica(call, 2) == expected(greeting_total, tts_total(call))
        assert len(call.room_audio.played) == room_frames
        detail = await call.end()
    assert call.tavus.ends() == [first, second]
    assert len(call.tavus.creates()) == 2
    assert detail.conversation["avatar_status"] == "ready"
    assert [m["interrupted"] for m in detail.messages] == [False, False]


@pytest.mark.asyncio
async def test_the_replay_after_an_early_leave_allows_for_tavus_playout_latency(tmp_path: Path) -> None:
    # The plugin counts a reply as playing from its first written frame; Tavus's face plays it
    # `playout_delay` later. The replay must start no later than what the face had really played.
    answers = (
        Answer(replica=Replica(join_after=0.05, leave_after=0.6, playout_delay=0.3)),
        Answer(replica=Replica(join_after=None)),
    )
    async with avatar_call(
        tmp_path, answers=answers, join_timeout=0.3, playout_latency=0.3, tts_seconds_per_char=0.012
    ) as call:
        await call.begin()
        await call.greeting_heard()
        assert_reply_kept(call, tts_total(call))


@pytest.mark.asyncio
async def test_early_leave_then_failed_retry_stays_voice_only(tmp_path: Path) -> None:
    answers = (
        Answer(replica=Replica(join_after=0.05, leave_after=0.4)),
        Answer(replica=Replica(join_after=None)),
    )
    async with avatar_call(tmp_path, answers=answers, join_timeout=2.0, tts_seconds_per_char=0.012) as call:
        await call.begin()
        await call.greeting_heard()
        assert_reply_kept(call, tts_total(call))
        await wait_until(lambda: len(call.tavus.ends()) == 2)
        assert call.avatar.status == "left_early"
        before = tts_total(call)
        await call.say("Your appointment is on Monday at ten.")
        assert on_room_audio(call)[-(tts_total(call) - before) :] == expected(before, tts_total(call))
        detail = await call.end()
    assert len(call.tavus.creates()) == 2  # one retry, no more
    assert call.tavus.ends() == call.avatar.conversation_ids
    assert detail.conversation["avatar_status"] == "left_early"
    assert [m["interrupted"] for m in detail.messages] == [False, False]


@pytest.mark.asyncio
async def test_leaving_after_the_window_goes_voice_only_without_retry(tmp_path: Path) -> None:
    answers = (Answer(replica=Replica(join_after=0.05, leave_after=0.5)),)
    async with avatar_call(tmp_path, answers=answers, left_early_window=0.1) as call:
        await call.begin()
        await call.greeting_heard()
        await wait_until(lambda: not call.replica(1).present and call.tavus.ends())
        before = tts_total(call)
        await call.say("Anything else?")
        assert on_room_audio(call) == expected(before, tts_total(call))
        detail = await call.end()
    assert len(call.tavus.creates()) == 1
    assert detail.conversation["avatar_status"] == "ready"


# -------------------------------------------------------------------------- no avatar at all


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("configured", "kind", "status"),
    [
        (True, SIP, "disabled_sip"),
        (True, CONNECTOR, "disabled_connector"),
        (False, rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, "not_configured"),
    ],
    ids=["sip_caller", "connector_caller", "not_configured"],
)
async def test_no_avatar_greets_at_once_on_the_room_audio(
    tmp_path: Path, configured: bool, kind: rtc.ParticipantKind.ValueType, status: str
) -> None:
    async with avatar_call(tmp_path, configured=configured, caller_kind=kind) as call:
        assert not call.avatar.enabled
        await call.begin()
        assert await call.decided() == status
        await call.greeting_heard()
        assert on_room_audio(call) == expected(0, tts_total(call))
        assert call.avatar.router is None
        detail = await call.end()
    assert call.tavus.requests == []
    assert call.room.events("participant_connected") == [call.room.events("participant_connected")[0]]  # the caller
    assert detail.conversation["avatar_status"] == status


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kind", "status"),
    [(SIP, "disabled_sip"), (CONNECTOR, "disabled_connector"), (rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, None)],
)
async def test_the_worker_knows_the_caller_before_deciding(
    tmp_path: Path, kind: rtc.ParticipantKind.ValueType, status: str | None
) -> None:
    # agent.py's identify_caller waits (event-driven) for the caller of the room, then the avatar is decided
    room = FakeRoom()
    settings = Settings(data_dir=tmp_path, journal_dir=tmp_path / "journal")
    call = await calls.open_call(settings, room_name=room.name)
    try:
        async with job_context(room) as ctx:
            attributes = {"sip.phoneNumber": "+963991234567"} if kind == SIP else {}
            asyncio.get_running_loop().call_later(0.05, lambda: room.join("caller", kind=kind, attributes=attributes))
            participant = await agent.identify_caller(ctx, call)
        avatar = AvatarLifecycle.for_call(avatar_config("http://127.0.0.1:9/v2"), participant, record=call.manager)
        assert participant is not None and participant.identity == "caller"
        assert (avatar.enabled, avatar.status) == (status is None, status)
    finally:
        await call.aclose()
    records = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
    try:
        detail = await records.get_conversation(call.conversation_id)
    finally:
        await records.aclose()
    assert detail is not None and detail.conversation["avatar_status"] == status
    assert detail.conversation["participant_identity"] == "caller"
    assert detail.conversation["user_phone"] == ("+963991234567" if kind == SIP else None)


# -------------------------------------------------------------------------- the end of the call


@pytest.mark.asyncio
@pytest.mark.parametrize("end_answer", [Answer(status=500), Answer(delay=5.0)], ids=["error", "no_answer"])
async def test_a_failing_end_call_does_not_hold_up_the_record(tmp_path: Path, end_answer: Answer) -> None:
    async with avatar_call(tmp_path, end_timeout=0.3) as call:
        call.tavus.end_answer = end_answer
        await call.begin()
        await call.greeting_heard()
        detail = await call.end()
        assert call.tavus.ends() == call.avatar.conversation_ids
        assert detail.conversation["status"] == "completed"
        assert detail.conversation["avatar_status"] == "ready"


# -------------------------------------------------------------------------- configuration


def test_config_from_settings() -> None:
    assert AvatarConfig.from_settings(Settings()) is None
    settings = Settings(
        tavus_api_key="k",
        tavus_face_id="f",
        avatar_join_timeout=4.5,
        avatar_max_call_duration=900.5,
        avatar_participant_left_timeout=5,
    )
    config = AvatarConfig.from_settings(settings)
    assert config is not None
    assert (config.face_id, config.pal_id, config.join_timeout) == ("f", None, 4.5)
    assert config.properties() == {"max_call_duration": 901, "participant_left_timeout": 5}
    assert "k" not in repr(config)


def test_who_gets_an_avatar() -> None:
    class Record:
        conversation_id = "call-1"

        def __init__(self) -> None:
            self.fields: dict = {}

        def update_conversation(self, **fields: object) -> None:
            self.fields.update(fields)

    config = AvatarConfig(api_key="k", face_id="f", pal_id=None)
    browser = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
    cases = [
        (None, browser, False, "not_configured"),
        (config, SIP, False, "disabled_sip"),
        (config, CONNECTOR, False, "disabled_connector"),
        (config, rtc.ParticipantKind.PARTICIPANT_KIND_INGRESS, False, "disabled_ingress"),
        (config, browser, True, None),
    ]
    for cfg, kind, enabled, status in cases:
        record = Record()
        caller = type("Caller", (), {"kind": kind})()
        lifecycle = AvatarLifecycle.for_call(cfg, caller, record=record)  # type: ignore[arg-type]
        assert (lifecycle.enabled, lifecycle.status, record.fields.get("avatar_status")) == (enabled, status, status)
    nobody = AvatarLifecycle.for_call(config, None, record=Record())
    assert (nobody.enabled, nobody.status) == (False, None)
