"""What a front end learns about a tool step while it runs (plain data, sent as JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

ToolState = Literal["working", "still_working", "done", "failed"]


@dataclass(frozen=True)
class ToolStatus:
    """One progress event of a tool step, as a front end receives it (JSON)."""

    tool: str
    state: ToolState
    text: str
    """What the agent is doing, in the caller's language ("" once done)."""
    at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


StatusSink = Callable[[ToolStatus], None]
"""Receives progress events; must not block (the room publisher queues them)."""
