"""An offline Discord (simcord) around the real bot, on the debug model."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
import pytest
import pytest_asyncio
import simcord
import simcord.actors
import simcord.http.router
import simcord.interactions
from simcord.backend.errors import BackendError

from bot.client import RestyleBot
from bot.config import BotConfig, parse_config
from generation.acestep.engine import AceStepEngine
from generation.musicgen.engine import MusicGenEngine
from tests.audio_factory import encode_format, melody


@dataclass
class DiscordLimits:
    """What Discord enforces and simcord leaves out: 2,000 characters of content per message, and
    the upload limit on the whole request (every file plus the JSON), 413 with code 40005 past it.
    The limit is also what Discord reports to the bot with each interaction."""

    upload: int = 25 * 1024 * 1024
    content: int = 2000
    refused: list[str] = field(default_factory=list)  # what was refused, for the tests to read

    def check(self, path: str, body: Any, files: list[Any]) -> None:
        payload = body if isinstance(body, dict) else {}
        content = payload.get("content") or (payload.get("data") or {}).get("content") or ""
        if len(content) > self.content:
            self.refused.append(f"{path}: content of {len(content)} characters")
            raise BackendError(400, 50035, f"Invalid Form Body: content must be {self.content} or fewer")
        size = sum(len(file.fp.getvalue()) for file in files) + len(json.dumps(payload))
        if files and size > self.upload:
            self.refused.append(f"{path}: {size} bytes")
            raise BackendError(413, 40005, "Request entity too large")


@pytest.fixture(autouse=True)
def discord_limits(monkeypatch) -> DiscordLimits:
    limits = DiscordLimits()
    dispatch = simcord.http.router.dispatch
    payload = simcord.interactions.base_payload

    def limited_dispatch(backend, method, path, **request):
        limits.check(path, request.get("json"), request.get("files") or [])
        return dispatch(backend, method, path, **request)

    def reported_limit(*args, **kwargs):
        record, data = payload(*args, **kwargs)
        data["attachment_size_limit"] = limits.upload
        return record, data

    monkeypatch.setattr(simcord.http.router, "dispatch", limited_dispatch)
    monkeypatch.setattr(simcord.interactions, "base_payload", reported_limit)
    return limits


def make_config(tmp_path, **sections: dict[str, Any]) -> BotConfig:
    """The bot's config as a test sets it: debug model, quick progress edits, no cooldown."""
    raw: dict[str, dict[str, Any]] = {
        "bot": {"data_dir": str(tmp_path / "data")},
        "models": {"default": "debug", "backend": "fast"},
        "limits": {"cooldown_seconds": 0, "max_output_seconds": 60, "max_seed_seconds": 120},
        "progress": {"edit_interval_seconds": 0.2},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config(raw)


@pytest.fixture(scope="session")
def shared_engine_loader(debug_lm) -> Callable[[str], MusicGenEngine]:
    """One debug model for every bot of the session (each bot still gets its own MusicGenEngine)."""

    def load(model: str) -> MusicGenEngine:
        assert model == "debug", model
        return MusicGenEngine(debug_lm, "fast")

    return load


@pytest.fixture(scope="session")
def both_families(debug_lm, debug_ace):
    """`debug` and `debug-ace`, each bot with engines of its own over the session's models."""

    def load(model: str):
        if model == "debug":
            return MusicGenEngine(debug_lm, "fast")
        assert model == "debug-ace", model
        return AceStepEngine(debug_ace)

    return load


def seed_mp3(seconds: float = 3.0, notes: tuple[float, ...] = (392.0, 440.0, 493.9)) -> bytes:
    return encode_format("mp3", melody(list(notes), seconds / len(notes), 44_100))


@dataclass
class World:
    env: simcord.Env
    bot: RestyleBot
    guild: Any
    channel: Any
    alice: Any
    bob: Any
    moderator: Any
    started: list[tuple[simcord.Env, RestyleBot]] = field(default_factory=list)  # for the teardown

    async def restart(
        self, config: BotConfig, load_engine: Callable[[str], MusicGenEngine], *, start_worker: bool = True
    ) -> RestyleBot:
        """A new bot on the same data dir, against the same Discord (the old one is gone)."""
        bot = RestyleBot(config, load_engine=load_engine, start_worker=start_worker)
        self.started.append((self.env, bot))
        await self.env.restart_bot(bot)
        self.bot = bot
        return bot

    def messages(self) -> list[discord.Message]:
        """Oldest first."""
        return sorted(self.channel.history(), key=lambda message: message.id)

    def bot_messages(self) -> list[discord.Message]:
        return [m for m in self.messages() if m.author.id == self.bot.user.id]

    def results(self) -> list[discord.Message]:
        return [m for m in self.bot_messages() if "is ready" in m.content]

    def status_of(self, job_id: int) -> discord.Message:
        return next(m for m in self.bot_messages() if f"**Job #{job_id}**" in m.content)


async def until(
    env: simcord.Env, condition: Callable[[], Any], timeout: float = 60.0, what: str = ""
) -> None:
    """Let the bot and its GPU thread work until `condition()` holds (real time: the thread is real)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await env.settle()
        holds = condition()
        if inspect.isawaitable(holds):
            holds = await holds
        if holds:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def slash_call(actor, channel, name: str, **options: Any) -> Callable[[], Awaitable]:
    """A slash command for `at_once`."""
    return lambda: simcord.actors._slash(actor, channel, name, options)


def click_call(actor, message: discord.Message, label: str) -> Callable[[], Awaitable]:
    """A button press for `at_once`."""
    return lambda: simcord.actors._component_click(actor, message, label=label, custom_id=None)


async def at_once(env: simcord.Env, calls: list[Callable[[], Awaitable]]) -> list[Any]:
    """Deliver interactions in the same instant, as Discord can: every one reaches the bot before
    it answers any. simcord runs one operation at a time (gathering `slash` calls is refused), so
    this opens one and runs simcord's own dispatchers, unguarded, inside it."""
    start = len(env.backend.transcript)
    env._begin_operation("at_once")
    try:
        results = await asyncio.gather(*(call() for call in calls))
    finally:
        env._end_operation()
    events = [entry[:2] for entry in env.backend.transcript[start:]]
    delivered = [i for i, event in enumerate(events) if event == ("GATEWAY", "INTERACTION_CREATE")]
    answers = [i for i, (kind, what) in enumerate(events) if kind == "HTTP" and "/callback" in what]
    assert len(delivered) == len(calls) and max(delivered) < min(answers), "not delivered at once"
    return results


def build_world(env: simcord.Env, bot: RestyleBot, started: list | None = None) -> World:
    guild = env.create_guild("Studio")
    channel = guild.create_text_channel("music-lab")
    moderators = guild.create_role("Moderators", permissions=discord.Permissions(manage_messages=True))
    alice = guild.add_member(env.create_user("alice"))
    bob = guild.add_member(env.create_user("bob"))
    moderator = guild.add_member(env.create_user("mod"), roles=[moderators])
    return World(env, bot, guild, channel, alice, bob, moderator, started if started is not None else [])


@pytest_asyncio.fixture
async def running(tmp_path, shared_engine_loader):
    """Start a bot (optionally with its worker held back) in an offline Discord; stop it after."""
    started: list[tuple[simcord.Env, RestyleBot]] = []

    async def start(
        config: BotConfig | None = None,
        *,
        start_worker: bool = True,
        load_engine: Callable[[str], MusicGenEngine] | None = None,
    ) -> World:
        bot = RestyleBot(
            config or make_config(tmp_path),
            load_engine=load_engine or shared_engine_loader,
            start_worker=start_worker,
        )
        env = simcord.Env(bot, settle_timeout=60.0)
        await env.start()
        started.append((env, bot))
        return build_world(env, bot, started)

    yield start
    envs = []
    for env, bot in started:
        if bot.worker is not None:
            await asyncio.to_thread(bot.worker.stop)
        if env not in envs:
            envs.append(env)
            await env.shutdown()
        if hasattr(bot, "store"):
            await bot.store.close()


def record_edits(world: World) -> list[str]:
    """Every status edit the bot makes from now on, in order (they still reach Discord)."""
    edits: list[str] = []
    original = world.bot.lifecycle.edit_status

    async def recording(job, content, **changes):
        edits.append(content)
        await original(job, content, **changes)

    world.bot.lifecycle.edit_status = recording
    return edits


async def post_poll(world: World, candidates: int = 2) -> discord.Message:
    """A /restyle from alice, run to its results with all the vote reactions on."""
    before = len(world.results())
    await world.alice.slash(
        world.channel, "restyle", audio=("theme.mp3", seed_mp3(2.0)), prompt="jazz", candidates=candidates
    )

    def posted() -> bool:
        results = world.results()
        return len(results) > before and len(results[-1].reactions) == candidates

    await until(world.env, posted, what="a poll")
    return world.results()[-1]
