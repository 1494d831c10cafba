"""The call's language, LiveKit side: where it starts, and what follows a switch.

- `follow_language`: the STT's reported language reaches the detector (a second signal next to
  the script), and each switch changes the TTS voice (`OPENAI_TTS_VOICE_<LANG>`).

The STT gets no language hint when the deployment serves several languages: the OpenAI
transcription models follow a one-language hint even for speech in another language (they
transliterate or translate it), which would hide the very switch the detector looks for; the
models that take a list (gpt-transcribe) get the deployment's languages. A one-language
deployment names its language (`stt_language_options`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.voice.events import UserInputTranscribedEvent

from desk.call_language import LanguageChange
from desk.desk import AppointmentDesk

logger = logging.getLogger("tools.call_language")

LIST_LANGUAGE_MODELS = ("gpt-transcribe", "gpt-live-transcribe")
"""STT models that take a list of expected languages (the plugin's `_CONTEXT_HINT_MODELS`)."""


def stt_language_options(model: str, languages: tuple[str, ...]) -> dict[str, Any]:
    """`openai.STT` keyword arguments for the deployment's languages (see the module doc)."""
    if len(languages) == 1:
        return {"language": languages[0]}
    if model.startswith(LIST_LANGUAGE_MODELS):
        return {"language": list(languages)}
    return {"detect_language": True}


def follow_language(session: AgentSession, desk: AppointmentDesk, voice_for: Callable[[str], str]) -> None:
    """Feed the STT's language to the detector; change the TTS voice when the call switches."""

    def on_transcribed(ev: UserInputTranscribedEvent) -> None:
        if ev.is_final:
            desk.language.stt_language = str(ev.language) if ev.language else None

    def on_change(change: LanguageChange) -> None:
        tts = session.tts
        update = getattr(tts, "update_options", None)
        if update is None:
            return
        try:
            update(voice=voice_for(change.language))
        except Exception:  # a TTS without voices keeps speaking; the words still follow
            logger.exception("could not change the TTS voice for %s", change.language)

    session.on("user_input_transcribed", on_transcribed)
    desk.language.listeners.append(on_change)
    on_change(LanguageChange(desk.language.current, desk.language.cause, 0, None))
