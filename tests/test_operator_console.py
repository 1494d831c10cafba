"""The operator console over HTTP, on a real uvicorn server, against both record stores seeded
by the real ConversationManager: pages and JSON twins, filters, access, headers, escaping, errors."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from conversation_manager.console import serve
from conversation_manager.console.access import presented_secret
from settings import Settings
from testkit.console_records import CALLER_PHONE, HOSTILE_TEXT, SeededCalls, seed_calls
from testkit.console_server import TOKEN, RunningConsole, console_settings, running_console
from testkit.local_supabase import Stack
from testkit.record_stores import BACKENDS, open_store

ROUTES = ("/calls", "/live", "/stats", "/api/calls", "/api/live", "/api/stats", "/static/console.js")


@dataclass(frozen=True)
class Seeded:
    console: RunningConsole
    calls: SeededCalls

    def client(self, *, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.console.url, headers=headers, timeout=30)


def seed(backend: str, tmp_path: Path, stack: Stack | None) -> SeededCalls:
    async def go() -> SeededCalls:
        store = await open_store(backend, tmp_path=tmp_path, stack=stack)
        try:
            return await seed_calls(store, tmp_path / "journal")
        finally:
            await store.aclose()

    return asyncio.run(go())


@pytest.fixture(params=BACKENDS)
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Seeded]:
    stack: Stack | None = request.getfixturevalue("clean_db") if request.param == "supabase" else None
    calls = seed(request.param, tmp_path, stack)
    with running_console(console_settings(tmp_path, stack)) as console:
        yield Seeded(console, calls)


def ids(client: httpx.Client, **params: str) -> list[str]:
    answer = client.get("/api/calls", params=params)
    assert answer.status_code == 200, answer.text
    return [r["conversation_id"] for r in answer.json()["conversations"]]


def test_the_list_filters(seeded: Seeded) -> None:
    c, s = seeded.client(), seeded.calls
    assert ids(c) == [s.hostile, s.slow, s.booked, s.old]
    assert ids(c, outcome="booked") == [s.booked]
    assert ids(c, language="ar") == [s.booked]
    assert ids(c, status="abandoned") == [s.hostile]
    assert ids(c, slow="1") == [s.slow]
    assert ids(c, incomplete="1") == [s.hostile]
    assert ids(c, phone="0991 234 567") == [s.booked]
    today = dt.datetime.now(dt.UTC).date()
    assert ids(c, to=(today - dt.timedelta(days=1)).isoformat()) == [s.old]
    assert s.old not in ids(c, **{"from": today.isoformat()})
    page = c.get("/api/calls").json()
    assert page["page"] == 1 and page["next_page"] is None
    html = c.get("/calls", params={"outcome": "booked"}).text
    assert s.booked in html and s.slow not in html


def test_the_call_page_and_its_json_twin(seeded: Seeded) -> None:
    c, s = seeded.client(), seeded.calls
    call = c.get(f"/api/calls/{s.booked}").json()
    assert call["conversation"]["outcome"] == "booked" and call["conversation"]["avatar_status"] == "ready"
    assert call["conversation"]["user_phone"] == CALLER_PHONE
    assert [p["e2e_ms"] for p in call["latency"]] == [800.0, 1100.0, 900.0]
    assert [p["eou_ms"] for p in call["latency"]] == [None, 300.0, 250.0]
    assert {r["agent_type"] for r in call["agent_runs"]} == {"ReceptionAgent", "AppointmentsAgent"}
    html = c.get(f"/calls/{s.booked}").text
    assert html.count('class="run"') == 2, "one section per agent run"
    assert 'class="turn assistant interrupted"' in html and 'data-cut-by="4"' in html
    assert 'data-tool="verify_caller"' in html and 'data-tool="book_appointment"' in html
    assert c.get("/api/calls/no-such-call").status_code == 404


def test_stats_page_and_twin(seeded: Seeded) -> None:
    c = seeded.client()
    stats = c.get("/api/stats", params={"days": "7"}).json()
    assert sum(day["calls"] for day in stats["volume"]) == 4
    two_days = c.get("/api/stats", params={"days": "2"}).json()
    assert sum(day["calls"] for day in two_days["volume"]) == 3, "the three-day-old call is outside two days"
    assert sum(day["slow_turns"] for day in stats["slow_turns"]) == 1
    assert {t["name"]: t["errors"] for t in stats["tool_errors"]}["cancel_appointment"] == 1
    assert {s["status"]: s["count"] for s in stats["by_status"]} == {"completed": 3, "abandoned": 1}
    html = c.get("/stats").text
    assert 'id="chart-volume"' in html and 'id="stats-data"' in html


def test_a_hostile_message_is_text(seeded: Seeded) -> None:
    c = seeded.client()
    html = c.get(f"/calls/{seeded.calls.hostile}").text
    assert "<script>window" not in html and "<img src=x" not in html and "\x1b" not in html and "\r" not in html
    assert "&lt;script&gt;window.__console_xss = 1&lt;/script&gt;" in html
    assert "\\x1b[2J" in html and "\\x07" in html and "\\x0d" in html
    assert 'id="incomplete-why"' in html and "journal lost: disk full" in html, "issue 13's mark and its reason"
    stored = c.get(f"/api/calls/{seeded.calls.hostile}").json()["messages"][0]["content"]
    assert stored == HOSTILE_TEXT, "the JSON twin has the record as stored"


def test_every_route_needs_the_credential(seeded: Seeded) -> None:
    routes = (*ROUTES, f"/calls/{seeded.calls.booked}", f"/api/calls/{seeded.calls.booked}")
    basic = base64.b64encode(f"operator:{TOKEN}".encode()).decode()
    for route in routes:
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": "Basic !!"}):
            answer = httpx.get(seeded.console.url + route, headers=headers, timeout=30)
            assert answer.status_code == 401, route
            assert answer.headers["www-authenticate"].startswith("Basic ")
            assert "Omar" not in answer.text
        assert httpx.get(seeded.console.url + route, headers={"Authorization": f"Basic {basic}"}).status_code == 200
        assert seeded.client().get(route).status_code == 200


def test_safe_headers_on_every_answer(seeded: Seeded) -> None:
    c = seeded.client()
    for route, status in (("/calls", 200), ("/api/calls", 200), ("/calls?page=0", 400), ("/api/calls/nope", 404)):
        answer = c.get(route)
        assert answer.status_code == status
        assert answer.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
    unauthorized = httpx.get(seeded.console.url + "/calls")
    assert unauthorized.headers["cache-control"] == "no-store"


def test_a_page_reached_through_another_host_name_is_refused(seeded: Seeded) -> None:
    """DNS rebinding: a web page that points its own name at 127.0.0.1 gets nothing."""
    answer = seeded.client().get("/api/calls", headers={"Host": "attacker.example:8089"})
    assert answer.status_code == 421 and "Omar" not in answer.text


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"status": "x"}, "status must be one of"),
        ({"outcome": "<b>"}, "outcome must be one of"),
        ({"page": "99999999999999999999"}, "page must be a whole number"),
        ({"phone": "9" * 1000}, "phone must be at most"),
        ({"phone": "abc"}, "phone must be a phone number"),
        ({"from": "2026-13-40"}, "'from' must be a date"),
        ({"from": "2026-12-02", "to": "2026-12-01"}, "before"),
        ({"slow": "maybe"}, "slow must be 1 or 0"),
        ({"language": "'; drop"}, "language must be"),
    ],
)
def test_bad_filters_are_a_400_that_says_why(seeded: Seeded, params: dict[str, str], says: str) -> None:
    answer = seeded.client().get("/api/calls", params=params)
    assert answer.status_code == 400 and says in answer.json()["error"]
    page = seeded.client().get("/calls", params=params)
    assert page.status_code == 400 and "Traceback" not in page.text


def test_stats_days_are_bounded(seeded: Seeded) -> None:
    assert seeded.client().get("/api/stats", params={"days": "100000000"}).status_code == 400


def test_an_unreachable_store_is_a_503(tmp_path: Path, supabase_stack: Stack) -> None:
    settings = replace(
        console_settings(tmp_path, supabase_stack),
        supabase_url="http://127.0.0.1:9",
        store_timeout=1.0,
    )
    with running_console(settings) as console:
        answer = httpx.get(console.url + "/api/calls", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert answer.status_code == 503 and "record store" in answer.json()["error"]
        page = httpx.get(console.url + "/calls", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert page.status_code == 503 and "Traceback" not in page.text


def test_binding_beyond_loopback_needs_the_credential(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    err = io.StringIO()
    assert serve(Settings(data_dir=tmp_path), host="0.0.0.0", port=1, err=err) == 2
    assert "CONSOLE_TOKEN" in err.getvalue()


def test_credentials_are_read_from_basic_and_bearer() -> None:
    assert presented_secret("Bearer abc") == b"abc"
    assert presented_secret("Basic " + base64.b64encode(b"any:pw:with:colons").decode()) == b"pw:with:colons"
    assert presented_secret("Basic not-base64!") is None
    assert presented_secret("Basic " + base64.b64encode(b"nocolon").decode()) is None
    assert presented_secret("Digest x") is None
    assert presented_secret(None) is None


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    import io
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        err = io.StringIO()
        assert serve(Settings(data_dir=tmp_path), host="127.0.0.1", port=taken.getsockname()[1], err=err) == 1
    assert "cannot listen on 127.0.0.1:" in err.getvalue() and "Traceback" not in err.getvalue()


def test_accepted_connections_do_not_wait_for_delayed_acks() -> None:
    """asyncio sets TCP_NODELAY only on sockets made as IPPROTO_TCP; without it a keep-alive
    browser waits about 40 ms between a response's headers and its body."""
    import socket

    from conversation_manager.console.server import listening_socket

    listener = listening_socket("127.0.0.1", 0)
    try:
        assert listener.proto == socket.IPPROTO_TCP
    finally:
        listener.close()
