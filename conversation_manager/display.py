"""Stored text made safe to show: control characters rendered visibly, never acted on.

Callers can type chat text in a browser call, so anything stored is caller-controlled. A
terminal would act on an escape sequence (`\\x1b[2J` clears the screen, OSC sets the window
title, `\\r` overwrites the line) and bidi overrides reorder what is displayed, so the CLI and
the console show each such character as an escape (`\\x1b`, `\\u202e`). Letters, Arabic text
and the bidi *marks* (LRM, RLM, ALM) that Arabic text legitimately carries are kept as they are.
"""

from __future__ import annotations

import re

_BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_INVISIBLE_CONTROLS = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{_BIDI_CONTROLS}]")
_LINE_BREAKS = re.compile(r"\r\n|\n|\t")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object, *, keep_newlines: bool = False) -> str:
    """`text` with every control character shown as an escape.

    Newlines and tabs become a space on one-line output (tables) and stay as they are with
    `keep_newlines` (a message shown as a paragraph); `\\r` is always escaped, so nothing
    can overwrite what was printed before it.
    """
    value = "" if text is None else str(text)
    if not keep_newlines:
        value = _LINE_BREAKS.sub(" ", value)
    return _INVISIBLE_CONTROLS.sub(_escaped, value)
