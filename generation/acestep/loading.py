"""Finding, loading and fetching ACE-Step 1.5 cover pipelines.

A spec is `ace-step` (the pinned turbo checkpoint on the Hugging Face hub), a local folder written
by `save_pretrained`, `debug-ace` (tiny, random, built in-process), or `random:<architecture>` (the
real shapes with random weights, for speed work). Cover needs the pipeline's audio tokenizer and
detokenizer, which are optional in diffusers: a checkpoint without them is refused before loading.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generation import hub
from generation.acestep.architectures import ARCHITECTURES, DEBUG_MODELS, build_pipeline, quiet_weight_norm
from generation.acestep.params import LICENCE, MIN_DURATION_S
from generation.catalog import random_architecture
from generation.errors import ModelNotCachedError, ModelUnavailableError
from generation.interface import ModelLocation

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

HUB_SPEC = "ace-step"
# The official diffusers-format ACE-Step 1.5 turbo checkpoint (the one diffusers' AceStepPipeline
# documentation names), pinned to the commit a public model manifest recorded for it: MIT, 21 files.
# That manifest's file list has no audio_tokenizer/ or audio_token_detokenizer/ folder; if the hub
# copy lacks them the loader says so in one line instead of failing halfway through a cover.
HUB_REPO = "ACE-Step/acestep-v15-xl-turbo-diffusers"
HUB_REVISION = "200ba991ae448051e14b0183157e35c2d27c9fb0"
RANDOM_PREFIX = "random:"
DEBUG_MIN_DURATION_S = 0.5
COVER_COMPONENTS = ("audio_tokenizer", "audio_token_detokenizer")
PIPELINE_COMPONENTS = (
    "vae",
    "text_encoder",
    "tokenizer",
    "transformer",
    "condition_encoder",
    "scheduler",
    *COVER_COMPONENTS,
)
# Configs, tokenizer files and safetensors weights: never .bin or the pickled silence_latent.pt.
DOWNLOAD_PATTERNS = ["model_index.json", "*/*.json", "*/*.txt", "*/*.jinja", "*/*.safetensors"]


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

    def describe(self) -> dict[str, Any]:
        return {
            "family": "acestep",
            "name": self.spec,
            "source": self.source,
            "repository": self.repository,
            "revision": self.revision,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "licence": LICENCE.name,
        }


def is_acestep_spec(spec: str) -> bool:
    """Whether `spec` names an ACE-Step model (for a front that offers several families)."""
    if spec in (HUB_SPEC, *DEBUG_MODELS):
        return True
    if spec.startswith(RANDOM_PREFIX):
        return spec.removeprefix(RANDOM_PREFIX) in ARCHITECTURES
    index = Path(spec).expanduser() / "model_index.json"
    return index.is_file() and _read_index(index).get("_class_name") == "AceStepPipeline"


def resolve(spec: str) -> tuple[str, str]:
    """`(kind, target)`: kind is "random", "local" or "hub"; target an architecture, folder or repo."""
    arch = random_architecture(spec, DEBUG_MODELS, ARCHITECTURES, "ACE-Step")
    if arch is not None:
        return "random", arch
    if spec == HUB_SPEC:
        return "hub", HUB_REPO
    if Path(spec).expanduser().is_dir():
        return "local", str(Path(spec).expanduser())
    raise ModelUnavailableError(f"{spec} is neither an ACE-Step model name nor a model folder.")


def locate_acestep(
    spec: str = HUB_SPEC, *, cache_dir: str | Path | None = None, offline: bool = False
) -> ModelLocation:
    """Check that `spec` can be loaded, before any work: a folder holds what cover needs; the
    hub model is cached, or (online) still to be fetched. Nothing leaves the machine."""
    kind, target = resolve(spec)
    if kind == "random":
        return ModelLocation(spec, kind, target, None, None)
    if kind == "local":
        folder = Path(target)
        check_index(_read_index(folder / "model_index.json"), target, folder=folder)
        return ModelLocation(spec, kind, target, None, folder)
    needs = ["model_index.json", "*/*.safetensors"]
    folder = hub.cached_snapshot(target, HUB_REVISION, cache_dir, needs=needs)
    if folder is None and hub.is_offline(offline):
        raise ModelNotCachedError(
            f"The model {target} is not in the Hugging Face cache and this machine is offline. "
            f"Fetch it first, on a machine with internet: restyle download {HUB_SPEC}"
        )
    return ModelLocation(spec, kind, target, HUB_REVISION, folder)


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
    from generation.devices import pick_device, pick_dtype  # torch: only once a model loads

    torch_device = pick_device(device)
    torch_dtype = pick_dtype(dtype, torch_device)
    if kind == "random":
        pipe = build_pipeline(ARCHITECTURES[target], seed=seed, device=torch_device, dtype=torch_dtype)
        repository, revision = None, f"random-seed-{seed}"
    elif kind == "local":
        pipe = _load_local(target, torch_dtype)
        repository, revision = None, None
    else:
        pipe = _load_hub(target, torch_dtype, cache_dir, offline)
        repository, revision = target, HUB_REVISION
    _check_loaded(pipe, spec)
    pipe.to(torch_device)
    pipe.vae.enable_tiling()  # 30 s tiles: a 10-minute piece never goes through the VAE at once
    pipe.set_progress_bar_config(disable=True)
    log.info("loaded %s (%s) on %s as %s", spec, kind, torch_device, torch_dtype)
    # The debug model takes short pieces too, so tests run in seconds; lengths are otherwise real
    # (`AceStepFamily.lengths` says the same before loading).
    shortest = DEBUG_MIN_DURATION_S if spec in DEBUG_MODELS else MIN_DURATION_S
    return LoadedAceStep(spec, kind, repository, revision, pipe, torch_device, torch_dtype, shortest)


def download_acestep(spec: str = HUB_SPEC, *, cache_dir: str | Path | None = None) -> Path:
    """Fetch the pinned checkpoint's safetensors into the cache, for Docker images and offline hosts.

    The model index comes first, so a checkpoint that cannot cover is refused before gigabytes move.
    """
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError

    kind, target = resolve(spec)
    if kind != "hub":
        raise ModelUnavailableError(f"{spec} is not a Hugging Face model: there is nothing to download.")
    where = f"{target} at revision {HUB_REVISION[:12]}"
    try:
        index = hf_hub_download(target, "model_index.json", revision=HUB_REVISION, cache_dir=cache_dir)
        check_index(_read_index(Path(index)), where)
        return Path(
            snapshot_download(
                target, revision=HUB_REVISION, cache_dir=cache_dir, allow_patterns=DOWNLOAD_PATTERNS
            )
        )
    except (OSError, EntryNotFoundError) as exc:
        raise ModelUnavailableError(f"Could not download {where}: {type(exc).__name__}.") from exc


def check_index(index: dict, where: str, folder: Path | None = None) -> None:
    """Refuse a pipeline that is not ACE-Step, or lacks what cover needs, in one line."""
    if index.get("_class_name") != "AceStepPipeline":
        raise ModelUnavailableError(f"{where} does not hold an ACE-Step pipeline (no AceStepPipeline index).")
    missing = [name for name in COVER_COMPONENTS if not _listed(index, name)]
    if folder is not None:
        required = [name for name in PIPELINE_COMPONENTS if _listed(index, name)]
        missing += [name for name in required if not (folder / name).is_dir()]
    if missing:
        raise ModelUnavailableError(
            f"{where} lacks {' and '.join(sorted(set(missing)))}, which ACE-Step's cover needs; "
            "use a checkpoint converted with them."
        )


def _listed(index: dict, name: str) -> bool:
    entry = index.get(name)
    return isinstance(entry, list) and len(entry) == 2 and None not in entry


def _read_index(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"{path.parent} has no readable model_index.json.") from exc


def _load_local(folder: str, dtype: torch.dtype):
    check_index(_read_index(Path(folder) / "model_index.json"), folder, folder=Path(folder))
    try:
        return _from_pretrained(folder, dtype, local_files_only=True)
    except OSError as exc:  # a component folder without its weights or config
        raise ModelUnavailableError(f"{folder} does not hold a complete ACE-Step pipeline.") from exc


def _load_hub(repo: str, dtype: torch.dtype, cache_dir, offline: bool):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    where = f"{repo} at revision {HUB_REVISION[:12]}"
    try:
        try:  # the cache first, so a cached model never waits on the network
            index = hf_hub_download(
                repo, "model_index.json", revision=HUB_REVISION, cache_dir=cache_dir, local_files_only=True
            )
            cached = True
        except (OSError, EntryNotFoundError):
            if offline:
                raise
            index = hf_hub_download(repo, "model_index.json", revision=HUB_REVISION, cache_dir=cache_dir)
            cached = False
        check_index(_read_index(Path(index)), where)
        return _from_pretrained(
            repo, dtype, local_files_only=cached or offline, revision=HUB_REVISION, cache_dir=cache_dir
        )
    except (OSError, EntryNotFoundError) as exc:
        state = "this machine is offline" if offline else "it could not be downloaded"
        raise ModelUnavailableError(
            f"The model {where} is not in the Hugging Face cache and {state}. "
            f"Fetch it first, on a machine with internet: restyle download {HUB_SPEC}"
        ) from exc


def _from_pretrained(target: str, dtype: torch.dtype, **kwargs):
    import torch
    from diffusers import AceStepPipeline

    try:
        with quiet_weight_norm(), _no_progress_bars():
            return AceStepPipeline.from_pretrained(
                target, dtype={"default": dtype, "vae": torch.float32}, use_safetensors=True, **kwargs
            )
    except ValueError as exc:  # diffusers' word for a component folder it cannot use
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
