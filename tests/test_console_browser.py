"""The operator console in a real headless Chromium, against both record stores seeded by the
real ConversationManager: filters, the interrupted reply, one latency point per reply, a live
page that grows, stats charts, 401 without the credential, hostile text shown as text."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from conversation_manager import ConversationManager
from settings import Settings
from storage.records import ConversationStore
from testkit.browser import chromium, response_statuses
from testkit.console_records import HOSTILE_TEXT, SeededCalls, seed_calls
from testkit.console_server import TOKEN, RunningConsole, console_settings, running_console
from testkit.local_supabase import Stack
from testkit.record_stores import BACKENDS, open_store

WAIT = 30


@dataclass
class Site:
    console: RunningConsole
    calls: SeededCalls
    browser: WebDriver
    tmp_path: Path
    backend: str
    stack: Stack | None

    def open(self, path: str) -> None:
        self.browser.get(self.console.url + path)
        WebDriverWait(self.browser, WAIT).until(lambda b: b.execute_script("return document.readyState") == "complete")

    def rows(self) -> list[str]:
        return [
            r.get_attribute("data-conversation-id") or ""
            for r in self.browser.find_elements(By.CSS_SELECTOR, "#calls tr.call")
        ]


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    stack: Stack | None = request.getfixturevalue("clean_db") if request.param == "supabase" else None

    async def go() -> SeededCalls:
        store = await open_store(request.param, tmp_path=tmp_path, stack=stack)
        try:
            return await seed_calls(store, tmp_path / "journal")
        finally:
            await store.aclose()

    calls = asyncio.run(go())
    with running_console(console_settings(tmp_path, stack)) as console, chromium(token=TOKEN) as browser:
        yield Site(console, calls, browser, tmp_path, request.param, stack)


def chart_points(browser: WebDriver, chart: str, trace: int = 0) -> int:
    """Markers Plotly drew (SVG paths) for one trace of a chart."""
    return int(
        browser.execute_script(
            "const t = document.querySelectorAll(`#${arguments[0]} .scatterlayer .trace`)[arguments[1]];"
            "return t ? t.querySelectorAll('.points path.point').length : -1;",
            chart,
            trace,
        )
    )


def test_the_list_filters_in_the_form(site: Site) -> None:
    s = site.calls
    site.open("/calls")
    assert site.rows() == [s.hostile, s.slow, s.booked, s.old]
    Select(site.browser.find_element(By.NAME, "outcome")).select_by_visible_text("booked")
    site.browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    WebDriverWait(site.browser, WAIT).until(lambda b: "outcome=booked" in b.current_url)
    assert site.rows() == [s.booked]
    site.open("/calls")
    site.browser.find_element(By.NAME, "slow").click()
    site.browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    WebDriverWait(site.browser, WAIT).until(lambda b: "slow=1" in b.current_url)
    assert site.rows() == [s.slow]
    site.open("/calls?incomplete=1")
    assert site.rows() == [s.hostile]
    assert site.browser.find_element(By.CSS_SELECTOR, "#calls .mark.incomplete").text == "incomplete"


def test_a_call_shows_the_interrupted_reply_and_one_latency_point_per_reply(site: Site) -> None:
    site.open(f"/calls/{site.calls.booked}")
    cut = site.browser.find_element(By.CSS_SELECTOR, ".turn.assistant.interrupted")
    assert "You have two appointments, the first" in cut.text
    link = cut.find_element(By.CSS_SELECTOR, "a.cut-by")
    assert link.get_attribute("data-cut-by") == "4"
    link.click()
    assert site.browser.current_url.endswith("#seq-4")
    assert len(site.browser.find_elements(By.CSS_SELECTOR, "section.run")) == 2
    assert [t.get_attribute("data-tool") for t in site.browser.find_elements(By.CSS_SELECTOR, ".tool")] == [
        "verify_caller",
        "book_appointment",
    ]
    WebDriverWait(site.browser, WAIT).until(lambda b: chart_points(b, "latency-chart") == 3)
    assert chart_points(site.browser, "latency-chart") == 3, "one point per reply"


def test_stats_charts_render(site: Site) -> None:
    site.open("/stats")
    for chart in ("chart-volume", "chart-outcomes", "chart-latency", "chart-slow", "chart-agents", "chart-tools"):
        WebDriverWait(site.browser, WAIT).until(
            lambda b, c=chart: b.find_elements(By.CSS_SELECTOR, f"#{c} svg.main-svg"), message=chart
        )
    bars = site.browser.find_elements(By.CSS_SELECTOR, "#chart-volume .barlayer .point")
    assert bars, "the volume chart drew its bars"
    assert "1" in site.browser.find_element(By.ID, "slow-turns").text
    site.open(f"/calls/{site.calls.booked}")
    WebDriverWait(site.browser, WAIT).until(lambda b: chart_points(b, "latency-chart") == 3)
    violations = [e["message"] for e in site.browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert violations == [], "the charts run within the console's CSP"


def test_a_hostile_message_shows_as_text_and_runs_nothing(site: Site) -> None:
    site.open(f"/calls/{site.calls.hostile}")
    shown = site.browser.find_element(By.CSS_SELECTOR, ".turn.user .text").text
    assert "<script>window.__console_xss = 1</script>" in shown
    assert '<img src=x onerror="window.__console_xss = 2">' in shown
    assert "\\x1b[2J" in shown and "\x1b" not in shown
    assert site.browser.execute_script("return window.__console_xss === undefined")
    assert not site.browser.find_elements(By.CSS_SELECTOR, "main img"), "no element was made from the text"
    assert HOSTILE_TEXT not in site.browser.page_source


def test_a_live_call_page_grows(site: Site) -> None:
    async def open_call(store: ConversationStore) -> tuple[ConversationManager, str]:
        manager = ConversationManager.from_settings(store, Settings(), journal_dir=site.tmp_path / "journal")
        cid = await manager.start_conversation(None, "live-room", "caller-live")
        manager.add_message_to_local_transcript("user", "first live turn")
        return manager, cid

    # The call runs in its own loop and thread, as a worker's job would; it holds its journal's lock.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def in_call(coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, loop).result(WAIT)

    store = in_call(open_store(site.backend, tmp_path=site.tmp_path, stack=site.stack))
    try:
        manager, cid = in_call(open_call(store))
        site.open("/live")
        here = site.browser.find_elements(By.CSS_SELECTOR, "#live-here tr.call")
        assert [r.get_attribute("data-conversation-id") for r in here] == [cid]
        site.open(f"/calls/{cid}")
        assert site.browser.find_element(By.ID, "live-mark").text == "live"
        assert "first live turn" in site.browser.find_element(By.TAG_NAME, "main").text

        async def add_turn() -> None:
            manager.add_message_to_local_transcript("assistant", "a turn added while the page is open")

        in_call(add_turn())
        WebDriverWait(site.browser, WAIT).until(
            lambda b: "a turn added while the page is open" in b.find_element(By.TAG_NAME, "main").text
        )
        in_call(manager.end_conversation())
        WebDriverWait(site.browser, WAIT).until(lambda b: not b.find_elements(By.ID, "live-mark"))
        assert "a turn added while the page is open" in site.browser.find_element(By.TAG_NAME, "main").text
    finally:
        in_call(store.aclose())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)


def test_without_the_credential_every_page_is_401(site: Site) -> None:
    with chromium() as anonymous:
        for path in ("/calls", f"/calls/{site.calls.booked}", "/live", "/stats", "/api/calls", "/api/stats"):
            anonymous.get(site.console.url + path)
            assert response_statuses(anonymous).get(site.console.url + path) == 401, path
            assert "Omar" not in anonymous.page_source, path
