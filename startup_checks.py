"""Checks the worker makes once at start-up, before it takes a call, each bounded in time.

The OpenAI-compatible endpoint (STT, LLM and TTS all go there) is asked for its model list;
an unreachable or refusing endpoint would otherwise be discovered at the caller's first turn.
"""

from __future__ import annotations

import httpx

from settings import Settings

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
ENDPOINT_CHECK_TIMEOUT = 5.0


def openai_endpoint_problem(settings: Settings, *, timeout: float = ENDPOINT_CHECK_TIMEOUT) -> str | None:
    """One line naming the endpoint and what failed, or None when it answers.

    A 404 for the model list still proves the server is there (not every compatible server
    lists models); a refused key, a server error, a timeout or no connection is a problem.
    """
    base = (settings.openai_base_url or OPENAI_DEFAULT_BASE_URL).rstrip("/")
    url = f"{base}/models"
    headers = {"Authorization": f"Bearer {settings.openai_key_for_client}"}
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False) as client:
            answer = client.get(url, headers=headers)
    except httpx.TimeoutException:
        return f"OpenAI-compatible endpoint {base}: no answer within {timeout:g}s"
    except httpx.HTTPError as e:
        return f"OpenAI-compatible endpoint {base}: cannot connect ({type(e).__name__}: {e})"
    if answer.status_code in (401, 403):
        return (
            f"OpenAI-compatible endpoint {base}: the key was refused (HTTP {answer.status_code}); check OPENAI_API_KEY"
        )
    if answer.status_code >= 500:
        return f"OpenAI-compatible endpoint {base}: server error (HTTP {answer.status_code})"
    return None
