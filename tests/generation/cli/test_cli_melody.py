"""The default path keeps the melody: `restyle generate --model debug` with stems on (the default).

The debug separator once turned every seed into one constant pitch class, so two different melodies
gave bit-identical audio and every stems-on test proved nothing about the melody. These run the
command line as a user does, with nothing but the model, the seed file and a seed number given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import generation.musicgen.engine as engine_module
from generation.audio.chroma import chroma
from tests.audio_factory import encode_format, melody
from tests.generation.cli.running import run

RATE = 44_100
TUNES = {
    "rising": [261.6, 329.6, 392.0, 523.3],  # C E G C
    "falling": [880.0, 698.5, 587.3, 493.9],  # A F D B
}


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("melodies")
    files = {}
    for name, notes in TUNES.items():
        files[name] = folder / f"{name}.flac"
        files[name].write_bytes(encode_format("flac", melody(notes, 0.75, 96_000)))
    return files


@pytest.fixture
def conditioning(monkeypatch) -> list[np.ndarray]:
    """Each window's chroma as the engine hands it to the decoder (a spy: the real function runs)."""
    seen: list[np.ndarray] = []
    real = engine_module.conditioning_chroma

    def spy(*args, **kwargs):
        frames = real(*args, **kwargs)
        seen.append(frames.numpy().copy())
        return frames

    monkeypatch.setattr(engine_module, "conditioning_chroma", spy)
    return seen


def _generate(capsys, seed: Path, out: Path) -> bytes:
    args = ("generate", str(seed), "lofi", "--model", "debug", "--seed", "3", "-o", str(out))
    code, _, err = run(capsys, *args)
    assert code == 0, err
    (written,) = out.glob("*.wav")
    return written.read_bytes()


def test_two_melodies_give_different_conditioning_and_audio_by_default(
    capsys, tmp_path, seed_files, conditioning
):
    rising = _generate(capsys, seed_files["rising"], tmp_path / "rising")
    (rising_chroma,) = conditioning
    falling = _generate(capsys, seed_files["falling"], tmp_path / "falling")
    falling_chroma = conditioning[1]
    assert not np.array_equal(rising_chroma, falling_chroma)
    assert rising != falling
    # Not merely different: each conditioning is its own tune's pitch classes (C E G C, A F D B),
    # where the separator's constant pitch class gave one bin for every frame of both.
    for tune, frames in (("rising", rising_chroma), ("falling", falling_chroma)):
        heard = set(frames.argmax(-1).tolist())
        expected = set(chroma(melody(TUNES[tune], 0.75, 32_000)).argmax(-1).tolist())
        assert heard == expected, (tune, heard, expected)
