"""When the caller's turn ends, and when the caller's voice stops the agent.

Three parts, all tuned by measurement (`bench/bargein.py`, README "Turn handling and barge-in"):

- `turn_handling_for(settings, avatar=...)`: the session's `turn_handling` (VAD barge-in with
  a short minimum duration; a paused reply resumes after a false interruption; short
  endpointing delays; preemptive generation) and `build_vad(settings)` (its silence window).
- `EndOfTurnRules`: a turn detector that reads the transcript. A turn that ends on a word
  that cannot end a sentence ("to", "my", "because", "في", "لأن", "um") is not finished, so
  the session waits the long endpointing delay instead of answering half a sentence.
- `BackchannelFilter`: wraps the STT. While a reply is playing, a transcript that is only a
  backchannel ("mm-hm", "uh-huh", "اها") is dropped, so it neither interrupts the reply nor
  becomes a turn; the paused reply then resumes. Spoken words always pass.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from livekit.agents import inference, llm, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr

if TYPE_CHECKING:
    from livekit.agents import AgentSession

    from settings import Settings

logger = logging.getLogger("turn_handling")

ALL_LANGUAGES = ("en", "ar")
TURN_DETECTIONS = ("rules", "model", "vad")
"""rules: VAD endpointing plus `EndOfTurnRules`; model: LiveKit's local turn-detector-v1-mini
(audio model); vad: VAD silence alone."""


MODEL_MIN_SILENCE = 0.25
"""LiveKit refuses a shorter VAD silence window with its turn-detector model."""


def build_vad(settings: Settings) -> inference.VAD:
    """The local Silero VAD with the configured silence window (end of speech)."""
    silence = settings.vad_min_silence
    if settings.turn_detection == "model" and silence < MODEL_MIN_SILENCE:
        silence = MODEL_MIN_SILENCE
    return inference.VAD(min_silence_duration=silence)


PRELOAD_LOCAL_INFERENCE = "LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE"


def skip_unused_model_preload(settings: Settings, environ: MutableMapping[str, str]) -> bool:
    """Keep LiveKit from loading `turn-detector-v1-mini` (about 243 MB) into the worker's
    forkserver when `TURN_DETECTION` does not use it; an operator's own value is kept.
    Call before the worker starts. The VAD then loads in each job process's prewarm instead
    (a few ms, before any call is assigned). True when it changed the environment."""
    if settings.turn_detection == "model" or PRELOAD_LOCAL_INFERENCE in environ:
        return False
    environ[PRELOAD_LOCAL_INFERENCE] = "0"
    return True


def turn_handling_for(settings: Settings, *, avatar: bool) -> dict[str, Any]:
    """The session's `turn_handling`.

    The avatar's output cannot pause, so a barge-in there stops the reply for good (and
    nothing resumes): it needs a longer minimum duration, which LiveKit counts from the
    VAD's start of speech up to its end-of-speech decision, the silence window included.
    """
    return {
        "turn_detection": turn_detector(settings.turn_detection, settings.languages),
        "endpointing": {"min_delay": settings.endpointing_min_delay, "max_delay": settings.endpointing_max_delay},
        # "vad" keeps barge-in local (the "adaptive" detector is a LiveKit Cloud service).
        "interruption": {
            "mode": "vad",
            "min_duration": settings.avatar_interruption_min_duration if avatar else settings.interruption_min_duration,
            "min_words": settings.interruption_min_words,
            "resume_false_interruption": settings.resume_false_interruption and not avatar,
            "false_interruption_timeout": settings.false_interruption_timeout,
        },
        "preemptive_generation": {"enabled": settings.preemptive_generation},
    }


def turn_detector(kind: str, languages: Sequence[str] = ALL_LANGUAGES) -> Any:
    if kind == "rules":
        return EndOfTurnRules(languages)
    if kind == "model":
        return inference.TurnDetector(version="v1-mini")
    if kind == "vad":
        return "vad"
    raise ValueError(f"turn detection must be one of {', '.join(TURN_DETECTIONS)}, got {kind!r}")


# ------------------------------------------------------------------------- words


def _words(text: str) -> list[str]:
    """Lower-cased words without punctuation or Arabic diacritics; "mm-hm" -> ["mm", "hm"]."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")  # tashkeel, tatweel marks
    text = text.replace("\u0640", "")  # tatweel
    return re.findall(r"[\w']+", text.replace("-", " "))


def _squeeze(word: str) -> str:
    """Collapse stretched letters: "mmmm" -> "mm", "hmmm" -> "hmm", "ااه" -> "اه"."""
    return re.sub(r"(.)\1{2,}", r"\1\1", word)


BACKCHANNELS: dict[str, frozenset[str]] = {
    # vocalisations only (no words: "yes" or "okay" may answer the agent's question)
    "en": frozenset("mm m hm hmm mhm mmhm mmhmm uh huh uhhuh um ah aha oh er erm".split()),
    "ar": frozenset("اه آه اها آها أها امم ام مم همم هم إمم اهاه".split()),
}
"""Listener noises per language; a word is judged by its own script's language (below)."""
BACKCHANNEL_WORDS = frozenset().union(*BACKCHANNELS.values())


VOCALISATION = re.compile(r"a+h+|a{2,}|[oue]+h+|o{2,}h*|w+o{2,}|h+o{2,}|(?:h[aeiou]){2,}h?|h[aeiou]h|a+r+g+h*|u+r*g+h+")
"""Laughs, cries and exclamations as a recogniser spells them ("ahhh", "ooh", "woo hoo", "haha",
"heh heh", "hehehe", "argh", "ugh"), once stretched letters are squeezed: Latin-letter noises a
caller makes while listening, whatever language they speak."""


def word_language(word: str) -> str:
    """The language whose lists judge `word`: Arabic script is Arabic, anything else English."""
    return "ar" if any("\u0600" <= c <= "\u06ff" for c in word) else "en"


def is_backchannel(text: str, languages: Sequence[str] = ALL_LANGUAGES) -> bool:
    """True for a transcript made only of listener noises ("mm-hm", "uh huh", "اها") in the
    deployment's `languages`. Noises in Latin letters ("mm", "uh-huh") are no language's words:
    STT writes them so whatever the caller speaks."""
    words = [_squeeze(w) for w in _words(text)]
    return bool(words) and len(words) <= 3 and all(_is_noise(w, languages) for w in words)


def _is_noise(word: str, languages: Sequence[str]) -> bool:
    language = word_language(word)
    if language == "en" and VOCALISATION.fullmatch(word):
        return True
    return word in BACKCHANNELS[language] and (language == "en" or language in languages)


UNFINISHED: dict[str, frozenset[str]] = {
    # English: articles, prepositions, conjunctions, possessives, "I'm"-style openers, fillers.
    "en": frozenset(
        """a an the to of for with at from about into onto by via and or nor but because whether if than
        my your our their his her its i'm i'd i'll we're you're um uh er erm""".split()
    ),
    # Arabic: prepositions, conjunctions, relatives, "my name / my number", "يعني" and fillers.
    "ar": frozenset(
        """في من الى إلى على عن مع و او أو ثم لكن بس لأن لان إن ان أن اذا إذا لو عند اللي الذي التي اسمي رقمي
        يعني امم""".split()
    ),
}
"""Words after which a sentence goes on. People hesitate mostly after such words, before
the content word they are looking for. The last word is judged by its own language's list,
so a turn in the language the caller just switched to is judged in that language."""
UNFINISHED_WORDS = frozenset().union(*UNFINISHED.values())

_SUBJECTS = frozenset("it that this there here he she they we you i what who which where yes no so".split())
_PARTICLE_VERBS = frozenset("hold come go carry log sign check turn keep get got put hang let logged signed".split())
UNFINISHED_UNLESS_AFTER = {
    # "my name is ..." goes on; "yes it is" and "that's what it was" end.
    **dict.fromkeys(("is", "are", "was", "were"), _SUBJECTS),
    # "my appointment on ... Friday" goes on; "hold on" and "can I come in" end.
    **dict.fromkeys(("on", "in"), _PARTICLE_VERBS),
}


def looks_unfinished(text: str, languages: Sequence[str] = ALL_LANGUAGES) -> bool:
    """The transcript stops where a sentence cannot end (or trails off with "..." or ",")."""
    stripped = text.rstrip()
    if stripped.endswith(("...", "…", ",", "،", "-")):
        return True
    words = [_squeeze(w) for w in _words(stripped)]
    if not words:
        return False
    last, before = words[-1], words[-2] if len(words) > 1 else ""
    language = word_language(last)
    if language not in languages:
        return False  # a language the deployment does not serve: VAD endpointing alone
    if language == "en" and last in UNFINISHED_UNLESS_AFTER:
        return before not in UNFINISHED_UNLESS_AFTER[last]
    return last in UNFINISHED[language]


class EndOfTurnRules:
    """A LiveKit turn detector (`predict_end_of_turn`) over the caller's transcript.

    Unfinished-looking turns get probability 0 (below the threshold: the session waits the
    endpointing `max_delay`); the rest get 1 (it answers after `min_delay`). Instant and
    offline, in English and Arabic; other languages fall back to VAD endpointing.
    """

    def __init__(self, languages: Sequence[str] = ALL_LANGUAGES) -> None:
        self.languages = tuple(languages)
        """The deployment's languages: each has its list of words a sentence cannot end on."""

    @property
    def model(self) -> str:
        return "end-of-turn-rules"

    @property
    def provider(self) -> str:
        return "local"

    async def unlikely_threshold(self, language: LanguageCode | None) -> float | None:
        return 0.5

    async def supports_language(self, language: LanguageCode | None) -> bool:
        return language is None or LanguageCode(language).language in self.languages

    async def predict_end_of_turn(self, chat_ctx: llm.ChatContext, *, timeout: float | None = None) -> float:
        users = [i for i in chat_ctx.items if i.type == "message" and i.role == "user"]
        if not users:
            return 1.0
        text = users[-1].text_content or ""
        return 0.0 if looks_unfinished(text, self.languages) else 1.0


# ------------------------------------------------------------------------- backchannels


class BackchannelFilter(stt.STT):
    """The session's STT, minus backchannels said while the agent's reply is playing.

    Without it, LiveKit treats any final transcript during a reply as a barge-in: the reply
    stops and "mm-hm" becomes a turn the LLM answers. Wraps a non-streaming STT (the OpenAI
    transcription endpoint; LiveKit adds VAD segmentation around it) or a streaming one (the
    realtime transcription API): there, a backchannel's interim transcripts are dropped and
    its final one arrives empty. Call `watch(session)` once the session exists.
    """

    def __init__(self, inner: stt.STT, languages: Sequence[str] = ALL_LANGUAGES) -> None:
        super().__init__(capabilities=inner.capabilities)
        self._inner = inner
        self.languages = tuple(languages)
        self._session: AgentSession | None = None
        self.dropped = 0

    def watch(self, session: AgentSession) -> None:
        self._session = session

    @property
    def model(self) -> str:
        return self._inner.model

    @property
    def provider(self) -> str:
        return self._inner.provider

    def _reply_playing(self) -> bool:
        speech = self._session.current_speech if self._session is not None else None
        return speech is not None and not speech.done() and not speech.interrupted

    def _filtered(self, event: stt.SpeechEvent) -> stt.SpeechEvent | None:
        """`event`, or an empty final / nothing when it is a backchannel said during a reply."""
        text = event.alternatives[0].text if event.alternatives else ""
        if not text or not is_backchannel(text, self.languages) or not self._reply_playing():
            return event
        if event.type == stt.SpeechEventType.INTERIM_TRANSCRIPT:
            return None
        self.dropped += 1
        logger.debug("backchannel during the agent's reply ignored")
        first = event.alternatives[0]
        return stt.SpeechEvent(
            type=event.type,
            request_id=event.request_id,
            alternatives=[stt.SpeechData(text="", language=first.language)],
        )

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        # this wrapper's recognize() retries; the inner call must not multiply the attempts
        once = APIConnectOptions(max_retry=0, retry_interval=conn_options.retry_interval, timeout=conn_options.timeout)
        event = await self._inner.recognize(buffer=buffer, language=language, conn_options=once)
        return self._filtered(event) or event

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        inner = self._inner.stream(language=language, conn_options=conn_options)
        return _FilteredStream(inner, self)  # type: ignore[return-value]

    def _update_session_keyterms(self, keyterms: list[str]) -> None:
        self._inner._update_session_keyterms(keyterms)

    def _push_conversation_item(self, ev: Any) -> None:
        self._inner._push_conversation_item(ev)

    def prewarm(self) -> None:
        self._inner.prewarm()

    async def aclose(self) -> None:
        await self._inner.aclose()


class _FilteredStream:
    """A streaming STT's `RecognizeStream`, minus backchannels said during a reply.

    Everything but reading events goes to the inner stream (frames, flush, options, the
    session's timing attributes), so the session sees the provider's stream itself.
    """

    def __init__(self, inner: stt.RecognizeStream, owner: BackchannelFilter) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_filter", owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)

    def __aiter__(self) -> _FilteredStream:
        return self

    async def __anext__(self) -> stt.SpeechEvent:
        while True:
            event = await self._inner.__anext__()
            if (kept := self._filter._filtered(event)) is not None:
                return kept

    async def __aenter__(self) -> _FilteredStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.aclose()
