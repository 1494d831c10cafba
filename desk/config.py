"""The desk's configuration and the seams it is wired through (plain Python)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from storage.domain import VerificationLimits

if TYPE_CHECKING:
    from settings import Settings

Transfer = Callable[[str, str], Awaitable[None]]
"""`transfer(participant_identity, destination)`: hand a SIP caller over to a human."""


class DeskRecord(Protocol):
    """What the desk writes into the call's record (a `ConversationManager`)."""

    @property
    def conversation_id(self) -> str: ...

    def set_caller_details(
        self, name: str | None = None, phone: str | None = None, email: str | None = None
    ) -> object: ...

    def update_conversation(self, **fields: Any) -> None: ...

    def add_effect(self, effect: str) -> None: ...

    def record_language(self, language: str, cause: str, turn: int) -> None: ...

    def undo_language(self) -> None: ...


@dataclass(frozen=True)
class DeskConfig:
    """How the desk behaves on this deployment. Settings own the values that are settings
    (`from_settings`); the rest are the desk's own rules."""

    language: str
    """The call's first language when nothing else chooses one (the first of `languages`)."""
    timezone: str
    """The clinic's IANA time zone: slots are read and spoken in it."""
    default_country_code: str
    escalation_phone_number: str | None
    max_verification_attempts: int
    verification_limits: VerificationLimits
    """Failed verifications allowed per phone and per call source across calls (in the store)."""
    acknowledgement_delay: float
    """Seconds a slow tool may run before the caller hears one short acknowledgement."""
    still_working_after: float
    """Seconds a slow tool may run before the caller hears one "still working on it" line."""
    history_max_messages: int
    """Caller and agent messages the LLM sees (the record keeps the whole call)."""
    languages: tuple[str, ...] = ()
    """The languages this deployment serves; empty means `language` alone."""
    keypad_merge_window: float = 10.0
    """Seconds within which a typed and a said ZIP code are one attempt (the caller did both at once)."""
    offer_human_after_failures: int = 2
    unclear_turns_before_human: int = 2
    slots_per_answer: int = 5
    max_search_days: int = 14
    booking_horizon_days: int = 90

    @property
    def call_languages(self) -> tuple[str, ...]:
        """The deployment's languages, the default first."""
        return tuple(dict.fromkeys((self.language, *self.languages)))

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DeskConfig:
        values: dict[str, Any] = {
            "language": settings.language,
            "languages": settings.languages,
            "timezone": settings.clinic_timezone,
            "default_country_code": settings.default_country_code,
            "escalation_phone_number": settings.escalation_phone_number,
            "max_verification_attempts": settings.max_verification_attempts,
            "verification_limits": VerificationLimits(
                window_seconds=settings.verification_window,
                phone_limit=settings.verification_phone_limit,
                source_limit=settings.verification_source_limit,
            ),
            "acknowledgement_delay": settings.acknowledgement_delay,
            "still_working_after": settings.still_working_after,
            "history_max_messages": settings.llm_history_messages,
        }
        values.update(overrides)
        return cls(**values)
