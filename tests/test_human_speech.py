"""The human speech set and the real recogniser behind it (testkit/human_speech.py,
testkit/whisper_stt.py): packages installed by scripts/test.sh, Whisper tiny.en run locally.
Checks what the set is made of, never timings."""

from __future__ import annotations

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import stt

from testkit.audio_clips import MIC_RATE
from testkit.human_speech import PAUSE_RANGE, HumanSpeech
from testkit.whisper_stt import Recognizer, WhisperSTT


@pytest.fixture(scope="module")
def human() -> HumanSpeech:
    return HumanSpeech()


def test_clauses_come_with_the_recognisers_words(human: HumanSpeech) -> None:
    clauses = human._clauses("two_cities.wav")
    assert len(clauses) >= 10
    for samples, _label, words in clauses:
        assert 1.0 * MIC_RATE * 0.9 <= len(samples) <= 4.6 * MIC_RATE and words >= 1


def test_paused_clauses_cut_at_a_word_boundary(human: HumanSpeech) -> None:
    clauses = human._clauses("endgame_nagg_nell.wav")
    paused = human._paused(clauses, "test")
    assert paused, "the dialogue gives paused clauses"
    whole = {label: samples for samples, label, _ in clauses}
    for clause in paused:
        assert PAUSE_RANGE[0] <= clause.pause <= PAUSE_RANGE[1]
        original = whole[clause.source]
        # the two parts are the clause itself, cut once
        assert np.array_equal(np.concatenate([clause.before.samples, clause.after.samples]), original)
        assert clause.before.words or clause.before.transcript == ""
    assert sum(bool(c.before.transcript) and bool(c.after.transcript) for c in paused) >= len(paused) // 2


def test_the_held_out_set_is_kept_apart(human: HumanSpeech) -> None:
    tuning = {c.source for c in human.paused()}
    held_out = {c.source for c in human.held_out_paused()}
    assert len(held_out) >= 10 and not tuning & held_out


def test_noises_are_human_voices_without_words_mostly(human: HumanSpeech) -> None:
    noises = human.noises()
    assert len(noises) == 10 and all(0.3 <= n.duration <= 3.5 for n in noises)


@pytest.mark.asyncio
async def test_whisper_as_a_livekit_stt_hears_a_human_reader(human: HumanSpeech) -> None:
    samples, _label, _words = human._clauses("two_cities.wav")[0]
    frame = rtc.AudioFrame(samples.tobytes(), MIC_RATE, 1, len(samples))
    recogniser = WhisperSTT(Recognizer.shared())
    event = await recogniser.recognize([frame])
    assert event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    assert "best of times" in event.alternatives[0].text.lower()
    assert recogniser.heard == [event.alternatives[0].text]
