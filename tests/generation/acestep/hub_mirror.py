"""Mirrors of the real ACE-Step hub repositories with tiny weights, for the 127.0.0.1 hub.

What is copied from the real repositories, and from where:
- the layout and file kinds: SceneWorks/inference `crates/audio/candle-audio-acestep/src/model.rs`
  documents the turbo snapshot (model_index.json, scheduler/scheduler_config.json, a sharded
  transformer with its index, condition_encoder, text_encoder, tokenizer, vae) and takes
  audio_tokenizer/ and audio_token_detokenizer/ (config + diffusion_pytorch_model.safetensors) from
  the SFT snapshot; diffusers' converter writes exactly those folders and copies the raw
  `silence_latent.pt` to the root (huggingface/diffusers `scripts/convert_ace_step_to_diffusers.py`);
- the turbo checkpoint at its pin has no cover parts: its index lists them as null, which is what
  `save_pretrained` writes for an absent optional component;
- every config and `model_index.json` is written by diffusers 0.42's own classes, so class names and
  config keys are the pipeline's; the SFT transformer says `is_turbo: false`, `model_version: sft`.
Only the weights are tiny (the debug architecture).
"""

from __future__ import annotations

import json
from pathlib import Path

from generation.acestep.checkpoints import SFT_REPO, SFT_REVISION, TURBO_REPO, TURBO_REVISION
from tests.fake_hub import folder_files

CARD = b"---\nlicense: mit\nlibrary_name: diffusers\npipeline_tag: text-to-audio\n---\n"
EXTRAS = {"README.md": CARD, ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
SHARD = "150KB"  # small enough that the transformer is sharded, as the real one is


def turbo_files(pipe, folder: Path) -> dict[str, bytes]:
    """`acestep-v15-xl-turbo-diffusers` at its pin: six components, no cover parts."""
    from diffusers import AceStepPipeline

    parts = {**pipe.components, "audio_tokenizer": None, "audio_token_detokenizer": None}
    AceStepPipeline(**parts).save_pretrained(folder, max_shard_size=SHARD)
    return {**folder_files(folder), **EXTRAS}


def sft_files(pipe, folder: Path) -> dict[str, bytes]:
    """`acestep-v15-xl-sft-diffusers` at its pin: all eight components, and the raw silence pickle."""
    pipe.save_pretrained(folder, max_shard_size=SHARD)
    config = folder / "transformer" / "config.json"
    values = json.loads(config.read_text())
    config.write_text(json.dumps({**values, "is_turbo": False, "model_version": "sft"}, indent=2))
    return {**folder_files(folder), **EXTRAS, "silence_latent.pt": b"a pickle: never fetched"}


def mirror(pipe, folder: Path) -> dict[str, dict[str, dict[str, bytes]]]:
    """Both repositories at their pinned commits, as `tests.fake_hub.serve` takes them."""
    return {
        TURBO_REPO: {TURBO_REVISION: turbo_files(pipe, folder / "turbo")},
        SFT_REPO: {SFT_REVISION: sft_files(pipe, folder / "sft")},
    }
