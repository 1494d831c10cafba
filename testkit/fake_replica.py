"""The Tavus replica of one conversation, as the room sees it (the other half of the Tavus fake).

Created when `FakeTavusServer` accepts a create request. Like the real service it joins the
LiveKit room with the URL and token the create request carried (a token that does not verify
against the room's API key and secret, or a wrong URL, means it never joins), as an `agent`
participant with the token's identity and attributes, then publishes its audio and video tracks.
It plays the agent's audio (the `lk.audio_stream` byte streams of `DataStreamAudioOutput`) in
real time, answers `lk.clear_buffer`, and reports each segment's end with the agent's
`lk.playback_finished` RPC. It leaves the room when its plan says so or its conversation is ended.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from livekit import api, rtc

from testkit.fake_room import FakeRoom, StreamChunk
from testkit.fake_tavus_server import Conversation

AUDIO_TOPIC = "lk.audio_stream"


@dataclass(eq=False)
class HeardSegment:
    """One byte stream of agent audio: what arrived, and when the replica played it."""

    stream_id: str
    sample_rate: int
    num_channels: int
    first_chunk_at: float  # perf_counter
    started_at: float  # wall clock (time.time), when its playback began
    data: bytearray = field(default_factory=bytearray)
    closed: bool = False
    finished: bool = False

    @property
    def duration(self) -> float:
        return len(self.data) / (2 * self.num_channels * self.sample_rate)

    def played_samples(self, until: float) -> bytes:
        """The audio it had played by wall-clock time `until` (int16 bytes)."""
        seconds = max(0.0, min(self.duration, until - self.started_at))
        return bytes(self.data[: int(seconds * self.sample_rate) * 2 * self.num_channels])


class SimulatedReplica:
    def __init__(self, room: FakeRoom, conversation: Conversation, *, livekit_url: str, verifier: api.TokenVerifier):
        self.room = room
        self.conversation = conversation
        self.plan = conversation.replica
        properties = conversation.body["properties"]
        self.token: str = properties.get("livekit_room_token", "")
        self.url_ok = properties.get("livekit_ws_url") == livekit_url
        self._verifier = verifier
        self.identity: str | None = None
        self.heard: list[HeardSegment] = []
        self.left_at: float | None = None  # wall clock
        self._streams: dict[str, HeardSegment] = {}
        self._busy_until = 0.0
        self._finishers: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def end(self) -> None:
        """Tavus ended the conversation: the replica stops and leaves."""
        if self._task is not None:
            self._task.cancel()
        self._leave()

    async def _run(self) -> None:
        if self.plan.join_after is None or not self.url_ok:
            return
        try:
            claims = self._verifier.verify(self.token)
        except Exception:
            return  # LiveKit would refuse the connection
        if claims.video is None or not claims.video.room_join or claims.video.room != self.room.name:
            return
        await asyncio.sleep(self.plan.join_after)
        self.identity = claims.identity
        participant = self.room.join(
            claims.identity, kind=rtc.ParticipantKind.PARTICIPANT_KIND_AGENT, attributes=claims.attributes
        )
        participant.on_stream = self._on_stream
        participant.rpc_handlers["lk.clear_buffer"] = self._on_clear_buffer
        await asyncio.sleep(self.plan.video_after)
        self.room.publish(claims.identity, rtc.TrackKind.KIND_AUDIO)
        self.room.publish(claims.identity, rtc.TrackKind.KIND_VIDEO)
        if self.plan.leave_after is not None:
            await asyncio.sleep(self.plan.leave_after)
            self._leave()

    def _leave(self) -> None:
        for finisher in self._finishers.values():
            finisher.cancel()
        if self.identity is not None and self.room.leave(self.identity):
            self.left_at = time.time()

    @property
    def present(self) -> bool:
        return self.identity is not None and self.identity in self.room.remote_participants

    def _on_stream(self, chunk: StreamChunk) -> None:
        if chunk.topic != AUDIO_TOPIC:
            return
        segment = self._streams.get(chunk.stream_id)
        if segment is None:
            now = time.time()
            segment = HeardSegment(
                chunk.stream_id,
                int(chunk.attributes.get("sample_rate", "24000")),
                int(chunk.attributes.get("num_channels", "1")),
                first_chunk_at=chunk.at,
                started_at=max(now + self.plan.playout_delay, self._busy_until),
            )
            self._streams[chunk.stream_id] = segment
            self.heard.append(segment)
            assert self.identity is not None
            self.room.note("avatar_audio", self.identity)
        if chunk.data is not None:
            segment.data.extend(chunk.data)
            self._busy_until = segment.started_at + segment.duration
        else:
            segment.closed = True
            self._finishers[segment.stream_id] = asyncio.create_task(self._finish_when_played(segment))

    async def _finish_when_played(self, segment: HeardSegment) -> None:
        await asyncio.sleep(max(0.0, segment.started_at + segment.duration - time.time()))
        await self._report(segment, segment.duration, interrupted=False)

    async def _on_clear_buffer(self, data: rtc.RpcInvocationData) -> str:
        for segment in self.heard:
            if segment.finished:
                continue
            finisher = self._finishers.pop(segment.stream_id, None)
            if finisher is not None:
                finisher.cancel()
            played = max(0.0, min(segment.duration, time.time() - segment.started_at))
            asyncio.get_running_loop().call_soon(
                lambda s=segment, p=played: asyncio.ensure_future(self._report(s, p, interrupted=True))
            )
        self._busy_until = time.time()
        return "ok"

    async def _report(self, segment: HeardSegment, position: float, *, interrupted: bool) -> None:
        if segment.finished or not self.present:
            return
        segment.finished = True
        assert self.identity is not None
        payload = json.dumps({"playback_position": position, "interrupted": interrupted})
        await self.room.call_agent(self.identity, "lk.playback_finished", payload)
