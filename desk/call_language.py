"""The language of one call: where it came from, and when and why it changed. Plain Python.

Sources, in the order a call meets them, each kept with its cause and the caller turn:

1. `dispatch`: the call was set up in a language (a `language` attribute on the caller, or in
   the job or room metadata: a SIP dispatch rule per number, a web page's token);
2. `customer`: the caller is a known customer (by the SIP caller id at the start, or once
   verified) with a stored language; once the caller has spoken a whole turn in the call's
   language, that choice stands;
3. `speech`: the caller spoke a whole turn in another listed language (`desk.language`);
4. `request`: the caller asked for a language; this switches at once.

With none of these the call starts in the deployment's first language (`default`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from desk.language import TurnReading, read_turn

logger = logging.getLogger("desk.call_language")

Cause = Literal["default", "dispatch", "customer", "speech", "request"]
LANGUAGE_KEY = "language"
CUSTOMER_LOOKUP_TIMEOUT = 1.0
"""Seconds the greeting may wait for a SIP caller's stored language (one indexed store read)."""


@dataclass(frozen=True)
class LanguageChange:
    """The call's language became `language` because of `cause`, at caller turn `turn`."""

    language: str
    cause: Cause
    turn: int
    previous: str | None
    undone: bool = False
    """True when this restores `language` by undoing the switch away from it (`reconsider`)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HeardTurn:
    reading: TurnReading
    language: str
    """The language this turn was said in, for its record (the call's when it cannot tell)."""
    change: LanguageChange | None


class CallLanguage:
    """The call's current language among the deployment's `languages` (the first is the default)."""

    def __init__(self, languages: Sequence[str]) -> None:
        if not languages:
            raise ValueError("a call needs at least one language")
        self.languages = tuple(dict.fromkeys(languages))
        self.current = self.languages[0]
        self.cause: Cause = "default"
        self.changes: list[LanguageChange] = []
        """Every choice, the first (turn 0) included."""
        self.listeners: list[Callable[[LanguageChange], None]] = []
        self.stt_language: str | None = None
        """The language the STT reported for the latest final transcript, if it reports one."""
        self._spoken_whole: str | None = None

    @property
    def default(self) -> str:
        return self.languages[0]

    @property
    def others(self) -> tuple[str, ...]:
        return tuple(lang for lang in self.languages if lang != self.current)

    @property
    def switches(self) -> list[LanguageChange]:
        """The changes after the call's first language was chosen."""
        return [c for c in self.changes if c.previous is not None]

    def _change(self, language: str, cause: Cause, turn: int) -> LanguageChange | None:
        if language not in self.languages or (language == self.current and self.changes):
            return None
        change = LanguageChange(language, cause, turn, self.current if self.changes else None)
        self.current, self.cause = language, cause
        self.changes.append(change)
        for listener in self.listeners:
            listener(change)
        return change

    def start(self, language: str | None, cause: Cause) -> LanguageChange:
        """The call's first language (before the greeting); an unlisted one gives the default."""
        if self.changes:
            raise RuntimeError("the call's language was already chosen")
        if language not in self.languages:
            language, cause = self.default, "default"
        change = self._change(language, cause, 0)
        assert change is not None
        return change

    def known_customer(self, language: str | None, turn: int) -> LanguageChange | None:
        """A verified caller's stored language, unless they have been speaking the call's."""
        if not self.changes:
            return self.start(language, "customer")
        if self._spoken_whole == self.current or self.cause == "request":
            return None
        return self._change(language, "customer", turn) if language else None

    def reconsider(self, text: str) -> LanguageChange | None:
        """The whole of a voice turn, once it ended. A reply drafted early (LiveKit's preemptive
        generation, from the turn's first words) may have switched the language on a part of the
        turn; a speech switch the whole turn does not bear out ("بدي" ... "appointment يوم الأحد")
        is undone. Returns the restoring change, or None."""
        last = self.changes[-1] if self.changes else None
        if last is None or last.previous is None or last.cause != "speech":
            return None
        reading = read_turn(text, self.stt_language, self.languages)
        if reading.request == last.language or (reading.whole and reading.language == last.language):
            return None
        self.changes.pop()
        self.current = last.previous
        self.cause = self.changes[-1].cause if self.changes else "default"
        self._spoken_whole = reading.language if reading.whole else None
        restored = LanguageChange(last.previous, self.cause, last.turn, last.language, undone=True)
        for listener in self.listeners:
            listener(restored)
        return restored

    def hear(self, text: str, turn: int, stt_language: str | None = None) -> HeardTurn:
        """One final caller turn: a request switches at once, a whole turn in another language too."""
        if not self.changes:
            self.start(None, "default")
        reading = read_turn(text, stt_language or self.stt_language, self.languages)
        change = None
        if reading.request is not None:
            change = self._change(reading.request, "request", turn)
        elif reading.whole and reading.language is not None:
            change = self._change(reading.language, "speech", turn)
        if reading.whole:
            self._spoken_whole = reading.language
        said = reading.language if reading.language in self.languages and reading.kind != "neutral" else self.current
        return HeardTurn(reading, said, change)


def dispatch_language(
    attributes: Mapping[str, str] | None, *metadata: str | None, languages: Sequence[str]
) -> str | None:
    """The language a call was dispatched in: the caller's `language` attribute first, then a
    `language` key in the job's or the room's JSON metadata. Unlisted or unreadable: None."""
    candidates: list[object] = [(attributes or {}).get(LANGUAGE_KEY)]
    for raw in metadata:
        if not raw:
            continue
        try:
            parsed = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if isinstance(parsed, dict):
            candidates.append(parsed.get(LANGUAGE_KEY))
    for value in candidates:
        if isinstance(value, str) and (code := value.strip().lower().split("-")[0]) in languages:
            return code
    return None


async def choose_start(
    language: CallLanguage,
    known_caller: Callable[[], Awaitable[str | None]],
    attributes: Mapping[str, str] | None,
    *metadata: str | None,
    lookup_timeout: float = CUSTOMER_LOOKUP_TIMEOUT,
) -> LanguageChange:
    """The call's first language: the dispatch's, else the known caller's stored one (asked only
    when the deployment has a choice to make, within `lookup_timeout`: the greeting waits for
    it), else the default."""
    dispatched = dispatch_language(attributes, *metadata, languages=language.languages)
    if dispatched is not None:
        return language.start(dispatched, "dispatch")
    if len(language.languages) > 1:
        try:
            known = await asyncio.wait_for(known_caller(), lookup_timeout)
        except TimeoutError:
            logger.warning("no customer language within %.1fs; greeting in the default language", lookup_timeout)
            known = None
        if known is not None:
            return language.start(known, "customer")
    return language.start(None, "default")
