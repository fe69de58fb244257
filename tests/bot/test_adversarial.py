"""A hostile pass on the bot's buttons and per-job memory: two members pressing Cancel at once,
results Discord refuses for good, and what the job board and the worker still hold of a job whose
story has ended (nothing: anything kept grows with every job the bot ever ran)."""

from __future__ import annotations

import asyncio

import pytest
import simcord.http.router
from simcord.backend.errors import BackendError

import bot.lifecycle
from bot.replies import UPLOAD_MARGIN
from generation.errors import ModelUnavailableError
from tests.bot.conftest import at_once, click_call, make_config, seed_mp3, until
from tests.bot.test_crash_stages import Crash, _after
from tests.bot.test_locked_database import SHORT_BUSY_TIMEOUT, hold_database
from tests.bot.test_loops import BAR_120, _loop_job
from tests.generation.audio.loop_audio import smpl_loops


def held(world) -> dict[str, object]:
    """Everything the board and the worker keep per job: empty once every job has ended."""
    board, worker = world.bot.jobs, world.bot.worker
    kept = {
        "orders": dict(board._orders),
        "interactions": dict(board._interactions),
        "progress": dict(board._progress),
        "cancelled_by": dict(board._cancelled_by),
        "locks": dict(board._locks),
        "early_cancels": set(worker._early_cancels),
        "tokens": dict(worker._tokens),
    }
    return {name: value for name, value in kept.items() if value}


async def _queued(world, actor, prompt: str = "calm"):
    reply = await actor.slash(world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt=prompt)
    assert "Queued" in reply.response.content, reply.response.content
    return reply


async def test_two_members_cancel_one_queued_job_at_once_and_nothing_is_kept(running):
    world = await running(start_worker=False)
    for _ in range(3):
        await _queued(world, world.alice)
    for job_id in (1, 2, 3):  # the owner and a moderator, at the same instant (a double-click too)
        status = world.status_of(job_id)
        replies = await at_once(
            world.env,
            [click_call(world.alice, status, "Cancel"), click_call(world.moderator, status, "Cancel")],
        )
        answers = [reply.response.content for reply in replies]
        assert all(f"job #{job_id}" in answer for answer in answers), answers
        assert (await world.bot.store.job(job_id)).status == "cancelled"
        assert "Cancelled by" in world.status_of(job_id).content
    assert held(world) == {}


@pytest.mark.parametrize(
    "refusal",
    [
        {"status": 413, "code": 40005, "message": "Request entity too large"},  # for good
        {"status": 502, "message": "Bad Gateway"},  # again and again, until the bot gives up
    ],
    ids=["refused-for-good", "kept-failing"],
)
async def test_results_discord_will_not_take_leave_nothing_kept(running, monkeypatch, refusal):
    monkeypatch.setattr(bot.lifecycle, "MAX_POST_ATTEMPTS", 1)
    world = await running(start_worker=False)
    await _queued(world, world.alice)
    for path in ("/webhooks/*", "/channels/*/messages"):
        world.env.inject_error("POST", path, times=None, **refusal)
    await world.bot.start_worker()

    async def failed() -> bool:
        return (await world.bot.store.job(1)).status == "failed"

    await until(world.env, failed, what="the job to fail")
    await world.env.settle()
    assert held(world) == {}


async def test_a_finished_job_leaves_nothing_kept(running):
    world = await running()
    await _queued(world, world.alice)
    await until(world.env, lambda: world.results(), what="the results")
    await world.env.settle()
    assert held(world) == {}


async def test_a_cancel_that_lands_as_the_job_finishes_is_not_kept(running):
    world = await running()
    # The race, made certain: the press reaches the worker just after its last look at the token,
    # so the worker says it is stopping the job, and the job finishes and is posted anyway.
    world.bot.worker.cancel = lambda job_id: True
    await _queued(world, world.alice)
    await until(world.env, lambda: world.bot.jobs._progress, what="the job to run")
    reply = await world.alice.click(world.status_of(1), label="Cancel")
    assert "Stopping job #1" in reply.response.content
    await until(world.env, lambda: world.results(), what="the results")
    await world.env.settle()
    assert held(world) == {}


async def test_a_model_that_fails_to_load_shows_members_no_server_path(
    running, tmp_path, shared_engine_loader
):
    # The second model's cache snapshot went bad after start-up: its loader's message names the
    # folder, which is the admin's business (the log has it), not the channel's.
    broken = tmp_path / "hub" / "models--someone--melody" / "snapshots" / "0123abcd"

    def load(model: str):
        if model == "debug-ace":
            raise ModelUnavailableError(f"{broken} does not hold a complete MusicGen-melody model.")
        return shared_engine_loader(model)

    world = await running(make_config(tmp_path, models={"available": ["debug-ace"]}), load_engine=load)
    reply = await world.alice.slash(
        world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="calm", model="debug-ace"
    )
    assert "Queued" in reply.response.content, reply.response.content

    async def failed() -> bool:
        return (await world.bot.store.job(1)).status == "failed"

    await until(world.env, failed, what="the job to fail")
    status = world.status_of(1).content
    assert "could not be loaded" in status
    assert str(tmp_path) not in status and "snapshots" not in status
    assert str(tmp_path) not in (await world.bot.store.job(1)).error


@pytest.mark.parametrize("stage", ["rendered", "posting"])
async def test_a_kill_while_a_loop_job_posts_posts_it_once_and_keeps_its_files(
    running, tmp_path, shared_engine_loader, stage
):
    config = make_config(tmp_path)
    world = await running(config)
    crash = Crash(world, config, tmp_path / "image")
    if stage == "rendered":
        _after(world.bot.store, "mark_rendered", crash, lambda _, job_id, *__: job_id == 1)
    else:

        def on_message(event: str, payload) -> None:  # Discord has the post; the bot has no answer yet
            if event == "MESSAGE_CREATE" and "Job #1 is ready" in payload.get("content", ""):
                crash.now()

        world.env.backend.subscribers.append(on_message)
    await _loop_job(world, candidates=2, intro=1, layers=True)
    await until(world.env, lambda: crash.done, what=f"the kill at {stage}")
    again = await crash.restart(shared_engine_loader)

    async def done() -> bool:
        return (await again.store.job(1)).status == "done"

    await until(world.env, done, what="the job to be done")
    posted = [message for message in world.results() if "Job #1 is ready" in message.content]
    assert len(posted) == 1
    for idx in (1, 2):
        download = await world.bob.click(posted[0], label=f"Loop {idx}")
        files = [
            attachment
            for message in (download.response, *download.followups)
            for attachment in message.attachments
        ]
        assert [file.filename for file in files] == [
            f"restyle-1-{idx}-loop.wav",
            *(f"restyle-1-{idx}-loop-{layer}.wav" for layer in ("drums", "bass", "other", "vocals")),
        ]
        for file in files:
            assert smpl_loops(await file.read()) == [(0, BAR_120, 3 * BAR_120 - 1, 0)]


async def test_discord_refusing_the_loop_files_is_said_in_one_line(running, discord_limits):
    world = await running()
    await _loop_job(world, candidates=1, layers=True)
    await until(world.env, lambda: world.results(), what="the results")
    posted = world.results()[0]
    wav_size = (world.bot.files.results / "1" / "1-loop.wav").stat().st_size
    discord_limits.upload = UPLOAD_MARGIN + 2 * wav_size + 1024  # three messages: 2, 2 and 1 files

    world.env.inject_error(
        "POST", "/interactions/*", status=413, code=40005, message="Request entity too large"
    )
    first = await world.bob.click(posted, label="Loop 1")
    assert (
        first.ephemeral and first.response.content == "Discord refused the files: Request entity too large."
    )
    assert not first.response.attachments and not first.followups

    world.env.inject_error("POST", "/webhooks/*", status=413, code=40005, message="Request entity too large")
    second = await world.bob.click(posted, label="Loop 1")  # the first part goes, the second is refused
    assert len(second.response.attachments) == 2
    assert [message.content for message in second.followups] == [
        "Discord refused the files: Request entity too large."
    ]
    for message in (first.response, second.response, *second.followups):
        assert str(world.bot.files.root) not in message.content and "Traceback" not in message.content


async def test_cancel_while_another_process_holds_the_database_is_answered(running):
    world = await running(start_worker=False)
    await _queued(world, world.alice)
    await world.bot.store.db.execute(SHORT_BUSY_TIMEOUT)
    holder = hold_database(world.bot.files.database, 1.5)

    async def three_seconds_pass() -> None:  # Discord's clock, while the bot waits for the database
        await asyncio.sleep(0.3)
        world.env.backend.clock.advance(4.0)

    passing = asyncio.create_task(three_seconds_pass())
    reply = await world.alice.click(world.status_of(1), label="Cancel")
    await passing
    await until(world.env, lambda: not holder.is_alive(), what="the other process to let go")
    assert reply.ephemeral and "Cancelled job #1" in reply.response.content
    assert (await world.bot.store.job(1)).status == "cancelled"


async def test_results_discord_made_but_answered_500_are_posted_once(running, monkeypatch):
    """Discord can create a message and still answer 500 (an incident on its side); the bot's
    next try must find it rather than post the results twice."""
    dispatch = simcord.http.router.dispatch
    answered: list[str] = []

    def made_then_500(backend, method, path, **request):
        result = dispatch(backend, method, path, **request)
        body = request.get("json")
        content = (body.get("content") or "") if isinstance(body, dict) else ""
        if method == "POST" and "is ready" in content and not answered:
            answered.append(path)
            raise BackendError(500, 0, "Internal Server Error")
        return result

    monkeypatch.setattr(simcord.http.router, "dispatch", made_then_500)
    world = await running()
    await _queued(world, world.alice)
    await until(world.env, lambda: answered, what="the results to be answered 500")
    await world.env.advance_time(61)  # the bot tries again, and finds the message Discord made

    async def done() -> bool:
        return (await world.bot.store.job(1)).status == "done"

    await until(world.env, done, what="the job to be done")
    assert len(world.results()) == 1, [message.content[:40] for message in world.results()]
