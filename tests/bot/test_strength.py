"""/restyle strength: ACE-Step's cover strength, asked in Discord: refused for MusicGen in one line,
stored with the job, handed to the engine, kept by Reroll, Remix and the buttons after a restart,
and a database of the previous schema opens with it."""

from __future__ import annotations

import math
import sqlite3

import pytest
from simcord.backend.errors import OptionError

from bot.checks import request_refusal
from bot.models import RequestOptions
from bot.schema import MIGRATIONS
from bot.store import Store
from tests.bot.conftest import seed_mp3, until
from tests.bot.test_acestep import two_families


def record_strengths(world) -> list[float]:
    """The cover strength of every job the ACE-Step engine is handed, in order."""
    engine = world.bot.worker.engines.get("debug-ace")
    original, seen = engine.generate_many, []

    def recording(jobs, progress, cancels):
        seen.extend(job.params.strength for job in jobs)
        return original(jobs, progress, cancels)

    engine.generate_many = recording
    return seen


async def _ace_job(world, **options):
    return await world.alice.slash(
        world.channel,
        "restyle",
        audio=("theme.mp3", seed_mp3(2.0)),
        prompt="harp",
        model="debug-ace",
        candidates=1,
        **options,
    )


async def test_a_strength_reaches_the_engine_and_reroll_remix_and_a_restart_keep_it(
    running, tmp_path, both_families
):
    config = two_families(tmp_path)
    world = await running(config, load_engine=both_families)
    strengths = record_strengths(world)
    reply = await _ace_job(world, strength=0.25)
    assert "Queued as job #1" in reply.response.content, reply.response.content
    assert (await world.bot.store.job(1)).strength == 0.25
    await until(world.env, lambda: world.results(), what="the results")
    assert strengths == [0.25]
    posted = world.results()[0]
    assert "strength 0.25" in posted.content

    reroll = await world.bob.click(posted, label="Reroll")
    assert "Queued as job #2" in reroll.response.content
    form = await world.alice.click(posted, label="Remix")
    remix = await world.alice.submit_modal(form, {"candidate": "1", "prompt": "brass band"})
    assert "Queued as job #3" in remix.response.content
    await until(world.env, lambda: len(world.results()) == 3, what="the reroll and the remix")
    assert strengths == [0.25, 0.25, 0.25]
    assert [(await world.bot.store.job(n)).strength for n in (2, 3)] == [0.25, 0.25]

    await world.bot.close()  # the buttons outlive the bot, and so does the strength
    again = await world.restart(config, both_families)
    strengths = record_strengths(world)
    after = await world.bob.click(posted, label="Reroll")
    assert "Queued as job #4" in after.response.content
    await until(world.env, lambda: len(world.results()) == 4, what="the reroll after the restart")
    assert strengths == [0.25] and (await again.store.job(4)).strength == 0.25


async def test_without_a_strength_the_familys_default_is_used(running, tmp_path, both_families):
    from generation.families import family_for

    world = await running(two_families(tmp_path), load_engine=both_families)
    strengths = record_strengths(world)
    await _ace_job(world)
    await until(world.env, lambda: world.results(), what="the results")
    assert (await world.bot.store.job(1)).strength is None
    assert strengths == [family_for("debug-ace").default_params.strength]


async def test_a_strength_for_musicgen_is_refused_in_one_private_line(running, tmp_path):
    world = await running(two_families(tmp_path), start_worker=False)
    reply = await world.alice.slash(
        world.channel, "restyle", audio=("theme.mp3", seed_mp3(2.0)), prompt="harp", strength=0.5
    )
    text = reply.response.content
    assert reply.ephemeral and "\n" not in text, text
    assert "strength" in text and "debug-ace" in text and "MusicGen" in text, text
    assert len(world.bot.queue) == 0 and await world.bot.store.job(1) is None


async def test_help_mentions_strength(running):
    world = await running(start_worker=False)
    shown = (await world.alice.slash(world.channel, "help")).response.content
    assert "`strength` (ACE-Step models only" in shown and len(shown) <= 2000


async def test_a_database_of_the_previous_schema_gains_strength(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        for number, script in enumerate(MIGRATIONS[:-1], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        db.execute(
            "INSERT INTO jobs (channel_id, user_id, prompt, model, candidates, duration_s, base_seed,"
            " seed_path, seed_name, seed_sha256, seed_duration_s, upload_limit, status, created_at,"
            " loop_intro_bars, loop_layers)"
            " VALUES (1, 2, 'old', 'debug-ace', 1, 4.0, 5, 's', 'n', 'h', 4.0, 100, 'done', 0, 0, 0)"
        )
    # Appended after the last one that shipped (intro and layers: number 5, its commit says "6").
    assert "loop_layers" in MIGRATIONS[-2] and "strength" in MIGRATIONS[-1]
    store = await Store.open(path)
    old = await store.job(1)
    assert (old.model, old.strength) == ("debug-ace", None)
    version = await store._one("PRAGMA user_version")
    assert version[0] == len(MIGRATIONS)
    await store.close()


async def test_a_strength_out_of_range_is_refused_by_discord_and_by_the_bot(running, tmp_path):
    config = two_families(tmp_path)
    world = await running(config, start_worker=False)
    with pytest.raises(OptionError, match="strength"):  # Discord holds /restyle to its declared range
        await _ace_job(world, strength=1.5)
    for strength in (1.5, -0.1, math.nan):  # and the bot's own check, should a request get past it
        options = RequestOptions(prompt="harp", candidates=1, model="debug-ace", strength=strength)
        assert "from 0" in request_refusal(config, options)
    assert len(world.bot.queue) == 0
