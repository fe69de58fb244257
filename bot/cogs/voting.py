"""Votes by reaction, /results, /leaderboard, closing polls, and catching up after downtime."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot import texts
from bot.replies import NO_PINGS, now

if TYPE_CHECKING:
    from bot.client import RestyleBot
    from bot.models import JobRow

log = logging.getLogger(__name__)

# After a restart the polls are read back this far apart (each read is a few requests).
CATCH_UP_PAUSE_S = 0.5


def candidate_for(emoji: discord.PartialEmoji | discord.Emoji | str, job: JobRow) -> int | None:
    name = str(emoji)
    if name not in texts.NUMBERS:
        return None
    idx = texts.NUMBERS.index(name) + 1
    return idx if idx <= job.candidates else None


class Voting(commands.Cog):
    def __init__(self, bot: RestyleBot) -> None:
        self.bot = bot
        self._unrecorded: set[int] = set()  # polls with a vote the database refused

    async def cog_load(self) -> None:
        self.close_polls.start()
        self.catch_up_votes.start()

    async def cog_unload(self) -> None:
        self.close_polls.cancel()
        self.catch_up_votes.cancel()

    async def _poll_vote(self, payload: discord.RawReactionActionEvent) -> tuple[JobRow, int] | None:
        """The poll and candidate a reaction is about, if it is a vote that counts: a candidate
        of the message reacted on (the results may span several)."""
        if payload.guild_id is None or payload.user_id == self.bot.user.id:
            return None
        found = await self.bot.store.poll_part(payload.message_id)
        if found is None:
            return None
        job, part = found
        idx = candidate_for(payload.emoji, job)
        if idx not in part.indices or (job.votes_close_at is not None and now() >= job.votes_close_at):
            return None
        return job, idx

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if payload.member is not None and payload.member.bot:
            return
        vote = await self._poll_vote(payload)
        if vote is not None:
            await self._count(vote[0], self.bot.store.add_vote(vote[0].id, vote[1], payload.user_id, now()))

    @commands.Cog.listener()
    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        vote = await self._poll_vote(payload)
        if vote is not None:
            await self._count(vote[0], self.bot.store.remove_vote(vote[0].id, vote[1], payload.user_id))

    async def _count(self, job: JobRow, write: Awaitable[bool]) -> None:
        """Record a vote; if the database stays locked past the store's patience, the poll is read
        back from its reactions a minute later (the reactions on Discord are the votes)."""
        try:
            await write
        except sqlite3.OperationalError as exc:
            log.warning("job %d: a vote could not be recorded (%s); reading the poll back later", job.id, exc)
            self._unrecorded.add(job.id)

    @tasks.loop(minutes=1)
    async def catch_up_votes(self) -> None:
        for job_id in sorted(self._unrecorded):
            job = await self.bot.store.job(job_id)
            try:
                if job is not None:
                    await self.reconcile(job)
            except (discord.HTTPException, sqlite3.OperationalError) as exc:
                log.warning("job %d: the votes could not be read back yet (%s)", job_id, exc)
                continue
            self._unrecorded.discard(job_id)

    @catch_up_votes.before_loop
    async def _wait_until_ready_to_catch_up(self) -> None:
        await self.bot.wait_until_ready()

    @app_commands.command(name="results")
    @app_commands.guild_only()
    @app_commands.describe(job="The job number (default: the latest results in this channel)")
    async def results(self, interaction: discord.Interaction, job: int | None = None) -> None:
        """Show the votes on a job's candidates."""
        store = self.bot.store
        row = (
            await store.job(job)
            if job is not None
            else await store.latest_result_in_channel(interaction.channel_id)
        )
        if row is None or row.status != "done" or row.guild_id != interaction.guild_id:
            message = (
                f"Job #{job} has no results here." if job is not None else "No results in this channel yet."
            )
            await interaction.response.send_message(message, ephemeral=True)
            return
        text = texts.tallies(row, await store.tallies(row.id))
        await interaction.response.send_message(text, allowed_mentions=NO_PINGS)

    @app_commands.command(name="leaderboard")
    @app_commands.guild_only()
    async def leaderboard(self, interaction: discord.Interaction) -> None:
        """The server's most-voted candidates."""
        rows = await self.bot.store.leaderboard(interaction.guild_id, limit=10)
        await interaction.response.send_message(texts.leaderboard(rows), allowed_mentions=NO_PINGS)

    @tasks.loop(seconds=30)
    async def close_polls(self) -> None:
        """Announce the winner of every poll whose voting window has closed."""
        for job in await self.bot.store.polls_to_announce(now()):
            counts = await self.bot.store.tallies(job.id)
            channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
            reference = discord.MessageReference(
                message_id=job.result_message_id, channel_id=job.channel_id, fail_if_not_exists=False
            )
            try:
                await channel.send(texts.winner(job, counts), reference=reference, allowed_mentions=NO_PINGS)
            except discord.HTTPException as exc:
                log.warning("could not announce the winner of job %d: %s", job.id, exc.text or exc.status)
            await self.bot.store.mark_announced(job.id)

    @close_polls.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    @commands.Cog.listener()
    async def on_restyle_ready(self) -> None:
        """Votes cast while the bot was away: read the open polls' reactions and make the tally
        match. Only recent polls, newest first, a bounded number, paced: each costs a few requests."""
        voting = self.bot.config.voting
        polls = await self.bot.store.open_polls(
            now(), now() - voting.catch_up_days * 86_400, voting.catch_up_polls
        )
        for number, job in enumerate(polls):
            if number:
                await asyncio.sleep(CATCH_UP_PAUSE_S)
            try:
                await self.reconcile(job)
            except discord.HTTPException as exc:
                log.warning("could not read the votes on job %d: %s", job.id, exc.text or exc.status)

    async def reconcile(self, job: JobRow) -> None:
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        votes: set[tuple[int, int]] = set()
        for part in await self.bot.store.result_parts(job.id):
            message = await channel.fetch_message(part.message_id)
            for reaction in message.reactions:
                idx = candidate_for(reaction.emoji, job)
                if idx not in part.indices:
                    continue
                async for user in reaction.users():
                    if not user.bot:
                        votes.add((idx, user.id))
        added, removed = await self.bot.store.set_votes(job.id, votes, now())
        if added or removed:
            log.info("job %d: %d votes caught up, %d withdrawn while away", job.id, added, removed)


async def setup(bot: RestyleBot) -> None:
    await bot.add_cog(Voting(bot))
