"""What every model family provides, and all the pipeline, the command line and the bot rely on.

A family (`generation.musicgen`, `generation.acestep`) gives two things:
- a `Family`: its facts known without loading anything (licence, rates, steps for a length, its
  default parameters, which jobs may share a batch) and how to locate, load and fetch a model;
- an `Engine`: one loaded model that turns `Job`s into candidate audio, synchronously, on the one
  thread that owns it, with a progress hook called from that thread and a cancel token per job
  checked at every step.

Generation runs in two halves, `generate_latents` (the model's own output: MusicGen's EnCodec
codes, ACE-Step's VAE latents) and `decode_latents` (that output as audio), so a front can show
decoding as a phase of its own; `generate_many` is both in one.

Nothing here imports torch: the fronts import this at start, before any model is chosen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from generation.errors import GenerationCancelled, InvalidRequestError

ProgressFn = Callable[[int, int], None]  # (steps done, steps in all)
MAX_SEED = 2**31 - 1


def validate_seed(seed: int) -> int:
    if not 0 <= seed <= MAX_SEED:
        raise InvalidRequestError(f"A seed is a whole number from 0 to {MAX_SEED}.")
    return seed


class CancelToken:
    """Set from any thread; the generating thread stops at its next step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class Licence:
    """The licence of a family's weights: what the music made with them may be used for."""

    name: str
    commercial_use: bool
    url: str

    def notice(self, title: str) -> str:
        """One line for people about to use what `title`'s weights made."""
        use = "may be used commercially" if self.commercial_use else "is for non-commercial use only"
        return f"{title} weights are {self.name}: what you make with them {use}."


class Params(Protocol):
    """A family's generation parameters: a frozen, hashable dataclass (equal parameters are one of
    the things jobs that share a batch must have in common)."""

    def validate(self) -> None:
        """Raise `InvalidRequestError` with one line for a value out of range."""
        ...


@dataclass(frozen=True)
class Job:
    """One request: its candidates share prompt, source and length, and differ by seed."""

    prompt: str
    source: np.ndarray  # (engine.input_channels, samples) float32 at engine.input_rate
    seeds: tuple[int, ...]
    duration_s: float
    params: Params  # the family's own: MusicGen's SamplingParams, ACE-Step's CoverParams


class Engine(Protocol):
    """One loaded model of one family. Not thread-safe: one thread owns it.

    A family's engine subclasses this for `generate_many` and `generate`, made of its two halves.
    """

    family: str
    licence: Licence
    sample_rate: int  # of the audio it makes
    channels: int
    input_rate: int  # of the source it reads (`Job.source`)
    input_channels: int
    # The source is the seed's melody, mono: its melodic stems when stems are on (MusicGen); else
    # the whole seed as decoded (ACE-Step).
    reads_melody: bool
    frame_rate: int  # its frames a second: what it makes is a whole number of frames long
    window_s: float  # the longest piece one pass makes; longer ones are made in windows
    min_duration_s: float  # the lengths it makes, in seconds
    max_duration_s: float
    default_params: Params
    broken: bool  # after a device error that outlives the job: load a new one before reuse

    def describe(self) -> dict[str, Any]:
        """What a sidecar records about the model: name, source, revision, dtype, device..."""
        ...

    def parameters(self, duration_s: float, params: Params) -> dict[str, Any]:
        """What a sidecar records about how a job of this length and these parameters is made."""
        ...

    def total_steps(self, duration_s: float, params: Params | None = None) -> int:
        """The steps `on_progress` counts to for one job (None: the family's default parameters)."""
        ...

    def can_batch(self, first: Job, second: Job) -> bool:
        """Whether the two jobs may run in one `generate_many` call."""
        ...

    def generate_latents(
        self,
        jobs: Sequence[Job],
        on_progress: Sequence[ProgressFn | None],
        cancels: Sequence[CancelToken | None],
    ) -> list[Any | GenerationCancelled]:
        """Jobs that can all share a batch, in one; a cancelled job's outcome is the exception,
        and the others finish."""
        ...

    def decode_latents(self, latents: Any) -> np.ndarray:
        """One job's latents as audio `(candidates, channels, samples)` float32 at `sample_rate`."""
        ...

    def generate_many(
        self,
        jobs: Sequence[Job],
        on_progress: Sequence[ProgressFn | None],
        cancels: Sequence[CancelToken | None],
    ) -> list[np.ndarray | GenerationCancelled]:
        """`generate_latents`, then `decode_latents` for every job not cancelled."""
        outcomes = self.generate_latents(jobs, on_progress, cancels)
        return [o if isinstance(o, GenerationCancelled) else self.decode_latents(o) for o in outcomes]

    def generate(
        self, job: Job, on_progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> np.ndarray:
        """One job's audio `(candidates, channels, samples)` float32 at `sample_rate`."""
        return only_outcome(self.generate_many([job], [on_progress], [cancel]))


def only_outcome(outcomes: list) -> Any:
    """A one-job call's outcome; its cancel is raised."""
    if isinstance(outcomes[0], GenerationCancelled):
        raise outcomes[0]
    return outcomes[0]


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model, for any family; each family uses what applies to it."""

    device: str = "auto"
    dtype: str = "auto"
    cache_dir: str | Path | None = None
    offline: bool = False
    revision: str | None = None  # a commit other than the pinned one (a family may refuse any)
    backend: str = "auto"  # MusicGen's decode loop: auto, fast or reference
    seed: int = 0  # the weights of a random (debug) model

    def loader_keywords(self) -> dict[str, Any]:
        """What every family's loader takes (`revision` and `backend` are up to each family)."""
        return {
            "device": self.device,
            "dtype": self.dtype,
            "cache_dir": self.cache_dir,
            "offline": self.offline,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class ModelLocation:
    """Where a spec's weights are, found without loading them (and without downloading)."""

    spec: str  # as typed, without @revision: what `restyle download` is told
    kind: str  # "random", "local" or "hub"
    target: str  # architecture, folder or repo id
    revision: str | None  # the commit (hub), or None
    folder: Path | None  # the folder to load from; None: random, or a hub model still to download


class Family(Protocol):
    """A model family's facts, known without loading anything, and its loaders."""

    name: str
    title: str  # as people read it: "MusicGen-melody"
    licence: Licence
    sample_rate: int
    input_rate: int
    input_channels: int
    reads_melody: bool
    frame_rate: int
    default_params: Params

    def serves(self, spec: str) -> bool:
        """Whether `spec` names one of this family's models (looked up cheaply, nothing loaded)."""
        ...

    def is_random(self, spec: str) -> bool:
        """Built in-process with random weights: nothing to download, tiny helpers suffice."""
        ...

    def make_params(self, **values: Any) -> Params:
        """The default parameters with `values` in place, checked; an unknown name is refused."""
        ...

    def total_steps(self, duration_s: float, params: Params | None = None) -> int: ...

    def lengths(self, spec: str) -> tuple[float, float]:
        """The shortest and longest output in seconds `spec`'s engine makes (its `min_duration_s`
        and `max_duration_s`), known before loading it, so a front refuses a length first."""
        ...

    def batch_key(self, spec: str, duration_s: float, params: Params) -> Hashable:
        """Jobs with different keys never share a batch (equal keys may, if the engine agrees)."""
        ...

    def dtype_name(self, spec: str, dtype: str, device: Any) -> str:
        """The precision `spec` runs in on `device` when asked for `dtype` (refused if unknown)."""
        ...

    def first_guess_step_s(self, spec: str, device_type: str, duration_s: float) -> float:
        """Seconds one step of a `duration_s` job is guessed to take on a `device_type` ("cpu",
        "cuda", "mps") before any job has been timed: a front's first ETA, replaced once measured."""
        ...

    def locate(self, spec: str, options: LoadOptions) -> ModelLocation: ...

    def load(self, spec: str, options: LoadOptions) -> Engine: ...

    def download(self, spec: str, *, cache_dir: str | Path | None, revision: str | None) -> Path: ...
