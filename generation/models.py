"""Finding, loading and describing MusicGen-melody models.

A model spec is one of: a short alias (`melody`, `melody-large`, `stereo-melody`,
`stereo-melody-large`), a Hugging Face repo id, a local directory written by `save_pretrained`,
`debug` / `debug-stereo` (tiny, random, built in-process), or `random:<architecture>` for speed work.
Weights come from the Hugging Face cache; a model missing from it is downloaded unless offline, and
offline it is a clear error that names the command that fetches it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from generation.architectures import ARCHITECTURES, DEBUG_MODELS, build_random_model
from generation.errors import ModelUnavailableError
from generation.precision import Precision, apply_precision, is_tiny, pick_precision

log = logging.getLogger(__name__)

DEFAULT_MODEL = "facebook/musicgen-melody"
MODEL_ALIASES = {
    "melody": "facebook/musicgen-melody",
    "melody-large": "facebook/musicgen-melody-large",
    "stereo-melody": "facebook/musicgen-stereo-melody",
    "stereo-melody-large": "facebook/musicgen-stereo-melody-large",
}
RANDOM_PREFIX = "random:"
# Configs and tokenizer files; weights are added as safetensors, or .bin where a repo has only those.
METADATA_PATTERNS = ["*.json", "*.model", "*.txt"]


@dataclass
class LoadedModel:
    """A model ready to generate, with what its outputs' sidecars should say about it."""

    spec: str
    source: str  # "hub", "local" or "random"
    revision: str | None
    model: Any  # MusicgenMelodyForConditionalGeneration
    tokenizer: Any
    device: torch.device
    precision: Precision

    @property
    def dtype(self) -> torch.dtype:
        """The decoder's compute dtype (its activations and key/value cache)."""
        return self.precision.compute

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> int:
        return int(self.model.config.audio_encoder.frame_rate)

    @property
    def num_codebooks(self) -> int:
        return int(self.model.decoder.config.num_codebooks)

    @property
    def audio_channels(self) -> int:
        return int(self.model.decoder.config.audio_channels)

    @property
    def delay(self) -> int:
        """Steps the interleaving pattern adds: the last codebook runs this many frames behind."""
        return self.num_codebooks // self.audio_channels - 1

    @property
    def chroma_frames(self) -> int:
        return int(self.model.config.chroma_length)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.spec,
            "source": self.source,
            "revision": self.revision,
            "dtype": self.precision.name,
            "device": str(self.device),
        }


def resolve(spec: str) -> tuple[str, str]:
    """`(kind, target)` for a spec: kind is "random", "local" or "hub"."""
    if spec in DEBUG_MODELS:
        return "random", spec
    if spec.startswith(RANDOM_PREFIX):
        arch = spec.removeprefix(RANDOM_PREFIX)
        if arch not in ARCHITECTURES:
            raise ModelUnavailableError(
                f"Unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}."
            )
        return "random", arch
    if Path(spec).expanduser().is_dir():
        return "local", str(Path(spec).expanduser())
    if spec.startswith((".", "/", "~")):
        raise ModelUnavailableError(f"There is no model directory at {spec}.")
    return "hub", MODEL_ALIASES.get(spec, spec)


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str = "auto",
    dtype: str = "auto",
    cache_dir: str | Path | None = None,
    offline: bool = False,
    seed: int = 0,
) -> LoadedModel:
    """Load once and keep: the model in eval mode on its device, each part in its precision
    (`generation.precision`)."""
    kind, target = resolve(spec)
    torch_device = pick_device(device)
    pick_precision(dtype, torch_device)  # a bad name fails before anything loads
    if kind == "random":
        model, tokenizer = build_random_model(target, seed=seed, device=torch_device)
        revision = f"random-seed-{seed}"
    else:
        local_only = offline or kind == "local"
        model, tokenizer = _load_pretrained(spec, target, torch.float32, cache_dir, local_only)
        revision = _cached_revision(target, cache_dir) if kind == "hub" else None
    precision = pick_precision(dtype, torch_device, tiny=is_tiny(model))
    model = apply_precision(model.to(torch_device).eval(), precision)
    log.info("loaded %s (%s) on %s as %s", spec, kind, torch_device, precision.name)
    return LoadedModel(spec, kind, revision, model, tokenizer, torch_device, precision)


def _load_pretrained(spec: str, target: str, dtype: torch.dtype, cache_dir, local_only: bool):
    from transformers import AutoConfig, AutoTokenizer, MusicgenMelodyForConditionalGeneration

    try:
        config = _from_cache_or_hub(AutoConfig.from_pretrained, target, cache_dir, local_only)
    except OSError as exc:
        raise _unavailable(spec, target, local_only) from exc
    if getattr(config, "model_type", None) != "musicgen_melody":
        raise ModelUnavailableError(f"{spec} is a {config.model_type} model, not MusicGen-melody.")
    try:
        tokenizer = _from_cache_or_hub(AutoTokenizer.from_pretrained, target, cache_dir, local_only)
        model = _from_cache_or_hub(
            MusicgenMelodyForConditionalGeneration.from_pretrained, target, cache_dir, local_only, dtype=dtype
        )
    except OSError as exc:
        raise _unavailable(spec, target, local_only) from exc
    return model, tokenizer


def _from_cache_or_hub(loader, target: str, cache_dir, local_only: bool, **kwargs):
    """The cache first, so a cached model never waits on the network; then the hub if allowed."""
    try:
        return loader(target, cache_dir=cache_dir, local_files_only=True, **kwargs)
    except OSError:
        if local_only:
            raise
    return loader(target, cache_dir=cache_dir, **kwargs)


def _cached_revision(target: str, cache_dir) -> str | None:
    """The commit the cache holds for `target`: its snapshot folder is named after it."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(target, "config.json", cache_dir=cache_dir)
    return Path(found).parent.name if isinstance(found, str) else None


def _unavailable(spec: str, target: str, local_only: bool) -> ModelUnavailableError:
    if Path(target).is_dir():
        return ModelUnavailableError(f"{target} does not hold a complete MusicGen-melody model.")
    where = "this machine is offline" if local_only else "it could not be downloaded"
    return ModelUnavailableError(
        f"The model {target} is not in the Hugging Face cache and {where}. "
        f"Fetch it first, on a machine with internet: restyle download {spec}"
    )


def download_model(spec: str = DEFAULT_MODEL, *, cache_dir: str | Path | None = None) -> Path:
    """Fetch a hub model's weights into the cache, for Docker images and offline hosts."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    kind, target = resolve(spec)
    if kind != "hub":
        raise ModelUnavailableError(f"{spec} is not a Hugging Face model: there is nothing to download.")
    try:
        files = HfApi().list_repo_files(target)
        weights = "*.safetensors" if any(name.endswith(".safetensors") for name in files) else "*.bin"
        return Path(
            snapshot_download(target, cache_dir=cache_dir, allow_patterns=[*METADATA_PATTERNS, weights])
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise ModelUnavailableError(f"Could not download {target}: {type(exc).__name__}.") from exc
