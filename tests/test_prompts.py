"""Prompts: every required prompt exists in every language and uses exactly its fields."""

from __future__ import annotations

from pathlib import Path

import pytest

import prompts
from settings import SUPPORTED_LANGUAGES


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_every_language_has_every_prompt(lang: str) -> None:
    prompts.check(lang)


def test_missing_and_unexpected_fields_are_errors() -> None:
    with pytest.raises(prompts.PromptError, match="needs field"):
        prompts.load("en", "greeting", company="Nour Clinic")
    with pytest.raises(prompts.PromptError, match="does not use"):
        prompts.load("en", "greeting", company="Nour Clinic", agent_name="Sara", extra="x")


def test_a_missing_language_fails_at_check_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(prompts, "PROMPTS_DIR", tmp_path)
    prompts._template.cache_clear()
    try:
        with pytest.raises(prompts.PromptError, match="missing"):
            prompts.check("en")
    finally:
        monkeypatch.undo()
        prompts._template.cache_clear()
