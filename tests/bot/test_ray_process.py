"""The bot with `[workers] backend = "ray"` as a real deployment runs it: its own process
(`python -m bot` through `tests/bot/offline_bot.py`), a config file as the README writes it, a
Discord on 127.0.0.1 (`tests/bot/offline_discord.py`), two CPU workers on the debug model.

Two bots run side by side, to pay for the long wait once: one with `address = ""` (Ray inside the
bot) and one with `address = "auto"` (the `ray start --head --block` cluster this module starts and
stops). Each must still be up well past Ray's 60 s GCS reconnect timeout, and post two jobs asked
for after that. Then the cluster's GCS is killed: the "auto" bot must exit with code 1 and one line
naming Ray. Only that bot runs with Ray's reconnect timeout shortened (its documented variable), so
that the death shows within seconds; the "" bot keeps Ray's defaults.

Each Ray gets its own RAY_TMPDIR, so other Ray clusters on the machine are neither found nor touched,
and every process this module stops is one it started, by its id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.worker.ray.gcs import RECONNECT_SETTING, GcsWatch
from tests.bot.conftest import seed_mp3
from tests.bot.offline_discord import OfflineDiscord
from tests.fake_hub import closed_port

pytest.importorskip("ray", reason="the Ray workers need the ray extra: pip install -e '.[ray]'")

ROOT = Path(__file__).resolve().parents[2]
ALIVE_S = 95.0  # from the bot's start: past the 60 s after which a driver without its GCS exits
AFTER_READY_S = 70.0  # and at least this long after it said it was ready (a slow start)
START_S = 240.0  # two workers loading on a busy machine
JOBS_S = 180.0
RECONNECT_S = 10  # Ray's GCS reconnect timeout, for the bot whose GCS the test kills
USERS = (4001, 4002)


@dataclass
class BotProcess:
    name: str
    discord: OfflineDiscord
    process: subprocess.Popen
    log: Path
    ray_tmp: Path
    started: float

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return f"--- {self.name} bot's output, last {lines} lines ---\n" + "\n".join(
            self.output().splitlines()[-lines:]
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.discord.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def short_dir(prefix: str) -> Path:
    """Ray's unix sockets live under RAY_TMPDIR, and their paths may not exceed 107 characters."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def write_config(folder: Path, address: str) -> Path:
    """As the README writes it, with CPU workers and the debug model."""
    config = folder / "config.toml"
    config.write_text(
        f'[bot]\ndata_dir = "{folder / "data"}"\n\n'
        '[models]\ndefault = "debug"\n\n'
        "[limits]\ncooldown_seconds = 0\n\n"
        f'[workers]\nbackend = "ray"\naddress = "{address}"\ncount = 2\ngpus_per_worker = 0\n'
    )
    return config


def start_bot(name: str, address: str, ray_tmp: Path, **env: str) -> BotProcess:
    discord = OfflineDiscord().start()
    folder = short_dir(f"bot-{name}-")
    log = folder / "bot.log"
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": "offline-token",
        "RESTYLE_TEST_DISCORD": discord.url,
        "RAY_TMPDIR": str(ray_tmp),
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests/bot/offline_bot.py"),
                "--config",
                str(write_config(folder, address)),
            ],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
    return BotProcess(name, discord, process, log, ray_tmp, time.monotonic())


def children(pid: int) -> dict[int, str]:
    """Processes whose parent is `pid`: their ids and names."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if entry.name.isdigit() and int(fields[1]) == pid:
                found[int(entry.name)] = (entry / "comm").read_text().strip()
        except (OSError, IndexError):
            continue
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, timeout: float, what: str, *bots: BotProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for bot in bots:
            assert bot.process.poll() is None, (
                f"the {bot.name} bot exited while waiting for {what}\n{bot.tail()}"
            )
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(bot.tail() for bot in bots))


@pytest.fixture(scope="module")
def cluster():
    """`ray start --head --block`, as the README starts a head node, on a port of its own."""
    ray_tmp = short_dir("ray-head-")
    log = ray_tmp / "ray-start.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmp)}
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={free_port()}"]
    command += [
        "--num-cpus=2",
        "--num-gpus=0",
        "--include-dashboard=false",
        "--object-store-memory=100000000",
    ]
    command += ["--disable-usage-stats", "--block"]
    with log.open("wb") as out:
        head = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    address_file = ray_tmp / "ray" / "ray_current_cluster"
    deadline = time.monotonic() + 120
    while not address_file.exists():
        assert head.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.5)
    yield head, ray_tmp
    head.terminate()
    try:
        head.wait(30)
    except subprocess.TimeoutExpired:
        head.kill()
        head.wait(10)
    end_ray_started_in(ray_tmp)


def started_in(ray_tmp: Path) -> list[int]:
    """The running processes of a Ray this module started (and its bots): given RAY_TMPDIR=`ray_tmp`,
    or writing their logs under it (Ray's agents, which Ray starts with an environment of its own)."""
    mark = f"RAY_TMPDIR={ray_tmp}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid() or not alive(int(entry.name)):
            continue
        with contextlib.suppress(OSError):
            if mark in (entry / "environ").read_bytes().split(b"\0") or any(
                file.startswith(f"{ray_tmp}/") for file in open_files(entry)
            ):
                found.append(int(entry.name))
    return found


def open_files(process: Path) -> list[str]:
    files = []
    for fd in process.joinpath("fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            files.append(os.readlink(fd))
    return files


def end_ray_started_in(ray_tmp: Path) -> None:
    """Ray's agents can outlive a head whose GCS was killed: end them, one process id at a time."""
    for pid in started_in(ray_tmp):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def bots(cluster):
    """The "" bot and the "auto" bot, started together."""
    _, head_tmp = cluster
    started = [
        start_bot("local", "", short_dir("ray-local-")),
        start_bot("auto", "auto", head_tmp, RAY_gcs_rpc_server_reconnect_timeout_s=str(RECONNECT_S)),
    ]
    yield {bot.name: bot for bot in started}
    for bot in started:
        bot.stop()
    end_ray_started_in(started[0].ray_tmp)


@pytest.mark.slow
def test_ray_started_by_the_bot_lives_as_long_as_the_bot(bots):
    """Both bots are still up after 95 s and post two jobs asked for then; the "" bot's Ray stops
    with it (every process of it has ended once the bot has)."""
    local, auto = bots["local"], bots["auto"]
    wait_for(
        lambda: local.discord.identified.is_set() and auto.discord.identified.is_set(),
        START_S,
        "ready",
        local,
        auto,
    )
    ready = time.monotonic()
    own_ray = {
        pid: name for pid, name in children(local.process.pid).items() if name in ("gcs_server", "raylet")
    }
    assert sorted(own_ray.values()) == ["gcs_server", "raylet"], own_ray
    assert all(alive(pid) for pid in own_ray), f"the bot's Ray died as it became ready\n{local.tail()}"
    until = max(local.started + ALIVE_S, auto.started + ALIVE_S, ready + AFTER_READY_S)
    wait_for(lambda: time.monotonic() >= until, until - time.monotonic() + 1, "time to pass", local, auto)
    for bot in (local, auto):
        for user in USERS:
            bot.discord.restyle(user, f"style for {user}", seed_mp3(1.0))
    wait_for(
        lambda: len(local.discord.results()) == len(auto.discord.results()) == 2, JOBS_S, "posts", local, auto
    )
    for bot in (local, auto):
        files = sorted(a["filename"] for m in bot.discord.results() for a in m["attachments"])
        assert files == ["restyle-1-1.mp3", "restyle-2-1.mp3"], (bot.name, files, bot.discord.unknown)

    local.process.send_signal(signal.SIGINT)
    assert local.process.wait(60) == 0, local.tail()
    wait_for(lambda: not started_in(local.ray_tmp), 30, "every process of the bot's Ray to end")


@pytest.mark.slow
def test_a_lost_gcs_ends_the_bot_with_one_line_naming_ray(cluster, bots):
    head, _ = cluster
    auto = bots["auto"]
    wait_for(auto.discord.identified.is_set, START_S, "ready", auto)
    gcs = [pid for pid, name in children(head.pid).items() if name == "gcs_server"]
    assert len(gcs) == 1, children(head.pid)
    before = len(auto.output().splitlines())
    os.kill(gcs[0], signal.SIGKILL)
    try:
        code = auto.process.wait(RECONNECT_S * 3)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the bot did not exit after its GCS died\n{auto.tail()}")
    said = [line for line in auto.output().splitlines()[before:] if line.startswith("restyle-bot:")]
    assert code == 1, auto.tail()
    assert len(said) == 1, auto.tail()
    assert "lost the Ray cluster: its GCS at" in said[0], said


def test_the_gcs_watch_waits_half_of_rays_reconnect_timeout_then_exits_with_one_line(monkeypatch, capsys):
    """The watch itself, quickly: a GCS away for less than the grace is waited for, one that
    answers again resets it, and one away past it ends the process with code 1 and one line."""
    monkeypatch.setenv(RECONNECT_SETTING, "8")  # a grace of 4 s
    exits: list[int] = []
    away = f"127.0.0.1:{closed_port()}"
    watch = GcsWatch(away, exits.append)
    watch.check(now=100.0)
    assert watch.away_since == 100.0
    with socket.socket() as gcs:  # back again
        gcs.bind(("127.0.0.1", 0))
        gcs.listen()
        watch.address = f"127.0.0.1:{gcs.getsockname()[1]}"
        watch.check(now=101.0)
        assert watch.away_since is None
    watch.address = away
    watch.check(now=200.0)
    watch.check(now=203.5)  # away for 3.5 s: still within the grace
    assert exits == [] and capsys.readouterr().err == ""
    watch.check(now=204.5)
    assert exits == [1]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "restyle-bot: lost the Ray cluster: its GCS at 127.0.0.1:"
    ), lines
