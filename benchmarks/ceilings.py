"""Where the one bot process becomes the limit, whatever the GPUs: with an instant simulated GPU,
the jobs per hour that SQLite, the object store, and the bot itself can carry.

- SQLite: one job's writes, in order, through the bot's own `Store` on a real file (WAL).
- The object store: one job's results (four 30 s candidates, mp3 and FLAC, as rendered) streamed
  from a Ray worker to this process, one job after another.
- The bot: its own CPU seconds per job (admission and seed decoding, the database, saving files,
  posting and the offline Discord it posts to) with the generation and finishing on Ray workers
  in other processes; the bot's event loop is one thread, so one core's worth is its ceiling.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import simcord

from benchmarks.bot_overhead import InstantEngine
from benchmarks.pipeline import stereo_mp3
from bot.client import RestyleBot
from bot.config import parse_config
from bot.models import CandidateRow, NewJob, ResultPart
from bot.store import Store
from generation.musicgen.models import load_model


@dataclass(frozen=True)
class InstantLoader:
    """The debug model's engine with audio at once (no model work), in whichever process asks."""

    def __call__(self, model: str) -> InstantEngine:
        return InstantEngine(load_model("debug", device="cpu"))


def ceilings(jobs: int = 16, seconds: float = 30.0) -> dict[str, float]:
    import ray

    figures = asyncio.run(_sqlite(300))
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=300 * 1024**2)
    try:
        figures |= _object_store(seconds, results=40)
        figures |= asyncio.run(_bot(jobs, seconds))
    finally:
        ray.shutdown()
    return figures


async def _sqlite(jobs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = await Store.open(Path(folder) / "restyle.sqlite3")
        started = time.perf_counter()
        for index in range(jobs):
            await _one_job(store, index)
        elapsed = time.perf_counter() - started
        await store.close()
    return {"sqlite_ms_per_job": 1000 * elapsed / jobs, "sqlite_jobs_per_hour": 3600 * jobs / elapsed}


async def _one_job(store: Store, index: int) -> None:
    """What the bot writes for one job of four candidates, from the request to three votes."""
    user, now = index % 50, float(index)
    reservation = await store.reserve(user, now, max_queue=10**6, max_jobs=10**6, cooldown_s=0)
    new = NewJob(
        channel_id=1,
        guild_id=1,
        user_id=user,
        prompt="lofi",
        model="debug",
        candidates=4,
        duration_s=30.0,
        base_seed=index,
        seed_path="seed.mp3",
        seed_name="seed.mp3",
        seed_sha256="0" * 64,
        seed_duration_s=30.0,
        upload_limit=10**7,
        created_at=now,
    )
    job_id = await store.add_job(new, reservation)
    await store.set_status_message(job_id, 10_000 + job_id)
    await store.mark_running(job_id, now)
    rows = [
        CandidateRow(job_id, idx, index + idx, 0.5, f"{idx}.mp3", f"{idx}.flac", 192_000)
        for idx in range(1, 5)
    ]
    await store.mark_rendered(job_id, rows, now)
    await store.note_post_attempt(job_id, now)
    await store.add_result_part(ResultPart(20_000 + job_id, job_id, 1, 1, 4))
    await store.mark_done(job_id, 20_000 + job_id, None)
    await store.set_reactions(20_000 + job_id, 0b1111)
    for voter in range(3):
        await store.add_vote(job_id, 1 + voter, 1000 + voter, now)


def _object_store(seconds: float, results: int) -> dict[str, float]:
    """Results streamed from a Ray worker (the bot's side of the transport), one job at a time."""
    import ray

    from bot.worker.ray.actor import _files_only

    payload = _files_only(_rendered_job(seconds))
    size = sum(len(item.data) + len(item.lossless or b"") for item in payload.rendered)

    @ray.remote(num_cpus=1)
    class Results:
        def stream(self, finished, count: int):
            for _ in range(count):
                yield ("finished", (finished,))

    source = Results.remote()
    ray.get(list(source.stream.remote(payload, 1)))  # started and warm
    started = time.perf_counter()
    for ref in source.stream.remote(payload, results):
        ray.get(ref)
    elapsed = time.perf_counter() - started
    ray.kill(source)
    return {
        "result_mb_per_job": size / 1e6,
        "object_store_ms_per_job": 1000 * elapsed / results,
        "object_store_jobs_per_hour": 3600 * results / elapsed,
    }


def _rendered_job(seconds: float):
    """One real job's results: four candidates of `seconds`, mastered, as mp3 and FLAC."""
    from benchmarks.workers import Endings
    from bot.worker.runner import BatchRunner, Engines, RenderSettings, WorkOrder

    class Keep(Endings):
        def finished(self, outcome) -> None:
            self.outcome = outcome
            super().finished(outcome)

    with tempfile.TemporaryDirectory() as folder:
        seed = Path(folder) / "theme.mp3"
        seed.write_bytes(stereo_mp3(seconds))
        events = Keep()
        runner = BatchRunner(Engines(InstantLoader()), events, RenderSettings(), max_rows=4)
        runner.run([WorkOrder(1, "debug", seed, "lofi", 4, seconds, 1, 25 * 1024**2)])
        events.wait(1)
        runner.finishing.close()
    return events.outcome


async def _bot(jobs: int, seconds: float, members: int = 4) -> dict[str, float]:
    """The whole bot on simcord with two Ray workers (instant GPU, real finishing elsewhere)."""
    with tempfile.TemporaryDirectory() as folder:
        config = parse_config(
            {
                "bot": {"data_dir": str(Path(folder) / "data")},
                "models": {"default": "debug"},
                "limits": {"cooldown_seconds": 0, "max_jobs_per_user": jobs, "max_queue": jobs},
                "workers": {"backend": "ray", "count": 2, "gpus_per_worker": 0},
            }
        )
        bot = RestyleBot(config, load_engine=InstantLoader())
        seed = stereo_mp3(seconds)
        async with simcord.run(bot, settle_timeout=120.0) as env:
            channel = env.create_guild("Studio").create_text_channel("music")
            people = [env.guild.add_member(env.create_user(f"composer{i}")) for i in range(members)]
            await asyncio.to_thread(_until, lambda: bot.worker.workers_ready == 2)
            cpu, wall = time.process_time(), time.perf_counter()
            for index in range(jobs):
                await people[index % members].slash(
                    channel, "restyle", audio=("theme.mp3", seed), prompt="lofi", candidates=4
                )
            while sum("is ready" in message.content for message in channel.history()) < jobs:
                await env.settle()
                await asyncio.sleep(0.05)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            await asyncio.to_thread(bot.worker.stop)
        await bot.store.close()
    return {
        "bot_cpu_s_per_job": cpu / jobs,
        "bot_jobs_per_hour": 3600 * jobs / cpu,
        "bot_wall_s_per_job": wall / jobs,
    }


def _until(condition, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the Ray workers did not start")
        time.sleep(0.2)
