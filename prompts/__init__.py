"""Every word the agent says or is instructed with, one file per prompt and language.

Templates use `{field}` placeholders. `load()` fails loudly on a missing file, a missing
field or an unexpected one, and `check()` runs at worker start-up over every prompt the
agent needs, so a broken translation stops the deploy instead of a live call.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).parent

REQUIRED: dict[str, frozenset[str]] = {
    "system": frozenset({"agent_name", "company"}),
    "greeting": frozenset({"agent_name", "company"}),
}
"""Prompt name -> the fields its template must use (same set in every language)."""


class PromptError(Exception):
    pass


@cache
def _template(lang: str, name: str) -> str:
    path = PROMPTS_DIR / lang / f"{name}.txt"
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise PromptError(f"prompt {lang}/{name}.txt is missing (looked in {path})") from None
    if not text:
        raise PromptError(f"prompt {lang}/{name}.txt is empty")
    return text


def fields_of(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def load(lang: str, name: str, **fields: object) -> str:
    """Render prompt `name` in `lang` with exactly the fields its template uses."""
    template = _template(lang, name)
    wanted = fields_of(template)
    if missing := wanted - fields.keys():
        raise PromptError(f"prompt {lang}/{name} needs field(s) {', '.join(sorted(missing))}")
    if unused := fields.keys() - wanted:
        raise PromptError(f"prompt {lang}/{name} does not use field(s) {', '.join(sorted(unused))}")
    return template.format(**fields)


def check(lang: str) -> None:
    """Verify every required prompt of `lang` exists and uses exactly its declared fields."""
    problems = []
    for name, declared in REQUIRED.items():
        try:
            used = fields_of(_template(lang, name))
        except PromptError as e:
            problems.append(str(e))
            continue
        if used != declared:
            problems.append(f"prompt {lang}/{name} uses fields {sorted(used)}, expected {sorted(declared)}")
    if problems:
        raise PromptError("; ".join(problems))
