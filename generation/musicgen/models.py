"""Finding, loading and describing MusicGen-melody models.

A model spec is one of: a short alias (`melody`, `melody-large`, `stereo-melody`,
`stereo-melody-large`, each pinned to a known-good commit), a Hugging Face repo id, a local directory
written by `save_pretrained`, `debug` / `debug-stereo` (tiny, random, built in-process), or
`random:<architecture>` for speed work; `NAME@REVISION` picks another commit. Weights come from the
Hugging Face cache; a model missing from it is downloaded (safetensors only) unless offline, and
offline it is a clear error that names the command that fetches it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from generation import hub
from generation.catalog import (
    DEBUG_MODELS,
    DEFAULT_MODEL,
    hub_target,
    pinned_revision,
    random_architecture,
    split_revision,
    unknown_model_message,
)
from generation.devices import pick_device
from generation.errors import ModelNotCachedError, ModelUnavailableError
from generation.interface import ModelLocation
from generation.musicgen.architectures import ARCHITECTURES, build_random_model
from generation.musicgen.precision import Precision, apply_precision, is_tiny, pick_precision

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MODEL", "LoadedModel", "download_model", "load_model", "locate_model", "resolve"]


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
    """`(kind, target)` for a spec: kind is "random", "local" or "hub". Nothing is looked up."""
    arch = random_architecture(spec, DEBUG_MODELS, ARCHITECTURES)
    if arch is not None:
        return "random", arch
    if Path(spec).expanduser().is_dir():
        return "local", str(Path(spec).expanduser())
    if spec.startswith((".", "/", "~")):
        raise ModelUnavailableError(f"There is no model directory at {spec}.")
    target = hub_target(spec)
    if target is None:
        raise ModelUnavailableError(unknown_model_message(spec))
    return "hub", target


def locate_model(
    spec: str = DEFAULT_MODEL,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    offline: bool = False,
) -> ModelLocation:
    """Check that `spec` can be loaded, from the cache or (online) the hub, before any work.

    Online and not cached, the hub is asked once, without retries, whether the commit exists and
    holds safetensors; offline nothing leaves the machine.
    """
    try:
        name = split_revision(spec, revision)
    except ValueError as exc:
        raise ModelUnavailableError(str(exc)) from None
    kind, target = resolve(name.spec)
    if kind == "random":
        return ModelLocation(name.spec, kind, target, None, None)
    if kind == "local":
        return ModelLocation(name.spec, kind, target, None, _checked_folder(Path(target)))
    commit = pinned_revision(target, name.revision)
    location = ModelLocation(name.spec, kind, target, commit, _cached(target, commit, cache_dir))
    if location.folder is None:
        _check_fetchable(location, spec if revision is None else f"{spec} --revision {revision}", offline)
    return location


def _checked_folder(folder: Path) -> Path:
    if not (folder / "config.json").is_file():
        raise ModelUnavailableError(
            f"{folder} holds no model: it has no config.json (save_pretrained writes one)."
        )
    if not any(folder.glob("*.safetensors")):
        raise ModelUnavailableError(
            f"{folder} has no safetensors weights; Restyle does not load pickled (.bin) weights, "
            "which can run code when opened."
        )
    return folder


def _cached(target: str, commit: str, cache_dir) -> Path | None:
    return hub.cached_snapshot(target, commit, cache_dir, needs=["config.json", hub.WEIGHT_PATTERN])


def _check_fetchable(location: ModelLocation, typed: str, offline: bool) -> None:
    fetch_it = f"restyle download {typed}"
    what = f"The model {location.target} is not in the Hugging Face cache"
    if hub.is_offline(offline):
        raise ModelNotCachedError(
            f"{what} and this machine is offline. Fetch it first, on a machine with internet: {fetch_it}"
        )
    try:
        hub.repo_files(location.target, location.revision or "main")
    except hub.HubUnreachableError as exc:
        raise ModelNotCachedError(
            f"{what}, and it cannot be fetched: {exc} Or fetch it elsewhere: {fetch_it}"
        ) from None


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str = "auto",
    dtype: str = "auto",
    cache_dir: str | Path | None = None,
    offline: bool = False,
    seed: int = 0,
    revision: str | None = None,
) -> LoadedModel:
    """Load once and keep: the model in eval mode on its device, each part in its precision
    (`generation.musicgen.precision`)."""
    torch_device = pick_device(device)
    pick_precision(dtype, torch_device)  # a bad name fails before anything loads
    location = locate_model(spec, revision=revision, cache_dir=cache_dir, offline=offline)
    kind, target = location.kind, location.target
    if kind == "random":
        model, tokenizer = build_random_model(target, seed=seed, device=torch_device)
        revision = f"random-seed-{seed}"
    else:
        folder = location.folder or hub.fetch(target, location.revision or "main", cache_dir)
        model, tokenizer = _load_pretrained(spec, _checked_folder(folder), torch.float32)
        revision = folder.name if kind == "hub" else None
    precision = pick_precision(dtype, torch_device, tiny=is_tiny(model))
    model = apply_precision(model.to(torch_device).eval(), precision)
    log.info("loaded %s (%s) on %s as %s", spec, kind, torch_device, precision.name)
    return LoadedModel(spec, kind, revision, model, tokenizer, torch_device, precision)


def _load_pretrained(spec: str, folder: Path, dtype: torch.dtype):
    """From a folder on disk only (a cache snapshot or a save_pretrained folder), safetensors only."""
    from transformers import AutoConfig, AutoTokenizer, MusicgenMelodyForConditionalGeneration

    local = {"local_files_only": True}
    try:
        config = AutoConfig.from_pretrained(folder, **local)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"{folder} does not hold a readable model config ({type(exc).__name__})."
        ) from exc
    if getattr(config, "model_type", None) != "musicgen_melody":
        raise ModelUnavailableError(f"{spec} is a {config.model_type} model, not MusicGen-melody.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **local)
        model = MusicgenMelodyForConditionalGeneration.from_pretrained(
            folder, dtype=dtype, use_safetensors=True, **local
        )
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"{folder} does not hold a complete MusicGen-melody model.") from exc
    return model, tokenizer


def download_model(
    spec: str = DEFAULT_MODEL,
    *,
    cache_dir: str | Path | None = None,
    offline: bool = False,
    revision: str | None = None,
) -> Path:
    """Fetch a hub model's config, tokenizer and safetensors at its pinned (or given) commit."""
    try:
        name = split_revision(spec, revision)
    except ValueError as exc:
        raise ModelUnavailableError(str(exc)) from None
    kind, target = resolve(name.spec)
    if kind != "hub":
        raise ModelUnavailableError(f"{spec} is not a Hugging Face model: there is nothing to download.")
    if hub.is_offline(offline):
        raise ModelUnavailableError(
            "Downloading needs the network, and this machine is offline (--offline or HF_HUB_OFFLINE=1)."
        )
    return hub.fetch(target, pinned_revision(target, name.revision), cache_dir)
