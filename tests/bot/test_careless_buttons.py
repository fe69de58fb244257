"""What a careless or hostile member can do with /restyle and the buttons (issue 23, the bot's side):
no server path ever reaches Discord, a loop's buttons work on whatever /restyle admitted (and keep
to today's limits), opposite-phase stereo is heard, and a prompt of invisible characters is empty."""

from __future__ import annotations

import json
import shutil

import pytest

from generation.errors import ModelUnavailableError, RestyleError
from generation.pipeline import MIN_OUTPUT_S
from tests.audio_factory import melody, pcm_wav
from tests.bot.conftest import make_config, seed_mp3, until
from tests.bot.test_acestep import two_families
from tests.bot.test_refusals import _reconfigure

RATE = 32_000


def sent_to_discord(world) -> str:
    """Everything the bot sent Discord (messages, edits, interaction replies), as one text."""
    return "\n".join(json.dumps(request.json, ensure_ascii=False) for request in world.env.http_requests)


def assert_no_server_path(world) -> None:
    data_dir = str(world.bot.config.bot.data_dir)
    sent = sent_to_discord(world)
    assert sent and data_dir not in sent and data_dir.replace("/", "\\/") not in sent


async def _finished_job(world, **options) -> object:
    options.setdefault("audio", ("theme.mp3", seed_mp3(2.0)))
    await world.alice.slash(world.channel, "restyle", prompt="harp", candidates=1, **options)
    await until(world.env, lambda: world.results(), what="the results")
    return world.results()[-1]


async def test_reroll_and_remix_of_files_gone_from_the_data_dir_say_they_expired(running):
    world = await running()
    posted = await _finished_job(world)
    data = world.bot.files
    shutil.rmtree(data.seeds)  # gone from the data dir, though the job does not know it yet
    shutil.rmtree(data.results)
    data.create()

    reroll = await world.bob.click(posted, label="Reroll")
    assert reroll.ephemeral and reroll.response.content == "That job's files have expired."
    form = await world.alice.click(posted, label="Remix")
    remix = await world.alice.submit_modal(form, {"candidate": "1", "prompt": "brass band"})
    assert remix.ephemeral and remix.response.content == "That job's files have expired."
    assert len(world.bot.queue) == 0 and await world.bot.store.job(2) is None
    assert_no_server_path(world)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # The server's own trouble: the member reads a fixed line, the admin the log.
        (ModelUnavailableError, "could not be loaded on the server"),
        # Any other failure is shown in its words, its paths cut out.
        (RestyleError, "No weights at"),
    ],
)
async def test_no_failure_shows_a_server_path(running, tmp_path, both_families, error, expected):
    """A failure whose words carry a path (a model's folder, say) shows none of it."""
    config = two_families(tmp_path)
    where = config.bot.data_dir / "models" / "debug-ace"

    def load(model: str):
        if model == "debug-ace":
            raise error(f"No weights at {where}/model_index.json: fetch them first.")
        return both_families(model)

    world = await running(config, load_engine=load)
    await world.alice.slash(
        world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="harp", model="debug-ace"
    )
    await until(world.env, lambda: "❌" in world.status_of(1).content, what="the failure")
    shown = world.status_of(1).content
    assert expected in shown, shown
    assert_no_server_path(world)
    assert "/model_index.json" not in sent_to_discord(world)


async def test_a_loop_shorter_than_the_floor_is_planned_whole_bars_long_enough(running):
    """One bar at 300 BPM is 0.8 s: /restyle plans the fewest whole bars that last the floor, and
    Reroll and Remix take what it made."""
    world = await running()
    groove = ("groove.wav", _groove())
    reply = await world.alice.slash(
        world.channel, "restyle", audio=groove, prompt="chip", loop=True, bpm=300.0, duration=1.0
    )
    assert "Queued as job #1" in reply.response.content, reply.response.content
    job = await world.bot.store.job(1)
    assert (job.loop_bars, job.loop_tempo) == (2, 300.0)
    assert job.duration_s >= MIN_OUTPUT_S
    await until(world.env, lambda: world.results(), what="the results")
    posted = world.results()[0]

    reroll = await world.bob.click(posted, label="Reroll")
    assert "Queued as job #2" in reroll.response.content, reroll.response.content
    form = await world.alice.click(posted, label="Remix")
    remix = await world.alice.submit_modal(form, {"candidate": "1", "prompt": "brass band"})
    assert "Queued as job #3" in remix.response.content, remix.response.content
    for job_id in (2, 3):
        again = await world.bot.store.job(job_id)
        assert (again.loop_bars, again.loop_tempo, again.duration_s) == (2, 300.0, job.duration_s)


async def test_a_reroll_after_the_limit_dropped_plans_the_loop_within_it(running, tmp_path):
    world = await running(make_config(tmp_path, limits={"max_output_seconds": 60}))
    await world.alice.slash(
        world.channel, "restyle", audio=("groove.wav", _groove()), prompt="chip", loop=True, duration=8.0
    )
    await until(world.env, lambda: world.results(), what="the results")
    assert (await world.bot.store.job(1)).loop_bars == 4  # 8 s at 120 BPM
    _reconfigure(world, limits=_limits(world, max_output_seconds=5.0))
    reroll = await world.bob.click(world.results()[0], label="Reroll")
    assert "Queued as job #2" in reroll.response.content, reroll.response.content
    rerolled = await world.bot.store.job(2)
    assert (rerolled.loop_bars, rerolled.loop_tempo, rerolled.duration_s) == (2, 120.0, 4.0)


def _limits(world, **changes):
    import dataclasses

    return dataclasses.replace(world.bot.config.limits, **changes)


def _groove(seconds: float = 6.0) -> bytes:
    from tests.bot.test_loops import groove_wav

    return groove_wav(seconds)


def opposite_phase_wav(seconds: float = 2.0) -> bytes:
    """Stereo whose channels cancel in a mono mix: each channel holds the tune."""
    tune = melody([392.0, 440.0, 493.9, 523.3], seconds / 4, RATE)
    return pcm_wav([tune, -tune], RATE)


@pytest.mark.parametrize("model", ["debug", "debug-ace"])
async def test_opposite_phase_stereo_is_heard_by_either_family(running, tmp_path, both_families, model):
    world = await running(two_families(tmp_path), load_engine=both_families)
    reply = await world.alice.slash(
        world.channel,
        "restyle",
        audio=("phase.wav", opposite_phase_wav()),
        prompt="harp",
        model=model,
        candidates=1,
    )
    assert "Queued as job #1" in reply.response.content, reply.response.content
    await until(world.env, lambda: world.results(), what="the results")
    assert (await world.bot.store.job(1)).status == "done"


async def test_a_reroll_past_lowered_limits_says_what_the_member_can_do(running, tmp_path):
    """A job that is not a loop cannot be planned again shorter: its buttons say it was made under
    other limits and point to /restyle; a remix's own prompt is refused as the member typed it."""
    world = await running()
    posted = await _finished_job(world, audio=("theme.mp3", seed_mp3(6.0)))
    _reconfigure(world, limits=_limits(world, max_output_seconds=4.0))
    reroll = await world.bob.click(posted, label="Reroll")
    text = reroll.response.content
    assert reroll.ephemeral and "Job #1" in text and "/restyle" in text and "4.0 s" in text, text
    form = await world.alice.click(posted, label="Remix")
    remix = await world.alice.submit_modal(form, {"candidate": "1", "prompt": "\u200b"})
    assert remix.response.content == "The style prompt is empty: describe the style you want."
    assert len(world.bot.queue) == 0
