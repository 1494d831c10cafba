"""Every log line any logger emits during a block, for tests that check what logs may not hold
(secrets, keypad digits, a caller's words)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class AllLogs(logging.Handler):
    """Each record as one line: logger, level, message and every `extra` field; then its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()} {record.__dict__!r}")
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


@contextlib.contextmanager
def every_log_line() -> Iterator[AllLogs]:
    """Everything any logger emits inside the block, at DEBUG."""
    handler = AllLogs()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
