"""What the worker's log may carry: ids, counts and timings, never a caller's words, name or phone.

- Libraries under the record store (aiosqlite, httpx/httpcore, hpack/h2, postgrest, supabase)
  log every statement or header at DEBUG, message text and phone numbers included; they are
  held at WARNING whatever LOG_LEVEL says.
- LiveKit marks the log fields that carry transcripts, tool arguments and outputs with an
  `lk.pii.` prefix; those fields are removed from its lines (the line stays, with the field's
  length) unless `LOG_TRANSCRIPTS=true` (agent.py keeps them in `console` too: its text UI shows
  the agent's words only through them, and the person at the keyboard is the caller).
- LiveKit's AgentSession builds its default turn detector even when one is given (an eager
  `dict.get` default), which in dev and console logs "LIVEKIT_INFERENCE_URL is set but ...
  falling back to the turn-detector-v1-mini model" though nothing LiveKit is configured and
  the session never uses that detector: that one line is dropped.
- In `console`, LiveKit's CLI schedules a second `AgentServer.aclose()` on a loop that is already
  closing after Ctrl+C (its worker-shutdown callback raises SIGTERM into its own handler); the
  server was closed by the first, so only the resulting "never awaited" warning is dropped.

Filters are attached to LiveKit's loggers, which run in the job processes too: `install` is
called in the worker process and again in each job process (`prewarm`).
"""

from __future__ import annotations

import logging
import warnings

PII_PREFIX = "lk.pii."
STORE_LIBRARIES = (
    "aiosqlite",
    "httpx",
    "httpcore",
    "hpack",
    "h2",
    "postgrest",
    "supabase",
    "realtime",
    "storage3",
    "supabase_auth",
    "supabase_functions",
)
LIVEKIT_LOGGERS = (
    "livekit.agents",
    "livekit.plugins.openai",
    "livekit.plugins.silero",
    "livekit.plugins.tavus",
)
UNUSED_DETECTOR_WARNING = "LIVEKIT_INFERENCE_URL is set but"


class CallerDataFilter(logging.Filter):
    """Removes LiveKit's `lk.pii.*` fields (unless kept) and its unused-detector warning."""

    def __init__(self, *, keep_transcripts: bool) -> None:
        super().__init__("caller-data")
        self.keep_transcripts = keep_transcripts

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(UNUSED_DETECTOR_WARNING):
            return False
        if not self.keep_transcripts:
            for key in [k for k in record.__dict__ if k.startswith(PII_PREFIX)]:
                value = record.__dict__[key]
                record.__dict__[key] = f"[{len(str(value))} chars not logged]"
        return True


def install(*, keep_transcripts: bool = False) -> None:
    """Idempotent: safe to call in the worker and again in every job process."""
    for name in STORE_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in LIVEKIT_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, CallerDataFilter)]:
            logger.removeFilter(old)
        logger.addFilter(CallerDataFilter(keep_transcripts=keep_transcripts))
    warnings.filterwarnings(
        "ignore", message="coroutine 'AgentServer.aclose' was never awaited", category=RuntimeWarning
    )
