"""Which hub checkpoints `ace-step` loads, and fetching exactly those files.

Why two repositories. The pinned turbo checkpoint, `ACE-Step/acestep-v15-xl-turbo-diffusers` at
`200ba991…`, ships the transformer, text encoder and tokenizer, condition encoder, VAE and scheduler
but no `audio_tokenizer/` or `audio_token_detokenizer/` (its published manifest: 14.4 GB, those
six parts), and diffusers' `AceStepPipeline` refuses cover without both (diffusers 0.42.1,
`pipelines/ace_step/pipeline_ace_step.py`: `_optional_components` and the checks in
`prepare_src_latents` and `__call__`). So `ace-step` takes the two cover parts from the SFT sibling,
`ACE-Step/acestep-v15-xl-sft-diffusers` at `4bf7b60a…`, and everything else from turbo:

- SceneWorks/inference `crates/audio/candle-audio-acestep/src/model.rs` (commit 041599d0) pins the
  same two commits and takes the cover FSQ parts from the SFT snapshot "(same org, same 64-ch/25 Hz
  acoustic latent space)", saying the turbo checkpoint ships neither.
- The parts only cross the 64-channel, 25 Hz VAE latent space that both checkpoints share: the
  tokenizer pools VAE latents into 5 Hz FSQ codes, the detokenizer turns codes back into 64-channel
  context latents for the DiT. Upstream ACE-Step 1.5 feeds one language model's 5 Hz codes to every
  DiT variant (turbo, sft, base): the code space is shared across DiTs. diffusers' converter
  (huggingface/diffusers `scripts/convert_ace_step_to_diffusers.py`, commit 58eb52c0) writes both
  parts for every variant with the same config keys, sized by the XL encoder (2048 wide).
- The load checks this: each cover part's `audio_acoustic_hidden_dim` must equal the transformer's.

Known trade-off, not hidden: SceneWorks later moved cover to the SFT *transformer* as well, saying
the SFT DiT keeps more of the source's melody than the distilled turbo DiT. `ace-step` stays turbo
(8 steps, no guidance: about 12x fewer DiT passes than SFT's 50 steps with guidance), which is what
a CPU can run; the SFT DiT as a model of its own is left for later (docs/models-acestep.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from generation import hub
from generation.errors import ModelNotCachedError, ModelUnavailableError

log = logging.getLogger(__name__)

HUB_SPEC = "ace-step"
COVER_COMPONENTS = ("audio_tokenizer", "audio_token_detokenizer")
BASE_COMPONENTS = ("vae", "text_encoder", "tokenizer", "transformer", "condition_encoder", "scheduler")
PIPELINE_COMPONENTS = (*BASE_COMPONENTS, *COVER_COMPONENTS)
UNWEIGHTED = ("tokenizer", "scheduler")  # configs and vocabularies only
# Configs, tokenizer files and safetensors weights: never .bin or the pickled silence_latent.pt.
FILE_KINDS = ("*.json", "*.txt", "*.jinja", "*.safetensors")


@dataclass(frozen=True)
class Part:
    """The components a pipeline takes from one repository at one commit."""

    repo: str
    revision: str
    components: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.repo} at revision {self.revision[:12]}"

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}"

    def patterns(self) -> list[str]:
        """The allow-patterns of `snapshot_download`: the index and this part's folders only."""
        return ["model_index.json", *(f"{name}/{kind}" for name in self.components for kind in FILE_KINDS)]

    def needs(self) -> list[str]:
        """What a cached snapshot must hold: the index, each folder's config and weights."""
        weighted = [name for name in self.components if name not in UNWEIGHTED]
        return ["model_index.json", *(f"{name}/*" for name in self.components)] + [
            f"{name}/*.safetensors" for name in weighted
        ]


TURBO_REPO = "ACE-Step/acestep-v15-xl-turbo-diffusers"
TURBO_REVISION = "200ba991ae448051e14b0183157e35c2d27c9fb0"
SFT_REPO = "ACE-Step/acestep-v15-xl-sft-diffusers"
SFT_REVISION = "4bf7b60a63b27144f539f980927eeb89f5f912b0"

CHECKPOINTS: dict[str, tuple[Part, ...]] = {
    HUB_SPEC: (
        Part(TURBO_REPO, TURBO_REVISION, BASE_COMPONENTS),  # the first part's index builds the pipeline
        Part(SFT_REPO, SFT_REVISION, COVER_COMPONENTS),
    ),
}


def missing_components(parts: tuple[Part, ...]) -> list[str]:
    """Pipeline components no part provides (a set that could not cover)."""
    given = {name for part in parts for name in part.components}
    return [name for name in PIPELINE_COMPONENTS if name not in given]


def cached_folders(parts: tuple[Part, ...], cache_dir) -> list[Path] | None:
    """Each part's cached snapshot folder, or None if any part is not (wholly) in the cache."""
    folders = []
    for part in parts:
        folder = hub.cached_snapshot(
            part.repo, part.revision, cache_dir, needs=part.needs(), patterns=part.patterns()
        )
        if folder is None:
            return None
        folders.append(folder)
    return folders


def check_fetchable(spec: str, parts: tuple[Part, ...], offline: bool) -> None:
    """Before any work, for a set not in the cache: offline, or the hub unreachable (one request per
    repository, no retries), or a repository lacking a part is refused in one line."""
    fetch_it = f"Fetch it first, on a machine with internet: restyle download {spec}"
    what = f"The model {spec} ({', '.join(part.where for part in parts)}) is not in the Hugging Face cache"
    if hub.is_offline(offline):
        raise ModelNotCachedError(f"{what} and this machine is offline. {fetch_it}")
    for part in parts:
        try:
            files = hub.repo_files(part.repo, part.revision)
        except hub.HubUnreachableError as exc:
            raise ModelNotCachedError(f"{what}, and it cannot be fetched: {exc} {fetch_it}") from None
        _refuse_missing(part, _listed_folders(files, part))


def download(spec: str, parts: tuple[Part, ...], cache_dir) -> list[Path]:
    """Fetch each part's files into the cache. Every repository's file list and model index are
    read (and a missing component named) before any weights move."""
    if hub.is_offline():
        raise ModelUnavailableError(
            "Downloading needs the network, and this machine is offline (--offline or HF_HUB_OFFLINE=1)."
        )
    absent = missing_components(parts)
    if absent:
        raise ModelUnavailableError(f"{spec} has no source for {' and '.join(absent)}, which cover needs.")
    for part in parts:
        _check_on_hub(part, cache_dir)
    return [_fetch(part, cache_dir) for part in parts]


def _check_on_hub(part: Part, cache_dir) -> None:
    """The part's files and model index, read first; one request says at once if the hub is out of reach."""
    from huggingface_hub import hf_hub_download

    _refuse_missing(part, _listed_folders(hub.repo_files(part.repo, part.revision), part))
    try:
        index = hf_hub_download(part.repo, "model_index.json", revision=part.revision, cache_dir=cache_dir)
    except Exception as exc:
        raise ModelUnavailableError(
            f"Could not read the model index of {part.where}: {type(exc).__name__}."
        ) from exc
    check_part_index(read_index(Path(index)), part)


def _fetch(part: Part, cache_dir) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                part.repo, revision=part.revision, cache_dir=cache_dir, allow_patterns=part.patterns()
            )
        )
    except Exception as exc:
        raise ModelUnavailableError(
            f"Downloading {part.where} failed ({type(exc).__name__}); run it again."
        ) from exc


def _listed_folders(files: list[str], part: Part) -> list[str]:
    """The part's components with no config, or no safetensors where it needs weights, in `files`."""
    missing = []
    for name in part.components:
        inside = [path for path in files if path.startswith(f"{name}/")]
        has_config = any(path.endswith(".json") for path in inside)
        has_weights = name in UNWEIGHTED or any(path.endswith(".safetensors") for path in inside)
        if not (has_config and has_weights):
            missing.append(name)
    return missing


def _refuse_missing(part: Part, missing: list[str]) -> None:
    if missing:
        raise ModelUnavailableError(
            f"{part.where} lacks {' and '.join(missing)} (as safetensors with a config), "
            "which ACE-Step's cover needs."
        )


def check_part_index(index: dict, part: Part) -> None:
    """The part's repository holds an ACE-Step pipeline whose index lists each component taken."""
    if index.get("_class_name") != "AceStepPipeline":
        raise ModelUnavailableError(
            f"{part.where} does not hold an ACE-Step pipeline (no AceStepPipeline index)."
        )
    _refuse_missing(part, [name for name in part.components if not listed(index, name)])


def listed(index: dict, name: str) -> bool:
    entry = index.get(name)
    return isinstance(entry, list) and len(entry) == 2 and None not in entry


def read_index(path: Path) -> dict:
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"{path.parent} has no readable model_index.json.") from exc
    if not isinstance(index, dict):  # `[1, 2]` is JSON, but no pipeline's index
        raise ModelUnavailableError(f"{path.parent}'s model_index.json is not a table of components.")
    return index
