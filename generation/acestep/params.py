"""What an ACE-Step cover job is: its parameters, its length in the model's frames, its licence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from generation.acestep.architectures import CHANNELS, SAMPLE_RATE, VAE_RATIOS
from generation.errors import InvalidRequestError
from generation.interface import Job, Licence

SAMPLES_PER_FRAME = math.prod(VAE_RATIOS)  # 1920: 25 latent frames a second at 48 kHz
FRAMES_PER_CODE = 5  # the audio tokenizer pools 5 latent frames into one 5 Hz code
MIN_DURATION_S = 10.0  # ACE-Step 1.5 makes 10 s to 10 min in one pass
MAX_DURATION_S = 600.0
MAX_STEPS = 20  # the turbo model's trained timesteps: 20 distinct values (below)

# ACE-Step 1.5's weights and code are MIT. `ace-step` loads two repositories (see
# `generation.acestep.checkpoints`): each model card says MIT; the turbo one's is the licence URL.
LICENCE = Licence(
    "MIT", commercial_use=True, url="https://huggingface.co/ACE-Step/acestep-v15-xl-turbo-diffusers"
)

# The turbo DiT was distilled on three 8-step schedules, shift 1, 2 and 3; the native model
# (`generate_audio` of ACE-Step 1.5's turbo checkpoint code) snaps any timestep it is given to the
# nearest of their 20 distinct values and takes at most 20 steps. diffusers' schedule for
# `(steps, shift)` is `shift * t / (1 + (shift - 1) * t)` on `t = 1, 1 - 1/steps, ...`: for 8 steps
# it is exactly the trained table of that shift.
TURBO_SHIFTS = (1.0, 2.0, 3.0)


def _trained_timesteps() -> tuple[float, ...]:
    distinct: dict[float, float] = {}
    for shift in TURBO_SHIFTS:
        for i in range(8):
            t = 1 - i / 8
            value = shift * t / (1 + (shift - 1) * t)
            distinct.setdefault(round(value, 9), value)  # 0.75 comes from shifts 1 and 3
    return tuple(sorted(distinct.values(), reverse=True))


TURBO_TIMESTEPS = _trained_timesteps()


@dataclass(frozen=True)
class CoverParams:
    """How a cover is denoised.

    `strength` is ACE-Step's `audio_cover_strength` as the model's authors define it: the share of
    the denoising steps that hear the source (its melody, rhythm and structure, as 5 Hz audio codes);
    the remaining steps hear the prompt alone, as text-to-music. A whole number of steps hears the
    source: `int(steps * strength)`, upstream's rule. The default is upstream's, 1.0 (ACE-Step 1.5
    `acestep/api_server.py`: `audio_cover_strength: float = 1.0`; diffusers' pipeline default too):
    every step hears the source and the prompt sets the style; lower values trade the source's
    structure for the prompt's.

    `steps`, `guidance` and `shift` are the turbo checkpoint's: 8 steps, no classifier-free guidance
    (it is distilled into the weights; diffusers ignores more than 1.0 for turbo), shift 3. Steps are
    at most 20 and the shift one of 1, 2 or 3, what the turbo model was trained on; the schedule is
    snapped to its trained timesteps (`schedule`).
    """

    strength: float = 1.0
    steps: int = 8
    guidance: float = 1.0
    shift: float = 3.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise InvalidRequestError("The cover strength is a number from 0 (ignore the seed) to 1.")
        if not 1 <= self.steps <= MAX_STEPS:
            raise InvalidRequestError(
                f"The number of steps is a whole number from 1 to {MAX_STEPS} (the turbo model's timesteps)."
            )
        if not (math.isfinite(self.guidance) and self.guidance >= 0):
            raise InvalidRequestError("The guidance scale must be 0 or more.")
        if self.shift not in TURBO_SHIFTS:
            raise InvalidRequestError(
                "The timestep shift is 1, 2 or 3 (the turbo model's trained schedules)."
            )

    @property
    def schedule(self) -> tuple[float, ...]:
        """The denoising timesteps: diffusers' schedule for `steps` and `shift`, each snapped to the
        nearest trained timestep (upstream's rule), a repeat dropped (it would be a step of length 0)."""
        snapped: list[float] = []
        for i in range(self.steps):
            t = 1 - i / self.steps
            shifted = self.shift * t / (1 + (self.shift - 1) * t)
            nearest = min(TURBO_TIMESTEPS, key=lambda valid: abs(valid - shifted))
            if nearest not in snapped:
                snapped.append(nearest)
        return tuple(snapped)

    @property
    def total_steps(self) -> int:
        return len(self.schedule)

    @property
    def cover_steps(self) -> int:
        """How many of the first steps hear the source (the upstream rule, rounding down)."""
        return int(self.total_steps * self.strength)


def cover_job(
    prompt: str,
    source: np.ndarray,
    seeds: Sequence[int],
    duration_s: float,
    params: CoverParams | None = None,
) -> Job:
    """A job from a source `(2, samples)` float32 at 48 kHz: the seed track, looped or cut to length
    (the default cover parameters unless given)."""
    return Job(prompt, source, tuple(seeds), duration_s, params or CoverParams())


def latent_frames(duration_s: float) -> int:
    """Latent frames the model generates for `duration_s`: whole audio codes, so a multiple of 5."""
    frames = math.ceil(duration_s * SAMPLE_RATE / SAMPLES_PER_FRAME)
    return FRAMES_PER_CODE * math.ceil(frames / FRAMES_PER_CODE)


def output_samples(duration_s: float) -> int:
    return round(duration_s * SAMPLE_RATE)


def check_job(job: Job, min_duration_s: float = MIN_DURATION_S) -> None:
    """Everything about one job that can be wrong, before any work starts."""
    if not isinstance(job.params, CoverParams):
        raise InvalidRequestError("An ACE-Step job takes cover parameters (CoverParams).")
    if not (math.isfinite(job.duration_s) and min_duration_s <= job.duration_s <= MAX_DURATION_S):
        raise InvalidRequestError(
            f"ACE-Step makes {min_duration_s:g} s to {MAX_DURATION_S / 60:g} minutes of audio, "
            f"not {job.duration_s:g} s."
        )
    if not job.seeds:
        raise InvalidRequestError("A job needs at least one seed.")
    source = job.source
    if source.ndim != 2 or source.shape[0] != CHANNELS or source.shape[1] == 0:
        raise InvalidRequestError(
            f"The seed must be decoded to {CHANNELS} channels at {SAMPLE_RATE} Hz "
            f"(got an array of shape {source.shape})."
        )
    if not np.isfinite(source).all():
        raise InvalidRequestError("The seed's samples must be finite numbers.")
