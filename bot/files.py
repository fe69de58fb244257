"""The data directory: the SQLite file, seeds as they arrived, and each job's rendered files.

    data/restyle.sqlite3
    data/seeds/<sha256><ext>         content-addressed: a reroll reuses its seed
    data/results/<job>/<n>.mp3       what was posted (sized to the channel's upload limit)
    data/results/<job>/<n>.flac      the lossless copy
    data/results/<job>/<n>.json      the sidecar
    data/results/<job>/<n>-loop.wav  a loop's WAV with its loop points (`smpl`), what games read,
    data/results/<job>/<n>-loop-drums.wav ... and its layers, when asked (-bass, -other, -vocals)

Files are written and read with aiofiles so the event loop never waits on the disk.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePath

import aiofiles
import aiofiles.os

from bot.models import CandidateRow
from generation.outputs import LAYER_NAMES, layer_filename
from generation.render import Rendered


class DataDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.seeds = root / "seeds"
        self.results = root / "results"
        self.database = root / "restyle.sqlite3"

    def create(self) -> None:
        for folder in (self.root, self.seeds, self.results):
            folder.mkdir(parents=True, exist_ok=True)

    async def save_seed(self, data: bytes, filename: str) -> Path:
        suffix = PurePath(filename).suffix.lower()[:8] or ".bin"
        path = self.seeds / f"{hashlib.sha256(data).hexdigest()}{suffix}"
        if not await aiofiles.os.path.exists(path):
            await _write(path, data)
        return path

    async def save_results(
        self, job_id: int, rendered: list[Rendered], game: Sequence[Rendered] = ()
    ) -> list[CandidateRow]:
        folder = self.results / str(job_id)
        await aiofiles.os.makedirs(folder, exist_ok=True)
        for item in game:  # first: a job is recorded as rendered only once all of its files are here
            loop = self.loop_file(job_id, item.candidate.index)
            await _write(loop, item.data)
            for layer in item.layers:
                await _write(loop.with_name(layer_filename(loop.name, layer.name)), layer.data)
        rows = []
        for item in rendered:
            idx = item.candidate.index
            audio = folder / f"{idx}{PurePath(item.filename).suffix}"
            lossless = folder / f"{idx}.flac"
            await _write(audio, item.data)
            await _write(lossless, item.lossless or b"")
            await _write(folder / f"{idx}.json", item.sidecar.encode())
            rows.append(
                CandidateRow(
                    job_id,
                    idx,
                    item.candidate.seed,
                    item.candidate.adherence,
                    str(audio),
                    str(lossless),
                    item.bitrate,
                )
            )
        return rows

    def loop_file(self, job_id: int, idx: int) -> Path:
        """Where candidate `idx`'s WAV loop is kept (whether or not the job made one)."""
        return self.results / str(job_id) / f"{idx}-loop.wav"

    async def game_files(self, job_id: int, idx: int) -> list[Path]:
        """A loop candidate's WAV, then its layers in their order: those that are here."""
        loop = self.loop_file(job_id, idx)
        paths = [loop, *(loop.with_name(layer_filename(loop.name, name)) for name in LAYER_NAMES)]
        return [path for path in paths if await aiofiles.os.path.exists(path)]

    @staticmethod
    async def read(path: str | Path) -> bytes:
        async with aiofiles.open(path, "rb") as file:
            return await file.read()

    @staticmethod
    async def size(path: str | Path) -> int:
        return await aiofiles.os.path.getsize(path)

    @staticmethod
    async def exists(path: str | Path) -> bool:
        return await aiofiles.os.path.exists(path)

    def remove_results(self, job_id: int) -> None:
        """Blocking: call through a thread."""
        shutil.rmtree(self.results / str(job_id), ignore_errors=True)


async def _write(path: Path, data: bytes) -> None:
    """Write beside, then rename: a crash never leaves a half-written file under the real name.
    The partial name is unique to this write: two uploads of one seed may be saved at once, and
    each rename then puts the same bytes in place."""
    partial = path.with_name(f"{path.name}.{secrets.token_hex(8)}.part")
    async with aiofiles.open(partial, "wb") as file:
        await file.write(data)
    await aiofiles.os.replace(partial, path)
