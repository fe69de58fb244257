"""Housekeeping: delete audio files once their retention period has passed."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from discord.ext import commands, tasks

from bot.replies import now

if TYPE_CHECKING:
    from bot.client import RestyleBot

log = logging.getLogger(__name__)

# The bot's vote reactions Discord refused are tried again each minute, this many times, on
# polls of the last REACTION_DAYS.
REACTION_TRIES = 10
REACTION_DAYS = 7


class Maintenance(commands.Cog):
    def __init__(self, bot: RestyleBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.retry_posting.start()
        if self.bot.config.output.retention_days > 0:
            self.clean_up.start()

    async def cog_unload(self) -> None:
        self.retry_posting.cancel()
        self.clean_up.cancel()

    @tasks.loop(minutes=1)
    async def retry_posting(self) -> None:
        """Results Discord refused for now, and vote reactions it refused (a few tries each)."""
        await self.bot.lifecycle.publish_pending()
        store = self.bot.store
        try:
            for part in await store.parts_missing_reactions(now() - REACTION_DAYS * 86_400, REACTION_TRIES):
                job = await store.job(part.job_id)
                if job is not None:
                    await self.bot.poster.add_vote_reactions(job, part)
        except sqlite3.OperationalError as exc:  # locked past the store's patience: next minute
            log.warning("vote reactions wait for the database: %s", exc)

    @retry_posting.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    @tasks.loop(hours=1)
    async def clean_up(self) -> None:
        await self.remove_expired(now() - self.bot.config.output.retention_days * 86_400)

    async def remove_expired(self, before: float) -> int:
        """Delete the files of jobs that ended before `before`; seeds go once nothing recent uses them."""
        store, files = self.bot.store, self.bot.files
        expired = await store.expired_jobs(before)
        for job in expired:
            await asyncio.to_thread(files.remove_results, job.id)
            await store.mark_files_deleted(job.id)
            if not await store.seed_in_use(job.seed_path, before) and Path(job.seed_path).is_relative_to(
                files.seeds
            ):
                await asyncio.to_thread(Path(job.seed_path).unlink, True)
        if expired:
            log.info("removed the files of %d expired jobs", len(expired))
        return len(expired)


async def setup(bot: RestyleBot) -> None:
    await bot.add_cog(Maintenance(bot))
