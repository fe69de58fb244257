"""Both families in one bot: /restyle's model choice, results that say their weights' licence,
a queue that never batches one family's jobs with the other's, cancel within a step, /help's table."""

from __future__ import annotations

import contextlib
import time

import pytest

from generation.audio.decode import decode_audio
from generation.families import family_for
from tests.bot.conftest import make_config, record_edits, seed_mp3, until


def two_families(tmp_path, **limits):
    return make_config(tmp_path, models={"available": ["debug-ace"]}, limits=limits)


async def _submit(world, actor, prompt: str, model: str | None = None, **options):
    if model is not None:
        options["model"] = model
    result = await actor.slash(
        world.channel, "restyle", audio=("theme.mp3", seed_mp3(2.0)), prompt=prompt, **options
    )
    assert "Queued" in result.response.content, result.response.content
    return result


def _job_of(message) -> int:
    return int(message.content.split("Job #")[1].split(" ")[0])


async def test_each_familys_results_say_its_licence(running, tmp_path, both_families):
    world = await running(two_families(tmp_path), load_engine=both_families)
    await _submit(world, world.alice, "chiptune", "debug-ace", candidates=2)
    await _submit(world, world.bob, "chiptune", candidates=1)
    await until(world.env, lambda: len(world.results()) == 2, what="both results")
    posted = {_job_of(message): message for message in world.results()}
    ace, musicgen = posted[1], posted[2]
    assert "MIT" in ace.content and "commercial" in ace.content and "debug-ace" in ace.content
    assert "CC-BY-NC 4.0" in musicgen.content and "non-commercial" in musicgen.content
    assert "CC-BY-NC" not in ace.content
    assert len(ace.attachments) == 2
    for attachment in ace.attachments:
        audio = decode_audio(await attachment.read())
        assert audio.source.endswith("48000 Hz, 2 ch"), audio.source
        assert audio.duration_s == pytest.approx(2.0, abs=0.06)
    assert "32000 Hz, 1 ch" in decode_audio(await musicgen.attachments[0].read()).source
    flac = await world.bob.click(ace, label="FLAC 1")
    assert "48 kHz" in flac.response.content
    assert decode_audio(await flac.response.attachments[0].read()).source.startswith("flac, 48000 Hz, 2 ch")
    job = await world.bot.store.job(1)
    assert (job.model, job.status) == ("debug-ace", "done")


async def test_the_two_families_never_share_a_batch(running, tmp_path, both_families):
    world = await running(two_families(tmp_path, batch_rows=8), start_worker=False, load_engine=both_families)
    await _submit(world, world.alice, "harp", candidates=1)
    await _submit(world, world.bob, "harp", "debug-ace", candidates=1)
    await _submit(world, world.moderator, "lute", candidates=1)
    await _submit(world, world.alice, "lute", "debug-ace", candidates=1)
    generated: list[list[str]] = []  # the engines' own calls: what really ran together
    for model in ("debug", "debug-ace"):
        engine = world.bot.worker.engines.get(model)
        original = engine.generate_many

        def recording(jobs, progress, cancels, original=original, model=model):
            generated.append([model] * len(jobs))
            return original(jobs, progress, cancels)

        engine.generate_many = recording
    await world.bot.start_worker()
    await until(world.env, lambda: len(world.results()) == 4, what="four results")
    assert sorted(generated) == [["debug", "debug"], ["debug-ace", "debug-ace"]]


@contextlib.contextmanager
def slow_steps(pipe, seconds: float):
    """A slower device: every DiT pass (one a step) takes `seconds` longer; the passes are counted."""
    calls: list[float] = []

    def hook(*_):
        calls.append(time.monotonic())
        time.sleep(seconds)

    handle = pipe.transformer.register_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


async def test_cancelling_a_running_ace_step_job_stops_it_within_a_step(
    running, tmp_path, both_families, debug_ace
):
    world = await running(two_families(tmp_path), load_engine=both_families)
    with slow_steps(debug_ace.pipe, 0.4) as passes:
        await _submit(world, world.alice, "long drone", "debug-ace", candidates=1)
        await until(world.env, lambda: "step 1/8" in world.status_of(1).content, what="the first step")
        reply = await world.alice.click(world.status_of(1), label="Cancel")
        at_cancel = len(passes)
        assert "Stopping job #1" in reply.response.content
        await until(world.env, lambda: "Cancelled by alice" in world.status_of(1).content, what="the stop")
    assert len(passes) - at_cancel <= 1  # the step it arrived in ends; no other starts
    assert len(passes) < 8
    assert (await world.bot.store.job(1)).status == "cancelled"
    assert world.results() == []
    assert world.bot.worker.running == []


async def test_progress_counts_the_denoising_steps(running, tmp_path, both_families, debug_ace):
    world = await running(two_families(tmp_path), load_engine=both_families)
    edits = record_edits(world)
    with slow_steps(debug_ace.pipe, 0.25):
        await _submit(world, world.alice, "strings", "debug-ace", candidates=1)
        await until(world.env, lambda: world.results(), what="the result")
    steps = [int(text.split("step ")[1].split("/")[0]) for text in edits if "step " in text]
    assert steps == sorted(steps) and steps[-1] == 8 and len(steps) >= 3, steps
    assert all("/8 " in text for text in edits if "step " in text)


async def test_help_has_a_table_of_the_models(running):
    world = await running(start_worker=False)
    shown = (await world.alice.slash(world.channel, "help")).response.content
    for needle in ("MusicGen-melody", "ACE-Step 1.5", "CC-BY-NC 4.0", "MIT", "rhythm", "structure", "RTF"):
        assert needle in shown, needle
    assert len(shown) <= 2000


async def test_a_length_the_model_cannot_make_is_refused_before_queueing(running, tmp_path, debug_ace):
    folder = tmp_path / "cover-model"
    debug_ace.pipe.save_pretrained(folder)  # the real model's lengths: 10 s to 10 minutes
    config = make_config(tmp_path, models={"available": [str(folder)]})
    world = await running(config, start_worker=False)
    reply = await world.alice.slash(
        world.channel, "restyle", audio=("theme.mp3", seed_mp3(2.0)), prompt="harp", model=str(folder)
    )
    assert reply.ephemeral and "10.0 s to 10:00" in reply.response.content, reply.response.content
    assert len(world.bot.queue) == 0 and await world.bot.store.job(1) is None
    assert world.bot_messages() == []


async def test_waiting_times_count_each_models_own_speed(running, tmp_path, both_families):
    """An ACE-Step job is 8 long steps, a MusicGen one hundreds of short ones: each at its own pace."""
    world = await running(two_families(tmp_path), start_worker=False, load_engine=both_families)
    world.bot.worker.seconds_per_step.update({"debug": 0.01, "debug-ace": 10.0})
    await _submit(world, world.alice, "harp", "debug-ace", candidates=1, duration=2.0)
    await _submit(world, world.bob, "harp", candidates=1, duration=2.0)
    ace = 8 * 10.0
    musicgen = world.bot.queue.ordered()[1].steps * 0.01
    assert world.bot.jobs.eta(1) == pytest.approx(ace)
    assert world.bot.jobs.eta(2) == pytest.approx(ace + musicgen)


async def test_a_reroll_or_remix_of_a_model_no_longer_offered_is_refused(running, tmp_path, both_families):
    world = await running(two_families(tmp_path), load_engine=both_families)
    await _submit(world, world.alice, "chiptune", "debug-ace", candidates=1)
    await until(world.env, lambda: world.results(), what="the results")
    loaded: list[str] = []

    def load(model: str):
        loaded.append(model)
        return both_families(model)

    again = await world.restart(make_config(tmp_path), load)  # debug-ace is no longer offered
    for press in ("Reroll", "Remix"):
        reply = await world.bob.click(world.results()[0], label=press)
        text = reply.response.content
        assert reply.ephemeral and "debug-ace" in text and "\n" not in text, text
        assert reply.modal is None
    assert len(again.queue) == 0 and "debug-ace" not in loaded
    assert await again.store.jobs_with_status("queued", "running") == []


async def test_a_fresh_bot_guesses_an_ace_step_wait_from_the_family(running, tmp_path, debug_ace):
    """No job timed yet: the wait is the family's first guess for this device and length, so a
    CPU never promises a cover "under a minute" (the old guess was MusicGen's, on a GPU)."""
    folder = tmp_path / "cover-model"
    debug_ace.pipe.save_pretrained(folder)  # not a random build: the real model's first guess
    config = make_config(tmp_path, models={"available": [str(folder)], "device": "cpu"})
    world = await running(config, start_worker=False)
    reply = await world.alice.slash(
        world.channel, "restyle", audio=("theme.mp3", seed_mp3(12.0)), prompt="harp", model=str(folder)
    )
    assert "Queued as job #1" in reply.response.content, reply.response.content
    job = await world.bot.store.job(1)
    family = family_for(str(folder))
    guess = family.total_steps(job.duration_s) * family.first_guess_step_s(str(folder), "cpu", job.duration_s)
    assert world.bot.jobs.eta(1) == pytest.approx(guess)
    assert guess > 60 and "under a minute" not in reply.response.content
    assert "under a minute" not in world.status_of(1).content
