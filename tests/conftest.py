"""Shared pytest fixtures.

Real-stack fixtures: ``supabase_stack`` (one local Supabase-compatible stack per test
session, see testkit/local_supabase) and ``clean_db`` (empties every public table
before a test). A stack that cannot start FAILS the tests that need it, never skips
them: CI must not pass with the stack tests silently left out.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from testkit.desk_world import World, sqlite_world, supabase_world
from testkit.local_supabase import Stack, StackError, start_stack

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ local Supabase stack


@pytest.fixture(scope="session")
def supabase_stack() -> Iterator[Stack]:
    """A running local stack (PostgreSQL + PostgREST + gateway) shared by the session."""
    try:
        stack = start_stack()
    except StackError as exc:
        problem = str(exc)
    else:
        problem = ""
    if problem:  # outside the except block: no chained traceback, just the message
        pytest.fail(f"local Supabase stack: {problem}", pytrace=False)
    log.info("supabase_stack up in %.2f s: %s", stack.timings.get("total", 0.0), stack.timings)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def clean_db(supabase_stack: Stack) -> Stack:
    """The session stack with every table of the public schema emptied (identities restarted)."""
    supabase_stack.truncate_public_tables()
    return supabase_stack


# ------------------------------------------------------------------------- the appointment desk's world


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """A seeded embedded (SQLite) appointment store; see testkit/desk_world.py."""
    async with sqlite_world(tmp_path) as w:
        yield w


@pytest_asyncio.fixture(params=["sqlite", "supabase"])
async def any_world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    """The same world in both backends: the critical flows run against each."""
    if request.param == "sqlite":
        async with sqlite_world(tmp_path) as w:
            yield w
    else:
        async with supabase_world(request.getfixturevalue("clean_db")) as w:
            yield w
