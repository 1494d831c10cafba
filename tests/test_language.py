"""The language of a caller's turn, the switch rule and the call's language (plain Python)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import prompt_problems
from desk.call_language import CallLanguage, LanguageChange, dispatch_language
from desk.language import read_turn, requested_language, strip_controls
from settings import Settings, SettingsError
from testkit.language_turns import TURNS, LabelledTurn
from tools.call_language import stt_language_options


def decide(turn: LabelledTurn) -> str | None:
    call = CallLanguage((turn.current, *({"en", "ar"} - {turn.current})))
    call.start(turn.current, "dispatch")
    heard = call.hear(turn.text, 1, turn.stt)
    return heard.change.language if heard.change else None


@pytest.mark.parametrize("turn", TURNS, ids=lambda t: f"{t.category}:{t.current}:{t.text[:24]}")
def test_the_labelled_set(turn: LabelledTurn) -> None:
    assert decide(turn) == turn.switch_to


def test_the_labelled_set_covers_every_category() -> None:
    categories = {t.category for t in TURNS}
    assert categories >= {"en", "ar", "mixed_ar", "mixed_en", "names_numbers", "arabizi", "request"}
    assert len(TURNS) >= 60


@pytest.mark.parametrize(
    ("text", "language", "kind"),
    [
        ("I want to book an appointment", "en", "whole"),
        ("أريد حجز موعد", "ar", "whole"),
        ("بدي appointment يوم الأحد", "ar", "mixed"),
        ("my name is أحمد", "en", "mixed"),
        ("أحمد خليل", "ar", "neutral"),
        ("Sarah Johnson", "en", "neutral"),
        ("٠٩٩١٢٣٤٥٦٧", None, "neutral"),
        ("OK", None, "neutral"),
        ("ana baddi maw3ed bukra", "ar", "whole"),
        ("\u2067وبدي موعد\u2069", "ar", "whole"),
    ],
)
def test_reading_a_turn(text: str, language: str | None, kind: str) -> None:
    reading = read_turn(text)
    assert (reading.language, reading.kind) == (language, kind)


def test_the_stt_language_is_a_second_signal() -> None:
    # the STT disagreeing with the script: not a whole turn, nothing switches
    assert read_turn("I want to book an appointment", "ar").kind == "mixed"
    assert read_turn("I want to book an appointment", "en").kind == "whole"
    # a long Latin-script turn with no English evidence that the STT hears as Arabic: Arabizi
    assert read_turn("kifak ya sitt huda kilna mnih", "ar") == read_turn("kifak ya sitt huda kilna mnih", "ar-SY")
    assert read_turn("kifak ya sitt huda kilna mnih", "ar").language == "ar"
    assert read_turn("kifak ya sitt huda kilna mnih").language == "ar", "one known Arabizi word in a sentence"
    assert read_turn("habibti kilna mnih", "ar") == read_turn("habibti kilna mnih"), "short: the STT cannot decide"
    # an Arabic name with the STT saying Arabic is still only a name
    assert read_turn("أحمد خليل", "ar").kind == "neutral"


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("English please", "en"),
        ("can we continue in english", "en"),
        ("ممكن عربي", "ar"),
        ("بالعربي لو سمحت", "ar"),
        ("بتحكي انجليزي؟", "en"),
        ("I don't speak English", "ar"),
        ("ما بحكي عربي", "en"),
        ("my son speaks Arabic, he will call later", None),
        ("I want to book an appointment", None),
    ],
)
def test_explicit_requests(text: str, wanted: str | None) -> None:
    assert read_turn(text).request == wanted


def test_a_request_only_for_a_listed_language() -> None:
    assert requested_language(["arabic", "please"], ("en",)) is None
    assert read_turn("Arabic please", languages=("en",)).request is None


def test_bidi_controls_are_removed() -> None:
    assert strip_controls("\u200fهدى\u200e \u202bالخطيب\u202c\u2066") == "هدى الخطيب"


def test_the_call_language_records_every_choice() -> None:
    seen: list[LanguageChange] = []
    call = CallLanguage(("en", "ar"))
    call.listeners.append(seen.append)
    assert call.start(None, "dispatch") == LanguageChange("en", "default", 0, None), "nothing known: the default"
    assert call.hear("بدي appointment يوم الأحد", 1).change is None
    heard = call.hear("أريد حجز موعد", 2)
    assert heard.change == LanguageChange("ar", "speech", 2, "en") and heard.language == "ar"
    assert call.hear("English please", 3).change == LanguageChange("en", "request", 3, "ar")
    assert call.hear("OK", 4).language == "en", "a turn that cannot tell is in the call's language"
    assert [c.cause for c in seen] == ["default", "speech", "request"]
    assert call.switches == seen[1:]
    with pytest.raises(RuntimeError):
        call.start("ar", "dispatch")


def test_a_verified_customer_continues_in_their_language_unless_they_speak_another() -> None:
    quiet = CallLanguage(("en", "ar"))
    quiet.start(None, "default")
    quiet.hear("١٢٣٤٥", 1)  # only the ZIP code: nothing said in English yet
    assert quiet.known_customer("ar", 1) == LanguageChange("ar", "customer", 1, "en")

    speaking = CallLanguage(("en", "ar"))
    speaking.start(None, "default")
    speaking.hear("My ZIP code is 9 4 1 0 3.", 1)
    assert speaking.known_customer("ar", 1) is None, "the caller speaks English: English it stays"
    assert speaking.current == "en"

    asked = CallLanguage(("ar", "en"))
    asked.start("ar", "dispatch")
    asked.hear("English please", 1)
    asked.hear("١٢٣٤٥", 2)
    assert asked.known_customer("ar", 2) is None, "an explicit request stands"

    unlisted = CallLanguage(("en",))
    unlisted.start(None, "default")
    assert unlisted.known_customer("ar", 1) is None, "a language the deployment does not serve"


def test_the_dispatch_language() -> None:
    languages = ("en", "ar")
    assert dispatch_language({"language": "ar"}, None, languages=languages) == "ar"
    assert dispatch_language({}, json.dumps({"language": "AR-sy"}), languages=languages) == "ar"
    assert dispatch_language(None, "not json", json.dumps({"language": "en"}), languages=languages) == "en"
    assert dispatch_language({"language": "fr"}, json.dumps(["ar"]), languages=languages) is None
    assert dispatch_language({"language": "ar"}, None, languages=("en",)) is None


def test_agent_languages_setting() -> None:
    assert Settings.from_env({}).languages == ("en", "ar")
    assert Settings.from_env({"AGENT_LANGUAGE": "ar"}).languages == ("ar",)
    two = Settings.from_env({"AGENT_LANGUAGES": "ar, en"})
    assert (two.language, two.languages) == ("ar", ("ar", "en"))
    voices = Settings.from_env({"OPENAI_TTS_VOICE": "alloy", "OPENAI_TTS_VOICE_AR": "nova"})
    assert (voices.voice_for("ar"), voices.voice_for("en")) == ("nova", "alloy")
    for env, expected in (
        ({"AGENT_LANGUAGES": "en,fr"}, "AGENT_LANGUAGES must be a comma-separated list of en, ar"),
        ({"AGENT_LANGUAGES": "en,en"}, "AGENT_LANGUAGES lists a language twice"),
        ({"AGENT_LANGUAGES": "en,ar", "AGENT_LANGUAGE": "ar"}, "AGENT_LANGUAGE (ar) must be the first"),
    ):
        with pytest.raises(SettingsError) as e:
            Settings.from_env(env)
        assert any(expected in p for p in e.value.problems), e.value.problems


def test_every_listed_language_has_every_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    assert prompt_problems(Settings.from_env({"AGENT_LANGUAGES": "en,ar"})) == []
    import prompts

    real = prompts._template.__wrapped__

    def missing_arabic_offer(lang: str, name: str) -> str:
        if (lang, name) == ("ar", "language_offer"):
            raise prompts.PromptError("prompt ar/language_offer.txt is missing")
        return real(lang, name)

    monkeypatch.setattr(prompts, "_template", missing_arabic_offer)
    problems = prompt_problems(Settings.from_env({"AGENT_LANGUAGES": "en,ar"}))
    assert len(problems) == 1 and "ar/language_offer" in problems[0]
    assert prompt_problems(Settings.from_env({"AGENT_LANGUAGE": "en"})) == []


def test_the_stt_hint() -> None:
    assert stt_language_options("gpt-4o-mini-transcribe", ("en",)) == {"language": "en"}
    assert stt_language_options("gpt-4o-mini-transcribe", ("en", "ar")) == {"detect_language": True}
    assert stt_language_options("gpt-transcribe", ("en", "ar")) == {"language": ["en", "ar"]}


@given(st.text(max_size=300), st.sampled_from([None, "", "ar", "en", "fr", "AR-sy", "x" * 40]))
def test_any_transcript_reads_without_failing(text: str, stt: str | None) -> None:
    reading = read_turn(text, stt)
    assert reading.kind in ("whole", "mixed", "neutral")
    assert reading.language in (None, "en", "ar") and reading.request in (None, "en", "ar")
    call = CallLanguage(("en", "ar"))
    heard = call.hear(text, 1, stt)
    assert heard.language in ("en", "ar") and call.current in ("en", "ar")


def test_the_longest_turns_are_read() -> None:
    huge = ("بدي موعد maw3ed appointment ٠٩٩١ " * 1200)[:32_000]  # the record's longest message
    assert read_turn(huge).kind == "mixed"
    assert read_turn("ب" * 32_000).kind == "neutral", "one word, however long, is no sentence"
    assert read_turn("maw3ed" * 5_000).kind == "neutral"
