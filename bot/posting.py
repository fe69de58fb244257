"""Posting a job's results: as a follow-up to its command while the interaction lives, otherwise
(after 15 minutes, or after a restart) as a channel message replying to the job's status message."""

from __future__ import annotations

import io
import logging
from pathlib import PurePath
from typing import TYPE_CHECKING

import discord

from bot import texts
from bot.store import CandidateRow, JobRow
from bot.views import results_view

if TYPE_CHECKING:
    from bot.client import RestyleBot

log = logging.getLogger(__name__)


async def post_results(
    bot: RestyleBot,
    job: JobRow,
    candidates: list[CandidateRow],
    close_at: float | None,
    interaction: discord.Interaction | None,
) -> discord.Message:
    content = texts.results(job, candidates, job.upload_limit, close_at)
    mentions = discord.AllowedMentions(users=[discord.Object(job.user_id)], roles=False, everyone=False)
    if interaction is not None:
        try:
            return await interaction.followup.send(
                content,
                files=await _files(bot, job, candidates),
                view=results_view(job.id, job.candidates),
                allowed_mentions=mentions,
                wait=True,
            )
        except discord.HTTPException as exc:  # expired (10015, 50027) or refused: the channel still works
            log.info("job %d: follow-up failed (%s), posting in the channel", job.id, exc.code or exc.status)
    channel = bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
    reference = None
    if job.status_message_id is not None:
        reference = discord.MessageReference(
            message_id=job.status_message_id,
            channel_id=job.channel_id,
            guild_id=job.guild_id,
            fail_if_not_exists=False,
        )
    return await channel.send(
        content,
        files=await _files(bot, job, candidates),
        view=results_view(job.id, job.candidates),
        allowed_mentions=mentions,
        reference=reference,
    )


async def _files(bot: RestyleBot, job: JobRow, candidates: list[CandidateRow]) -> list[discord.File]:
    """Fresh file objects for each attempt: a failed upload consumes them."""
    files = []
    for candidate in candidates:
        data = await bot.files.read(candidate.audio_path)
        name = f"restyle-{job.id}-{candidate.idx}{PurePath(candidate.audio_path).suffix}"
        files.append(discord.File(io.BytesIO(data), filename=name))
    return files
