"""Brute-forcing one phone's ZIP code by redialling and calling in parallel, in simulated time.

    python bench/brute_force.py [--parallel 20] [--hours 3]

An attacker who knows a customer's phone number guesses ZIP codes: `--parallel` calls at
once (each from its own browser identity, so the per-source limit does not help), each
guessing until its call is locked, then redialling at once. Every guess goes through the
real desk (`AppointmentDesk.verify`) and the real embedded store, over PROCESSES connections
to one file (as from that many job processes); the store's clock is the simulation's, so
hours pass in seconds. Guesses due at the same simulated moment run concurrently.

Timing model: a guess takes GUESS_SECONDS of call time (the agent asks, the caller says five
digits, the agent answers), a redial REDIAL_SECONDS: one line makes 3 guesses per 36 s call,
about 300 an hour, the figure measured on the code before the limit.

Figures: guesses that reached a ZIP comparison, for one line and for the parallel lines,
without the cross-call limit (the baseline, in the same run) and with the configured limit;
the busiest one-hour window over `--hours` of simulated time; time to try every
five-digit ZIP. Last line: RESULT guesses_per_hour=<n> limit=<n> parallel_calls=<n>
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime as dt
import logging
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from desk.call_state import DeskError
from desk.desk import AppointmentDesk, DeskConfig
from settings import Settings
from storage.domain import Customer, VerificationLimits
from storage.domain_sqlite import SQLiteAppointmentStore

GUESS_SECONDS = 10.0
REDIAL_SECONDS = 6.0
ZIP_SPACE = 100_000
PROCESSES = 4
"""Connections the lines share, as calls share job processes on a few workers (each its own connection)."""
START = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
VICTIM = Customer(str(uuid.uuid4()), "Victim", "+14155550100", "94103", "en")
UNLIMITED = VerificationLimits(window_seconds=3600, phone_limit=10**9, source_limit=10**9)


@dataclass
class Clock:
    now: dt.datetime = START

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Line:
    """One attacker's line: the call in progress and when its next guess is due."""

    identity: str
    store: SQLiteAppointmentStore
    desk: AppointmentDesk | None = None
    due: float = 0.0
    calls: int = 0


@dataclass
class Run:
    compared_at: list[float] = field(default_factory=list)
    """Simulated seconds at which a guess reached a ZIP comparison."""
    refused: int = 0
    calls: int = 0

    def busiest_hour(self) -> int:
        times = sorted(self.compared_at)
        return max((bisect.bisect_left(times, t + 3600) - i for i, t in enumerate(times)), default=0)


async def simulate(path: Path, *, lines: int, seconds: float, limits: VerificationLimits) -> Run:
    clock = Clock()
    settings = Settings(clinic_timezone="Asia/Damascus", default_country_code="1")
    config = DeskConfig.from_settings(settings, verification_limits=limits)
    stores = [await SQLiteAppointmentStore.open(path, clock=clock, timeout=30.0) for _ in range(min(lines, PROCESSES))]
    attackers = [Line(f"attacker-{n}", stores[n % len(stores)]) for n in range(lines)]
    run = Run()
    guess = iter(range(ZIP_SPACE))

    async def step(line: Line, at: float) -> None:
        if line.desk is None:
            line.desk = AppointmentDesk(line.store, config)
            line.desk.caller_identified(phone=VICTIM.phone, participant_identity=line.identity)
            line.calls += 1
        desk = line.desk
        before = desk.state.failed_attempts
        with contextlib.suppress(DeskError):
            await desk.verify(f"{next(guess):05d}")  # never the victim's: 94103 is not reached
        if desk.state.failed_attempts > before:
            run.compared_at.append(at)
        else:
            run.refused += 1
        line.due = at + GUESS_SECONDS
        if desk.state.locked:  # the call is over: hang up and dial again
            line.desk = None
            line.due += REDIAL_SECONDS

    try:
        while True:
            at = min(line.due for line in attackers)
            if at >= seconds:
                break
            clock.now = START + dt.timedelta(seconds=at)
            await asyncio.gather(*(step(line, at) for line in attackers if line.due == at))
    finally:
        for store in stores:
            await store.aclose()
    run.calls = sum(line.calls for line in attackers)
    return run


async def fresh_store(directory: Path, name: str) -> Path:
    path = directory / f"{name}.sqlite3"
    store = await SQLiteAppointmentStore.open(path)
    await store.load(customers=[VICTIM])
    await store.aclose()
    return path


def exhaust(per_hour: float) -> str:
    if per_hour <= 0:
        return "never"
    hours = ZIP_SPACE / per_hour
    return f"{hours:,.0f} h ({hours / 24:,.1f} days)" if hours < 24 * 365 else f"{hours / 24 / 365:,.1f} years"


async def main(parallel: int, hours: float) -> None:
    defaults = Settings()
    limits = VerificationLimits(
        window_seconds=defaults.verification_window,
        phone_limit=defaults.verification_phone_limit,
        source_limit=defaults.verification_source_limit,
    )
    print(
        f"model: {GUESS_SECONDS:g} s per guess, {REDIAL_SECONDS:g} s per redial, 3 guesses per call; "
        f"limit {limits.phone_limit} failures per phone per {limits.window_seconds} s, "
        f"{limits.source_limit} per source"
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        rows = []
        for label, lines, span, lim in (
            ("baseline, 1 line", 1, 3600.0, UNLIMITED),
            (f"baseline, {parallel} lines", parallel, 3600.0, UNLIMITED),
            ("limited, 1 line", 1, hours * 3600, limits),
            (f"limited, {parallel} lines", parallel, hours * 3600, limits),
        ):
            began = time.perf_counter()
            run = await simulate(await fresh_store(directory, uuid.uuid4().hex), lines=lines, seconds=span, limits=lim)
            rows.append((label, run, span, time.perf_counter() - began))
    print(f"{'':24} {'sim h':>6} {'calls':>7} {'compared':>9} {'refused':>8} {'busiest hour':>13}  all ZIPs in")
    for label, run, span, _wall in rows:
        print(
            f"{label:24} {span / 3600:6.1f} {run.calls:7d} {len(run.compared_at):9d} {run.refused:8d} "
            f"{run.busiest_hour():13d}  {exhaust(run.busiest_hour())}"
        )
    baseline = rows[1][1].busiest_hour()
    limited = rows[3][1].busiest_hour()
    print(f"baseline / limited (parallel): {baseline / max(limited, 1):,.0f}x fewer guesses per hour")
    print(f"wall time: {sum(r[3] for r in rows):.1f} s")
    print(f"RESULT guesses_per_hour={limited} limit={limits.phone_limit} parallel_calls={parallel}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--hours", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(main(args.parallel, args.hours))
