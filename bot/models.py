"""The bot's records, as plain frozen dataclasses: the rows bot.store reads and writes, and the
statuses a job passes through. No I/O here; everything in bot/ may import this.

A job's status: queued -> running -> rendered -> done, or failed / cancelled from any active one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACTIVE = ("queued", "running")


@dataclass(frozen=True, kw_only=True)
class RequestOptions:
    """What a person asked for in /restyle (or a remix form), before any check (bot.checks).
    A new option goes here, in `Submission` (bot.admission) and in `NewJob`."""

    prompt: str
    candidates: int
    duration: float | None = None
    seed: int | None = None
    model: str | None = None
    loop: bool = False
    bpm: float | None = None  # a loop's tempo; None: detected from the seed
    intro: int = 0  # bars played once before a loop, in the same file
    layers: bool = False  # a loop's layers (drums, bass, other, vocals) too
    strength: float | None = None  # ACE-Step's cover strength; None: the family's default


@dataclass(frozen=True, kw_only=True)
class NewJob:
    """A job as admission records it: built by keyword, so a new option is one more field."""

    channel_id: int
    guild_id: int | None
    user_id: int
    prompt: str
    model: str
    candidates: int
    duration_s: float
    base_seed: int
    seed_path: str
    seed_name: str
    seed_sha256: str
    seed_duration_s: float
    upload_limit: int
    created_at: float
    kind: str = "restyle"
    parent_id: int | None = None
    loop: bool = False
    loop_bpm: float | None = None  # as asked; None: detected
    loop_bars: int | None = None  # as planned at admission
    loop_tempo: float | None = None
    loop_generated_s: float | None = None
    loop_intro_bars: int = 0  # bars before the loop, in the same file; `duration_s` counts them
    loop_layers: bool = False
    strength: float | None = None  # ACE-Step's cover strength as asked; None: the family's default

    @property
    def params(self) -> dict[str, Any]:
        """The family's parameters this job sets (`Family.make_params`); the rest are its defaults."""
        return {} if self.strength is None else {"strength": self.strength}

    @property
    def generated_s(self) -> float:
        """What the engine generates: a loop's overhang too. Steps, batches and ETAs count this."""
        return self.loop_generated_s if self.loop_generated_s is not None else self.duration_s


@dataclass(frozen=True, kw_only=True)
class JobRow(NewJob):
    """A recorded job: what was asked, and where its story stands (only bot.lifecycle moves `status`)."""

    id: int = 0
    status: str = "queued"
    status_message_id: int | None = None
    result_message_id: int | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    votes_close_at: float | None = None
    announced: bool = False
    files_deleted: bool = False

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(self.base_seed + index for index in range(self.candidates))


@dataclass(frozen=True)
class Reservation:
    """A request's place in the queue, held while its seed is decoded."""

    id: int
    at: float  # when it was asked for: the job's created_at, which the cooldown counts from


@dataclass(frozen=True)
class CandidateRow:
    job_id: int
    idx: int
    seed: int
    adherence: float
    audio_path: str
    lossless_path: str
    bitrate: int | None


@dataclass(frozen=True)
class ResultPart:
    """One message of a job's results: candidates first_idx..last_idx, voted on by reaction."""

    message_id: int
    job_id: int
    part: int
    first_idx: int
    last_idx: int
    reactions: int = 0  # bit i-1 set: the bot's reaction for candidate i is on the message
    reaction_tries: int = 0

    @property
    def indices(self) -> range:
        return range(self.first_idx, self.last_idx + 1)


@dataclass(frozen=True)
class Delivery:
    """How posting a job's results has gone so far."""

    attempts: int = 0
    last_attempt_at: float | None = None
    next_attempt_at: float | None = None
