"""/queue: what is running and what waits, in the order it will run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import texts
from bot.replies import NO_PINGS

if TYPE_CHECKING:
    from bot.client import RestyleBot


class Queue(commands.Cog):
    def __init__(self, bot: RestyleBot) -> None:
        self.bot = bot

    @app_commands.command(name="queue")
    @app_commands.guild_only()
    async def queue(self, interaction: discord.Interaction) -> None:
        """See what is being made now and what waits, in running order."""
        store = self.bot.store
        running = await store.jobs_with_status("running")
        waiting = [await store.job(queued.job_id) for queued in self.bot.queue.ordered()]
        text = texts.queue_listing(running, [job for job in waiting if job is not None])
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)


async def setup(bot: RestyleBot) -> None:
    await bot.add_cog(Queue(bot))
