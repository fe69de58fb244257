"""Optional stem separation before chroma, as audiocraft's ChromaStemConditioner does it.

htdemucs splits the seed into drums, bass, other and vocals; the melody is read from vocals + other
only, so the chroma follows the tune rather than the kick drum and the bass line. It needs the
`demucs` extra and the htdemucs weights (Hugging Face cache, or the network once).

audiocraft separates each 30 s window; Restyle separates the whole seed once and cuts windows from
the result, which differs only at the separator's own segment boundaries.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from generation.errors import StemsUnavailableError

log = logging.getLogger(__name__)

STEMS_MODEL = "htdemucs"
MELODY_STEMS = ("vocals", "other")
INSTALL_HINT = "Stem separation needs the demucs extra: pip install 'restyle[demucs]'."


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
        stems = apply_model(self.model, wav, device=self.device, progress=False)
        mix = stems[:, self.indices].sum(dim=1)
        mono = convert_audio(mix, self.model.samplerate, sample_rate, 1)
        return mono[0, 0, : len(samples)].cpu().numpy().astype(np.float32)


def load_separator(
    device: torch.device | str = "cpu", *, offline: bool = False, cache_dir: str | None = None
) -> StemSeparator:
    """htdemucs from the Hugging Face cache (or the hub unless offline), or a clear error."""
    try:
        from demucs import hf
        from demucs.apply import BagOfModels
    except ImportError as exc:
        raise StemsUnavailableError(INSTALL_HINT) from exc
    try:
        model = _load_bag(hf, BagOfModels, local_only=True, cache_dir=cache_dir)
    except OSError:
        if offline:
            raise StemsUnavailableError(
                f"The {STEMS_MODEL} weights are not in the Hugging Face cache and this machine is offline. "
                "Fetch them first: restyle download --stems"
            ) from None
        try:
            model = _load_bag(hf, BagOfModels, local_only=False, cache_dir=cache_dir)
        except OSError as exc:
            raise StemsUnavailableError(
                f"The {STEMS_MODEL} weights could not be downloaded. "
                "Fetch them first: restyle download --stems"
            ) from exc
    return StemSeparator(model, torch.device(device))


def _load_bag(hf, bag_class, *, local_only: bool, cache_dir: str | None):
    """demucs' own Hugging Face loader (`demucs.hf.get_hf_model`), with the cache-only switch it lacks."""
    import yaml
    from huggingface_hub import hf_hub_download

    repo = f"{hf.DEFAULT_NAMESPACE}/{hf.hf_repo_name(STEMS_MODEL)}"

    def fetch(name: str) -> str:
        return hf_hub_download(repo, name, local_files_only=local_only, cache_dir=cache_dir)

    with open(fetch(f"{STEMS_MODEL}.yaml")) as file:
        bag = yaml.safe_load(file)
    models = [hf.load_safetensors_model(fetch(f"{sig}.safetensors")) for sig in bag["models"]]
    return bag_class(models, bag.get("weights"), bag.get("segment"))


def download_separator(cache_dir: str | None = None) -> None:
    """Fetch the htdemucs weights into the Hugging Face cache."""
    load_separator(offline=False, cache_dir=cache_dir)
