"""The ACE-Step engine: a loaded cover pipeline, a source and a prompt in; candidate audio out.

Synchronous, like the MusicGen engine: the thread that owns the model calls it, with a progress hook
called from that thread once per denoising step and cancel tokens checked at every step's end.

One batch is at most two calls of diffusers' `AceStepPipeline`, each stopping on `pipe._interrupt`:
the first `int(steps * strength)` steps as a cover (the source's audio codes as context), the rest as
text-to-music from where the first left off (the upstream model's `audio_cover_strength`; diffusers'
own blends the two predictions at every step, with the source in both). Seeds draw each candidate's
starting noise alone, and every job's source is encoded alone, so a candidate is the same in any batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from generation.acestep.architectures import CHANNELS, SAMPLE_RATE
from generation.acestep.audio import decode_latents, source_codes
from generation.acestep.fastdit import forget
from generation.acestep.loading import LoadedAceStep
from generation.acestep.params import (
    LICENCE,
    MAX_DURATION_S,
    MIN_DURATION_S,
    SAMPLES_PER_FRAME,
    CoverParams,
    check_job,
    latent_frames,
    output_samples,
)
from generation.acestep.steps import CoverWatch
from generation.devices import release_memory
from generation.errors import GenerationCancelled, InvalidRequestError
from generation.interface import CancelToken, Engine, Job, ProgressFn

MAX_TEXT_TOKENS = 256  # the pipeline's default `max_text_length`
INSTRUMENTAL = "[Instrumental]"
VOCAL_LANGUAGE = "unknown"
FRAMES_PER_SECOND = SAMPLE_RATE // SAMPLES_PER_FRAME  # 25


@dataclass(frozen=True)
class CoverLatents:
    """One job's denoised latents `(candidates, frames, channels)`, and the samples they make."""

    latents: torch.Tensor
    samples: int


class AceStepEngine(Engine):
    """Generates covers with one loaded pipeline. Not thread-safe: one thread owns it."""

    family = "acestep"
    licence = LICENCE
    sample_rate = SAMPLE_RATE
    channels = CHANNELS
    input_rate = SAMPLE_RATE  # the source goes through the pipeline's own 48 kHz stereo VAE
    input_channels = CHANNELS
    reads_melody = False  # the cover hears the whole seed: its rhythm and structure as well
    min_duration_s = MIN_DURATION_S
    max_duration_s = MAX_DURATION_S
    window_s = MAX_DURATION_S  # the whole piece in one pass
    frame_rate = SAMPLE_RATE // SAMPLES_PER_FRAME  # 25 latent frames a second
    default_params = CoverParams()
    broken = False  # nothing marks it: a failed batch leaves the pipeline as it was

    def __init__(self, loaded: LoadedAceStep) -> None:
        self.loaded = loaded
        self.pipe = loaded.pipe
        self.min_duration_s = loaded.min_duration_s

    def describe(self) -> dict[str, Any]:
        return self.loaded.describe()

    def parameters(self, duration_s: float, params: CoverParams) -> dict[str, Any]:
        return {**asdict(params), "cover_steps": params.cover_steps}

    def total_steps(self, duration_s: float, params: CoverParams | None = None) -> int:
        """Denoising steps of one job: the same for any length (the whole piece is one pass)."""
        return (params or CoverParams()).total_steps

    def can_batch(self, first: Job, second: Job) -> bool:
        """Jobs share a batch when they share parameters, length in frames and prompt length in
        tokens: the DiT's cross-attention has no padding mask, so a padded prompt would change."""
        return (
            first.params == second.params
            and latent_frames(first.duration_s) == latent_frames(second.duration_s)
            and self._text_lengths(first) == self._text_lengths(second)
        )

    def decode_latents(self, latents: CoverLatents) -> np.ndarray:
        return decode_latents(self.pipe, latents.latents, latents.samples, self.loaded.dtype)

    def generate_latents(
        self,
        jobs: Sequence[Job],
        on_progress: Sequence[ProgressFn | None],
        cancels: Sequence[CancelToken | None],
    ) -> list[CoverLatents | GenerationCancelled]:
        self._check(jobs, on_progress, cancels)
        watch = CoverWatch(jobs[0].params.total_steps, on_progress, cancels)
        try:
            latents = None if watch.check_cancels() else self._denoise(jobs, watch)
        finally:
            forget(self.pipe.transformer)  # the conditions the DiT kept across this batch's steps
        if latents is None or watch.all_cancelled:
            del latents
            release_memory(self.loaded.device)
            return [GenerationCancelled() for _ in jobs]
        outcomes: list[CoverLatents | GenerationCancelled] = []
        row = 0
        for index, job in enumerate(jobs):
            rows = latents[row : row + len(job.seeds)]
            row += len(job.seeds)
            cancelled = watch.stopped[index]
            outcomes.append(
                GenerationCancelled() if cancelled else CoverLatents(rows, output_samples(job.duration_s))
            )
        return outcomes

    def _check(self, jobs: Sequence[Job], on_progress: Sequence, cancels: Sequence) -> None:
        if not jobs or len(on_progress) != len(jobs) or len(cancels) != len(jobs):
            raise InvalidRequestError("Give one progress hook and one cancel token per job.")
        for job in jobs:
            check_job(job, self.min_duration_s)
        if any(not self.can_batch(jobs[0], job) for job in jobs[1:]):
            raise InvalidRequestError("These jobs cannot share a batch.")

    def _denoise(self, jobs: Sequence[Job], watch: CoverWatch) -> torch.Tensor | None:
        params, frames = jobs[0].params, latent_frames(jobs[0].duration_s)
        seeds = [seed for job in jobs for seed in job.seeds]
        latents = self._initial_noise(seeds, frames)
        schedule, steps = list(params.schedule), params.total_steps
        common = {
            "prompt": [job.prompt for job in jobs for _ in job.seeds],
            # An instrumental request as upstream sends it (ACE-Step 1.5 `acestep/inference.py`:
            # lyrics "[Instrumental]", vocal language "unknown"); empty lyrics are not that.
            "lyrics": [INSTRUMENTAL] * len(seeds),
            "vocal_language": VOCAL_LANGUAGE,
            "audio_duration": told_duration(frames),
            "guidance_scale": params.guidance,
            "output_type": "latent",
            "callback_on_step_end": watch,
        }
        switch = params.cover_steps
        if switch > 0:
            codes = [source_codes(self.pipe, job.source, frames) for job in jobs]
            watch.stop_after = switch if switch < steps else None
            latents = self.pipe(
                task_type="cover",
                audio_codes=[code for job, code in zip(jobs, codes, strict=True) for _ in job.seeds],
                audio_cover_strength=1.0,
                latents=latents,
                timesteps=schedule,
                num_inference_steps=len(schedule),
                **common,
            ).audios
        if switch < steps and not watch.all_cancelled:
            watch.stop_after = None
            latents = self.pipe(
                task_type="text2music",
                latents=latents,
                timesteps=schedule[switch:],
                num_inference_steps=steps - switch,
                **common,
            ).audios
        return latents

    def _initial_noise(self, seeds: list[int], frames: int) -> torch.Tensor:
        """Each candidate's noise from its own CPU generator: the same seed starts from the same
        noise on any device and in any batch."""
        channels = self.pipe.transformer.config.audio_acoustic_hidden_dim
        rows = [
            torch.randn((1, frames, channels), generator=torch.Generator().manual_seed(seed))
            for seed in seeds
        ]
        return torch.cat(rows).to(self.loaded.device, self.pipe.transformer.dtype)

    def _text_lengths(self, job: Job) -> tuple[int, ...]:
        from diffusers.pipelines.ace_step.pipeline_ace_step import TASK_INSTRUCTIONS

        duration = told_duration(latent_frames(job.duration_s))
        lengths = []
        for task in ("cover", "text2music"):
            text, _ = self.pipe._format_prompt(
                prompt=job.prompt, audio_duration=duration, instruction=TASK_INSTRUCTIONS[task]
            )
            tokens = self.pipe.tokenizer(text, truncation=True, max_length=MAX_TEXT_TOKENS).input_ids
            lengths.append(len(tokens))
        return tuple(lengths)


def told_duration(frames: int) -> float:
    """The length the pipeline is told for `frames` latent frames: exactly `frames / 25` seconds
    where the float allows, so the prompt's metadata says it in whole seconds as upstream does
    (`int(duration)`: a 30 s job is "30 seconds"), and the pipeline's own `ceil(duration * 25)`
    gives back exactly `frames` (where `frames / 25 * 25` rounds up past it, one ulp less)."""
    duration = frames / FRAMES_PER_SECOND
    while math.ceil(duration * FRAMES_PER_SECOND) > frames:
        duration = math.nextafter(duration, 0.0)
    return duration
