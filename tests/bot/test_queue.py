"""The queue as a community sees it: fair turns, cancels, batching, /queue."""

from __future__ import annotations

from tests.bot.conftest import make_config, record_edits, seed_mp3, until


async def _submit(world, actor, prompt: str, seconds: float = 2.0, **options):
    result = await actor.slash(
        world.channel, "restyle", audio=("seed.mp3", seed_mp3(seconds)), prompt=prompt, **options
    )
    assert "Queued" in result.response.content, result.response.content
    return result


async def _ended(world, *job_ids: int) -> bool:
    jobs = [await world.bot.store.job(job_id) for job_id in job_ids]
    return all(job.status in ("done", "cancelled", "failed") for job in jobs)


async def test_a_newcomer_does_not_wait_behind_someone_elses_jobs(running, tmp_path):
    world = await running(make_config(tmp_path, limits={"batch_rows": 1}), start_worker=False)
    for index in range(3):
        await _submit(world, world.alice, f"alice {index}", candidates=1)
    await _submit(world, world.bob, "bob's first", candidates=1)
    assert [job.job_id for job in world.bot.queue.ordered()] == [1, 4, 2, 3]
    await world.bot.start_worker()
    await until(world.env, lambda: len(world.results()) == 4, what="four results")
    posted = sorted(world.results(), key=lambda message: message.id)  # the worker runs one job at a time
    assert [int(m.content.split("Job #")[1].split(" ")[0]) for m in posted] == [1, 4, 2, 3]


async def test_compatible_jobs_share_a_batch(running, tmp_path):
    world = await running(make_config(tmp_path, limits={"batch_rows": 8}), start_worker=False)
    await _submit(world, world.alice, "harp", candidates=2, duration=3.0)
    await _submit(world, world.bob, "banjo", candidates=1, duration=3.0)
    await _submit(world, world.moderator, "odd length", candidates=1, duration=4.0)
    batches: list[list[int]] = []
    original = world.bot.worker._run_batch
    world.bot.worker._run_batch = lambda batch: (
        batches.append([job.job_id for job in batch]),
        original(batch),
    )
    await world.bot.start_worker()
    await until(world.env, lambda: len(world.results()) == 3, what="three results")
    assert batches == [[1, 2], [3]]  # the two 3 s jobs together, the 4 s one after


async def test_the_owner_cancels_a_queued_job(running):
    world = await running(start_worker=False)
    await _submit(world, world.alice, "first")
    await _submit(world, world.alice, "second")
    reply = await world.alice.click(world.status_of(2), label="Cancel")
    assert reply.ephemeral and "Cancelled job #2" in reply.response.content
    assert "Cancelled by alice" in world.status_of(2).content
    assert not world.status_of(2).components  # no Cancel button left
    await world.bot.start_worker()
    await until(world.env, lambda: len(world.results()) == 1, what="the first result")
    assert (await world.bot.store.job(2)).status == "cancelled"
    assert "Job #1" in world.results()[0].content


async def test_only_the_owner_or_a_moderator_may_cancel(running):
    world = await running(start_worker=False)
    await _submit(world, world.alice, "first")
    refused = await world.bob.click(world.status_of(1), label="Cancel")
    assert refused.ephemeral and "Only the person who asked" in refused.response.content
    assert len(world.bot.queue) == 1
    allowed = await world.moderator.click(world.status_of(1), label="Cancel")
    assert "Cancelled job #1" in allowed.response.content
    assert "Cancelled by mod" in world.status_of(1).content


async def test_cancelling_a_running_job_stops_it(running, tmp_path):
    world = await running(make_config(tmp_path, models={"backend": "reference"}))
    await _submit(world, world.alice, "long drone", seconds=30.0, candidates=1)
    await until(world.env, lambda: "step" in world.status_of(1).content, what="the job to run")
    reply = await world.alice.click(world.status_of(1), label="Cancel")
    assert "Stopping job #1" in reply.response.content
    await until(
        world.env, lambda: "Cancelled by alice" in world.status_of(1).content, timeout=10, what="the stop"
    )
    assert (await world.bot.store.job(1)).status == "cancelled"
    assert world.results() == []
    assert world.bot.worker.running == []


async def test_progress_is_shown_and_throttled(running, tmp_path):
    world = await running(
        make_config(tmp_path, models={"backend": "reference"}, progress={"edit_interval_seconds": 0.3})
    )
    edits = record_edits(world)
    await _submit(world, world.alice, "slow strings", seconds=20.0, candidates=1)
    await until(world.env, lambda: world.results(), what="the result")
    progress = [text for text in edits if "step" in text]
    assert len(progress) >= 3, progress
    assert "100%" in progress[-1] and "step 1003/1003" in progress[-1]
    steps = [int(text.split("step ")[1].split("/")[0]) for text in progress]
    assert steps == sorted(steps)
    # ~1003 steps at ~2 ms: a few seconds, so a 0.3 s interval allows tens of edits, never hundreds.
    assert len(progress) < 60


async def test_queue_lists_running_and_waiting_jobs(running):
    world = await running(start_worker=False)
    await _submit(world, world.alice, "first")
    await _submit(world, world.bob, "second")
    listing = await world.bob.slash(world.channel, "queue")
    assert listing.ephemeral
    lines = listing.response.content.splitlines()
    assert lines[0].startswith("1. job #1") and lines[1].startswith("2. job #2")


async def test_a_long_queue_is_listed_within_one_message(running, tmp_path):
    limits = {"max_jobs_per_user": 20, "max_queue": 20}
    world = await running(make_config(tmp_path, limits=limits), start_worker=False)
    for index in range(20):
        await _submit(world, world.alice, f"{index:02} " + "lush orchestral swells " * 12)
    listing = await world.bob.slash(world.channel, "queue")
    assert listing.ephemeral
    lines = listing.response.content.splitlines()
    assert lines[0].startswith("1. job #1") and len(listing.response.content) <= 2000
    assert lines[-1].startswith("…and") or len(lines) == 20
