"""Generation workers on a Ray cluster, end to end: the unmodified discord.py client on simcord,
the bot with `[workers] backend = "ray"`, and real Ray workers on this machine's CPUs (a local
Ray instance started once for the module, `gpus_per_worker = 0`, the debug model).

Jobs hold at their first step while the test wants them running (`HoldingLoader`), so what runs
where, and when, does not depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from dataclasses import replace

import pytest
import torch

from bot.config import BotConfig
from bot.files import DataDir
from bot.store import Store
from bot.worker.ray import pool as ray_pool
from bot.worker.ray.pool import KILLED_TWO
from tests.bot.conftest import World, make_config, seed_mp3, until
from tests.bot.ray_helpers import HoldingLoader

ray = pytest.importorskip("ray", reason="the Ray workers need the ray extra: pip install -e '.[ray]'")

pytestmark = pytest.mark.slow
LONG_S = 30.0  # a job that runs long enough to be seen running (it holds anyway)
NODE = {"object_store_memory": 80 * 1024**2}


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One Ray cluster on this machine for the module: a head node with two CPUs (one per
    worker) and a small object store; a test may add GPU nodes (GPUs in name: Ray only counts
    them, and torch finds no CUDA, so their workers run on the CPU)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={**NODE, "num_cpus": 2, "include_dashboard": False}
    )
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def ray_config(tmp_path, count: int, **sections) -> BotConfig:
    return make_config(
        tmp_path,
        workers={"backend": "ray", "count": count, "gpus_per_worker": 0},
        limits={"batch_rows": 1, "max_seed_seconds": 120},
        **sections,
    )


async def start(running, tmp_path, count: int) -> tuple[World, HoldingLoader]:
    config = ray_config(tmp_path, count)
    loader = HoldingLoader(config.models, tmp_path / "holds")
    world = await running(config, load_engine=loader)
    await until(world.env, lambda: world.bot.worker.workers_ready == count, what=f"{count} workers")
    return world, loader


async def submit(world: World, actor, prompt: str, seconds: float = 2.0, **options) -> None:
    reply = await actor.slash(
        world.channel,
        "restyle",
        audio=("seed.mp3", seed_mp3(seconds)),
        prompt=prompt,
        candidates=1,
        **options,
    )
    assert "Queued" in reply.response.content, reply.response.content


def posted(world: World, job_id: int) -> int:
    return sum(f"Job #{job_id} is ready" in message.content for message in world.results())


def running_step(world: World, job_id: int) -> bool:
    return "step" in world.status_of(job_id).content


class Seen:
    """The order in which the workers' events reach the bot (wrapping the bot's own bridge)."""

    def __init__(self, bridge) -> None:
        self.events: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        for name in ("started", "finished", "failed", "cancelled"):
            self._wrap(bridge, name)

    def _wrap(self, bridge, name: str) -> None:
        original = getattr(bridge, name)

        def seen(first, *args):
            with self._lock:
                self.events.append((name, getattr(first, "job_id", first)))
            original(first, *args)

        setattr(bridge, name, seen)

    def of(self, name: str) -> list[int]:
        with self._lock:
            return [job_id for kind, job_id in self.events if kind == name]


async def test_two_members_run_at_once_on_two_workers_and_the_queue_stays_fair(running, tmp_path):
    world, loader = await start(running, tmp_path, count=2)
    seen = Seen(world.bot.bridge)
    pool = world.bot.worker
    loader.hold("alice long")
    loader.hold("bob long")
    await submit(world, world.alice, "alice long", LONG_S)  # job 1
    await submit(world, world.bob, "bob long", LONG_S)  # job 2
    await until(world.env, lambda: running_step(world, 1) and running_step(world, 2), what="both running")
    assert pool.where(1)["pid"] != pool.where(2)["pid"]  # one worker each, at the same time

    await submit(world, world.alice, "alice second")  # job 3
    await submit(world, world.alice, "alice third")  # job 4
    await submit(world, world.moderator, "mod first")  # job 5: a newcomer
    assert [job.job_id for job in world.bot.queue.ordered()] == [5, 3, 4]
    loader.release("alice long")  # one worker comes free and serves the queue in its fair order
    await until(world.env, lambda: all(posted(world, job_id) for job_id in (1, 5, 3, 4)), what="four")
    assert seen.of("started")[2:] == [5, 3, 4]
    assert (await world.bot.store.job(2)).status == "running"  # still held on the other worker
    loader.release("bob long")
    await until(world.env, lambda: posted(world, 2), what="job 2")
    await world.env.settle()
    assert [posted(world, job_id) for job_id in range(1, 6)] == [1] * 5
    assert sorted(seen.of("finished")) == [1, 2, 3, 4, 5]


async def test_a_ray_worker_renders_what_the_local_worker_renders(running, tmp_path, shared_engine_loader):
    world, _ = await start(running, tmp_path / "ray", count=1)
    threads = world.bot.worker.slots[0].about["threads"]
    request = {"audio": ("theme.mp3", seed_mp3(3.0)), "prompt": "brass band", "candidates": 2, "seed": 4242}
    await world.alice.slash(world.channel, "restyle", **request)
    await until(world.env, lambda: posted(world, 1), what="the Ray worker's results")
    ray_dir = world.bot.files.root
    await world.bot.close()

    local_config = make_config(tmp_path / "local", limits={"batch_rows": 1, "max_seed_seconds": 120})
    assert local_config.workers.backend == "local"
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # EnCodec's float sums round by thread count; the tokens do not
    try:
        local = await world.restart(local_config, shared_engine_loader)  # same Discord, own data dir
        await world.alice.slash(world.channel, "restyle", **request)
        await until(world.env, lambda: len(world.results()) == 2, what="the local worker's results")
    finally:
        torch.set_num_threads(previous)

    from_ray, from_local = [
        [await attachment.read() for attachment in message.attachments] for message in world.results()
    ]
    assert len(from_ray) == 2 and from_ray[0] != from_ray[1]  # two candidates, two seeds
    assert from_ray == from_local
    for index in (1, 2):
        flac = f"results/1/{index}.flac"
        assert (ray_dir / flac).read_bytes() == (local.files.root / flac).read_bytes()


async def test_jobs_a_worker_took_together_that_its_engine_cannot_mix_run_one_after_the_other(
    running, tmp_path
):
    """The queue batches by key, the engine has the last word, on a Ray worker as in the bot: the
    reference backend mixes no prompts, so two jobs sent to a worker as one batch both finish."""
    config = ray_config(tmp_path, 1, models={"default": "debug", "backend": "reference"})
    config = replace(config, limits=replace(config.limits, batch_rows=2))
    loader = HoldingLoader(config.models, tmp_path / "holds")
    world = await running(config, load_engine=loader)
    await until(world.env, lambda: world.bot.worker.workers_ready == 1, what="the worker")
    seen = Seen(world.bot.bridge)
    loader.hold("first")
    await submit(world, world.alice, "first", LONG_S)  # job 1 holds the worker...
    await until(world.env, lambda: running_step(world, 1), what="job 1 to run")
    await submit(world, world.bob, "brass")  # ...while jobs 2 and 3 (one key) wait together
    await submit(world, world.moderator, "strings")
    loader.release("first")
    await until(world.env, lambda: posted(world, 2) and posted(world, 3), what="jobs 2 and 3")
    assert [(await world.bot.store.job(job_id)).status for job_id in (1, 2, 3)] == ["done"] * 3
    assert seen.of("started") == [1, 2, 3] and sorted(seen.of("finished")) == [1, 2, 3]


async def test_cancel_reaches_a_job_running_in_a_worker(running, tmp_path):
    world, loader = await start(running, tmp_path, count=1)
    loader.hold("stuck")
    await submit(world, world.alice, "stuck", LONG_S)
    await until(world.env, lambda: running_step(world, 1), what="job 1 to run")
    reply = await world.alice.click(world.status_of(1), label="Cancel")
    assert "Stopping job #1" in reply.response.content
    await until(world.env, lambda: "Cancelled by alice" in world.status_of(1).content, what="the cancel")
    assert (await world.bot.store.job(1)).status == "cancelled"
    assert world.bot.worker.running == []
    await submit(world, world.bob, "next")  # the worker goes on with the next job
    await until(world.env, lambda: posted(world, 2), what="job 2")
    assert posted(world, 1) == 0


async def test_a_killed_worker_loses_no_job_and_a_job_that_kills_two_fails(running, tmp_path):
    world, loader = await start(running, tmp_path, count=2)
    pool = world.bot.worker
    loader.hold("survivor")
    await submit(world, world.alice, "survivor", LONG_S)
    await until(world.env, lambda: running_step(world, 1), what="job 1 to run")
    first = pool.where(1)["pid"]
    os.kill(first, signal.SIGKILL)  # the worker's process, mid-job
    await until(world.env, lambda: (pool.where(1) or {}).get("pid") not in (None, first), what="job 1 moved")
    loader.release("survivor")
    await until(world.env, lambda: posted(world, 1), what="job 1's results")

    loader.hold("poison")
    await submit(world, world.bob, "poison", LONG_S)
    killed: list[int] = []
    for _ in range(2):  # each worker it lands on dies under it
        await until(
            world.env, lambda: (pool.where(2) or {}).get("pid") not in (None, *killed), what="job 2 to run"
        )
        killed.append(pool.where(2)["pid"])
        os.kill(killed[-1], signal.SIGKILL)
    await until(world.env, lambda: "two workers" in world.status_of(2).content, what="job 2 to fail")
    assert KILLED_TWO in (await world.bot.store.job(2)).error

    await submit(world, world.moderator, "afterwards")  # the pool lives on, restarted
    await until(world.env, lambda: posted(world, 3), timeout=90, what="job 3")
    await world.env.settle()
    assert [posted(world, job_id) for job_id in (1, 2, 3)] == [1, 0, 1]
    assert (await world.bot.store.job(1)).status == "done"


async def test_a_bot_restarted_while_its_workers_run_posts_each_job_once(running, tmp_path):
    world, loader = await start(running, tmp_path, count=1)
    config = world.bot.config
    loader.hold("interrupted")
    await submit(world, world.alice, "interrupted", LONG_S)
    await submit(world, world.bob, "waiting")
    await until(world.env, lambda: running_step(world, 1), what="job 1 to run")
    await world.bot.close()  # mid-job, with a job waiting
    store = await Store.open(DataDir(config.bot.data_dir).database)
    assert (await store.job(1)).status == "running"  # as a crash would leave it
    await store.close()
    loader.release("interrupted")
    again = await world.restart(config, loader)
    await until(world.env, lambda: posted(world, 1) and posted(world, 2), timeout=90, what="both jobs")
    await world.env.settle()
    assert [posted(world, job_id) for job_id in (1, 2)] == [1, 1]
    assert [(await again.store.job(job_id)).status for job_id in (1, 2)] == ["done", "done"]


async def test_gpus_that_join_get_workers_and_a_lost_node_loses_no_job(
    running, tmp_path, ray_cluster, monkeypatch
):
    monkeypatch.setattr(ray_pool, "RESOURCE_POLL_S", 0.5)
    config = make_config(
        tmp_path,
        workers={"backend": "ray", "count": 0, "gpus_per_worker": 1},
        limits={"max_seed_seconds": 120},
    )
    loader = HoldingLoader(config.models, tmp_path / "holds")
    world = await running(config, load_engine=loader)  # no GPU in the cluster: start-up goes on
    pool = world.bot.worker
    assert pool.workers_ready == 0
    loader.hold("on the gpu node")
    await submit(world, world.alice, "on the gpu node", LONG_S)
    nodes = [ray_cluster.add_node(num_cpus=1, num_gpus=1, **NODE)]  # a GPU node joins
    try:
        await until(world.env, lambda: running_step(world, 1), what="a worker on the new node")
        lost_node = pool.where(1)["node"]
        await asyncio.to_thread(ray_cluster.remove_node, nodes.pop())  # ...and is lost mid-job
        await until(world.env, lambda: world.bot.queue.position(1) == 1, what="job 1 back in the queue")
        nodes.append(ray_cluster.add_node(num_cpus=1, num_gpus=1, **NODE))
        await until(world.env, lambda: pool.where(1) is not None, what="job 1 on the next node")
        assert pool.where(1)["node"] != lost_node and len(pool.slots) == 1  # one GPU, one worker
        loader.release("on the gpu node")
        await until(world.env, lambda: posted(world, 1), what="job 1's results")
        await world.env.settle()
        assert posted(world, 1) == 1
    finally:
        await asyncio.to_thread(world.bot.worker.stop)
        for node in nodes:
            await asyncio.to_thread(ray_cluster.remove_node, node)
