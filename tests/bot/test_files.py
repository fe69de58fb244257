"""The data directory on a real disk: seeds saved once by content, whatever arrives together."""

from __future__ import annotations

import asyncio

from bot.files import DataDir


async def test_identical_seeds_saved_together_make_one_file(tmp_path):
    files = DataDir(tmp_path / "data")
    files.create()
    data = b"RIFF" + bytes(range(256)) * 400
    paths = await asyncio.gather(*(files.save_seed(data, "theme.wav") for _ in range(8)))
    assert len(set(paths)) == 1
    assert [path.name for path in files.seeds.iterdir()] == [paths[0].name]  # no partial left over
    assert paths[0].read_bytes() == data
