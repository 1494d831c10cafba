"""What the caller and a web front end learn while a slow tool runs.

A tool step still running after `ACK_DELAY` gets one short acknowledgement line ("Let me
check your appointments..."), and one still running after `STILL_WORKING_AFTER` one
"still working on it" line; each at most once per caller turn (the call state counts).
`ProgressLines` is the source LiveKit's filler scheduler (`RunContext.with_filler`) asks
for a line each time the session has been idle long enough; it answers from the clock.

The same progress is published as `ToolStatus` events on the room's `agent.status`
text-stream topic, so a front end can show "Checking your appointments..." while the
avatar talks: `working` when a step starts, `still_working` when that line is said,
then `done` or `failed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from desk.status import StatusSink, ToolState, ToolStatus

__all__ = ["POLL_INTERVAL", "STATUS_TOPIC", "ProgressLines", "StatusSink", "ToolState", "ToolStatus"]

STATUS_TOPIC = "agent.status"
POLL_INTERVAL = 0.25
"""Seconds between the filler scheduler's looks at the clock once the acknowledgement is past."""


class LineSource(Protocol):
    def acknowledgement(self, key: str) -> str | None: ...

    def still_working(self) -> str | None: ...


class ProgressLines:
    """The filler source of one tool step: the acknowledgement first, later one "still working" line."""

    def __init__(
        self,
        lines: LineSource,
        acknowledgement: str,
        *,
        still_working_after: float,
        on_still_working: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lines = lines
        self._acknowledgement: str | None = acknowledgement
        self._still_working_after = still_working_after
        self._on_still_working = on_still_working
        self._clock = clock
        self._started = clock()

    def __call__(self, _step: int) -> str | None:
        if self._acknowledgement is not None:
            key, self._acknowledgement = self._acknowledgement, None
            if line := self._lines.acknowledgement(key):
                return line
        if self._clock() - self._started < self._still_working_after:
            return None
        line = self._lines.still_working()
        if line is not None:
            self._on_still_working(line)
        return line
