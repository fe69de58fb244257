"""Stem separation before chroma, as audiocraft's ChromaStemConditioner does it (on by default).

htdemucs splits the seed into drums, bass, other and vocals; the melody is read from vocals + other
only, so the chroma follows the tune rather than the kick drum and the bass line: MusicGen-melody
was trained on such chroma. The weights come from demucs' own hub repository, at a pinned commit,
safetensors only. The debug models get a stand-in built in-process instead (`DebugSeparator`), so
tests and offline trials need no download.

Two differences from audiocraft: the whole seed is separated once and windows cut from the result
(audiocraft separates each 30 s window), and without demucs' random time shift (`shifts=0`), so the
same seed gives the same melody every time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generation import hub
from generation.catalog import STEMS_REPO, STEMS_REVISION
from generation.errors import ModelUnavailableError, StemsUnavailableError

log = logging.getLogger(__name__)

STEMS_MODEL = "htdemucs"
SOURCES = ("drums", "bass", "other", "vocals")
MELODY_STEMS = ("vocals", "other")
INSTALL_HINT = "Stem separation needs demucs: pip install demucs (or run with --no-stems)."
FETCH_HINT = "Fetch them first: restyle download; or turn stems off (--no-stems, or models.stems = false)."


class StemSeparator:
    """Keeps the melodic stems of a mono track. Holds the separation model once loaded."""

    def __init__(self, model: Any, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.indices = [model.sources.index(name) for name in MELODY_STEMS]

    @torch.inference_mode()
    def melody(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Vocals + other of mono `samples`, back at `sample_rate`, mono (audiocraft's recipe)."""
        from demucs.apply import apply_model
        from demucs.audio import convert_audio

        wav = torch.from_numpy(samples).float()[None, None]  # (batch, channels, time)
        wav = convert_audio(wav, sample_rate, self.model.samplerate, self.model.audio_channels)
        stems = apply_model(self.model, wav, device=self.device, shifts=0, progress=False)
        mix = stems[:, self.indices].sum(dim=1)
        mono = convert_audio(mix, self.model.samplerate, sample_rate, 1)
        return mono[0, 0, : len(samples)].cpu().numpy().astype(np.float32)


class DebugSeparator(StemSeparator):
    """The debug models' stand-in for htdemucs: it separates nothing, and says so in its name.

    It runs a tiny HTDemucs with random weights (htdemucs' own class and demucs' `apply_model`, so
    the stems path is exercised as the real one is), but an untrained net's "vocals + other" is one
    constant pitch class whatever the seed: two different melodies gave the same chroma, so the
    debug model ignored the melody with stems on (the default). So its melody is the seed with the
    band below `BASS_CUT_HZ` removed (a crude stand-in for dropping bass; drums stay), plus the
    net's stems `NET_GAIN` down, so the net still reaches the output's bits but the seed's pitch
    classes win the chroma.
    """

    BASS_CUT_HZ = 120.0
    NET_GAIN = 0.01  # -40 dB: the net's stems measured about -25 dB under a full-scale seed

    @torch.inference_mode()
    def melody(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        net = super().melody(samples, sample_rate)
        return (without_low_band(samples, sample_rate, self.BASS_CUT_HZ) + self.NET_GAIN * net).astype(
            np.float32
        )


def without_low_band(samples: np.ndarray, sample_rate: int, cut_hz: float) -> np.ndarray:
    """`samples` with every frequency below `cut_hz` removed (one FFT over the whole signal)."""
    spectrum = np.fft.rfft(samples.astype(np.float64))
    spectrum[np.fft.rfftfreq(len(samples), 1 / sample_rate) < cut_hz] = 0
    return np.fft.irfft(spectrum, n=len(samples)).astype(np.float32)


def _demucs() -> None:
    try:
        import demucs.apply  # noqa: F401
    except ImportError as exc:
        raise StemsUnavailableError(INSTALL_HINT) from exc


def build_random_separator(seed: int = 0, device: torch.device | str = "cpu") -> DebugSeparator:
    """The debug stand-in over a tiny HTDemucs (htdemucs' own class) with seeded random weights, at
    the model's 32 kHz, mono.

    About 5,000 weights and no cross-transformer: 0.2 s for a 3 s seed on one core, so the tests can
    keep stems on as the real models do.
    """
    _demucs()
    from demucs.htdemucs import HTDemucs

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HTDemucs(
            sources=list(SOURCES),
            audio_channels=1,
            samplerate=32_000,
            channels=4,
            depth=2,
            nfft=1024,
            t_layers=0,
            dconv_comp=1,
            dconv_depth=1,
        )
    log.info(
        "stems: the debug stand-in (the seed less its band under %.0f Hz), not htdemucs",
        DebugSeparator.BASS_CUT_HZ,
    )
    return DebugSeparator(model, torch.device(device))


def stems_cached(cache_dir: str | Path | None = None) -> Path | None:
    """The cached htdemucs snapshot at the pinned commit, if complete."""
    return hub.cached_snapshot(
        STEMS_REPO, STEMS_REVISION, cache_dir, needs=[f"{STEMS_MODEL}.yaml", hub.WEIGHT_PATTERN]
    )


def check_stems(*, random: bool, offline: bool, cache_dir: str | Path | None = None) -> None:
    """Refuse, before any work, stems that could not be loaded (demucs missing, weights offline)."""
    _demucs()
    if random or stems_cached(cache_dir) is not None:
        return
    if hub.is_offline(offline):
        raise StemsUnavailableError(
            f"The {STEMS_MODEL} weights (stem separation) are not in the Hugging Face cache and this "
            f"machine is offline. {FETCH_HINT}"
        )
    try:
        hub.repo_files(STEMS_REPO, STEMS_REVISION)
    except ModelUnavailableError as exc:
        raise StemsUnavailableError(
            f"The {STEMS_MODEL} weights cannot be fetched: {exc} {FETCH_HINT}"
        ) from None


def load_separator(
    device: torch.device | str = "cpu", *, offline: bool = False, cache_dir: str | Path | None = None
) -> StemSeparator:
    """htdemucs from the Hugging Face cache (fetched once unless offline), or a one-line error."""
    check_stems(random=False, offline=offline, cache_dir=cache_dir)
    folder = stems_cached(cache_dir) or download_separator(cache_dir)
    return StemSeparator(_load_bag(folder), torch.device(device))


def separator_for(
    random: bool, device: torch.device, *, offline: bool = False, cache_dir: str | Path | None = None
) -> StemSeparator:
    """The tiny separator for random (debug) models, htdemucs for real ones; on the model's device."""
    if random:
        return build_random_separator(device=device)
    return load_separator(device, offline=offline, cache_dir=cache_dir)


def _load_bag(folder: Path):
    """demucs' own loader (`demucs.hf.get_hf_model`), from a folder instead of the hub."""
    import yaml
    from demucs import hf
    from demucs.apply import BagOfModels

    with open(folder / f"{STEMS_MODEL}.yaml") as file:
        bag = yaml.safe_load(file)
    models = [hf.load_safetensors_model(folder / f"{sig}.safetensors") for sig in bag["models"]]
    return BagOfModels(models, bag.get("weights"), bag.get("segment"))


def download_separator(cache_dir: str | Path | None = None) -> Path:
    """Fetch htdemucs' bag file and weights (safetensors) at the pinned commit."""
    return hub.fetch(
        STEMS_REPO, STEMS_REVISION, cache_dir, files=[f"{STEMS_MODEL}.yaml", hub.WEIGHT_PATTERN, "*.json"]
    )
