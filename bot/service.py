"""What /restyle and the buttons do: check, acknowledge, reserve, decode off the loop, record, queue.

Every refusal is one ephemeral line. Checks that need neither the database nor a download (access,
options, the attachment's size and type) run before the interaction is acknowledged; everything
else after, so the acknowledgement never waits. A request first takes its place in the queue in
one atomic step (quota, queue room, cooldown), then its seed is decoded on a small pool of its own,
so slow or hostile uploads never hold up the bot's other threads.
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot import refusals, texts
from bot.checks import (
    RequestOptions,
    access_refusal,
    attachment_refusal,
    quota_refusal,
    request_refusal,
    reserve,
)
from bot.config import BotConfig
from bot.fair_queue import QueuedJob, QueueFull
from bot.loop_jobs import loop_columns, plan_admitted, work_loop
from bot.store import JobRow, NewJob, Reservation
from bot.views import RemixModal, job_view
from bot.worker.runner import WorkOrder
from generation.audio.decode import AudioLimits, SeedAudio, decode_audio
from generation.errors import AudioInputError, InvalidRequestError
from generation.families import family_for
from generation.humanize import format_bytes
from generation.interface import MAX_SEED
from generation.loops import LoopPlan
from generation.pipeline import check_length

if TYPE_CHECKING:
    from bot.client import RestyleBot

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
# Discord's upload limit covers a whole request: this much of it stays free for the message's
# JSON and the multipart overhead; the files of one message share the rest.
UPLOAD_MARGIN = 64 * 1024
# Seeds decoding at once; more wait their turn (the queue's room bounds how many can wait).
DECODE_THREADS = 2


def upload_budget(upload_limit: int) -> int:
    """Bytes of files one message may carry under `upload_limit`."""
    return max(1, upload_limit - UPLOAD_MARGIN)


def now() -> float:
    """Wall-clock seconds, through discord.py's clock (which tests can drive)."""
    return discord.utils.utcnow().timestamp()


@dataclass(frozen=True)
class Submission:
    """A request that passed the quick checks, waiting for its seed to be decoded."""

    prompt: str
    candidates: int
    duration: float | None
    seed: int | None
    model: str
    seed_name: str
    upload: discord.Attachment | None = None  # a new upload...
    seed_path: Path | None = None  # ...or a file the bot already has (reroll, remix)
    kind: str = "restyle"
    parent_id: int | None = None
    loop: bool = False
    bpm: float | None = None  # a loop's tempo; None: detected


def candidate_number(text: str) -> int | None:
    """A candidate typed in the remix form: ASCII digits only ("²" is a digit to `isdigit`)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


async def refuse(interaction: discord.Interaction, message: str) -> None:
    """One ephemeral line, whether or not the interaction was acknowledged yet."""
    if interaction.response.is_done():
        await interaction.edit_original_response(content=message, allowed_mentions=NO_PINGS)
    else:
        await interaction.response.send_message(message, ephemeral=True, allowed_mentions=NO_PINGS)


class JobService:
    def __init__(self, bot: RestyleBot) -> None:
        self.bot = bot
        self.store = bot.store
        self.queue = bot.queue
        self.files = bot.files
        self._orders: dict[int, WorkOrder] = {}
        self._orders_lock = threading.Lock()
        self.interactions: dict[int, discord.Interaction] = {}  # for posting results as a follow-up
        self.progress: dict[int, tuple[int, int]] = {}
        self.cancelled_by: dict[int, str] = {}
        self._decoder = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="restyle-decode")

    def close(self) -> None:
        self._decoder.shutdown(wait=False, cancel_futures=True)

    @property
    def config(self) -> BotConfig:
        return self.bot.config  # read per request: a restart with new settings is a new bot anyway

    def order(self, job_id: int) -> WorkOrder | None:
        """The worker's lookup (any thread)."""
        with self._orders_lock:
            return self._orders.get(job_id)

    def forget(self, job_id: int) -> None:
        with self._orders_lock:
            self._orders.pop(job_id, None)
        self.interactions.pop(job_id, None)
        self.progress.pop(job_id, None)

    # -- entry points ----------------------------------------------------------------------------

    async def restyle(
        self, interaction: discord.Interaction, audio: discord.Attachment, request: RequestOptions
    ) -> None:
        refusal = (
            access_refusal(self.config, interaction)
            or request_refusal(self.config, request)
            or attachment_refusal(self.config, audio)
        )
        if refusal:
            await refuse(interaction, refusal)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        model = request.model or self.config.models.default
        submission = Submission(
            request.prompt,
            request.candidates,
            request.duration,
            request.seed,
            model,
            audio.filename,
            audio,
            loop=request.loop,
            bpm=request.bpm,
        )
        await self._submit(interaction, submission)

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        refusal = access_refusal(self.config, interaction)
        if refusal:
            await refuse(interaction, refusal)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await self._job_to_build_on(interaction, job_id)
        if job is None:
            return
        refusal = self._limits_refusal(job, job.prompt)
        if refusal:
            await refuse(interaction, refusal)
            return
        submission = Submission(
            job.prompt,
            job.candidates,
            job.duration_s,
            None,
            job.model,
            job.seed_name,
            seed_path=Path(job.seed_path),
            kind="reroll",
            parent_id=job.id,
            loop=job.loop,
            bpm=job.loop_bpm,
        )
        await self._submit(interaction, submission)

    async def open_remix(self, interaction: discord.Interaction, job_id: int) -> None:
        job = await self._job_to_build_on(interaction, job_id)
        if job is None:
            return
        await interaction.response.send_modal(
            RemixModal(job.id, job.candidates, self.config.limits.max_prompt_chars)
        )

    async def remix(self, interaction: discord.Interaction, job_id: int, which: str, prompt: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await self._job_to_build_on(interaction, job_id)
        if job is None:
            return
        idx = candidate_number(which)
        if idx is None or not 1 <= idx <= job.candidates:
            await refuse(interaction, f"Pick a candidate from 1 to {job.candidates}.")
            return
        refusal = self._limits_refusal(job, prompt)
        if refusal:
            await refuse(interaction, refusal)
            return
        candidate = next(c for c in await self.store.candidates(job.id) if c.idx == idx)
        submission = Submission(
            prompt,
            job.candidates,
            job.duration_s,
            None,
            job.model,
            f"job {job.id} candidate {idx}",
            seed_path=Path(candidate.lossless_path),
            kind="remix",
            parent_id=job.id,
            loop=job.loop,
            bpm=job.loop_tempo,  # the seed is that loop: its tempo is known
        )
        await self._submit(interaction, submission)

    def _limits_refusal(self, job: JobRow, prompt: str) -> str | None:
        """A reroll or remix keeps to today's limits, which may be lower than when `job` ran."""
        duration = None if job.loop else job.duration_s  # a loop is planned again, within the limit
        return request_refusal(self.config, RequestOptions(prompt, job.candidates, duration, model=job.model))

    async def _job_to_build_on(self, interaction: discord.Interaction, job_id: int) -> JobRow | None:
        """A finished job a reroll or remix may start from, or None after refusing in one line."""
        job = await self.store.job(job_id)
        refusal = None
        if job is None or job.status != "done":
            refusal = "That job has no results to build on."
        elif job.files_deleted:
            refusal = "That job's files have expired."
        elif job.model not in self.config.models.choices:  # the config changed since it ran
            refusal = f"The model `{job.model}` is no longer offered here: start a new /restyle."
        else:
            refusal = access_refusal(self.config, interaction)
        if refusal:
            await refuse(interaction, refusal)
            return None
        return job

    # -- submission --------------------------------------------------------------------------------

    async def _submit(self, interaction: discord.Interaction, sub: Submission) -> None:
        """Take a place in the queue, decode the seed, record the job, queue it, tell the channel."""
        user, asked_at = interaction.user.id, now()
        reservation = await reserve(self.config, self.store, user, asked_at)
        if reservation is None:
            await refuse(interaction, await quota_refusal(self.config, self.store, user, asked_at))
            return
        job = None
        try:
            job = await self._decode_and_record(interaction, sub, reservation)
        finally:
            if job is None:  # refused, or failed: the place goes back
                await self.store.release(reservation)
        if job is None:
            return
        if not self.enqueue(job):
            await self.store.mark_ended(job.id, "failed", now(), "the queue was full")
            await refuse(interaction, "The queue filled up meanwhile: try again in a few minutes.")
            return
        self.interactions[job.id] = interaction
        await self._announce(interaction, job)

    async def _decode_and_record(
        self, interaction: discord.Interaction, sub: Submission, reservation: Reservation
    ) -> JobRow | None:
        """The reserved request as a recorded job, or None after refusing its seed in one line."""
        limits = self.config.limits
        seed_limits = AudioLimits(int(limits.max_upload_mb * 1024 * 1024), limits.max_seed_seconds)
        data = await sub.upload.read() if sub.upload is not None else None
        source = data if data is not None else sub.seed_path
        try:
            loop = asyncio.get_running_loop()
            decoded = await loop.run_in_executor(self._decoder, decode_audio, source, seed_limits)
            plan = (
                await loop.run_in_executor(self._decoder, self._plan_loop, sub, decoded) if sub.loop else None
            )
            check_length(family_for(sub.model).lengths(sub.model), self._duration(sub, decoded, plan))
        except (AudioInputError, InvalidRequestError) as exc:
            await refuse(interaction, str(exc))
            return None
        seed_path = sub.seed_path or await self.files.save_seed(data, sub.seed_name)
        return await self._record(
            interaction, sub, decoded, plan, seed_path=seed_path, reservation=reservation
        )

    def _plan_loop(self, sub: Submission, decoded: SeedAudio) -> LoopPlan:
        """On the decode pool: a loop's bars and length, so a loop that cannot be made is refused now."""
        limit = self.config.limits.max_output_seconds
        return plan_admitted(decoded, sub.model, sub.duration, sub.bpm, limit)

    async def _record(
        self,
        interaction: discord.Interaction,
        sub: Submission,
        decoded: SeedAudio,
        plan: LoopPlan | None,
        *,
        seed_path: Path,
        reservation: Reservation,
    ) -> JobRow:
        duration = self._duration(sub, decoded, plan)
        base_seed = sub.seed if sub.seed is not None else secrets.randbelow(MAX_SEED - sub.candidates)
        new = NewJob(
            interaction.channel_id,
            interaction.guild_id,
            interaction.user.id,
            " ".join(sub.prompt.split()),
            sub.model,
            sub.candidates,
            duration,
            base_seed,
            str(seed_path),
            sub.seed_name,
            decoded.sha256,
            decoded.duration_s,
            interaction.filesize_limit,
            reservation.at,
            sub.kind,
            sub.parent_id,
            **loop_columns(plan, sub.bpm),
        )
        return await self.store.job(await self.store.add_job(new, reservation))

    def _duration(self, sub: Submission, decoded: SeedAudio, plan: LoopPlan | None) -> float:
        """The output's length: a loop's planned bars, else as asked or the seed's (capped)."""
        if plan is not None:
            return plan.loop_s
        return sub.duration or min(decoded.duration_s, self.config.limits.max_output_seconds)

    async def _announce(self, interaction: discord.Interaction, job: JobRow) -> None:
        """The public job message (with its Cancel button), then the private acknowledgement."""
        position, wait = self.position(job.id) or 1, self.eta(job.id)
        place = f"Queued as job #{job.id}: position {position}, {texts.eta(wait)} to go."
        try:
            status = await interaction.channel.send(
                texts.queued(job, position, wait), view=job_view(job.id), allowed_mentions=NO_PINGS
            )
        except discord.HTTPException as exc:
            await self._announce_privately(interaction, job, place, exc)
            return
        await self.store.set_status_message(job.id, status.id)
        await interaction.edit_original_response(content=f"{place} {status.jump_url}")

    async def _announce_privately(
        self, interaction: discord.Interaction, job: JobRow, place: str, error: discord.HTTPException
    ) -> None:
        """Discord refused the public status message. Refused for good (no permission, say): the
        results would be too, so the job is withdrawn. Refused for now: the job stays, and its
        Cancel button comes with the private acknowledgement."""
        log.warning("job %d: the status message was refused: %s", job.id, refusals.describe(error))
        if not refusals.is_permanent(error):
            note = "(The public status message could not be posted; cancel here if you like.)"
            await interaction.edit_original_response(content=f"{place} {note}", view=job_view(job.id))
            return
        if self.queue.remove(job.id) is None and self.bot.worker is not None:
            self.bot.worker.cancel(job.id)
        await self.bot.lifecycle.on_failed(job.id, "the status message was refused")
        why = refusals.describe(error)
        await refuse(
            interaction, f"I could not post in this channel ({why}), so job #{job.id} was not queued."
        )

    def enqueue(self, job: JobRow, *, first: bool = False, recovered: bool = False) -> bool:
        order = WorkOrder(
            job.id,
            job.model,
            Path(job.seed_path),
            job.prompt,
            job.candidates,
            job.duration_s,
            job.base_seed,
            upload_budget(job.upload_limit),
            self.config.models.stems,
            work_loop(job),
        )
        with self._orders_lock:
            self._orders[job.id] = order
        family = family_for(job.model)
        params = family.default_params
        key = family.batch_key(job.model, job.generated_s, params)
        steps = family.total_steps(job.generated_s, params)
        try:
            self.queue.push(
                QueuedJob(job.id, job.user_id, job.candidates, key, steps),
                first=first,
                recovered=recovered,
            )
        except QueueFull:
            self.forget(job.id)
            return False
        return True

    # -- queue facts -------------------------------------------------------------------------------

    def position(self, job_id: int) -> int | None:
        return self.queue.position(job_id)

    def eta(self, job_id: int) -> float | None:
        """Seconds until `job_id` is done: what runs now, what waits before it, and itself, each
        job's steps at its own model's pace (ACE-Step's 8 steps are each far longer than MusicGen's)."""
        seconds = sum(
            (total - done) * self._per_step(running) for running, (done, total) in self.progress.items()
        )
        for queued in self.queue.ordered():
            seconds += queued.steps * self._per_step(queued.job_id)
            if queued.job_id == job_id:
                return seconds
        return None

    def _per_step(self, job_id: int) -> float:
        order = self.order(job_id)
        return self.bot.seconds_per_step(order.model if order is not None else None)

    # -- cancel and downloads ----------------------------------------------------------------------

    async def cancel_from_button(self, interaction: discord.Interaction, job_id: int) -> None:
        job = await self.store.job(job_id)
        if job is None:
            await refuse(interaction, "That job no longer exists.")
            return
        moderator = isinstance(interaction.user, discord.Member) and interaction.permissions.manage_messages
        if interaction.user.id != job.user_id and not moderator:
            await refuse(interaction, "Only the person who asked, or a moderator, can cancel this job.")
            return
        if job.status not in ("queued", "running"):
            await refuse(interaction, f"Job #{job.id} has already ended.")
            return
        self.cancelled_by[job.id] = interaction.user.display_name
        in_queue = self.queue.remove(job.id) is not None
        if not in_queue and self.bot.worker is not None and self.bot.worker.cancel(job.id):
            await refuse(interaction, f"Stopping job #{job.id}…")  # it stops within a step
            return
        # Waiting, or known to neither the queue nor the GPU (a job its results could not be
        # saved for, say): the database row ends here. Should the worker have just taken it,
        # the cancel it was handed stops it as it starts.
        await self.bot.lifecycle.on_cancelled(job.id)
        await refuse(interaction, f"Cancelled job #{job.id}.")

    async def send_lossless(self, interaction: discord.Interaction, job_id: int, idx: int) -> None:
        job = await self.store.job(job_id)
        candidate = next((c for c in await self.store.candidates(job_id) if c.idx == idx), None)
        if (
            job is None
            or candidate is None
            or job.files_deleted
            or not await self.files.exists(candidate.lossless_path)
        ):
            await refuse(interaction, "That file has expired.")
            return
        data = await self.files.read(candidate.lossless_path)
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
