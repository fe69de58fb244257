"""A Hugging Face hub on 127.0.0.1: the few routes huggingface_hub's downloads use, and a log.

The real client (huggingface_hub) talks to it over HTTP, so downloads, revisions and refusals are
exercised as they are against the real hub; only the far end is small. Each request is logged as
`(method, path)`, so tests can say which files and which commits were asked for, and how often.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FakeHub:
    url: str
    repos: dict[str, dict[str, dict[str, bytes]]]  # repo id -> commit -> file name -> content
    branches: dict[str, dict[str, str]] = field(default_factory=dict)  # repo id -> branch -> commit
    log: list[tuple[str, str]] = field(default_factory=list)

    def requested_files(self) -> list[str]:
        return [
            path.rsplit("/", 1)[-1] for method, path in self.log if method == "GET" and "/resolve/" in path
        ]

    def requested_paths(self, repo: str) -> list[str]:
        """The paths inside `repo` whose contents were downloaded (`transformer/config.json`)."""
        prefix = f"/{repo}/resolve/"
        return [
            path.removeprefix(prefix).split("/", 1)[1]
            for method, path in self.log
            if method == "GET" and path.startswith(prefix)
        ]


def _commit(hub: FakeHub, repo: str, revision: str) -> str | None:
    commits = hub.repos.get(repo, {})
    if revision in commits:
        return revision
    return hub.branches.get(repo, {}).get(revision)


def _not_found(code: str) -> web.Response:
    return web.json_response({"error": code}, status=404, headers={"X-Error-Code": code})


def _app(hub: FakeHub) -> web.Application:
    async def model_info(request: web.Request) -> web.Response:
        repo = f"{request.match_info['org']}/{request.match_info['name']}"
        if repo not in hub.repos:
            return _not_found("RepoNotFound")
        commit = _commit(hub, repo, request.match_info.get("revision", "main"))
        if commit is None:
            return _not_found("RevisionNotFound")
        files = hub.repos[repo][commit]
        return web.json_response({"id": repo, "sha": commit, "siblings": [{"rfilename": f} for f in files]})

    async def tree(request: web.Request) -> web.Response:
        repo = f"{request.match_info['org']}/{request.match_info['name']}"
        commit = _commit(hub, repo, request.match_info["revision"])
        if commit is None:
            return _not_found("RevisionNotFound")
        entries = [
            {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            for name, data in hub.repos[repo][commit].items()
        ]
        return web.json_response(entries)

    async def resolve(request: web.Request) -> web.StreamResponse:
        repo = f"{request.match_info['org']}/{request.match_info['name']}"
        commit = _commit(hub, repo, request.match_info["revision"])
        if commit is None:
            return _not_found("RevisionNotFound")
        data = hub.repos[repo][commit].get(request.match_info["file"])
        if data is None:
            return _not_found("EntryNotFound")
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
            "Content-Length": str(len(data)),
        }
        if request.method == "HEAD":
            return web.Response(status=200, headers=headers)
        return web.Response(body=data, headers=headers)

    @web.middleware
    async def record(request: web.Request, handler):
        hub.log.append((request.method, request.path))
        return await handler(request)

    app = web.Application(middlewares=[record])
    app.router.add_get("/api/models/{org}/{name}", model_info)
    app.router.add_get("/api/models/{org}/{name}/revision/{revision}", model_info)
    app.router.add_get("/api/models/{org}/{name}/tree/{revision}", tree)
    app.router.add_route("*", "/{org}/{name}/resolve/{revision}/{file:.+}", resolve)
    return app


@contextmanager
def serve(repos: dict[str, dict[str, dict[str, bytes]]], branches=None) -> Iterator[FakeHub]:
    loop = asyncio.new_event_loop()
    hub = FakeHub("", repos, branches or {})
    runner = web.AppRunner(_app(hub))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    hub.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@contextmanager
def dropping_server() -> Iterator[tuple[list[int], int]]:
    """A port that accepts connections and closes them at once; yields (connections, port)."""
    accepted: list[int] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield accepted, listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def closed_port() -> int:
    """A port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def model_files(model, tokenizer, folder) -> dict[str, bytes]:
    """The files `save_pretrained` writes for a model, as a hub repo would hold them."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def json_bytes(value) -> bytes:
    return json.dumps(value).encode()


def folder_files(folder) -> dict[str, bytes]:
    """Every file under `folder` by its path inside it, as a hub repo would list them."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
