"""Refusals checked before any work starts: each returns one human line, or None to go ahead."""

from __future__ import annotations

import math
from pathlib import PurePath

import discord

from bot.config import BotConfig
from bot.models import JobRow, RequestOptions, Reservation
from bot.store import Store
from generation.errors import InvalidRequestError
from generation.families import family_for
from generation.humanize import format_bytes, format_duration
from generation.interface import MAX_SEED
from generation.loops import check_loopable
from generation.pipeline import MIN_OUTPUT_S, check_prompt

AUDIO_EXTENSIONS = {
    ".mp3",
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".m4a",
    ".aac",
    ".webm",
    ".mp4",
    ".weba",
}
# What the bot needs in a channel to post results and count votes there.
NEEDED_PERMISSIONS = (
    "view_channel",
    "send_messages",
    "attach_files",
    "add_reactions",
    "read_message_history",
)


def access_refusal(config: BotConfig, interaction: discord.Interaction) -> str | None:
    """Where and by whom Restyle may be used, and whether the bot itself can work there."""
    channel, member = interaction.channel, interaction.user
    if interaction.guild is None or not isinstance(member, discord.Member):
        return "Restyle works in servers, not in direct messages."
    allowed = config.access.channels
    parent = getattr(channel, "parent_id", None)
    if allowed and interaction.channel_id not in allowed and parent not in allowed:
        return f"Restyle works in {', '.join(f'<#{c}>' for c in allowed)}, not here."
    roles = config.access.roles
    if roles and not any(role.id in roles for role in member.roles):
        return f"Restyle is open to members with the {' or '.join(f'<@&{r}>' for r in roles)} role."
    permissions = interaction.app_permissions
    missing = [
        name.replace("_", " ").title() for name in NEEDED_PERMISSIONS if not getattr(permissions, name)
    ]
    if missing:
        return f"I can't post results here: I need the {', '.join(missing)} permission in this channel."
    return None


# The most bars an intro may have (intro and loop together must also fit the output limit).
MAX_INTRO_BARS = 16


def loop_refusal(config: BotConfig, request: RequestOptions) -> str | None:
    """A loop needs a model that reads the melody; a tempo, an intro and layers need a loop."""
    if not request.loop:
        return _needs_a_loop(request)
    if not 0 <= request.intro <= MAX_INTRO_BARS:
        return f"An intro is 1 to {MAX_INTRO_BARS} bars."
    try:
        check_loopable(family_for(request.model or config.models.default))
    except InvalidRequestError as exc:
        return str(exc)
    return None


def _needs_a_loop(request: RequestOptions) -> str | None:
    """Options that only a loop has, asked without one."""
    asked = [
        (request.bpm is not None, "bpm sets a loop's tempo: add loop:True."),
        (bool(request.intro), "intro adds bars that play once before a loop: add loop:True."),
        (request.layers, "layers split a loop into drums, bass, other and vocals: add loop:True."),
    ]
    return next((message for given, message in asked if given), None)


def request_refusal(config: BotConfig, request: RequestOptions) -> str | None:
    limits = config.limits
    longest = limits.max_output_seconds
    max_seed = MAX_SEED - limits.max_candidates
    rules = [
        (
            1 <= request.candidates <= limits.max_candidates,
            f"Ask for 1 to {limits.max_candidates} candidates.",
        ),
        (
            request.duration is None or MIN_OUTPUT_S <= request.duration <= longest,
            f"The duration must be between {MIN_OUTPUT_S:g} s and {format_duration(longest)}.",
        ),
        (
            request.seed is None or 0 <= request.seed <= max_seed,
            f"A seed is a whole number from 0 to {max_seed}.",
        ),
        (
            request.model is None or request.model in config.models.choices,
            f"Unknown model {request.model!r}: choose {', '.join(config.models.choices)}.",
        ),
    ]
    return (
        prompt_refusal(request.prompt, limits.max_prompt_chars)
        or next((message for ok, message in rules if not ok), None)
        or loop_refusal(config, request)
        or strength_refusal(config, request)
    )


def strength_refusal(config: BotConfig, request: RequestOptions) -> str | None:
    """A cover strength is ACE-Step's (0 to 1): a model without one refuses it, naming those with one."""
    if request.strength is None:
        return None
    model = request.model or config.models.default
    family = family_for(model)
    if not _has_strength(model):
        covers = " or ".join(f"`{name}`" for name in config.models.choices if _has_strength(name))
        choose = f"choose {covers}, or leave it out" if covers else "leave it out"
        return f"strength is ACE-Step's cover strength; {family.title} (`{model}`) has none: {choose}."
    try:
        family.make_params(strength=request.strength)
    except InvalidRequestError as exc:
        return str(exc)
    return None


def _has_strength(model: str) -> bool:
    return hasattr(family_for(model).default_params, "strength")


def prompt_refusal(prompt: str, max_chars: int) -> str | None:
    """The engine's own judgement: empty (invisible characters too) or too long."""
    try:
        check_prompt(prompt, max_chars)
    except InvalidRequestError as exc:
        return str(exc)
    return None


def attachment_refusal(config: BotConfig, attachment: discord.Attachment) -> str | None:
    """Size and type from Discord's metadata, before a byte is downloaded."""
    limit = int(config.limits.max_upload_mb * 1024 * 1024)
    if attachment.size == 0:
        return "The file is empty."
    if attachment.size > limit:
        return f"The file is {format_bytes(attachment.size)}; the limit is {format_bytes(limit)}."
    kind = (attachment.content_type or "").split(";")[0]
    extension = PurePath(attachment.filename).suffix.lower()
    if not kind.startswith(("audio/", "video/")) and extension not in AUDIO_EXTENSIONS:
        return "That file is not audio: attach an mp3, wav, flac, ogg, opus or m4a."
    return None


async def reserve(config: BotConfig, store: Store, user_id: int, now: float) -> Reservation | None:
    """A place in the queue for this person's request (see `Store.reserve`), or None."""
    limits = config.limits
    return await store.reserve(
        user_id,
        now,
        max_queue=limits.max_queue,
        max_jobs=limits.max_jobs_per_user,
        cooldown_s=limits.cooldown_seconds,
    )


async def quota_refusal(config: BotConfig, store: Store, user_id: int, now: float) -> str:
    """Why `reserve` refused: the queue's room, the person's share of it, or their cooldown."""
    limits = config.limits
    waiting = await store.waiting_count()
    if waiting >= limits.max_queue:
        return f"The queue is full ({waiting} jobs): try again in a few minutes."
    active = await store.active_count(user_id)
    if active >= limits.max_jobs_per_user:
        return f"You already have {active} jobs waiting or running; the limit is {limits.max_jobs_per_user}."
    last = await store.last_request_at(user_id)
    if last is not None and now - last < limits.cooldown_seconds:
        wait = math.ceil(limits.cooldown_seconds - (now - last))
        return f"Please wait {wait} s before your next request."
    return "Too many requests at once: try again in a moment."  # it changed while we looked


def cancel_refusal(job: JobRow | None, interaction: discord.Interaction) -> str | None:
    """Cancel is for the person who asked, or a moderator, and for a job still active."""
    if job is None:
        return "That job no longer exists."
    moderator = isinstance(interaction.user, discord.Member) and interaction.permissions.manage_messages
    if interaction.user.id != job.user_id and not moderator:
        return "Only the person who asked, or a moderator, can cancel this job."
    if job.status not in ("queued", "running"):
        return f"Job #{job.id} has already ended."
    return None
