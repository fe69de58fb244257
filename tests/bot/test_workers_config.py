"""`[workers]`: checked at load in one line each, and what a Ray pool makes of it before any job."""

from __future__ import annotations

import importlib.util
import socket

import pytest

from bot.config import ConfigError, WorkersSection, parse_config
from bot.fair_queue import FairQueue

RAY = {"backend": "ray"}


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        ({"backend": "gpu"}, "workers.backend must be local or ray"),
        ({**RAY, "count": -1}, "workers.count must not be negative"),
        ({**RAY, "gpus_per_worker": -0.5}, "workers.gpus_per_worker must not be negative"),
        ({**RAY, "gpus_per_worker": 0}, "workers.count must be 1 or more when workers.gpus_per_worker is 0"),
        ({**RAY, "address": "head.lan"}, "workers.address must be host:port"),
        ({**RAY, "address": "head.lan:port"}, "workers.address must be host:port"),
        ({**RAY, "count": "two"}, "workers.count must be a whole number"),
    ],
)
def test_bad_worker_settings_are_one_clear_line(workers, expected):
    with pytest.raises(ConfigError) as caught:
        parse_config({"workers": workers})
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_the_local_backend_is_the_default_and_asks_nothing_of_ray():
    assert parse_config({}).workers == WorkersSection(backend="local")
    assert parse_config({"workers": {"address": "head.lan:6379", "count": 2}}).workers.backend == "local"
    ray = parse_config({"workers": {**RAY, "address": "10.0.0.5:6379", "gpus_per_worker": 0.5}}).workers
    assert (ray.address, ray.count, ray.gpus_per_worker) == ("10.0.0.5:6379", 0, 0.5)


def test_the_ray_backend_without_ray_installed_says_how_to_get_it(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name)
    )
    with pytest.raises(ConfigError) as caught:
        parse_config({"workers": RAY})
    assert str(caught.value) == 'workers.backend = "ray" needs Ray: pip install "restyle[ray]"'
    parse_config({"workers": {"backend": "local"}})  # the local backend never needs it


def test_workers_wanted_follow_the_count_or_the_cluster_gpus():
    pytest.importorskip("ray")
    from bot.worker.ray.pool import workers_wanted

    per_gpu = WorkersSection(backend="ray")
    assert workers_wanted(per_gpu, {"CPU": 16.0}) == 0  # no GPU yet: none, until one joins
    assert workers_wanted(per_gpu, {"CPU": 16.0, "GPU": 3.0}) == 3
    assert workers_wanted(WorkersSection(backend="ray", gpus_per_worker=2), {"GPU": 5.0}) == 2
    assert workers_wanted(WorkersSection(backend="ray", gpus_per_worker=0.5), {"GPU": 1.0}) == 2
    assert workers_wanted(WorkersSection(backend="ray", count=4, gpus_per_worker=0), {"CPU": 2.0}) == 4


def test_an_unreachable_cluster_stops_start_up_in_one_line_within_seconds():
    ray = pytest.importorskip("ray")
    from bot.worker.ray.actor import WorkerSetup
    from bot.worker.ray.pool import RayPool, WorkerError

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workers = WorkersSection(backend="ray", address=f"127.0.0.1:{port}")
    pool = RayPool(workers, FairQueue(1), lambda job_id: None, events=None, setup=WorkerSetup(None, None, 1))
    with pytest.raises(WorkerError) as caught:
        pool.start(["debug"]).result(timeout=30)
    assert str(caught.value).startswith(f"Cannot reach the Ray cluster at 127.0.0.1:{port}: ")
    assert "\n" not in str(caught.value) and not ray.is_initialized()


def test_a_head_node_without_the_workers_gpu_or_models_passes_pre_flight(tmp_path):
    """With Ray workers the models load on the GPU nodes: the bot's machine needs neither CUDA nor
    the weights (each worker checks its own, and start-up says so in one line if none can load)."""
    from bot.preflight import preflight

    settings = {
        "bot": {"data_dir": str(tmp_path / "data")},
        "models": {"default": "melody", "device": "cuda", "offline": True, "cache_dir": str(tmp_path)},
    }
    local = parse_config(settings)
    if importlib.util.find_spec("torch") and __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(Exception, match="CUDA is not available"):  # the local worker would need it
        preflight(local)
    checked = preflight(parse_config({**settings, "workers": {**RAY, "count": 2}}))
    assert "device: cuda, on each Ray worker" in checked
    assert "model melody: loaded and checked by each Ray worker" in checked
