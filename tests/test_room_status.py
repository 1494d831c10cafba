"""Tool progress published to the room: order, topic, payload, and a room that fails or hangs.

The room is the edge (no LiveKit server here): a participant double with the same
`send_text(text, topic=...)` call as `rtc.LocalParticipant` records what would be sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

import pytest

from tools.progress import STATUS_TOPIC, ToolStatus
from tools.room_status import RoomStatusPublisher


@dataclass
class Participant:
    fail_on: set[str] = field(default_factory=set)
    hang_on: set[str] = field(default_factory=set)
    sent: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    async def send_text(self, text: str, *, topic: str = "") -> object:
        payload = json.loads(text)
        if payload["state"] in self.hang_on:
            await asyncio.sleep(3600)
        if payload["state"] in self.fail_on:
            raise ConnectionError("data channel closed")
        self.sent.append((topic, payload))
        return object()


@dataclass
class Room:
    local_participant: Participant


def progress(tool: str) -> list[ToolStatus]:
    return [
        ToolStatus(tool, "working", "Let me check your appointments.", 1.0),
        ToolStatus(tool, "still_working", "Still working on it.", 2.0),
        ToolStatus(tool, "done", "", 3.0),
    ]


@pytest.mark.asyncio
async def test_events_reach_the_room_in_order_on_the_status_topic() -> None:
    room = Room(Participant())
    publisher = RoomStatusPublisher(room)
    for status in progress("list_appointments"):
        publisher(status)
    await publisher.drain()
    assert [topic for topic, _ in room.local_participant.sent] == [STATUS_TOPIC] * 3
    assert [payload for _, payload in room.local_participant.sent] == [
        {"tool": "list_appointments", "state": "working", "text": "Let me check your appointments.", "at": 1.0},
        {"tool": "list_appointments", "state": "still_working", "text": "Still working on it.", "at": 2.0},
        {"tool": "list_appointments", "state": "done", "text": "", "at": 3.0},
    ]


@pytest.mark.asyncio
async def test_arabic_text_is_sent_as_is() -> None:
    room = Room(Participant())
    publisher = RoomStatusPublisher(room)
    publisher(ToolStatus("list_appointments", "working", "دعني أطّلع على مواعيدك.", 1.0))
    await publisher.drain()
    assert room.local_participant.sent[0][1]["text"] == "دعني أطّلع على مواعيدك."


@pytest.mark.asyncio
async def test_a_failing_or_hanging_room_loses_only_that_event(caplog: pytest.LogCaptureFixture) -> None:
    room = Room(Participant(fail_on={"working"}, hang_on={"still_working"}))
    publisher = RoomStatusPublisher(room, send_timeout=0.05)
    with caplog.at_level(logging.WARNING, logger="tools.room_status"):
        for status in progress("book_appointment"):
            publisher(status)  # returns at once: a tool never waits for the room
        await asyncio.wait_for(publisher.drain(), 5)
    assert [payload["state"] for _, payload in room.local_participant.sent] == ["done"]
    warnings = [r.getMessage() for r in caplog.records]
    assert any("working" in w and "data channel closed" in w for w in warnings)
    assert any("still_working" in w and "TimeoutError" in w for w in warnings)


@pytest.mark.asyncio
async def test_an_unconnected_room_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class NotConnected:
        @property
        def local_participant(self) -> Participant:
            raise RuntimeError("cannot access local participant before connecting")

    publisher = RoomStatusPublisher(NotConnected())
    with caplog.at_level(logging.WARNING, logger="tools.room_status"):
        publisher(progress("verify_caller")[0])
        await publisher.drain()
    assert any("before connecting" in r.getMessage() for r in caplog.records)
