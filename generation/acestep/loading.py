"""Finding, loading and fetching ACE-Step 1.5 cover pipelines.

A spec is `ace-step` (the pinned hub checkpoints: `generation.acestep.checkpoints` says which and
why), a local folder written by `save_pretrained`, `debug-ace` (tiny, random, built in-process), or
`random:<architecture>` (the real shapes with random weights, for speed work). Cover needs the
pipeline's audio tokenizer and detokenizer, which are optional in diffusers: a checkpoint without
them is refused before loading. The hub is asked once, without retries, before any work; a model
is loaded from the cache only (fetched into it first when online).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generation.acestep.architectures import ARCHITECTURES, DEBUG_MODELS, build_pipeline, quiet_weight_norm
from generation.acestep.checkpoints import (
    CHECKPOINTS,
    COVER_COMPONENTS,
    HUB_SPEC,
    PIPELINE_COMPONENTS,
    Part,
    cached_folders,
    check_fetchable,
    check_part_index,
    download,
    listed,
    read_index,
)
from generation.acestep.params import LICENCE, MIN_DURATION_S
from generation.catalog import random_architecture
from generation.errors import ModelUnavailableError
from generation.interface import ModelLocation

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

RANDOM_PREFIX = "random:"
DEBUG_MIN_DURATION_S = 0.5
PIN = CHECKPOINTS[HUB_SPEC]
HUB_REPO, HUB_REVISION = PIN[0].repo, PIN[0].revision  # the pipeline's own repository (turbo)


@dataclass
class LoadedAceStep:
    """A cover pipeline ready to generate, with what its outputs' sidecars should say about it."""

    spec: str
    source: str  # "hub", "local" or "random"
    repository: str | None
    revision: str | None
    pipe: Any  # diffusers.AceStepPipeline
    device: torch.device
    dtype: torch.dtype
    min_duration_s: float = MIN_DURATION_S
    parts: tuple[Part, ...] = ()  # the hub repositories loaded, each with its components

    def describe(self) -> dict[str, Any]:
        described = {
            "family": "acestep",
            "name": self.spec,
            "source": self.source,
            "repository": self.repository,
            "revision": self.revision,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "licence": LICENCE.name,
        }
        if self.parts:
            described["checkpoints"] = [
                {
                    "repository": part.repo,
                    "revision": part.revision,
                    "components": list(part.components),
                    "licence_url": part.url,
                }
                for part in self.parts
            ]
        return described


def is_acestep_spec(spec: str) -> bool:
    """Whether `spec` names an ACE-Step model (for a front that offers several families)."""
    if spec.partition("@")[0] in (*CHECKPOINTS, *DEBUG_MODELS):  # `ace-step@abc`: refused as ours
        return True
    if spec.startswith(RANDOM_PREFIX):
        return spec.removeprefix(RANDOM_PREFIX) in ARCHITECTURES
    index = Path(spec).expanduser() / "model_index.json"
    return index.is_file() and read_index(index).get("_class_name") == "AceStepPipeline"


def resolve(spec: str) -> tuple[str, str]:
    """`(kind, target)`: kind is "random", "local" or "hub"; target an architecture, folder or spec."""
    arch = random_architecture(spec, DEBUG_MODELS, ARCHITECTURES, "ACE-Step")
    if arch is not None:
        return "random", arch
    if spec in CHECKPOINTS:
        return "hub", spec
    if Path(spec).expanduser().is_dir():
        return "local", str(Path(spec).expanduser())
    raise ModelUnavailableError(f"{spec} is neither an ACE-Step model name nor a model folder.")


def locate_acestep(
    spec: str = HUB_SPEC, *, cache_dir: str | Path | None = None, offline: bool = False
) -> ModelLocation:
    """Check that `spec` can be loaded, before any work: a folder holds what cover needs; the hub
    checkpoints are cached, or (online) reachable and complete, asked once without retries."""
    kind, target = resolve(spec)
    if kind == "random":
        return ModelLocation(spec, kind, target, None, None)
    if kind == "local":
        folder = Path(target)
        check_index(read_index(folder / "model_index.json"), target, folder=folder)
        return ModelLocation(spec, kind, target, None, folder)
    parts = CHECKPOINTS[target]
    folders = cached_folders(parts, cache_dir)
    if folders is None:
        check_fetchable(spec, parts, offline)
    return ModelLocation(spec, kind, parts[0].repo, parts[0].revision, folders[0] if folders else None)


def load_acestep(
    spec: str = HUB_SPEC,
    *,
    device: str = "auto",
    dtype: str = "auto",
    cache_dir: str | Path | None = None,
    offline: bool = False,
    seed: int = 0,
) -> LoadedAceStep:
    """Load once and keep, in eval mode on its device; the VAE stays in float32."""
    kind, target = resolve(spec)
    from generation.acestep.precision import is_tiny, pick_acestep_dtype  # torch: once a model loads
    from generation.devices import pick_device

    torch_device = pick_device(device)
    torch_dtype = pick_acestep_dtype(dtype, torch_device, tiny=is_tiny(kind, target))
    parts: tuple[Part, ...] = ()
    if kind == "random":
        pipe = build_pipeline(ARCHITECTURES[target], seed=seed, device=torch_device, dtype=torch_dtype)
        repository, revision = None, f"random-seed-{seed}"
    elif kind == "local":
        pipe = _load_local(target, torch_dtype)
        repository, revision = None, None
    else:
        parts = CHECKPOINTS[target]
        pipe = load_parts(spec, parts, torch_dtype, cache_dir, offline)
        repository, revision = parts[0].repo, parts[0].revision
    _check_loaded(pipe, spec)
    from generation.acestep import fastdit, fastvae

    pipe.to(torch_device)
    pipe.vae.enable_tiling()  # 30 s tiles: a 10-minute piece never goes through the VAE at once
    fastvae.speed_up(pipe.vae)  # weight norm folded, snakes fused: the same VAE, cheaper per call
    fastdit.speed_up(pipe.transformer)  # fused norms, conditions kept across steps: the same DiT
    pipe.set_progress_bar_config(disable=True)
    log.info("loaded %s (%s) on %s as %s", spec, kind, torch_device, torch_dtype)
    # The debug model takes short pieces too, so tests run in seconds; lengths are otherwise real
    # (`AceStepFamily.lengths` says the same before loading).
    shortest = DEBUG_MIN_DURATION_S if spec in DEBUG_MODELS else MIN_DURATION_S
    return LoadedAceStep(spec, kind, repository, revision, pipe, torch_device, torch_dtype, shortest, parts)


def download_acestep(
    spec: str = HUB_SPEC, *, cache_dir: str | Path | None = None, parts: tuple[Part, ...] | None = None
) -> Path:
    """Fetch the pinned checkpoints' files into the cache, for Docker images and offline hosts;
    the pipeline's own folder is returned. `parts` replaces the pin (tests of other pins)."""
    kind, target = resolve(spec)
    if kind != "hub":
        raise ModelUnavailableError(f"{spec} is not a Hugging Face model: there is nothing to download.")
    return download(spec, parts or CHECKPOINTS[target], cache_dir)[0]


def load_parts(spec: str, parts: tuple[Part, ...], dtype: torch.dtype, cache_dir, offline: bool):
    """The pipeline from the first part's folder with the other parts' components in place, all
    from the cache (fetched into it first when online and missing)."""
    import torch

    folders = cached_folders(parts, cache_dir)
    if folders is None:
        check_fetchable(spec, parts, offline)
        folders = download(spec, parts, cache_dir)
    indexes = [read_index(folder / "model_index.json") for folder in folders]
    for part, index in zip(parts, indexes, strict=True):
        check_part_index(index, part)
    given = {
        name: _load_component(folder, name, index[name][1], dtype)
        for part, folder, index in zip(parts[1:], folders[1:], indexes[1:], strict=True)
        for name in part.components
    }
    check_latent_space(given, folders[0])
    return _from_pretrained(str(folders[0]), dtype, local_files_only=True, **given, vae_dtype=torch.float32)


def _load_component(folder: Path, name: str, class_name: str, dtype: torch.dtype):
    import diffusers.pipelines.ace_step as ace_step_classes

    cls = getattr(ace_step_classes, class_name, None)
    if cls is None:
        raise ModelUnavailableError(f"{folder.name}/{name} is a {class_name}, not an ACE-Step {name}.")
    try:
        with _no_progress_bars():
            return cls.from_pretrained(folder, subfolder=name, torch_dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"{folder}/{name} does not hold a complete {class_name}.") from exc


def check_latent_space(given: dict, folder: Path) -> None:
    """Borrowed cover parts must speak the transformer's latent space (64 channels for ACE-Step 1.5)."""
    try:
        channels = json.loads((folder / "transformer" / "config.json").read_text())[
            "audio_acoustic_hidden_dim"
        ]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailableError(f"{folder}/transformer has no readable config.") from exc
    for name, model in given.items():
        theirs = model.config.get("audio_acoustic_hidden_dim")
        if theirs != channels:
            raise ModelUnavailableError(
                f"The {name} works on {theirs}-channel latents but the transformer on {channels}: "
                "they cannot be used together."
            )


def check_index(index: dict, where: str, folder: Path | None = None) -> None:
    """Refuse a pipeline that is not ACE-Step, or lacks what cover needs, in one line."""
    if index.get("_class_name") != "AceStepPipeline":
        raise ModelUnavailableError(f"{where} does not hold an ACE-Step pipeline (no AceStepPipeline index).")
    missing = [name for name in COVER_COMPONENTS if not listed(index, name)]
    if folder is not None:
        required = [name for name in PIPELINE_COMPONENTS if listed(index, name)]
        missing += [name for name in required if not (folder / name).is_dir()]
    if missing:
        raise ModelUnavailableError(
            f"{where} lacks {' and '.join(sorted(set(missing)))}, which ACE-Step's cover needs; "
            "use a checkpoint converted with them."
        )


def _load_local(folder: str, dtype: torch.dtype):
    import torch

    check_index(read_index(Path(folder) / "model_index.json"), folder, folder=Path(folder))
    return _from_pretrained(folder, dtype, local_files_only=True, vae_dtype=torch.float32)


def _from_pretrained(target: str, dtype: torch.dtype, vae_dtype: torch.dtype, **kwargs):
    from diffusers import AceStepPipeline

    try:
        with quiet_weight_norm(), _no_progress_bars():
            return AceStepPipeline.from_pretrained(
                target, dtype={"default": dtype, "vae": vae_dtype}, use_safetensors=True, **kwargs
            )
    except (OSError, ValueError) as exc:  # diffusers' words for a component folder it cannot use
        raise ModelUnavailableError(f"{target} does not hold a complete ACE-Step pipeline.") from exc


@contextlib.contextmanager
def _no_progress_bars():
    """diffusers' and transformers' loading bars: the fronts show loading as a phase of their own."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    shown = diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        for library, on in zip((diffusers_logging, transformers_logging), shown, strict=True):
            if on:
                library.enable_progress_bar()


def _check_loaded(pipe, spec: str) -> None:
    missing = [name for name in COVER_COMPONENTS if getattr(pipe, name, None) is None]
    if missing:
        raise ModelUnavailableError(f"{spec} lacks {' and '.join(missing)}, which ACE-Step's cover needs.")
