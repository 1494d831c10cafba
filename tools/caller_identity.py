"""What the call itself says about the caller: how they reach us, and a phone number only from
attributes nobody but the deployment can set.

- A SIP caller's `sip.phoneNumber` is written by LiveKit SIP from the trunk's caller id: trusted.
- A browser caller's attributes come from its access token, and a token with
  `canUpdateOwnMetadata` lets the caller rewrite them; a token server may also copy what the
  user typed. So a browser (or connector) caller's `phone` is read only when the deployment
  declares it trusted (`TRUSTED_CALLER_ATTRIBUTES=phone`): its token server sets it from its own
  login and mints tokens without `canUpdateOwnMetadata`. Otherwise the caller says their number.

A number from the call binds verification to it (the caller cannot give another), which is
why an untrusted one must never count as the call's own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from livekit import rtc

logger = logging.getLogger("tools.caller_identity")

SIP_PHONE_ATTRIBUTE = "sip.phoneNumber"
PHONE_ATTRIBUTE = "phone"


class Participant(Protocol):
    @property
    def identity(self) -> str: ...

    @property
    def kind(self) -> rtc.ParticipantKind.ValueType: ...

    @property
    def attributes(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class CallerIdentity:
    identity: str
    channel: str
    """`sip`, `webrtc` (a standard participant: browser or app) or the LiveKit kind (`connector`, ...)."""
    phone: str | None
    """The number as the call carries it (the desk normalises it), None when none is trusted."""

    @property
    def is_sip(self) -> bool:
        return self.channel == "sip"


def channel_of(kind: rtc.ParticipantKind.ValueType) -> str:
    if kind == rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD:
        return "webrtc"
    return rtc.ParticipantKind.Name(kind).removeprefix("PARTICIPANT_KIND_").lower()


def caller_identity(
    participant: Participant, trusted_attributes: frozenset[str], *, conversation_id: str = ""
) -> CallerIdentity:
    """The caller's channel and the phone number the call vouches for (see the module docstring)."""
    channel = channel_of(participant.kind)
    attributes = participant.attributes if isinstance(participant.attributes, Mapping) else {}
    if channel == "sip":
        phone = attributes.get(SIP_PHONE_ATTRIBUTE)
    elif PHONE_ATTRIBUTE in trusted_attributes:
        phone = attributes.get(PHONE_ATTRIBUTE)
    else:
        phone = None
        if attributes.get(PHONE_ATTRIBUTE):
            logger.info(
                "the caller's %r attribute is ignored: not in TRUSTED_CALLER_ATTRIBUTES",
                PHONE_ATTRIBUTE,
                extra={"conversation_id": conversation_id},
            )
    return CallerIdentity(participant.identity, channel, phone if isinstance(phone, str) and phone else None)
