"""A flood, delivered at the same instant through the unmodified client: the quota, the queue cap
and the cooldown hold exactly, nobody is told "something went wrong", and the turns stay fair."""

from __future__ import annotations

import asyncio
import threading

import discord

from bot.admission import DECODE_THREADS
from bot.client import RestyleBot
from generation.audio.decode import NOT_AUDIO
from generation.errors import AudioInputError
from tests.bot.conftest import at_once, click_call, make_config, seed_mp3, slash_call, until

SEED = seed_mp3(2.0)


def _restyle(world, actor, prompt: str = "jazz"):
    return slash_call(actor, world.channel, "restyle", audio=("theme.mp3", SEED), prompt=prompt, candidates=2)


def _members(world, count: int) -> list:
    return [world.guild.add_member(world.env.create_user(f"member{index}")) for index in range(count)]


def _answers(results) -> list[str]:
    for result in results:
        assert result.ephemeral, result.response.content
        assert "\n" not in result.response.content
        assert "Something went wrong" not in result.response.content
    return [result.response.content for result in results]


async def _statuses(store) -> dict[str, int]:
    """Jobs by status, and the places still reserved for requests (as "reserved")."""
    rows = await store._all(
        """SELECT status, COUNT(*) FROM jobs GROUP BY status
           UNION ALL SELECT 'reserved', COUNT(*) FROM reservations"""
    )
    return {status: count for status, count in rows if count}


async def test_one_member_sends_25_restyles_at_once(running, tmp_path):
    limits = {"max_jobs_per_user": 3, "max_queue": 20, "cooldown_seconds": 0}
    world = await running(make_config(tmp_path, limits=limits), start_worker=False)
    answers = _answers(await at_once(world.env, [_restyle(world, world.alice) for _ in range(25)]))
    assert sum(answer.startswith("Queued as job #") for answer in answers) == 3
    assert sum("the limit is 3" in answer for answer in answers) == 22
    assert await _statuses(world.bot.store) == {"queued": 3}
    assert len(world.bot.queue) == 3 and len(world.bot_messages()) == 3


async def test_the_cooldown_holds_under_a_flood(running, tmp_path):
    limits = {"max_jobs_per_user": 3, "cooldown_seconds": 60}
    world = await running(make_config(tmp_path, limits=limits), start_worker=False)
    answers = _answers(await at_once(world.env, [_restyle(world, world.alice) for _ in range(25)]))
    assert sum(answer.startswith("Queued as job #") for answer in answers) == 1
    assert sum("Please wait" in answer for answer in answers) == 24
    assert await _statuses(world.bot.store) == {"queued": 1}


async def test_ten_members_at_once_fill_the_queue_exactly(running, tmp_path):
    limits = {"max_queue": 6, "cooldown_seconds": 0}
    world = await running(make_config(tmp_path, limits=limits), start_worker=False)
    members = _members(world, 10)
    answers = _answers(await at_once(world.env, [_restyle(world, member) for member in members]))
    assert sum(answer.startswith("Queued as job #") for answer in answers) == 6
    assert sum("The queue is full" in answer for answer in answers) == 4
    assert await _statuses(world.bot.store) == {"queued": 6}
    assert len(list(world.bot.files.seeds.iterdir())) == 1  # the same upload, saved once


async def test_25_reroll_presses_at_once(running, tmp_path):
    limits = {"max_jobs_per_user": 3, "cooldown_seconds": 0}
    world = await running(make_config(tmp_path, limits=limits))
    await world.bob.slash(world.channel, "restyle", audio=("theme.mp3", SEED), prompt="harp", candidates=1)
    await until(world.env, lambda: world.results(), what="the results")
    await asyncio.to_thread(world.bot.worker.stop)  # hold what the presses queue
    posted = world.results()[0]
    answers = _answers(
        await at_once(world.env, [click_call(world.alice, posted, "Reroll") for _ in range(25)])
    )
    assert sum(answer.startswith("Queued as job #") for answer in answers) == 3
    assert sum("the limit is 3" in answer for answer in answers) == 22
    assert await _statuses(world.bot.store) == {"done": 1, "queued": 3}


async def test_a_flood_keeps_fair_turns_with_batches(running, tmp_path):
    limits = {"max_jobs_per_user": 3, "max_queue": 20, "cooldown_seconds": 0, "batch_rows": 8}
    world = await running(make_config(tmp_path, limits=limits), start_worker=False)
    members = _members(world, 9)
    calls = [_restyle(world, world.alice, "alice") for _ in range(25)]
    calls += [_restyle(world, member, member.name) for member in members]
    await at_once(world.env, calls)
    fair = [job.job_id for job in world.bot.queue.ordered()]
    assert len(fair) == 12
    batches: list[list[int]] = []
    original = world.bot.worker._run_batch
    world.bot.worker._run_batch = lambda batch: (batches.append([j.job_id for j in batch]), original(batch))
    await world.bot.start_worker()
    await until(world.env, lambda: len(world.results()) == 12, timeout=240, what="twelve results")
    assert batches == [fair[0:4], fair[4:8], fair[8:12]]  # 2 candidates each: 4 jobs in 8 rows
    owners = {job.id: job.user_id for job in await world.bot.store.jobs_with_status("done")}
    assert len({owners[job_id] for job_id in batches[0]}) == 4  # alice's flood takes one seat
    assert [owners[job_id] for job_id in batches[2][-2:]] == [world.alice.id] * 2


async def test_slow_decodes_do_not_starve_other_threads(running, tmp_path, monkeypatch):
    limits = {"max_jobs_per_user": 40, "max_queue": 40, "cooldown_seconds": 0}
    world = await running(make_config(tmp_path, limits=limits), start_worker=False)
    release, lock = threading.Event(), threading.Lock()
    running_now, most = [0], [0]
    loop, two_started = asyncio.get_running_loop(), asyncio.Event()

    def stuck_decode(*args, **kwargs):  # an upload FFmpeg chews on for a long time
        with lock:
            running_now[0] += 1
            most[0] = max(most[0], running_now[0])
            if most[0] == 2:
                loop.call_soon_threadsafe(two_started.set)
        release.wait(60)
        with lock:
            running_now[0] -= 1
        raise AudioInputError(NOT_AUDIO)

    monkeypatch.setattr("bot.admission.decode_audio", stuck_decode)

    async def another_thread_user() -> str:
        await asyncio.wait_for(two_started.wait(), 30)
        await asyncio.sleep(0.2)  # the rest of the flood reaches its decodes
        try:
            return await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 10)
        finally:
            release.set()

    flood = at_once(world.env, [_restyle(world, world.alice) for _ in range(32)])
    results, free = await asyncio.gather(flood, another_thread_user())
    assert free == "free"
    answers = _answers(results)
    assert most[0] <= DECODE_THREADS, "decodes must run on a small pool of their own"
    assert answers == [NOT_AUDIO] * 32
    assert await _statuses(world.bot.store) == {}  # every reservation was released


async def test_the_interaction_is_acknowledged_before_the_database_is_asked(running, monkeypatch):
    world = await running(start_worker=False)
    timeline: list[str] = []
    defer = discord.InteractionResponse.defer

    async def deferring(self, *args, **kwargs):
        timeline.append("acknowledged")
        await defer(self, *args, **kwargs)

    store = world.bot.store
    for name in ("_one", "_all", "_write", "reserve"):
        if hasattr(store, name):
            method = getattr(store, name)

            async def asking(*args, _method=method, **kwargs):
                timeline.append("database")
                return await _method(*args, **kwargs)

            monkeypatch.setattr(store, name, asking)
    monkeypatch.setattr(discord.InteractionResponse, "defer", deferring)
    result = await world.alice.slash(world.channel, "restyle", audio=("a.mp3", SEED), prompt="jazz")
    assert "Queued as job #1" in result.response.content
    assert timeline[0] == "acknowledged", timeline


async def test_a_reservation_left_by_a_crash_is_cleaned_at_start(running, tmp_path, shared_engine_loader):
    config = make_config(tmp_path, limits={"max_jobs_per_user": 1})
    world = await running(config, start_worker=False)
    store = world.bot.store
    quota = {"max_queue": 20, "max_jobs": 1, "cooldown_s": 0.0}
    assert await store.reserve(world.alice.id, 1.0, **quota) is not None
    assert await store.reserve(world.alice.id, 1.0, **quota) is None
    assert await _statuses(store) == {"reserved": 1}
    await world.bot.close()  # the process dies while the seed is decoded
    again = RestyleBot(config, load_engine=shared_engine_loader, start_worker=False)
    await world.env.restart_bot(again)
    assert await _statuses(again.store) == {}
    result = await world.alice.slash(world.channel, "restyle", audio=("a.mp3", SEED), prompt="jazz")
    assert "Queued as job #" in result.response.content
    await again.close()
