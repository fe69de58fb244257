"""Admission: how a request becomes a queued job. /restyle, Reroll and Remix each go: check,
acknowledge, reserve, decode off the loop, plan, record, enqueue, announce.

Every refusal is one ephemeral line. Checks that need neither the database nor a download (access,
options, the attachment's size and type) run before the interaction is acknowledged; everything
else after, so the acknowledgement never waits. A request first takes its place in the queue in
one atomic step (quota, queue room, cooldown), then its seed is decoded on a small pool of its own,
so slow or hostile uploads never hold up the bot's other threads.

A new request option is a field of `RequestOptions` (bot.models, checked in bot.checks), of `Submission`
(here, kept by Reroll and Remix from the job they build on) and of `NewJob` (bot.models, with a
migration in bot.schema).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import discord

from bot import refusals, texts
from bot.checks import (
    access_refusal,
    attachment_refusal,
    prompt_refusal,
    quota_refusal,
    request_refusal,
    reserve,
)
from bot.config import BotConfig
from bot.files import DataDir
from bot.jobs import JobBoard
from bot.lifecycle import Lifecycle
from bot.loop_jobs import file_s, loop_columns, plan_admitted, rerun_length_s
from bot.models import JobRow, NewJob, RequestOptions, Reservation
from bot.replies import NO_PINGS, now, refuse
from bot.store import Store
from bot.views import RemixModal, job_view
from generation.audio.decode import AudioLimits, SeedAudio, decode_audio
from generation.errors import AudioInputError, InvalidRequestError
from generation.families import family_for
from generation.interface import MAX_SEED
from generation.loops import LoopPlan
from generation.pipeline import check_length

log = logging.getLogger(__name__)

# Seeds decoding at once; more wait their turn (the queue's room bounds how many can wait).
DECODE_THREADS = 2


@dataclass(frozen=True, kw_only=True)
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
    intro: int = 0  # a loop's intro, in bars
    layers: bool = False  # a loop's layers too
    strength: float | None = None  # ACE-Step's cover strength; None: the family's default


def candidate_number(text: str) -> int | None:
    """A candidate typed in the remix form: ASCII digits only ("²" is a digit to `isdigit`)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


class Admission:
    def __init__(
        self,
        config: BotConfig,
        store: Store,
        files: DataDir,
        board: JobBoard,
        lifecycle: Lifecycle,
    ) -> None:
        self.config = config
        self.store = store
        self.files = files
        self.board = board
        self.lifecycle = lifecycle  # to withdraw a job whose status message was refused
        self._decoder = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="restyle-decode")

    def close(self) -> None:
        self._decoder.shutdown(wait=False, cancel_futures=True)

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
            prompt=request.prompt,
            candidates=request.candidates,
            duration=request.duration,
            seed=request.seed,
            model=model,
            seed_name=audio.filename,
            upload=audio,
            loop=request.loop,
            bpm=request.bpm,
            intro=request.intro,
            layers=request.layers,
            strength=request.strength,
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
        submission = self._built_on(
            job, "reroll", job.prompt, job.seed_name, Path(job.seed_path), bpm=job.loop_bpm
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
        seed_name, seed_path = f"job {job.id} candidate {idx}", Path(candidate.lossless_path)
        # The seed is that loop: its tempo is known.
        submission = self._built_on(job, "remix", prompt, seed_name, seed_path, bpm=job.loop_tempo)
        await self._submit(interaction, submission)

    def _built_on(
        self, job: JobRow, kind: str, prompt: str, seed_name: str, seed_path: Path, *, bpm: float | None
    ) -> Submission:
        """A new job on `job`'s settings (new random seeds), from `seed_path` with `prompt`."""
        return Submission(
            prompt=prompt,
            candidates=job.candidates,
            duration=self._rerun_duration(job),
            seed=None,
            model=job.model,
            seed_name=seed_name,
            seed_path=seed_path,
            kind=kind,
            parent_id=job.id,
            loop=job.loop,
            bpm=bpm,
            intro=job.loop_intro_bars,
            layers=job.loop_layers,
            strength=job.strength,
        )

    def _rerun_duration(self, job: JobRow) -> float:
        """A loop is planned again from its length, within today's limit; other jobs keep theirs."""
        return rerun_length_s(job, self.config.limits.max_output_seconds) if job.loop else job.duration_s

    def _limits_refusal(self, job: JobRow, prompt: str) -> str | None:
        """A reroll or remix keeps to today's limits, which may be lower than when `job` ran. A remix's
        prompt is the member's to change; the job's settings are not, so those send them to /restyle."""
        own = prompt_refusal(prompt, self.config.limits.max_prompt_chars)
        if own:
            return own
        duration = None if job.loop else job.duration_s  # a loop is planned again, within the limit
        changed = request_refusal(
            self.config,
            RequestOptions(
                prompt=prompt,
                candidates=job.candidates,
                duration=duration,
                model=job.model,
                strength=job.strength,
            ),
        )
        return texts.limits_changed(job.id, changed) if changed else None

    async def _job_to_build_on(self, interaction: discord.Interaction, job_id: int) -> JobRow | None:
        """A finished job a reroll or remix may start from, or None after refusing in one line."""
        job = await self.store.job(job_id)
        refusal = None
        if job is None or job.status != "done":
            refusal = "That job has no results to build on."
        elif job.files_deleted:
            refusal = texts.FILES_EXPIRED
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
        if sub.seed_path is not None and not await self.files.exists(sub.seed_path):
            await refuse(interaction, texts.FILES_EXPIRED)  # gone from the data dir: never its path
            return
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
        if not self.board.enqueue(job):
            await self.lifecycle.on_failed(job.id, "the queue was full")
            await refuse(interaction, "The queue filled up meanwhile: try again in a few minutes.")
            return
        self.board.admitted(job.id, interaction)
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
        return plan_admitted(decoded, sub.model, sub.duration, sub.bpm, limit, intro_bars=sub.intro)

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
            channel_id=interaction.channel_id,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            prompt=" ".join(sub.prompt.split()),
            model=sub.model,
            candidates=sub.candidates,
            duration_s=duration,
            base_seed=base_seed,
            seed_path=str(seed_path),
            seed_name=sub.seed_name,
            seed_sha256=decoded.sha256,
            seed_duration_s=decoded.duration_s,
            upload_limit=interaction.filesize_limit,
            created_at=reservation.at,
            kind=sub.kind,
            parent_id=sub.parent_id,
            strength=sub.strength,
            **loop_columns(plan, sub.bpm, layers=sub.layers),
        )
        return await self.store.job(await self.store.add_job(new, reservation))

    def _duration(self, sub: Submission, decoded: SeedAudio, plan: LoopPlan | None) -> float:
        """The output's length: a loop's planned bars (and intro), else as asked or the seed's (capped)."""
        if plan is not None:
            return file_s(plan)
        return sub.duration or min(decoded.duration_s, self.config.limits.max_output_seconds)

    async def _announce(self, interaction: discord.Interaction, job: JobRow) -> None:
        """The public job message (with its Cancel button), then the private acknowledgement."""
        position, wait = self.board.position(job.id) or 1, self.board.eta(job.id)
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
        await self.lifecycle.withdraw(job.id, "the status message was refused")
        why = refusals.describe(error)
        await refuse(
            interaction, f"I could not post in this channel ({why}), so job #{job.id} was not queued."
        )
