"""User text inside the bot's messages: one line, shown as typed, no tricks, no pings, no unfurls."""

from __future__ import annotations

import discord
import pytest

from bot import texts, user_text
from bot.models import CandidateRow, JobRow, NewJob
from bot.replies import without_paths
from tests.bot.conftest import seed_mp3


def test_clean_keeps_one_line_of_visible_text():
    assert user_text.clean("lofi\nbeats\r\n\tslow\x00ly") == "lofi beats slowly"
    # Bidi overrides and isolates would turn the rest of the bot's line around.
    assert user_text.clean("song\u202emp3.exe\u2066x\u2069\u200f") == "songmp3.exex"
    assert user_text.clean("  ") == "" and user_text.clean("emoji 👩‍🎤 stay") == "emoji 👩‍🎤 stay"


def test_safe_escapes_markdown_and_mentions_and_keeps_links_quiet():
    assert user_text.safe("*bold* _it_ ~~s~~ ||spoiler||") == r"\*bold\* \_it\_ \~\~s\~\~ \|\|spoiler\|\|"
    assert "@\u200beveryone" in user_text.safe("hey @everyone")
    assert user_text.safe("join discord.gg/abc now") == "join <https://discord.gg/abc> now"
    assert (
        user_text.safe("see https://x.io/a_b and <https://y.io>")
        == "see <https://x.io/a_b> and <https://y.io>"
    )
    assert user_text.safe("discord.com/invite/xyz") == "<https://discord.com/invite/xyz>"
    assert "\n" not in user_text.safe("two\nlines")


def test_safe_shortens_on_request():
    shown = user_text.safe("long " * 100, limit=40)
    assert len(shown) <= 40 and shown.endswith("…")
    assert user_text.safe("short", limit=40) == "short"


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("my_new_song.mp3", "`my_new_song.mp3`"),  # no escape backslashes inside a code span
        ("a`b`c.mp3", "`aˋbˋc.mp3`"),  # a backtick would end the span
        ("\u202eevil\n.mp3", "`evil .mp3`"),
        ("@everyone.mp3", "`@everyone.mp3`"),  # a code span never pings or renders markdown
        ("\x00", "`?`"),  # an empty span would show its backticks
    ],
)
def test_code_shows_a_filename_literally(name, shown):
    assert user_text.code(name) == shown


def test_code_shortens_long_names():
    shown = user_text.code("x" * 1900 + ".mp3")
    assert len(shown) <= texts.NAME_SHOWN + 2 and shown.endswith("…`")


def _job(prompt: str, job_id: int) -> JobRow:
    new = NewJob(
        channel_id=1,
        guild_id=2,
        user_id=3,
        prompt=prompt,
        model="debug",
        candidates=2,
        duration_s=30.0,
        base_seed=7,
        seed_path="/s.mp3",
        seed_name="s.mp3",
        seed_sha256="ab",
        seed_duration_s=30.0,
        upload_limit=10_000_000,
        created_at=0.0,
    )
    return JobRow(**vars(new), id=job_id)


def test_listings_fit_in_one_discord_message():
    waiting = [_job("a very long prompt " * 25, job_id) for job_id in range(1, 41)]
    listing = texts.queue_listing(waiting[:2], waiting[2:])
    assert len(listing) <= texts.MESSAGE_LIMIT
    assert listing.splitlines()[-1].startswith("…and ") and "more waiting" in listing
    board = texts.leaderboard([(job, 1, 3) for job in waiting[:10]])
    assert len(board) <= texts.MESSAGE_LIMIT and board.count("\n") == 10  # every row, shortened


async def test_what_the_channel_sees(running):
    world = await running(start_worker=False)
    bosses = world.guild.create_role("Bosses", permissions=discord.Permissions(manage_messages=True))
    boss = world.guild.add_member(world.env.create_user("b"), nick="**boss** @everyone", roles=[bosses])
    prompt = "lofi \u202ebeats discord.gg/abc"
    await world.alice.slash(world.channel, "restyle", audio=("my_new_song.mp3", seed_mp3(2.0)), prompt=prompt)
    status = world.status_of(1).content
    assert "`my_new_song.mp3`" in status
    assert "\u202e" not in status and "<https://discord.gg/abc>" in status
    await boss.click(world.status_of(1), label="Cancel")
    assert "Cancelled by \\*\\*boss\\*\\* @\u200beveryone." in world.status_of(1).content


HOSTILE_PROMPT = "*_`~|>@" * 143  # 1,001 characters that each escape to two
HOSTILE_NAME = "_" * 1900 + ".mp3"


@pytest.fixture
def hostile_job() -> JobRow:
    return JobRow(
        channel_id=1,
        guild_id=2,
        user_id=3,
        prompt=HOSTILE_PROMPT,
        model="facebook/musicgen-melody",
        candidates=4,
        duration_s=120.0,
        base_seed=10**9,
        seed_path="/data/seeds/x.mp3",
        seed_name=HOSTILE_NAME,
        seed_sha256="0" * 64,
        seed_duration_s=120.0,
        upload_limit=10 * 2**20,
        created_at=0.0,
        kind="remix",
        parent_id=99_999,
        id=123_456,
    )


def test_status_messages_fit_whatever_a_member_sends(hostile_job):
    link = "https://discord.com/channels/" + "9" * 19 + "/" + "9" * 19 + "/" + "9" * 19
    for text in (
        texts.queued(hostile_job, 20, 7200.0),
        texts.running(hostile_job, 1234, 6012, 3600.0),
        texts.done(hostile_job, link),
        texts.failed(hostile_job, texts.unsaved(OSError(28, "No space left on device"))),
        texts.cancelled(hostile_job, "m" * 32),
    ):
        assert len(text) <= texts.MESSAGE_LIMIT
        assert "…" in text  # the member's text was cut, not the message refused by Discord


def test_results_and_tallies_fit_whatever_a_member_sends(hostile_job):
    candidates = [CandidateRow(1, idx, 10**9 + idx, 0.5, "a.mp3", "a.flac", 32_000) for idx in range(1, 5)]
    assert len(texts.results(hostile_job, candidates, 10 * 2**20, 2e9)) <= texts.MESSAGE_LIMIT
    assert len(texts.tallies(hostile_job, {1: 10**6, 2: 3})) <= texts.MESSAGE_LIMIT


def test_a_loops_results_fit_with_every_seam_in_words(hostile_job):
    from dataclasses import replace

    from generation.audio.seam import SeamFigures
    from generation.game_music import seam_verdict

    loop = replace(
        hostile_job, loop=True, loop_bars=64, loop_tempo=117.25, loop_intro_bars=16, loop_layers=True
    )
    candidates = [CandidateRow(1, idx, 10**9 + idx, 0.5, "a.mp3", "a.flac", 32_000) for idx in range(1, 5)]
    rough = seam_verdict(SeamFigures(9.9, 99.9, 1.0, 1.0, 99.9), where="where the intro meets the loop")
    text = texts.results(loop, candidates, 10 * 2**20, 2e9, seams=dict.fromkeys(range(1, 5), rough))
    assert len(text) <= texts.MESSAGE_LIMIT
    assert len(texts.results(loop, candidates, 10 * 2**20, 2e9, seams={1: rough})) <= texts.MESSAGE_LIMIT
    # Too long in full: each candidate's seam said briefly (its Loop button gives the figures).
    brief = "not quite seamless where the intro meets the loop"
    assert all(f"{texts.NUMBERS[idx - 1]} {brief}\n" in text for idx in range(1, 5))
    assert "loops seamlessly" not in text


def test_server_paths_are_cut_and_nothing_else():
    cut = {
        "There is no file at /srv/restyle/data/seeds/ab12.wav.": "There is no file at ….",
        "No weights at C:\\models\\ace\\model_index.json: fetch them.": "No weights at …: fetch them.",
        "see ~/.cache/huggingface/hub (offline)": "see … (offline)",
        "The model `/opt/models/cover` is no longer offered": "The model `…` is no longer offered",
    }
    for text, shown in cut.items():
        assert without_paths(text) == shown
    kept = "24/7 AC/DC lo-fi / jazz, start a new /restyle, https://discord.com/channels/1/2/3 discord.gg/a/b"
    assert without_paths(kept) == kept
