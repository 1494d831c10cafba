"""Tool progress to the room: `ToolStatus` events as text streams on the `agent.status` topic.

Publishing must never slow or break a tool: events are queued and sent in order by one
background task, each send bounded by a timeout; a failure is logged and the event dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from tools.progress import STATUS_TOPIC, ToolStatus

logger = logging.getLogger("tools.room_status")

SEND_TIMEOUT = 2.0
QUEUE_LIMIT = 64
"""Events beyond this many unsent ones are dropped: a front end only needs the latest."""


class TextSender(Protocol):
    """The part of `rtc.LocalParticipant` used here."""

    async def send_text(self, text: str, *, topic: str = "") -> object: ...


class Room(Protocol):
    """The part of `rtc.Room` used here (its local participant exists once connected)."""

    @property
    def local_participant(self) -> TextSender: ...


class RoomStatusPublisher:
    """A `StatusSink` that sends each event to every participant of the room, in order."""

    def __init__(self, room: Room, *, send_timeout: float = SEND_TIMEOUT) -> None:
        self._room = room
        self._send_timeout = send_timeout
        self._queue: asyncio.Queue[ToolStatus] = asyncio.Queue(QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None

    def __call__(self, status: ToolStatus) -> None:
        try:
            self._queue.put_nowait(status)
        except asyncio.QueueFull:
            logger.warning("agent.status backlog full; dropped %s %s", status.tool, status.state)
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send_all(), name="agent-status")

    async def _send_all(self) -> None:
        while not self._queue.empty():
            status = self._queue.get_nowait()
            try:
                sending = self._room.local_participant.send_text(status.to_json(), topic=STATUS_TOPIC)
                await asyncio.wait_for(sending, self._send_timeout)
            except Exception as e:  # the room is the edge: its failures must not reach the tool
                reason = str(e) or type(e).__name__
                logger.warning("could not publish %s %s to the room: %s", status.tool, status.state, reason)

    async def drain(self) -> None:
        """Wait until what is queued has been sent (or dropped)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
