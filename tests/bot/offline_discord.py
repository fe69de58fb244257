"""A small Discord served on 127.0.0.1, for the bot run as its own process (`tests/bot/offline_bot.py`).

simcord lives inside the test's process; a bot started with `python -m bot` needs a Discord it can
reach over the network. This one speaks just enough of Discord's REST API and gateway (JSON, no
compression) for the unmodified discord.py client to log in, receive one guild with one channel,
take `/restyle` interactions, and post what it makes. Every message the bot sends or edits is kept,
with its files' names, for the test to read. It runs on a thread of its own with its own event
loop, so a test can wait on the bot process with plain blocking calls.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

BOT, GUILD, CHANNEL, COMMAND = 1001, 2001, 3001, 5001
ALL_PERMISSIONS = str((1 << 53) - 1)
WHEN = "2026-12-07T00:00:00+00:00"


def _user(user_id: int, name: str, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
    }


BOT_USER = _user(BOT, "restyle", bot=True)
CHANNEL_DATA = {
    "id": str(CHANNEL),
    "type": 0,
    "guild_id": str(GUILD),
    "name": "restyle",
    "position": 0,
    "permission_overwrites": [],
    "nsfw": False,
    "parent_id": None,
    "rate_limit_per_user": 0,
}


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py reads JSON only when the content type is exactly application/json
    return web.Response(
        status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
    )


def _answer(data: Any):
    async def handler(_: web.Request) -> web.Response:
        return _json(data)

    return handler


class OfflineDiscord:
    """One bot's Discord: start() serves it, `url` is what the launcher needs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.identified = threading.Event()  # the bot's gateway said who it is (it is ready)
        self.messages: dict[str, dict[str, Any]] = {}  # what the bot sent, edits applied
        self.unknown: list[str] = []  # requests this Discord does not know, for a failing test's message
        self.seeds: dict[str, bytes] = {}
        self._ids = itertools.count(10_000)
        self._sequence = itertools.count(1)
        self._socket: web.WebSocketResponse | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="offline-discord", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OfflineDiscord:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)
        return self

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def results(self) -> list[dict[str, Any]]:
        """Messages announcing a finished job, with its files."""
        return [m for m in list(self.messages.values()) if "is ready" in m["content"] and m["attachments"]]

    def restyle(self, user_id: int, prompt: str, seed: bytes) -> None:
        """`user_id` runs /restyle with `seed` attached (one candidate)."""
        asyncio.run_coroutine_threadsafe(self._interact(user_id, prompt, seed), self.loop).result(10)

    # -- serving ---------------------------------------------------------------------------------

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/api/v10/users/@me", _answer(BOT_USER))
        app.router.add_get("/api/v10/oauth2/applications/@me", _answer(self._application()))
        app.router.add_put("/api/v10/applications/{app}/commands", _answer([]))
        app.router.add_get("/files/{name}", self._file)
        app.router.add_post("/api/v10/interactions/{id}/{token}/callback", self._callback)
        app.router.add_post("/api/v10/channels/{channel}/messages", self._send)
        app.router.add_post("/api/v10/webhooks/{app}/{token}", self._send)
        app.router.add_patch("/api/v10/channels/{channel}/messages/{message}", self._edit)
        app.router.add_patch("/api/v10/webhooks/{app}/{token}/messages/{message}", self._edit)
        app.router.add_get("/api/v10/webhooks/{app}/{token}/messages/{message}", self._edit)
        app.router.add_get("/api/v10/channels/{channel}", _answer(CHANNEL_DATA))
        app.router.add_route("*", "/{path:.*}", self._other)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def _application(self) -> dict[str, Any]:
        return {
            "id": str(BOT),
            "name": "restyle",
            "icon": None,
            "description": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": _user(4000, "owner"),
            "verify_key": "0" * 64,
            "flags": 0,
        }

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
        async for frame in socket:
            if frame.type != WSMsgType.TEXT:
                continue
            payload = json.loads(frame.data)
            if payload["op"] == 1:  # heartbeat
                await socket.send_json({"op": 11})
            elif payload["op"] == 2:  # identify
                await self._dispatch("READY", self._ready())
                await self._dispatch("GUILD_CREATE", self._guild())
                self.identified.set()
        return socket

    async def _dispatch(self, event: str, data: dict[str, Any]) -> None:
        assert self._socket is not None, "the bot has not connected to the gateway"
        await self._socket.send_json({"op": 0, "t": event, "s": next(self._sequence), "d": data})

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10,
            "user": BOT_USER,
            "guilds": [{"id": str(GUILD), "unavailable": True}],
            "session_id": "offline",
            "resume_gateway_url": self.url.replace("http", "ws", 1) + "/gateway",
            "application": {"id": str(BOT), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }

    def _guild(self) -> dict[str, Any]:
        everyone = {"id": str(GUILD), "name": "@everyone", "permissions": ALL_PERMISSIONS, "position": 0}
        return {
            "id": str(GUILD),
            "name": "Offline",
            "owner_id": "4000",
            "unavailable": False,
            "member_count": 3,
            "channels": [CHANNEL_DATA],
            "roles": [{**everyone, "color": 0, "hoist": False, "managed": False, "mentionable": False}],
            "members": [
                {"user": BOT_USER, "roles": [], "joined_at": WHEN, "deaf": False, "mute": False, "flags": 0}
            ],
            "features": [],
            "emojis": [],
            "stickers": [],
            "threads": [],
            "voice_states": [],
            "presences": [],
        }

    async def _interact(self, user_id: int, prompt: str, seed: bytes) -> None:
        attachment = str(next(self._ids))
        self.seeds[attachment] = seed
        url = f"{self.url}/files/{attachment}"
        options = [
            {"name": "audio", "type": 11, "value": attachment},
            {"name": "prompt", "type": 3, "value": prompt},
            {"name": "candidates", "type": 4, "value": 1},
        ]
        file = {"id": attachment, "filename": "seed.mp3", "size": len(seed), "url": url, "proxy_url": url}
        await self._dispatch(
            "INTERACTION_CREATE",
            {
                "id": str(next(self._ids)),
                "application_id": str(BOT),
                "type": 2,
                "token": f"interaction-{attachment}",
                "version": 1,
                "guild_id": str(GUILD),
                "channel_id": str(CHANNEL),
                "channel": CHANNEL_DATA,
                "member": {
                    "user": _user(user_id, f"user{user_id}"),
                    "roles": [],
                    "joined_at": WHEN,
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                    "permissions": ALL_PERMISSIONS,
                },
                "app_permissions": ALL_PERMISSIONS,
                "locale": "en-US",
                "guild_locale": "en-US",
                "entitlements": [],
                "attachment_size_limit": 25 * 1024**2,
                "data": {
                    "id": str(COMMAND),
                    "name": "restyle",
                    "type": 1,
                    "options": options,
                    "resolved": {"attachments": {attachment: {**file, "content_type": "audio/mpeg"}}},
                },
            },
        )

    async def _file(self, request: web.Request) -> web.Response:
        return web.Response(body=self.seeds[request.match_info["name"]], content_type="audio/mpeg")

    async def _callback(self, request: web.Request) -> web.Response:
        body = await request.json()
        interaction = {
            "id": request.match_info["id"],
            "type": 2,
            "response_message_loading": body["type"] == 5,
        }
        return _json({"interaction": interaction, "resource": {"type": body["type"]}})

    async def _send(self, request: web.Request) -> web.Response:
        body, files = await _read(request)
        message = self._message(str(next(self._ids)), body, files)
        self.messages[message["id"]] = message
        return _json(message)

    async def _edit(self, request: web.Request) -> web.Response:
        body, files = await _read(request) if request.method == "PATCH" else ({}, [])
        key = request.match_info["message"]
        if not key.isdigit():  # @original: the interaction's own reply, one per interaction
            key = f"{request.match_info['token']}/{key}"
        message = self.messages.get(key) or self._message(key, {}, [])
        message.update({k: v for k, v in body.items() if k in ("content", "embeds")})
        if files:
            message["attachments"] = self._message(key, {}, files)["attachments"]
        self.messages[key] = message
        return _json(message)

    async def _other(self, request: web.Request) -> web.Response:
        if "/reactions/" not in request.path:
            self.unknown.append(f"{request.method} {request.path}")
        return web.Response(status=204)

    def _message(self, message_id: str, body: dict[str, Any], files: list[str]) -> dict[str, Any]:
        attachments = []
        for name in files:
            url = f"{self.url}/files/{name}"
            attachments.append(
                {"id": str(next(self._ids)), "filename": name, "size": 1, "url": url, "proxy_url": url}
            )
        return {
            "id": message_id if message_id.isdigit() else "1",
            "channel_id": str(CHANNEL),
            "guild_id": str(GUILD),
            "author": BOT_USER,
            "content": body.get("content") or "",
            "timestamp": WHEN,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": body.get("embeds") or [],
            "pinned": False,
            "type": 0,
            "flags": 0,
            "components": [],
        }


async def _read(request: web.Request) -> tuple[dict[str, Any], list[str]]:
    """A request's JSON (plain, or multipart's payload_json) and the names of its files."""
    if not request.content_type.startswith("multipart/"):
        return (await request.json() if request.can_read_body else {}), []
    body: dict[str, Any] = {}
    files: list[str] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if part.name == "payload_json":
            body = json.loads(await part.text())
        elif part.filename:
            await part.read()
            files.append(part.filename)
    return body, files
