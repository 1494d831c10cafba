"""What one call costs a worker: the production worker (`agent.build_server`, unregistered) runs
the real entrypoint on LiveKit's simulated job (`simulate_job(fake_job=True)`: its mock room
has one caller and no LiveKit server), with the openai plugins against the local
OpenAI-compatible server in its own process; the job process is then measured with psutil.

    python -m testkit.job_probe [--livekit-preload]

`measure_job()` runs it twice, with our start-up (`skip_unused_model_preload`: the
turn-detector weights are not preloaded under TURN_DETECTION=rules) and with LiveKit's
(`--livekit-preload`), and reports RSS (what `ps` shows, shared pages included), USS (the
job's own memory) and CPU seconds per call-minute while the call is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0
OPEN_SECONDS = 20.0
"""How long the call stays open while the job's CPU is counted."""


@dataclass(frozen=True)
class JobSample:
    rss_mb: float
    uss_mb: float
    cpu_s_per_call_minute: float


@dataclass(frozen=True)
class JobCost:
    ours: JobSample
    livekit: JobSample

    @property
    def rss_mb(self) -> float:
        return self.ours.rss_mb

    def describe(self) -> str:
        rows = [
            "job process during a call (mock room, no caller audio; real entrypoint, openai plugins, local server):",
            f"  {'':34} {'RSS MB':>8} {'USS MB':>8} {'CPU s/call-min':>15}",
        ]
        for name, s in (("ours (turn model not preloaded)", self.ours), ("LiveKit preload", self.livekit)):
            rows.append(f"  {name:34} {s.rss_mb:>8.0f} {s.uss_mb:>8.0f} {s.cpu_s_per_call_minute:>15.2f}")
        return "\n".join(rows)


def _job_process(worker: psutil.Process) -> psutil.Process | None:
    """The process running the job: forked from the worker's forkserver (its cmdline is the
    forkserver's), the one with the most memory of its own."""
    best: tuple[float, psutil.Process] | None = None
    for helper in worker.children():
        for proc in helper.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                uss = proc.memory_full_info().uss
                if best is None or uss > best[0]:
                    best = (uss, proc)
    return best[1] if best else None


async def _read_line(stream: asyncio.StreamReader, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        line = await asyncio.wait_for(stream.readline(), max(0.1, deadline - time.monotonic()))
        if not line:
            raise RuntimeError(f"the process ended before printing {prefix}")
        text = line.decode(errors="replace").strip()
        if text.startswith(prefix):
            return text


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


async def sample(*, livekit_preload: bool) -> JobSample:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "testkit.fake_openai_server", "--port", "0", "--reply", "Hello, how can I help?",
        stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        base_url = (await _read_line(server.stdout, "READY", READY_TIMEOUT)).split()[1]
        with tempfile.TemporaryDirectory() as data:
            env = {
                **os.environ,
                "OPENAI_BASE_URL": base_url,
                "OPENAI_API_KEY": "test-key",
                "DATA_DIR": data,
                "JOURNAL_DIR": str(Path(data) / "journal"),
            }
            env.pop("LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE", None)
            args = [sys.executable, "-m", "testkit.job_probe", "--serve"] + (
                ["--livekit-preload"] if livekit_preload else []
            )
            worker = await asyncio.create_subprocess_exec(
                *args, stdout=asyncio.subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=asyncio.subprocess.PIPE,
                cwd=ROOT, env=env,
            )  # fmt: skip
            try:
                assert worker.stdout is not None and worker.stdin is not None
                await _read_line(worker.stdout, "LIVE", READY_TIMEOUT)
                drain = asyncio.ensure_future(_drain(worker.stdout))  # a full pipe would stall the worker
                job = _job_process(psutil.Process(worker.pid))
                if job is None:
                    raise RuntimeError("no job process found under the worker")
                cpu0 = sum(job.cpu_times()[:2])
                await asyncio.sleep(OPEN_SECONDS)
                cpu = sum(job.cpu_times()[:2]) - cpu0
                info = job.memory_full_info()
                worker.stdin.close()
                await asyncio.wait_for(worker.wait(), READY_TIMEOUT)
                await drain
                return JobSample(info.rss / 2**20, info.uss / 2**20, cpu / OPEN_SECONDS * 60)
            finally:
                if worker.returncode is None:  # the job processes too: they hold the pipes open
                    with contextlib.suppress(psutil.Error):
                        for proc in psutil.Process(worker.pid).children(recursive=True):
                            proc.kill()
                    worker.kill()
                    await worker.wait()
    finally:
        server.terminate()
        await server.wait()


async def measure_job() -> JobCost:
    ours = await sample(livekit_preload=False)
    livekit = await sample(livekit_preload=True)
    return JobCost(ours, livekit)


async def _serve(livekit_preload: bool) -> None:
    """The worker side (a child process): one simulated call, open until stdin closes."""
    sys.path.insert(0, str(ROOT))
    from settings import Settings
    from testkit.simulated_job import simulated_call
    from turn_handling import skip_unused_model_preload

    settings = Settings.from_env(mode="console")
    if not livekit_preload:
        skip_unused_model_preload(settings, os.environ)
    async with simulated_call(settings, "probe-room", timeout=READY_TIMEOUT):
        await asyncio.sleep(2.0)  # the greeting is synthesised and played
        print("LIVE", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    if "--serve" in sys.argv:
        asyncio.run(_serve("--livekit-preload" in sys.argv))
    else:
        print(asyncio.run(measure_job()).describe())
