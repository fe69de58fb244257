"""An offline Discord (simcord) around the real bot, on the debug model."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord
import pytest
import pytest_asyncio
import simcord
import simcord.actors

from bot.client import RestyleBot
from bot.config import BotConfig, parse_config
from generation.engine import Engine
from tests.audio_factory import encode_format, melody


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
def shared_engine_loader(debug_lm) -> Callable[[str], Engine]:
    """One debug model for every bot of the session (each bot still gets its own Engine)."""

    def load(model: str) -> Engine:
        assert model == "debug", model
        return Engine(debug_lm, "fast")

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


def build_world(env: simcord.Env, bot: RestyleBot) -> World:
    guild = env.create_guild("Studio")
    channel = guild.create_text_channel("music-lab")
    moderators = guild.create_role("Moderators", permissions=discord.Permissions(manage_messages=True))
    alice = guild.add_member(env.create_user("alice"))
    bob = guild.add_member(env.create_user("bob"))
    moderator = guild.add_member(env.create_user("mod"), roles=[moderators])
    return World(env, bot, guild, channel, alice, bob, moderator)


@pytest_asyncio.fixture
async def running(tmp_path, shared_engine_loader):
    """Start a bot (optionally with its worker held back) in an offline Discord; stop it after."""
    started: list[tuple[simcord.Env, RestyleBot]] = []

    async def start(config: BotConfig | None = None, *, start_worker: bool = True) -> World:
        bot = RestyleBot(
            config or make_config(tmp_path), load_engine=shared_engine_loader, start_worker=start_worker
        )
        env = simcord.Env(bot, settle_timeout=60.0)
        await env.start()
        started.append((env, bot))
        return build_world(env, bot)

    yield start
    for env, bot in started:
        if bot.worker is not None:
            await asyncio.to_thread(bot.worker.stop)
        await env.shutdown()
        await bot.store.close()
