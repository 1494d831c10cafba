"""The operator console's pages and their JSON twins (`/api/...`), over the record store.

Reads go through the same `ConversationStore` interface as the CLI (Supabase when configured,
else the embedded file) and, for calls in progress on this worker, through their journals.
Nothing here writes. Every store read is bounded by STORE_TIMEOUT; a store that fails or does
not answer is a 503 page naming the problem, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from conversation_manager.console.access import ConsoleAccess, allowed_hosts_for
from conversation_manager.console.live import journal_call, live_calls
from conversation_manager.console.views import (
    PAGE_SIZE,
    BadRequest,
    ListFilters,
    call_view,
    check_conversation_id,
    latency_series,
    stats_days,
    stats_view,
)
from conversation_manager.display import visible
from conversation_manager.outcome import OUTCOMES
from settings import Settings
from storage.factory import open_record_store
from storage.records import (
    STATUSES,
    ConversationDetail,
    ConversationQuery,
    ConversationStore,
    StoreError,
    is_incomplete,
)

logger = logging.getLogger("conversation_manager.console")

HERE = Path(__file__).resolve().parent
LIVE_REFRESH_SECONDS = 2
T = TypeVar("T")


def plotly_bundle() -> Path:
    """Plotly's own browser bundle, shipped inside its PyPI package: served from here, never a CDN."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is not installed (pip install -r requirements.txt)")
    bundle = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not bundle.is_file():
        raise RuntimeError(f"plotly is installed without its browser bundle ({bundle} missing)")
    return bundle


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, default=str, separators=(",", ":")).encode()


@dataclass
class Console:
    settings: Settings
    store: ConversationStore
    templates: jinja2.Environment

    async def read(self, what: Callable[[], Awaitable[T]]) -> T:
        try:
            return await asyncio.wait_for(what(), self.settings.store_timeout * 2)
        except TimeoutError:
            budget = self.settings.store_timeout * 2
            raise HTTPException(503, f"the record store did not answer within {budget:g}s") from None
        except StoreError as e:
            raise HTTPException(503, f"the record store failed: {e}") from None

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("refresh", None)
        html = self.templates.get_template(template).render(request=request, path=request.url.path, **context)
        return HTMLResponse(html, status_code=status)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is text, whatever markup it contains
    )
    env.filters["visible"] = lambda v: visible(v, keep_newlines=True)
    env.filters["line"] = visible
    env.filters["pretty"] = lambda v: visible(
        json.dumps(v, ensure_ascii=False, indent=2, default=str), keep_newlines=True
    )
    env.filters["time"] = lambda v: visible(str(v or "")[:19].replace("T", " "))
    env.filters["ms"] = lambda v: "" if v is None else f"{float(v):.0f}"
    env.filters["num"] = lambda v: "" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
    env.globals["query"] = lambda params: urlencode(params)
    env.globals["incomplete"] = is_incomplete
    return env


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


# ------------------------------------------------------------------------------ pages


async def calls_data(request: Request) -> tuple[ListFilters, list[dict[str, Any]], bool]:
    console = _console(request)
    filters = ListFilters.parse(request.query_params, country_code=console.settings.default_country_code)
    rows = await console.read(lambda: console.store.search_conversations(filters.query()))
    return filters, rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


async def calls_page(request: Request) -> Response:
    filters, rows, more = await calls_data(request)
    return _console(request).page(
        request, "calls.html", filters=filters, rows=rows, more=more, statuses=STATUSES, outcomes=OUTCOMES
    )


async def calls_json(request: Request) -> Response:
    filters, rows, more = await calls_data(request)
    return JSON(
        {
            "filters": filters.as_json(),
            "page": filters.page,
            "next_page": filters.page + 1 if more else None,
            "conversations": rows,
        }
    )


async def call_data(request: Request) -> tuple[ConversationDetail, bool, bool]:
    """The call, from its journal while this worker runs it, else from the store."""
    console = _console(request)
    cid = check_conversation_id(request.path_params["conversation_id"])
    in_journal = journal_call(console.settings.journal_dir, cid)
    if in_journal is not None and in_journal.live:
        return in_journal.detail, True, True
    stored = await console.read(lambda: console.store.get_conversation(cid))
    if stored is not None and (stored.messages or in_journal is None):
        return stored, False, False
    if in_journal is not None:  # ended but not written yet: the journal waits for replay
        return in_journal.detail, False, True
    raise HTTPException(404, f"no conversation {visible(cid)!r}")


async def call_page(request: Request) -> Response:
    detail, live, from_journal = await call_data(request)
    return _console(request).page(
        request,
        "call.html",
        c=detail.conversation,
        runs=detail.agent_runs,
        view=call_view(detail),
        series=latency_series(),
        live=live,
        from_journal=from_journal,
        refresh=LIVE_REFRESH_SECONDS if live else None,
    )


async def call_json(request: Request) -> Response:
    detail, live, from_journal = await call_data(request)
    view = call_view(detail)
    return JSON(
        {
            "conversation": detail.conversation,
            "messages": detail.messages,
            "tool_calls": detail.tool_calls,
            "agent_runs": detail.agent_runs,
            "latency": view["latency"],
            "live": live,
            "from_journal": from_journal,
        }
    )


async def live_data(request: Request) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Calls this worker runs (from journals) and the other `active` rows (other workers)."""
    console = _console(request)
    here = [
        {**call.detail.conversation, "last_turn": call.detail.messages[-1] if call.detail.messages else None}
        for call in live_calls(console.settings.journal_dir)
    ]
    mine = {row["conversation_id"] for row in here}
    active = await console.read(
        lambda: console.store.search_conversations(ConversationQuery(status="active", limit=200))
    )
    return here, [row for row in active if row["conversation_id"] not in mine]


async def live_page(request: Request) -> Response:
    here, elsewhere = await live_data(request)
    return _console(request).page(request, "live.html", here=here, elsewhere=elsewhere, refresh=LIVE_REFRESH_SECONDS)


async def live_json(request: Request) -> Response:
    here, elsewhere = await live_data(request)
    return JSON({"this_worker": here, "active_elsewhere": elsewhere})


async def stats_data(request: Request) -> dict[str, Any]:
    console = _console(request)
    days = stats_days(request.query_params)
    by_status, report = await asyncio.gather(
        console.read(lambda: console.store.stats_by_status()), console.read(lambda: console.store.report(days=days))
    )
    return stats_view(by_status, report, days)


async def stats_page(request: Request) -> Response:
    return _console(request).page(request, "stats.html", stats=await stats_data(request))


async def stats_json(request: Request) -> Response:
    return JSON(await stats_data(request))


async def home(request: Request) -> Response:
    return RedirectResponse("/calls", status_code=303)


async def plotly_js(request: Request) -> Response:
    return FileResponse(request.app.state.plotly, media_type="text/javascript")


# ------------------------------------------------------------------------------ errors


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def bad_request(request: Request, exc: Exception) -> Response:
    return _error(request, 400, str(exc))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, exc.detail)


async def server_error(request: Request, exc: Exception) -> Response:
    logger.exception("console page failed: %s", request.url.path)
    return _error(request, 500, "the console failed on this page; the log has the details")


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSON({"error": message, "status": status}, status_code=status)
    return _console(request).page(request, "error.html", status=status, status_code=status, message=message)


# ------------------------------------------------------------------------------ the app


def build_app(settings: Settings, *, store: ConversationStore | None = None) -> ConsoleAccess:
    """The console as an ASGI app. With `store`, that store is used (and left open); without,
    the configured one is opened at start-up and closed at shutdown."""
    bundle = plotly_bundle()  # fail at start-up, not on the first chart

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened = store if store is not None else await open_record_store(settings)
        app.state.console = Console(settings, opened, _environment())
        app.state.plotly = bundle
        try:
            yield
        finally:
            if store is None:
                await opened.aclose()

    routes = [
        Route("/", home),
        Route("/calls", calls_page),
        Route("/calls/{conversation_id:path}", call_page),
        Route("/live", live_page),
        Route("/stats", stats_page),
        Route("/api/calls", calls_json),
        Route("/api/calls/{conversation_id:path}", call_json),
        Route("/api/live", live_json),
        Route("/api/stats", stats_json),
        Route("/static/vendor/plotly.min.js", plotly_js),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={BadRequest: bad_request, HTTPException: http_error, Exception: server_error},
    )
    return ConsoleAccess(app, token=settings.console_token, allowed_hosts=allowed_hosts_for(settings.console_host))
