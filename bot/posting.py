"""Posting a job's results: as a follow-up to its command while the interaction lives, otherwise
(after 15 minutes, or after a restart) as a channel message replying to the job's status message.

Discord's upload limit covers a whole request, so the files go out in as few messages ("parts")
as fit it. Each part is recorded the moment it is out, and every send is recorded as an attempt
before it leaves; a part that went out just before a crash is then found in the channel (by its
buttons) rather than posted twice. Channel sends also carry a nonce Discord enforces.
A lossless download (the FLAC button) is a post too: one ephemeral file, within the channel's limit.
A loop's Loop button sends its WAV with loop points (and its layers, when asked) the same way, in as
many private messages as the channel's limit needs; a file too big for one message is refused in a
line. Being private and on request, a restart cannot post these twice: a member just asks again.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path, PurePath

import discord

from bot import refusals, texts
from bot.files import DataDir
from bot.jobs import JobBoard
from bot.models import CandidateRow, JobRow, ResultPart
from bot.replies import now, refuse, upload_budget
from bot.store import Store
from bot.views import results_view
from generation.families import family_for
from generation.game_music import SeamVerdict, loop_verdict
from generation.humanize import format_bytes

log = logging.getLogger(__name__)

MAX_FILES = 10  # per message, Discord's limit
# A part sent at an attempt appears within seconds of it; look a little further back, and no
# further than this many messages.
SEARCH_MARGIN_S = 60.0
SEARCH_LIMIT = 100
# The follow-up is gone (expired token, unknown webhook): the channel is the way.
FOLLOW_UP_GONE = (401, 404)


def plan_parts(candidates: list[CandidateRow], sizes: list[int], budget: int) -> list[list[CandidateRow]]:
    """Candidates in order, in as few messages as the budget (bytes per request) allows."""
    parts: list[list[CandidateRow]] = []
    used = budget + 1
    for candidate, size in zip(candidates, sizes, strict=True):
        if used + size > budget or len(parts[-1]) >= MAX_FILES:
            parts.append([])
            used = 0
        parts[-1].append(candidate)
        used += size
    return parts


class Poster:
    """Sends a job's files: `client` is the Discord connection (channels, and who the bot is)."""

    def __init__(self, client: discord.Client, store: Store, files: DataDir, board: JobBoard) -> None:
        self.client = client
        self.store = store
        self.files = files
        self.board = board

    def channel(self, job: JobRow) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)

    async def post_results(
        self, job: JobRow, candidates: list[CandidateRow], close_at: float | None
    ) -> list[ResultPart]:
        """Post every part not recorded yet; the job's parts, in order."""
        return await post_results(self, job, candidates, close_at, self.board.interaction(job.id))

    async def add_vote_reactions(self, job: JobRow, part: ResultPart) -> None:
        await add_vote_reactions(self, job, part)

    async def send_lossless(self, interaction: discord.Interaction, job_id: int, idx: int) -> None:
        """One candidate's lossless file, privately, if it is still here and fits the channel."""
        await send_lossless(self, interaction, job_id, idx)


async def post_results(
    poster: Poster,
    job: JobRow,
    candidates: list[CandidateRow],
    close_at: float | None,
    interaction: discord.Interaction | None,
) -> list[ResultPart]:
    """Post every part not recorded yet; the job's parts, in order."""
    store = poster.store
    sizes = [await poster.files.size(candidate.audio_path) for candidate in candidates]
    groups = plan_parts(candidates, sizes, upload_budget(job.upload_limit))
    seams = await loop_seams(poster, candidates) if job.loop else None
    posted = {part.part: part for part in await store.result_parts(job.id)}
    earlier = (await store.delivery(job.id)).last_attempt_at
    for number, group in enumerate(groups, start=1):
        if number in posted:
            continue
        message = await find_posted(poster, job, group[0].idx, earlier) if earlier is not None else None
        if message is None:
            await store.note_post_attempt(job.id, now())
            content = texts.results_part(job, groups, number, close_at, seams)
            message = await _send(poster, job, number, content, group, interaction=interaction)
        posted[number] = ResultPart(message.id, job.id, number, group[0].idx, group[-1].idx)
        await store.add_result_part(posted[number])
    return [posted[number] for number in sorted(posted)]


async def loop_seams(poster: Poster, candidates: list[CandidateRow]) -> dict[int, SeamVerdict]:
    """Each loop candidate's seam verdict, from its sidecar's figures; a candidate whose figures
    cannot be read is left out (the results then claim nothing about it)."""
    verdicts = {}
    for candidate in candidates:
        try:
            entry = json.loads(await poster.files.read(PurePath(candidate.audio_path).with_suffix(".json")))
            verdicts[candidate.idx] = loop_verdict(entry["loop"])
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("job %d: no seam figures for candidate %d", candidate.job_id, candidate.idx)
    return verdicts


async def find_posted(poster: Poster, job: JobRow, first_idx: int, since: float) -> discord.Message | None:
    """The bot's message carrying this part's first lossless button, sent since `since`, if any."""
    channel = poster.channel(job)
    start = datetime.fromtimestamp(since - SEARCH_MARGIN_S, tz=UTC)
    wanted = f"restyle:flac:{job.id}:{first_idx}"
    try:
        async for message in channel.history(
            after=discord.Object(discord.utils.time_snowflake(start)), limit=SEARCH_LIMIT, oldest_first=True
        ):
            if message.author.id == poster.client.user.id and wanted in _custom_ids(message):
                log.info("job %d: part with candidate %d was already posted", job.id, first_idx)
                return message
    except discord.Forbidden:  # no history to read: the nonce is then the only guard
        log.warning("job %d: cannot read the channel to check for an earlier post", job.id)
    return None


def _custom_ids(message: discord.Message) -> set[str]:
    return {
        getattr(child, "custom_id", None) or ""
        for row in message.components
        for child in getattr(row, "children", ())
    }


async def _send(
    poster: Poster,
    job: JobRow,
    number: int,
    content: str,
    group: list[CandidateRow],
    *,
    interaction: discord.Interaction | None,
) -> discord.Message:
    mentions = discord.AllowedMentions(users=[discord.Object(job.user_id)], roles=False, everyone=False)
    view = results_view(job.id, [c.idx for c in group], actions=number == 1, loop=job.loop)
    if interaction is not None:
        try:
            return await interaction.followup.send(
                content,
                files=await _files(poster, job, group),
                view=view,
                allowed_mentions=mentions,
                wait=True,
            )
        except discord.HTTPException as exc:
            if exc.status not in FOLLOW_UP_GONE:
                raise  # the channel would refuse it the same way
            log.info("job %d: the follow-up has expired (%s), posting in the channel", job.id, exc.code)
            poster.board.follow_up_gone(job.id)
    channel = poster.channel(job)
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
        files=await _files(poster, job, group),
        view=view,
        allowed_mentions=mentions,
        reference=reference,
        nonce=f"restyle-{job.id}-{number}",  # Discord returns the first message for a repeat
    )


async def _files(poster: Poster, job: JobRow, candidates: list[CandidateRow]) -> list[discord.File]:
    """Fresh file objects for each attempt: a failed upload consumes them."""
    files = []
    for candidate in candidates:
        data = await poster.files.read(candidate.audio_path)
        name = f"restyle-{job.id}-{candidate.idx}{PurePath(candidate.audio_path).suffix}"
        files.append(discord.File(io.BytesIO(data), filename=name))
    return files


async def add_vote_reactions(poster: Poster, job: JobRow, part: ResultPart) -> None:
    """Put on the part's missing vote reactions; those Discord refuses are tried again later
    (the results text names the emoji, so the poll works without them)."""
    message = poster.channel(job).get_partial_message(part.message_id)
    reactions = part.reactions
    for idx in part.indices:
        bit = 1 << (idx - 1)
        if reactions & bit:
            continue
        try:
            await message.add_reaction(texts.NUMBERS[idx - 1])
        except discord.HTTPException as exc:
            log.warning("job %d: reaction %d refused (%s); trying later", job.id, idx, exc.text or exc.status)
            break
        reactions |= bit
    await poster.store.set_reactions(part.message_id, reactions)


async def send_lossless(poster: Poster, interaction: discord.Interaction, job_id: int, idx: int) -> None:
    job = await poster.store.job(job_id)
    candidate = next((c for c in await poster.store.candidates(job_id) if c.idx == idx), None)
    if (
        job is None
        or candidate is None
        or job.files_deleted
        or not await poster.files.exists(candidate.lossless_path)
    ):
        await refuse(interaction, "That file has expired.")
        return
    game = await poster.files.game_files(job_id, idx) if job.loop else []
    if game:  # (a loop made before WAVs were kept has only its FLAC)
        await send_game_files(poster, interaction, job, candidate, game)
        return
    data = await poster.files.read(candidate.lossless_path)
    too_big = (
        f"The lossless file is {format_bytes(len(data))}, over this channel's "
        f"{format_bytes(interaction.filesize_limit)} upload limit."
    )
    if len(data) > upload_budget(interaction.filesize_limit):  # the limit covers the message too
        await refuse(interaction, too_big)
        return
    name = f"restyle-{job_id}-{idx}{'-loop' if job.loop else ''}.flac"
    try:
        await interaction.response.send_message(
            texts.lossless(job, idx, family_for(job.model).sample_rate),
            file=discord.File(io.BytesIO(data), filename=name),
            ephemeral=True,
        )
    except discord.HTTPException as exc:  # refused anyway: say so, in one line
        log.warning("job %d: the lossless file was refused: %s", job_id, refusals.describe(exc))
        await refuse(
            interaction,
            too_big if exc.status == 413 else f"Discord refused the file: {refusals.describe(exc)}.",
        )


def plan_files(sizes: list[int], budget: int) -> list[list[int]] | None:
    """Files (by index, in order) in as few messages as `budget` bytes each allows; None when one
    file alone is over it."""
    if any(size > budget for size in sizes):
        return None
    groups: list[list[int]] = []
    used = budget + 1
    for index, size in enumerate(sizes):
        if used + size > budget or len(groups[-1]) >= MAX_FILES:
            groups.append([])
            used = 0
        groups[-1].append(index)
        used += size
    return groups


async def send_game_files(
    poster: Poster, interaction: discord.Interaction, job: JobRow, candidate: CandidateRow, paths: list[Path]
) -> None:
    """A loop candidate's WAV and layers, privately, split over as many messages as they need."""
    idx = candidate.idx
    sizes = [await poster.files.size(path) for path in paths]
    groups = plan_files(sizes, upload_budget(interaction.filesize_limit))
    if groups is None:
        await refuse(interaction, texts.game_files_too_big(job, idx, max(sizes), interaction.filesize_limit))
        return
    rate = family_for(job.model).sample_rate
    seam = (await loop_seams(poster, [candidate])).get(idx)
    for number, group in enumerate(groups, start=1):
        files = [
            discord.File(
                io.BytesIO(await poster.files.read(paths[i])), filename=f"restyle-{job.id}-{paths[i].name}"
            )
            for i in group
        ]
        content = texts.game_files(job, idx, rate, number, len(groups), seam)
        try:
            if number == 1:
                await interaction.response.send_message(content, files=files, ephemeral=True)
            else:
                await interaction.followup.send(content, files=files, ephemeral=True)
        except discord.HTTPException as exc:  # refused anyway: say so, in one line, and stop
            log.warning("job %d: loop %d's files were refused: %s", job.id, idx, refusals.describe(exc))
            why = f"Discord refused the files: {refusals.describe(exc)}."
            if number == 1:
                await refuse(interaction, why)
            else:
                await interaction.followup.send(why, ephemeral=True)
            return
