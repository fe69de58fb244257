"""kill -9 at each stage of a job's life, with the queue full: a new bot on what the dead one left
behind posts every job exactly once, loses no vote, and leaves nothing stuck.

The kill: at the chosen moment the data dir is copied as a killed process leaves it (SQLite's
committed state, through its backup API, so no write is torn; the files as they are), and the
old bot is cut off from Discord and from its GPU thread, so it does nothing more. A new bot
then starts on that copy against the same offline Discord.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.client import RestyleBot
from bot.config import BotConfig
from bot.texts import NUMBERS
from generation.musicgen.engine import MusicGenEngine
from tests.bot.conftest import World, make_config, seed_mp3, until

STAGES = ("recorded", "queued", "running", "rendered", "posting", "posting-in-channel", "posted", "voted")
MAX_QUEUE = 3


class HeldEngine:
    """Engines whose first job stops after one step until released (or stopped): the test
    refills the queue while it runs."""

    def __init__(self, load: Callable[[str], MusicGenEngine]) -> None:
        self.load_inner = load
        self.holding = threading.Event()
        self.release = threading.Event()

    def load(self, model: str) -> MusicGenEngine:
        engine = self.load_inner(model)
        generate_many = engine.generate_many

        def held(jobs, reporters, tokens):
            return generate_many(
                jobs, [self._hold(r, t) for r, t in zip(reporters, tokens, strict=True)], tokens
            )

        engine.generate_many = held
        return engine

    def _hold(self, report: Callable[[int, int], None], token) -> Callable[[int, int], None]:
        def hold(done: int, total: int) -> None:
            report(done, total)
            if done >= 1 and not self.release.is_set():
                self.holding.set()
                while not self.release.wait(0.05) and not token.cancelled:
                    pass

        return hold


class Crash:
    """The kill -9 of `world.bot`, and the start of a new bot on what it left."""

    def __init__(self, world: World, config: BotConfig, image: Path) -> None:
        self.world, self.config, self.image = world, config, image
        self.done = False

    def now(self) -> None:
        """Synchronous, so nothing else of the bot runs between the copy and the kill."""
        if self.done:
            return
        data = self.config.bot.data_dir
        shutil.copytree(data, self.image, ignore=shutil.ignore_patterns("restyle.sqlite3*"))
        with (
            sqlite3.connect(data / "restyle.sqlite3") as live,
            sqlite3.connect(self.image / "restyle.sqlite3") as copy,
        ):
            live.backup(copy)
        live.close()
        copy.close()
        self._cut_off()
        self.done = True

    def _cut_off(self) -> None:
        bot, env = self.world.bot, self.world.env

        async def dead(*args: Any, **kwargs: Any) -> Any:
            raise asyncio.CancelledError  # the process is gone: nothing after this point happens

        bot.bridge._post = lambda *args: None  # the GPU thread's news reaches nobody
        bot.http.request = dead
        env._webhook_adapter.request = dead  # follow-ups
        if env._gateway_feed in env.backend.subscribers:
            env.backend.subscribers.remove(env._gateway_feed)  # no more events reach it

    async def restart(self, load_engine: Callable[[str], MusicGenEngine]) -> RestyleBot:
        old = self.world.bot
        await asyncio.to_thread(old.worker.stop)
        await old.store.close()
        data = self.config.bot.data_dir
        shutil.rmtree(data)
        shutil.copytree(self.image, data)
        return await self.world.restart(self.config, load_engine)


def _after(store: Any, method: str, crash: Crash, when: Callable[..., bool]) -> None:
    """Crash right after `store.method` commits, if `when(result, *args)`."""
    original = getattr(store, method)

    async def then_crash(*args: Any) -> Any:
        result = await original(*args)
        if when(result, *args):
            crash.now()
        return result

    setattr(store, method, then_crash)


def _arm(stage: str, world: World, crash: Crash) -> None:
    store = world.bot.store
    if stage == "recorded":
        _after(store, "add_job", crash, lambda job_id, *_: job_id == 4)
    elif stage == "queued":
        _after(store, "set_status_message", crash, lambda _, job_id, *__: job_id == 4)
    elif stage == "rendered":
        _after(store, "mark_rendered", crash, lambda _, job_id, *__: job_id == 1)
    elif stage == "posted":
        _after(store, "mark_done", crash, lambda _, job_id, *__: job_id == 1)
    elif stage == "voted":
        _after(store, "add_vote", crash, lambda _, job_id, *__: job_id == 1)
    elif stage.startswith("posting"):

        def on_message(event: str, payload: Any) -> None:  # Discord has it; the bot has no answer yet
            if event == "MESSAGE_CREATE" and "Job #1 is ready" in payload.get("content", ""):
                crash.now()

        world.env.backend.subscribers.append(on_message)


def _hold_the_queue(world: World) -> None:
    """The worker takes nothing more until the crash: the queue stays full."""
    take = world.bot.queue.take

    def held_take(max_rows: int, stop: threading.Event, timeout: float | None = None):
        while not stop.wait(0.05):
            pass
        return take(max_rows, stop, timeout)

    world.bot.queue.take = held_take


async def _submit(world: World, actor: Any, prompt: str) -> None:
    await actor.slash(
        world.channel, "restyle", audio=(f"{prompt}.mp3", seed_mp3(2.0)), prompt=prompt, candidates=1
    )


def _posted(world: World, job_id: int) -> int:
    return sum(f"Job #{job_id} is ready" in message.content for message in world.results())


async def _run_to_the_crash(stage: str, world: World, crash: Crash, held: HeldEngine, carol: Any) -> None:
    for actor, prompt in ((world.alice, "one"), (world.bob, "two"), (world.moderator, "three")):
        await _submit(world, actor, prompt)
    assert len(world.bot.queue) == MAX_QUEUE
    await world.bot.start_worker()
    await until(world.env, held.holding.is_set, what="job 1 to run")
    _hold_the_queue(world)
    await _submit(world, carol, "four")  # the queue is full again, job 1 running beside it
    assert crash.done or len(world.bot.queue) == MAX_QUEUE
    if stage == "running":
        crash.now()
    if stage == "posting-in-channel":
        await world.env.advance_time(16 * 60)  # the interaction has expired: results go to the channel
    held.release.set()
    if stage == "voted":
        await until(world.env, lambda: world.results() and world.results()[0].reactions, what="the poll")
        await world.alice.react(world.results()[0], NUMBERS[0])
    await until(world.env, lambda: crash.done, what=f"the crash at {stage}")


@pytest.mark.parametrize("stage", STAGES)
async def test_a_crash_at_any_stage_loses_nothing_and_posts_once(
    running, tmp_path, shared_engine_loader, stage
):
    config = make_config(tmp_path, limits={"max_queue": MAX_QUEUE, "batch_rows": 1})
    held = HeldEngine(shared_engine_loader)
    world = await running(config, start_worker=False, load_engine=held.load)
    carol = world.guild.add_member(world.env.create_user("carol"))
    crash = Crash(world, config, tmp_path / "image")
    _arm(stage, world, crash)
    await _run_to_the_crash(stage, world, crash, held, carol)

    voters = {(1, world.alice.id)} if stage == "voted" else set()
    if world.results():  # job 1's poll is out: a vote while the bot is down
        await world.bob.react(world.results()[0], NUMBERS[0])
        voters.add((1, world.bob.id))
    again = await crash.restart(shared_engine_loader)

    async def all_done() -> bool:
        return [(await again.store.job(job_id)).status for job_id in (1, 2, 3, 4)] == ["done"] * 4

    await until(world.env, all_done, timeout=120, what="every job to be done")
    await world.env.advance_time(61)  # a round of the maintenance loop
    await world.moderator.react(world.results()[0], NUMBERS[0])  # the poll works after the restart
    voters.add((1, world.moderator.id))
    assert [_posted(world, job_id) for job_id in (1, 2, 3, 4)] == [1, 1, 1, 1]
    assert await again.store.voters(1) == voters
    assert await again.store.jobs_with_status("queued", "running", "rendered") == []
    assert len(again.queue) == 0
    for job in await again.store.jobs_with_status("done"):
        if job.status_message_id is not None:
            assert "Done" in world.status_of(job.id).content
    for poll in world.results():  # the bot's vote reaction is on each poll
        stored = world.env.backend.get_message(poll.channel.id, poll.id)
        assert world.env.backend.bot_user.id in stored.reaction_for(NUMBERS[0]).user_ids
