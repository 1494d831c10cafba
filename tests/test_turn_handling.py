"""The turn-handling rules and configuration, without audio (tests/test_bargein.py runs them live)."""

from __future__ import annotations

import dataclasses

import pytest
from livekit.agents import inference, llm

from settings import Settings, SettingsError
from turn_handling import EndOfTurnRules, build_vad, is_backchannel, looks_unfinished, turn_handling_for


@pytest.mark.parametrize(
    "text",
    [
        "mm-hm",
        "Mm-hmm.",
        "uh-huh",
        "Uh huh!",
        "hmmm",
        "mhm",
        "Aha.",
        "اها",
        "آه",
        "امممم",
        "ممم",
        # laughs, cries and exclamations as Whisper spelt human ones (testkit/human_speech.py)
        "Ahhhhhh!",
        "AHHH!",
        "Hehehe",
        "Haha.",
        "Woo hoo!",
        "Ooh, ooh, ooh.",
        "oooh",
        "Heh heh.",
        "Argh!",
        "Ugh.",
    ],
)
def test_backchannels(text: str) -> None:
    assert is_backchannel(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yes",
        "okay",
        "Yeah sure",
        "mm-hm, but wait",
        "Stop",
        "uh-huh I want to cancel",
        "نعم",
        "لا",
        "أوكي",
        "mm mm mm mm",
        "Ah, I see",
        "Oh no",
        "hello",
        "who",
        "Ha ha ha ha",
        "We'll see you next time.",
    ],
)
def test_words_are_not_backchannels(text: str) -> None:
    assert not is_backchannel(text)


@pytest.mark.parametrize(
    "text",
    [
        "I would like to move my appointment to",
        "My name is, um",
        "My name is",
        "The appointment on",
        "Can you check whether",
        "I need to cancel because",
        "Can I book with the",
        "I'm calling about my",
        "أريد نقل موعدي إلى",
        "أريد الإلغاء لأن",
        "موعدي في",
        "Let me think...",
        "I'd like,",
    ],
)
def test_unfinished_turns(text: str) -> None:
    assert looks_unfinished(text)


@pytest.mark.parametrize(
    "text",
    [
        "When is my next appointment",
        "Yes I do.",
        "Hold on",
        "Yes it is",
        "Can I come in?",
        "Sarah Johnson",
        "next Tuesday please",
        "نعم",
        "متى موعدي القادم؟",
        "أريد إلغاء موعدي",
        "",
    ],
)
def test_finished_turns(text: str) -> None:
    assert not looks_unfinished(text)


@pytest.mark.asyncio
async def test_the_rules_score_the_last_user_turn() -> None:
    rules = EndOfTurnRules()
    ctx = llm.ChatContext()
    ctx.add_message(role="assistant", content="How can I help?")
    ctx.add_message(role="user", content="I want to move it to")
    threshold = await rules.unlikely_threshold(None)
    assert threshold is not None
    assert await rules.predict_end_of_turn(ctx) < threshold
    ctx.add_message(role="user", content="Tuesday")
    assert await rules.predict_end_of_turn(ctx) >= threshold
    assert await rules.predict_end_of_turn(llm.ChatContext()) >= threshold
    assert await rules.supports_language(None) and await rules.supports_language("ar")
    assert not await rules.supports_language("fr"), "other languages fall back to VAD endpointing"


def test_settings_become_the_sessions_turn_handling() -> None:
    s = Settings.from_env(
        {
            "INTERRUPTION_MIN_DURATION": "0.3",
            "AVATAR_INTERRUPTION_MIN_DURATION": "0.9",
            "ENDPOINTING_MIN_DELAY": "0.4",
            "ENDPOINTING_MAX_DELAY": "2",
            "TURN_DETECTION": "vad",
            "PREEMPTIVE_GENERATION": "false",
            "FALSE_INTERRUPTION_TIMEOUT": "1.5",
        }
    )
    voice = turn_handling_for(s, avatar=False)
    assert voice["turn_detection"] == "vad"
    assert voice["endpointing"] == {"min_delay": 0.4, "max_delay": 2.0}
    assert voice["preemptive_generation"] == {"enabled": False}
    assert voice["interruption"] == {
        "mode": "vad",
        "min_duration": 0.3,
        "min_words": 0,
        "resume_false_interruption": True,
        "false_interruption_timeout": 1.5,
    }
    avatar = turn_handling_for(s, avatar=True)["interruption"]
    assert (avatar["min_duration"], avatar["resume_false_interruption"]) == (0.9, False), "the avatar cannot pause"


def test_each_turn_detection_choice() -> None:
    defaults = Settings()
    assert isinstance(turn_handling_for(defaults, avatar=False)["turn_detection"], EndOfTurnRules)
    model = dataclasses.replace(defaults, turn_detection="model", vad_min_silence=0.1)
    assert isinstance(turn_handling_for(model, avatar=False)["turn_detection"], inference.TurnDetector)
    assert build_vad(model).min_silence_duration == 0.25, "LiveKit's model needs at least 0.25 s of silence"
    assert build_vad(defaults).min_silence_duration == defaults.vad_min_silence


def test_bad_turn_settings_are_named() -> None:
    with pytest.raises(SettingsError) as e:
        Settings.from_env(
            {
                "TURN_DETECTION": "magic",
                "RESUME_FALSE_INTERRUPTION": "maybe",
                "ENDPOINTING_MIN_DELAY": "2",
                "ENDPOINTING_MAX_DELAY": "1",
                "VAD_MIN_SILENCE": "-1",
            }
        )
    text = "\n".join(e.value.problems)
    for name in ("TURN_DETECTION", "RESUME_FALSE_INTERRUPTION", "ENDPOINTING_MAX_DELAY", "VAD_MIN_SILENCE"):
        assert name in text


def test_the_lists_follow_the_languages_served() -> None:
    # each word is judged by its own language's list, so the turn that switches is judged right
    assert looks_unfinished("اسمي هدى و", ("en", "ar")) and looks_unfinished("I want to book with", ("en", "ar"))
    assert not looks_unfinished("اسمي هدى و", ("en",)), "a language the worker does not serve: VAD alone"
    assert looks_unfinished("my appointment is on الخميس في", ("en", "ar")), "the last word's language decides"
    assert is_backchannel("اها", ("en", "ar")) and not is_backchannel("اها", ("en",))
    assert is_backchannel("mm-hm", ("ar",)), "noises in Latin letters are no language's words"
    assert EndOfTurnRules(("ar",)).languages == ("ar",)
