"""Settings and start-up: every default documented, bad settings stopped in one line, the token
read from the environment only and never printed."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from bot.__main__ import RedactToken, main
from bot.config import BotConfig, ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).parents[2] / "config.example.toml"


def test_the_example_config_documents_the_defaults():
    example = load_config(EXAMPLE)
    defaults = BotConfig()
    for section in dataclasses.fields(BotConfig):
        documented, actual = getattr(example, section.name), getattr(defaults, section.name)
        if section.name == "bot":  # data_dir is resolved against the file's folder
            assert documented.data_dir == (EXAMPLE.parent / actual.data_dir).resolve()
            documented = dataclasses.replace(documented, data_dir=actual.data_dir)
        assert documented == actual, section.name
    text = EXAMPLE.read_text()
    for section in dataclasses.fields(BotConfig):
        for setting in dataclasses.fields(getattr(defaults, section.name)):
            assert f"\n{setting.name} =" in text, f"{section.name}.{setting.name} is not documented"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"limits": {"max_candidates": 9}}, "limits.max_candidates must be between 1 and 4"),
        ({"limits": {"max_queue": "lots"}}, "limits.max_queue must be a whole number"),
        ({"limtis": {}}, "unknown section [limtis]"),
        ({"output": {"fromat": "mp3"}}, "unknown setting output.fromat"),
        ({"output": {"format": "wav"}}, "output.format must be mp3 or ogg"),
        ({"access": {"channels": ["general"]}}, "access.channels must be a list of whole-number IDs"),
        ({"models": {"offline": "yes"}}, "models.offline must be true or false"),
        ({"limits": {"max_prompt_chars": 501}}, "limits.max_prompt_chars must be between 1 and 500"),
    ],
)
def test_bad_settings_are_one_clear_line(raw, expected):
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_loudness_can_be_turned_off():
    assert parse_config({"output": {"loudness_lufs": "off"}}).output.loudness_lufs is None


def test_main_refuses_a_bad_config_and_a_missing_token(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits]\nmax_candidates = 12\n")
    assert main(["--config", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == "restyle-bot: limits.max_candidates must be between 1 and 4"
    good = tmp_path / "good.toml"
    good.write_text('[models]\ndefault = "debug"\n')
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main(["--config", str(good)]) == 2
    assert "set DISCORD_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("DISCORD_TOKEN", "very-secret-token-123")
    assert main(["--config", str(good), "--check"]) == 0
    out = capsys.readouterr()
    assert "very-secret-token-123" not in out.out + out.err


def test_the_token_is_redacted_from_any_log_line():
    record = logging.LogRecord(
        "discord.http", logging.INFO, __file__, 1, "sent %s to %s", ("abc.secret.xyz", "x"), None
    )
    RedactToken("abc.secret.xyz").filter(record)
    assert record.getMessage() == "sent [token] to x"


@pytest.fixture
def fake_discord(monkeypatch):
    """A fake Discord on 127.0.0.1 that refuses every token, as the real one does a bad one."""
    import asyncio
    import threading

    import discord
    from aiohttp import web

    async def unauthorized(request: web.Request) -> web.Response:
        return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unauthorized)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
    yield
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_a_refused_token_is_one_line_without_it(tmp_path, monkeypatch, capsys, fake_discord):
    config = tmp_path / "config.toml"
    config.write_text('[bot]\ndata_dir = "data"\n[models]\ndefault = "debug"\n')
    token = "MTIzNDU2Nzg5.invalid.token-that-must-not-leak"
    monkeypatch.setenv("DISCORD_TOKEN", token)
    assert main(["--config", str(config)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == "restyle-bot: Discord refused the token in DISCORD_TOKEN."
    assert token not in captured.out + captured.err


def test_no_route_to_discord_is_one_line_without_the_token(tmp_path, monkeypatch, capsys):
    import discord

    config = tmp_path / "config.toml"
    config.write_text('[bot]\ndata_dir = "data"\n[models]\ndefault = "debug"\n')
    token = "MTIzNDU2Nzg5.invalid.token-that-must-not-leak"
    monkeypatch.setenv("DISCORD_TOKEN", token)
    monkeypatch.setattr(discord.http.Route, "BASE", "http://127.0.0.1:9/api/v10")  # nothing listens there
    assert main(["--config", str(config)]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1].startswith("restyle-bot: cannot reach Discord")
    assert token not in captured.out + captured.err
    assert "Traceback" not in captured.err
