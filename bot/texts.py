"""Every message the bot writes, in one place, so wording stays consistent and testable.

User text (prompts, filenames, display names) goes through `safe` or `code` before it is shown:
one line, without control characters or bidi overrides, without markdown or pings, and with links
that do not unfurl. Listings are trimmed to one Discord message.
"""

from __future__ import annotations

import errno

from bot.models import CandidateRow, JobRow
from bot.replies import without_paths
from bot.user_text import MESSAGE_LIMIT, NAME_SHOWN, code, fit, safe
from generation.families import FAMILIES, OFFERED, family_for
from generation.game_music import SeamVerdict
from generation.humanize import count_of, format_bytes, format_duration

NUMBERS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣")
# /help's table, beside each family's name and licence: what the model keeps of the seed, the
# lengths it makes, and its speed on a 2-core CPU with random weights (benchmarks/RESULTS.md;
# a GPU is far faster). MusicGen: bfloat16 melody decoder; ACE-Step: 8 turbo steps, VAE included.
MODEL_FACTS = {
    "musicgen": (
        "the melody (its chroma)",
        "any length, in 30 s windows",
        "~2,200 s per 30 s alone (RTF ~75), ~410 s each in a batch of 4",
    ),
    "acestep": (
        "melody, rhythm and structure (cover `strength` {strength:g} by default)",
        "10 s to 10 min, in one pass",
        "~450 s per 30 s with the 2B turbo DiT (RTF ~15), ~630 s with the XL one;"
        " ~1.8x faster on CPUs with bfloat16",
    ),
}
BAR_WIDTH = 20
PROMPT_SHOWN = 400  # characters of a prompt shown: escaped, it still fits any message of ours
LISTED_PROMPT = 80  # characters of a prompt in /queue and /leaderboard


def eta(seconds: float | None) -> str:
    if seconds is None:
        return "unknown time"
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    return f"about {minutes} min" if minutes < 90 else f"about {seconds / 3600:.1f} h"


def bar(done: int, total: int) -> str:
    filled = round(BAR_WIDTH * done / total) if total else 0
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def header(job: JobRow) -> str:
    count = f"{job.candidates} candidate{'s' if job.candidates > 1 else ''}"
    count += f" · 🔁 loop of {count_of(job.loop_bars, 'bar')}" if job.loop else ""
    origin = {"reroll": f" · reroll of #{job.parent_id}", "remix": f" · remix of #{job.parent_id}"}.get(
        job.kind, ""
    )
    return (
        f"🎼 **Job #{job.id}** for <@{job.user_id}>{origin}\n"
        f"*{safe(job.prompt, PROMPT_SHOWN)}* · seed {code(job.seed_name)} · {count} · "
        f"{format_duration(job.duration_s)}"
    )


def queued(job: JobRow, position: int, seconds: float | None) -> str:
    return f"{header(job)}\n⏳ Queued: position {position}, {eta(seconds)} to go."


def running(job: JobRow, done: int, total: int, seconds_left: float | None) -> str:
    percent = round(100 * done / total) if total else 0
    return (
        f"{header(job)}\n🎛️ `{bar(done, total)}` {percent}% · step {done}/{total} · {eta(seconds_left)} left"
    )


def done(job: JobRow, link: str) -> str:
    return f"{header(job)}\n✅ Done: {link}"


def failed(job: JobRow, message: str) -> str:
    """A job's end by an error: its words, without any server path they carry."""
    return f"{header(job)}\n❌ {without_paths(message)}"


def unsaved(error: OSError) -> str:
    """Why a job's results could not be written, without the server's paths."""
    reasons = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up"}
    reasons |= {errno.EROFS: "the data folder is read-only", errno.EACCES: "the data folder is read-only"}
    reason = reasons.get(error.errno, errno.errorcode.get(error.errno or 0, "a disk error"))
    return f"The results could not be saved: {reason}. Please try again later."


def limits_changed(job_id: int, why: str) -> str:
    """A Reroll or Remix of a job made under limits lowered since: what the member can do."""
    why = why.rstrip(".")
    why = why[:1].lower() + why[1:]
    return f"Job #{job_id} was made under limits lowered since ({why}): start a new /restyle."


FILES_EXPIRED = "That job's files have expired."
RESULTS_MISSING = "The results files are missing: nothing was posted."


def refused(why: str, attempts: int = 0) -> str:
    """Why a job's results will not be posted."""
    if attempts:
        return f"Discord kept failing to take the results ({why}; {attempts} tries): nothing was posted."
    return f"Discord refused the results ({why}): nothing was posted."


def cancelled(job: JobRow, by: str) -> str:
    return f"{header(job)}\n🚫 Cancelled by {safe(by, NAME_SHOWN)}."


def results_part(
    job: JobRow,
    parts: list[list[CandidateRow]],
    number: int,
    close_at: float | None,
    seams: dict[int, SeamVerdict] | None = None,
) -> str:
    """The text of results message `number` (from 1): the whole story on the first, a pointer on
    the others. `seams`: a loop's verdict per candidate."""
    here = parts[number - 1]
    if number == 1:
        everyone = [candidate for part in parts for candidate in part]
        shared = here if len(parts) > 1 else None
        return results(job, everyone, job.upload_limit, close_at, here=shared, seams=seams)
    shown = "".join(NUMBERS[c.idx - 1] for c in here)
    return f"🎶 Job #{job.id}, part {number} of {len(parts)}: {shown}. Vote on them here, with their numbers."


def results(
    job: JobRow,
    candidates: list[CandidateRow],
    upload_limit: int,
    close_at: float | None,
    *,
    here: list[CandidateRow] | None = None,
    seams: dict[int, SeamVerdict] | None = None,
) -> str:
    """`here`: the candidates of this message, when the files needed more than one; `seams`: a
    loop's verdict per candidate (one missing: nothing is claimed of it). Seam figures in words
    too long for one message are said briefly (each Loop button's message gives them in full)."""
    text = _results(job, candidates, upload_limit, close_at, here, seams, brief=False)
    if len(text) > MESSAGE_LIMIT:
        text = _results(job, candidates, upload_limit, close_at, here, seams, brief=True)
    return text


def _results(  # noqa: PLR0917 - the arguments of `results`, and how briefly
    job: JobRow,
    candidates: list[CandidateRow],
    upload_limit: int,
    close_at: float | None,
    here: list[CandidateRow] | None,
    seams: dict[int, SeamVerdict] | None,
    *,
    brief: bool,
) -> str:
    lines = [f"🎶 **Job #{job.id} is ready**, <@{job.user_id}>: *{safe(job.prompt, PROMPT_SHOWN)}*"]
    lines += [
        f"{NUMBERS[c.idx - 1]} seed `{c.seed}` · melody adherence {c.adherence:.2f}" for c in candidates
    ]
    family = family_for(job.model)
    lines.append(
        f"model `{job.model}` ({family.title}){strength(job)} · {format_duration(job.duration_s)} each"
    )
    lines.append(f"⚖️ {family.licence.notice(family.title)}")
    if job.loop:
        lines += loop_lines(job, [c.idx for c in candidates], seams or {}, brief=brief)
    lowered = sorted({c.bitrate for c in candidates if c.bitrate and c.bitrate < 192_000})
    if lowered:
        rate = ", ".join(f"{b // 1000}" for b in lowered)
        lines.append(
            f"📉 mp3 at {rate} kbps to fit this channel's {format_bytes(upload_limit)} upload limit."
        )
    if here is not None:
        lines.append(
            f"📎 The files needed more than one message to fit the {format_bytes(upload_limit)} limit."
        )
    shown = here or candidates
    vote = f"Vote with {NUMBERS[shown[0].idx - 1]}–{NUMBERS[shown[-1].idx - 1]}"
    vote += " here, and on the next messages with theirs" if here is not None else ""
    lines.append(f"{vote}; voting closes <t:{int(close_at)}:R>." if close_at else f"{vote}.")
    return "\n".join(lines)


def strength(job: JobRow) -> str:
    """ " · cover strength 0.6" for a job whose family has one (as asked, else its default)."""
    default = getattr(family_for(job.model).default_params, "strength", None)
    if default is None:
        return ""
    return f" · cover strength {job.strength if job.strength is not None else default:g}"


def loop_shape(job: JobRow) -> str:
    """ "2 bars at 120 BPM", after its intro if it has one."""
    shape = f"{count_of(job.loop_bars, 'bar')} at {job.loop_tempo:g} BPM"
    if job.loop_intro_bars:
        shape += f", after an intro of {count_of(job.loop_intro_bars, 'bar')} that plays once"
    return shape


def loop_lines(
    job: JobRow, indices: list[int], seams: dict[int, SeamVerdict], *, brief: bool = False
) -> list[str]:
    """What a loop's results say of it: "loops seamlessly" only where the seam figures say so,
    otherwise the figures in words; and what the Loop buttons send."""
    verdicts = [seams.get(idx) for idx in indices]
    if all(verdict is not None and verdict.seamless for verdict in verdicts):
        where = " (and where the intro meets the loop)" if job.loop_intro_bars else ""
        lines = [f"🔁 loops seamlessly{where}: {loop_shape(job)}."]
    else:
        lines = [f"🔁 a loop of {loop_shape(job)}:"]
        for idx, verdict in zip(indices, verdicts, strict=True):
            said = "seam not measured" if verdict is None else seam_words(verdict, brief=brief)
            lines.append(f"{NUMBERS[idx - 1]} {said}")
    sends = "the WAV with its loop points, which game engines read"
    if job.loop_layers:
        sends += ", and its layers (drums, bass, other, vocals: in sync, they add up to the loop)"
    lines.append(f"The mp3s are for listening; each Loop button sends {sends}.")
    return lines


def seam_words(verdict: SeamVerdict, *, brief: bool = False) -> str:
    """A candidate's seam for members; `brief`: where it is not seamless, without the figures."""
    if verdict.seamless:
        return "loops seamlessly"
    if not brief:
        return verdict.words
    # The verdict's sentences read "not quite seamless <where>: <figures>", joined by "; ".
    return "; ".join(clause.split(":")[0] for clause in verdict.words.split("; "))


def game_files(  # noqa: PLR0917 - a candidate, and which of its messages this is
    job: JobRow, idx: int, sample_rate: int, number: int, messages: int, seam: SeamVerdict | None = None
) -> str:
    """The private message(s) of a Loop button: what the WAV holds, where it loops, how its seam
    measured."""
    of = f" ({number} of {messages} messages)" if messages > 1 else ""
    if number > 1:
        return f"Loop {NUMBERS[idx - 1]} of job #{job.id}, continued{of}."
    start = (
        "its start"
        if not job.loop_intro_bars
        else f"the end of the intro ({count_of(job.loop_intro_bars, 'bar')})"
    )
    text = (
        f"Loop {NUMBERS[idx - 1]} of job #{job.id}: WAV, {sample_rate / 1000:g} kHz, {loop_shape(job)}, with "
        f"its loop points (a `smpl` loop from {start} to the last sample, which Godot's import reads)."
    )
    if job.loop_layers:
        text += " Its layers are the same length with the same loop points; together they are the loop."
    if seam is not None:
        text += f" Its seam: {seam_words(seam)}."
    return text + of


def game_files_too_big(job: JobRow, idx: int, size: int, limit: int) -> str:
    what = "The WAV and each of its layers are" if job.loop_layers else "The WAV is"
    return (
        f"{what} {format_bytes(size)}, over this channel's {format_bytes(limit)} upload limit: loop "
        f"{NUMBERS[idx - 1]} of job #{job.id} cannot be sent here."
    )


def lossless(job: JobRow, idx: int, sample_rate: int) -> str:
    rate = f"{sample_rate / 1000:g} kHz"
    if not job.loop:
        return f"Lossless {NUMBERS[idx - 1]} of job #{job.id} (FLAC, {rate})."
    return (
        f"Loop {NUMBERS[idx - 1]} of job #{job.id}: FLAC, {rate}, {count_of(job.loop_bars, 'bar')} at "
        f"{job.loop_tempo:g} BPM, with its loop points (LOOPSTART/LOOPLENGTH tags, in samples; the "
        "whole file is the loop)."
    )


def tallies(job: JobRow, counts: dict[int, int]) -> str:
    lines = [f"🗳️ **Job #{job.id}** · *{safe(job.prompt, PROMPT_SHOWN)}*"]
    best = max(counts.values(), default=0)
    for idx in range(1, job.candidates + 1):
        votes = counts.get(idx, 0)
        lead = " 👑" if votes and votes == best else ""
        lines.append(f"{NUMBERS[idx - 1]} {votes} vote{'s' if votes != 1 else ''}{lead}")
    return "\n".join(lines)


def winner(job: JobRow, counts: dict[int, int]) -> str:
    best = max(counts.values(), default=0)
    if best == 0:
        return f"🗳️ Voting on job #{job.id} has closed with no votes."
    top = [idx for idx, votes in sorted(counts.items()) if votes == best]
    closed = f"🏆 Voting on job #{job.id} has closed:"
    if len(top) == 1:
        return f"{closed} candidate {NUMBERS[top[0] - 1]} wins with {_votes(best)}."
    tied = " and ".join(NUMBERS[idx - 1] for idx in top)
    return f"{closed} a tie between {tied}, {_votes(best)} each."


def _votes(count: int) -> str:
    return f"{count} vote{'s' if count != 1 else ''}"


def leaderboard(rows: list[tuple[JobRow, int, int]]) -> str:
    if not rows:
        return "No votes yet in this server."
    lines = ["🏆 **Most-voted candidates**"]
    for rank, (job, idx, votes) in enumerate(rows, start=1):
        prompt = safe(job.prompt, LISTED_PROMPT)
        lines.append(f"{rank}. job #{job.id} {NUMBERS[idx - 1]} · {_votes(votes)} · *{prompt}*")
    return fit(lines, lambda left: f"…and {left} more.")


def queue_listing(running_jobs: list[JobRow], waiting: list[JobRow]) -> str:
    if not running_jobs and not waiting:
        return "The queue is empty: `/restyle` away."
    lines = [
        f"🎛️ running: job #{job.id} for <@{job.user_id}> · *{safe(job.prompt, LISTED_PROMPT)}*"
        for job in running_jobs
    ]
    lines += [
        f"{place}. job #{job.id} for <@{job.user_id}> · *{safe(job.prompt, LISTED_PROMPT)}*"
        for place, job in enumerate(waiting, 1)
    ]
    return fit(lines, lambda left: f"…and {left} more waiting.")


def help_text(max_candidates: int, max_output_s: float, max_upload_mb: float, models: tuple[str, ...]) -> str:
    return (
        "**Restyle** keeps a track's melody and changes its style.\n"
        "`/restyle audio:<file> prompt:<style>` — attach a seed track (mp3, wav, flac, ogg, m4a...) "
        f"and describe a style. Options: `candidates` (1-{max_candidates}), `duration` (seconds, default "
        f"the seed's length, at most {format_duration(max_output_s)}), `seed` (reproducible runs), `model` "
        f"({', '.join(f'`{name}`' for name in models)}), `loop` (a seamless loop for games, in whole bars; "
        "`bpm` gives the seed's tempo if it is not found; MusicGen models only; with a loop, `intro` adds "
        "bars that play once before it and `layers` sends it as drums, bass, other and vocals too: each "
        "Loop button sends the WAV with its loop points), `strength` (ACE-Step models only: how closely "
        "the cover follows the seed, from 0, not at all, to 1, to the end).\n"
        f"Seeds up to {max_upload_mb:g} MB. Vote on results with the number reactions; `/results` shows the "
        "tallies, `/leaderboard` the server's favourites, `/queue` what is waiting.\n"
        f"{models_table()}"
    )


def models_table() -> str:
    """The families: licence, what each keeps, lengths, speed. Each line's licence says whether
    what it makes may ship in a paid game."""
    lines = ["**Models** (licence of the weights · keeps · length · speed on a 2-core CPU):"]
    for family in (family for family in FAMILIES if family.name in OFFERED):
        keeps, lengths, speed = MODEL_FACTS[family.name]
        keeps = keeps.format(strength=getattr(family.default_params, "strength", 0))
        use = "commercial use allowed" if family.licence.commercial_use else "non-commercial use only"
        lines.append(f"• **{family.title}**: {family.licence.name}, {use} · {keeps} · {lengths} · {speed}")
    return "\n".join(lines)
