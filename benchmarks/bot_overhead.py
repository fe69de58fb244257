"""What the bot itself costs per job: with an engine that makes audio instantly, the time from
/restyle to posted results is all overhead (download, decode, queue, finishing, files, posting),
and the time to the acknowledgement is what Discord's 3 s rule is about. Runs the unmodified
discord.py client against simcord, offline."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import discord
import numpy as np
import simcord

from benchmarks.decode import melody
from benchmarks.pipeline import stereo_mp3
from bot.client import RestyleBot
from bot.config import parse_config
from generation.errors import GenerationCancelled
from generation.musicgen.engine import MusicGenEngine
from generation.musicgen.models import load_model


class InstantEngine(MusicGenEngine):
    """The debug model's engine, but audio appears at once: no language model, no codec."""

    def generate_many(self, jobs, on_progress, cancels) -> list[np.ndarray | GenerationCancelled]:
        outcomes = []
        for job, report in zip(jobs, on_progress, strict=True):
            steps = self.total_steps(job.duration_s)
            if report is not None:
                report(steps, steps)
            tune = melody(job.duration_s)[None, None]
            outcomes.append(np.repeat(tune, len(job.seeds), axis=0))
        return outcomes


async def _run(jobs: int, seconds: float) -> dict[str, float]:
    lm = load_model("debug", device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        config = parse_config(
            {
                "bot": {"data_dir": str(Path(folder) / "data")},
                "models": {"default": "debug"},
                "limits": {"cooldown_seconds": 0, "max_jobs_per_user": jobs, "max_queue": jobs},
            }
        )
        bot = RestyleBot(config, load_engine=lambda model: InstantEngine(lm))
        seed = stereo_mp3(seconds)
        acks: list[float] = []
        original_defer = discord.InteractionResponse.defer

        async def timed_defer(self, *args, **kwargs):
            result = await original_defer(self, *args, **kwargs)
            acks.append(time.perf_counter())
            return result

        discord.InteractionResponse.defer = timed_defer
        try:
            async with simcord.run(bot, settle_timeout=60.0) as env:
                channel = env.create_guild("Studio").create_text_channel("music")
                member = env.guild.add_member(env.create_user("composer"))
                totals, to_ack = [], []
                for _ in range(jobs):
                    before = len([m for m in channel.history() if "is ready" in m.content])
                    started = time.perf_counter()
                    await member.slash(
                        channel, "restyle", audio=("theme.mp3", seed), prompt="lofi", candidates=2
                    )
                    to_ack.append(acks[-1] - started)
                    while len([m for m in channel.history() if "is ready" in m.content]) == before:
                        await env.settle()
                        await asyncio.sleep(0.01)
                    totals.append(time.perf_counter() - started)
                bot.worker.stop()
        finally:
            discord.InteractionResponse.defer = original_defer
            await bot.store.close()
    return {
        "jobs": jobs,
        "seed_seconds": seconds,
        "ack_median_s": statistics.median(to_ack),
        "ack_max_s": max(to_ack),
        "overhead_per_job_median_s": statistics.median(totals),
    }


def bot_overhead(jobs: int = 8, seconds: float = 30.0) -> dict[str, float]:
    return asyncio.run(_run(jobs, seconds))
