"""A simulated LiveKit room and server API, for offline avatar tests (there is no LiveKit server here).

`FakeRoom` offers the part of `rtc.Room` that the Tavus plugin, the agents framework's
avatar helpers (`utils.wait_for_participant`, `wait_for_track_publication`,
`DataStreamAudioOutput`) and the worker's avatar lifecycle use:

- `name`, `isconnected()`, `connection_state`, `remote_participants` (keyed by identity),
  `on/off` (a real `rtc.EventEmitter`) with the events a real room emits in the same order:
  `participant_connected` + `participant_active` on join, `track_published` +
  `track_subscribed` on publish, `track_unpublished` + `participant_disconnected` on leave;
- `press(identity, keys)`: a SIP participant's keypad keys, one `sip_dtmf_received` each;
- `local_participant` (the agent): `identity`, `publish_track`/`unpublish_track` (its own
  tracks, kept for the test to listen to), `register_rpc_method`, `perform_rpc` (to a remote
  participant's handlers; `RECIPIENT_NOT_FOUND` when it is gone, as LiveKit answers),
  `stream_bytes` (byte streams delivered to the destination participant while it is in the
  room, dropped once it has left), `publish_data`.

Remote participants are driven by the test (`join`, `publish`, `leave`); a participant may
handle byte streams and RPCs sent to it (the simulated Tavus replica does, see
`tests/fake_replica.py`) and call the agent's RPC methods (`call_agent`).

`FakeLiveKitAPI` is a local HTTP server answering the LiveKit server API calls the worker makes
(Twirp over protobuf, checking the request's JWT and its grants), acting on the `FakeRoom`:
`RoomService/RemoveParticipant` (the Tavus plugin, late replicas) and `SIP/TransferSIPParticipant`
(a cold transfer: recorded in `transfers`, answered with `transfer_status`). Every room event
goes to `timeline` with its `time.perf_counter()`.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from livekit import api, rtc

StreamHandler = Callable[["StreamChunk"], None]
RpcHandler = Callable[[rtc.RpcInvocationData], str | Awaitable[str]]
_ids = itertools.count(1)


@dataclass
class FakeTrackPublication:
    sid: str
    kind: rtc.TrackKind.ValueType
    name: str
    source: rtc.TrackSource.ValueType
    subscribed: bool = True
    muted: bool = False
    track: Any = None


@dataclass
class FakeRemoteParticipant:
    identity: str
    kind: rtc.ParticipantKind.ValueType
    attributes: dict[str, str] = field(default_factory=dict)
    name: str = ""
    metadata: str = ""
    sid: str = field(default_factory=lambda: f"PA_{next(_ids)}")
    state: rtc.ParticipantState.ValueType = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
    track_publications: dict[str, FakeTrackPublication] = field(default_factory=dict)
    on_stream: StreamHandler | None = None
    rpc_handlers: dict[str, RpcHandler] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamChunk:
    """A piece of a byte stream as its destination receives it; `data` None marks the stream's end."""

    stream_id: str
    sender: str
    topic: str
    attributes: dict[str, str]
    data: bytes | None
    at: float


class FakeByteStreamWriter:
    def __init__(self, room: FakeRoom, *, topic: str, destinations: list[str], attributes: dict[str, str]) -> None:
        self._room = room
        self._topic = topic
        self._destinations = destinations
        self._attributes = attributes
        self.stream_id = f"BS_{next(_ids)}"
        self.closed = False

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise RuntimeError("byte stream already closed")
        self._deliver(bytes(data))

    async def aclose(self, *, reason: str = "", attributes: dict[str, str] | None = None) -> None:
        if not self.closed:
            self.closed = True
            self._deliver(None)

    def _deliver(self, data: bytes | None) -> None:
        chunk = StreamChunk(
            self.stream_id,
            self._room.local_participant.identity,
            self._topic,
            self._attributes,
            data,
            time.perf_counter(),
        )
        for identity in self._destinations:
            participant = self._room.remote_participants.get(identity)
            if participant is not None and participant.on_stream is not None:
                participant.on_stream(chunk)


class FakeLocalParticipant:
    def __init__(self, room: FakeRoom, identity: str) -> None:
        self._room = room
        self.identity = identity
        self.sid = f"PA_{next(_ids)}"
        self.name = identity
        self.kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        self.attributes: dict[str, str] = {}
        self.track_publications: dict[str, FakeTrackPublication] = {}
        self._rpc_handlers: dict[str, RpcHandler] = {}
        self.data_packets: list[tuple[bytes, str, list[str] | None]] = []

    async def publish_track(self, track: Any, options: Any = None) -> FakeTrackPublication:
        """The agent publishes a track of its own (e.g. hold music): kept, with the real track, so a
        test can listen to it with `rtc.AudioStream(publication.track)`."""
        publication = FakeTrackPublication(
            f"TR_{next(_ids)}", rtc.TrackKind.KIND_AUDIO, track.name, rtc.TrackSource.SOURCE_UNKNOWN, track=track
        )
        self.track_publications[publication.sid] = publication
        self._room.note("agent_published", track.name)
        return publication

    async def unpublish_track(self, sid: str) -> None:
        publication = self.track_publications.pop(sid, None)
        if publication is not None:
            self._room.note("agent_unpublished", publication.name)

    def register_rpc_method(self, method_name: str, handler: RpcHandler | None = None) -> Any:
        if handler is None:
            return lambda fn: self.register_rpc_method(method_name, fn)
        self._rpc_handlers[method_name] = handler
        return None

    def unregister_rpc_method(self, method: str) -> None:
        self._rpc_handlers.pop(method, None)

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
        max_round_trip_latency: float | None = None,
    ) -> str:
        participant = self._room.remote_participants.get(destination_identity)
        if participant is None:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.RECIPIENT_NOT_FOUND, "Recipient not found")
        handler = participant.rpc_handlers.get(method)
        if handler is None:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD, "Method not supported at destination")
        data = rtc.RpcInvocationData(f"RQ_{next(_ids)}", self.identity, payload, response_timeout or 10.0, method)
        result = handler(data)
        return await result if inspect.isawaitable(result) else result

    async def stream_bytes(
        self,
        name: str,
        *,
        total_size: int | None = None,
        mime_type: str = "application/octet-stream",
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        destination_identities: list[str] | None = None,
        topic: str = "",
    ) -> FakeByteStreamWriter:
        destinations = destination_identities or list(self._room.remote_participants)
        return FakeByteStreamWriter(self._room, topic=topic, destinations=destinations, attributes=attributes or {})

    async def publish_data(
        self,
        payload: bytes | str,
        *,
        reliable: bool = True,
        destination_identities: list[str] | None = None,
        topic: str = "",
    ) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.data_packets.append((data, topic, destination_identities))


class FakeRoom(rtc.EventEmitter[str]):
    def __init__(self, name: str = "call-room", *, agent_identity: str = "agent-AJ_test") -> None:
        super().__init__()
        self.name = name
        self.connection_state = rtc.ConnectionState.CONN_CONNECTED
        self.local_participant = FakeLocalParticipant(self, agent_identity)
        self.remote_participants: dict[str, FakeRemoteParticipant] = {}
        self.timeline: list[tuple[float, str, str]] = []

    def isconnected(self) -> bool:
        return self.connection_state == rtc.ConnectionState.CONN_CONNECTED

    def events(self, what: str, identity: str | None = None) -> list[float]:
        """Times (perf_counter) of the timeline entries `what` (for `identity`, if given)."""
        return [t for t, w, who in self.timeline if w == what and (identity is None or who == identity)]

    def note(self, what: str, identity: str) -> None:
        self.timeline.append((time.perf_counter(), what, identity))

    def join(
        self,
        identity: str,
        *,
        kind: rtc.ParticipantKind.ValueType = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
        attributes: dict[str, str] | None = None,
    ) -> FakeRemoteParticipant:
        if identity in self.remote_participants:
            raise ValueError(f"{identity!r} is already in the room")
        participant = FakeRemoteParticipant(identity, kind, dict(attributes or {}), name=identity)
        self.remote_participants[identity] = participant
        self.note("participant_connected", identity)
        self.emit("participant_connected", participant)
        self.emit("participant_active", participant)
        return participant

    def publish(self, identity: str, kind: rtc.TrackKind.ValueType) -> FakeTrackPublication:
        participant = self.remote_participants[identity]
        video = kind == rtc.TrackKind.KIND_VIDEO
        publication = FakeTrackPublication(
            f"TR_{next(_ids)}",
            kind,
            "video" if video else "audio",
            rtc.TrackSource.SOURCE_CAMERA if video else rtc.TrackSource.SOURCE_MICROPHONE,
        )
        participant.track_publications[publication.sid] = publication
        self.note("video_published" if video else "audio_published", identity)
        self.emit("track_published", publication, participant)
        self.emit("track_subscribed", publication.track, publication, participant)
        return publication

    def leave(self, identity: str) -> bool:
        participant = self.remote_participants.pop(identity, None)
        if participant is None:
            return False
        for publication in list(participant.track_publications.values()):
            self.emit("track_unpublished", publication, participant)
        participant.track_publications.clear()
        self.note("participant_disconnected", identity)
        self.emit("participant_disconnected", participant)
        return True

    def press(self, identity: str, keys: str) -> None:
        """A SIP participant presses keypad keys: one `sip_dtmf_received` per key, as LiveKit emits."""
        participant = self.remote_participants.get(identity)
        for key in keys:
            code = int(key) if key.isdigit() else {"*": 10, "#": 11}.get(key, ord(key) - ord("A") + 12)
            self.emit("sip_dtmf_received", rtc.SipDTMF(code=code, digit=key, participant=participant))  # type: ignore[arg-type]

    async def call_agent(self, caller_identity: str, method: str, payload: str) -> str:
        """A remote participant calls an RPC method the agent registered."""
        handler = self.local_participant._rpc_handlers.get(method)
        if handler is None:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD, "Method not supported at destination")
        data = rtc.RpcInvocationData(f"RQ_{next(_ids)}", caller_identity, payload, 10.0, method)
        result = handler(data)
        return await result if inspect.isawaitable(result) else result


@dataclass
class HumanPhone:
    """How the phone dialled by `SIP/CreateSIPParticipant` answers: after `after` seconds the
    human picks up (joining the room as a SIP participant), declines with `sip_status`, or,
    with `answer=False` and no status, lets it ring until the request's ringing timeout."""

    answer: bool = True
    after: float = 0.1
    sip_status: tuple[int, str] | None = None


def _unauthenticated() -> web.Response:
    return web.json_response({"code": "unauthenticated", "msg": "invalid token"}, status=401)


class FakeLiveKitAPI:
    """The LiveKit server API calls the worker makes, over HTTP (Twirp, protobuf), on a FakeRoom:
    `RoomService/RemoveParticipant` (what `AvatarSession.aclose()` and the warm transfer call),
    `SIP/TransferSIPParticipant` (the cold transfer) and `SIP/CreateSIPParticipant` (the warm
    transfer's dial, answered as `human` says; a failed dial answers as LiveKit does, with
    `sip_status_code`/`sip_status` in the error's meta)."""

    def __init__(self, room: FakeRoom, *, api_key: str, api_secret: str) -> None:
        self.room = room
        self._verifier = api.TokenVerifier(api_key, api_secret)
        self.removed: list[str] = []
        self.transfers: list[api.TransferSIPParticipantRequest] = []
        self.transfer_status: api.SIPTransferStatus.ValueType = api.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL
        self.dialled: list[api.CreateSIPParticipantRequest] = []
        self.human = HumanPhone()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> FakeLiveKitAPI:
        app = web.Application()
        app.router.add_post("/twirp/livekit.RoomService/RemoveParticipant", self._remove_participant)
        app.router.add_post("/twirp/livekit.SIP/TransferSIPParticipant", self._transfer_sip_participant)
        app.router.add_post("/twirp/livekit.SIP/CreateSIPParticipant", self._create_sip_participant)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _claims(self, request: web.Request) -> api.access_token.Claims | None:
        """The request's token claims, as LiveKit checks them; None for a bad or missing token."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            return self._verifier.verify(token)
        except Exception:
            return None

    async def _remove_participant(self, request: web.Request) -> web.Response:
        claims = self._claims(request)
        if claims is None:
            return _unauthenticated()
        grants = claims.video
        target = api.RoomParticipantIdentity.FromString(await request.read())
        if grants is None or not grants.room_admin or grants.room != target.room or target.room != self.room.name:
            return web.json_response({"code": "permission_denied", "msg": "no room_admin grant"}, status=403)
        if not self.room.leave(target.identity):
            return web.json_response({"code": "not_found", "msg": "participant not found"}, status=404)
        self.removed.append(target.identity)
        return web.Response(
            body=api.RemoveParticipantResponse().SerializeToString(), content_type="application/protobuf"
        )

    async def _transfer_sip_participant(self, request: web.Request) -> web.Response:
        claims = self._claims(request)
        if claims is None:
            return _unauthenticated()
        transfer = api.TransferSIPParticipantRequest.FromString(await request.read())
        grants, sip = claims.video, claims.sip
        if grants is None or not grants.room_admin or grants.room != transfer.room_name or sip is None or not sip.call:
            return web.json_response({"code": "permission_denied", "msg": "needs room_admin and sip call"}, status=403)
        participant = self.room.remote_participants.get(transfer.participant_identity)
        if transfer.room_name != self.room.name or participant is None:
            return web.json_response({"code": "not_found", "msg": "participant not found"}, status=404)
        if participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_SIP:
            return web.json_response({"code": "invalid_argument", "msg": "not a SIP participant"}, status=400)
        self.transfers.append(transfer)
        response = api.TransferSIPParticipantResponse(transfer_id=f"ST_{next(_ids)}", status=self.transfer_status)
        return web.Response(body=response.SerializeToString(), content_type="application/protobuf")

    async def _create_sip_participant(self, request: web.Request) -> web.Response:
        claims = self._claims(request)
        if claims is None:
            return _unauthenticated()
        if claims.sip is None or not claims.sip.call:
            return web.json_response({"code": "permission_denied", "msg": "no sip call grant"}, status=403)
        dial = api.CreateSIPParticipantRequest.FromString(await request.read())
        self.dialled.append(dial)
        if dial.room_name != self.room.name or not dial.sip_trunk_id or not dial.sip_call_to:
            return web.json_response({"code": "invalid_argument", "msg": "room, trunk and number needed"}, status=400)
        ringing = dial.ringing_timeout.ToNanoseconds() / 1e9 or 30.0
        human = self.human
        if human.answer:
            await asyncio.sleep(human.after)
            self.room.join(dial.participant_identity, kind=rtc.ParticipantKind.PARTICIPANT_KIND_SIP)
            info = api.SIPParticipantInfo(
                participant_id=f"PA_{next(_ids)}",
                participant_identity=dial.participant_identity,
                room_name=dial.room_name,
                sip_call_id=f"SCL_{next(_ids)}",
            )
            return web.Response(body=info.SerializeToString(), content_type="application/protobuf")
        await asyncio.sleep(min(human.after, ringing) if human.sip_status else ringing)
        code, phrase = human.sip_status or (480, "Temporarily Unavailable")
        return web.json_response(
            {
                "code": "unavailable",
                "msg": f"INVITE failed: sip status: {code}: {phrase}",
                "meta": {"sip_status_code": str(code), "sip_status": phrase},
            },
            status=503,
        )
