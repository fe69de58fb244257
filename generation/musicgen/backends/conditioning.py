"""The conditioning prefix MusicGen-melody's decoder reads before any code: [chroma, text].

This is transformers' `_prepare_encoder_hidden_states_kwargs_for_generation`, done per job so that
jobs with different prompts can share a batch: each job's prefix is built alone (no padding inside
it, as if the job ran by itself) and shorter prefixes are left-padded with masked slots.
For guidance, the unconditional prefix is the projected "null" chroma (all energy in bin 0) and a
text part of zeros, as in transformers and audiocraft. T5 and both projections run in float32 (as
audiocraft runs them); only the finished prefix is cast to the decoder's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from generation.musicgen.backends import WindowBatch
from generation.musicgen.models import LoadedModel


@dataclass
class Prefix:
    """Conditioning for every row, conditional rows first, then unconditional ones (if guided)."""

    states: torch.Tensor  # (rows, length, hidden) in the decoder's dtype
    valid: torch.Tensor | None  # (rows, length) bool, None when no row is padded
    lengths: torch.Tensor  # (rows,) int64: each row's own prefix length (positions count from 0)


def build_prefix(
    lm: LoadedModel, batch: WindowBatch, guided: bool, bucket: int = 1, dtype: torch.dtype | None = None
) -> Prefix:
    """Every row's prefix in `dtype` (the decoder's by default), left-padded to the longest rounded
    up to a multiple of `bucket`."""
    cond, uncond = [], []
    for group in batch.row_groups():
        text = _text_states(lm, batch.prompts[group])
        chroma = _chroma_states(lm, batch.chroma[group])
        cond += list(torch.cat([chroma, text], dim=1))
        if guided:
            null = torch.zeros_like(batch.chroma[group])
            null[..., 0] = 1
            uncond += list(torch.cat([_chroma_states(lm, null), torch.zeros_like(text)], dim=1))
    return _left_pad([row.to(dtype or lm.dtype) for row in cond + uncond], bucket)


def _text_states(lm: LoadedModel, prompts: list[str]) -> torch.Tensor:
    model = lm.model
    tokens = lm.tokenizer(prompts, return_tensors="pt", padding=True).to(lm.device)
    states = model.text_encoder(
        input_ids=tokens.input_ids, attention_mask=tokens.attention_mask
    ).last_hidden_state
    if model.text_encoder.config.hidden_size != model.decoder.config.hidden_size:
        states = model.enc_to_dec_proj(states)
    return states * tokens.attention_mask[..., None]


def _chroma_states(lm: LoadedModel, chroma: torch.Tensor) -> torch.Tensor:
    model = lm.model
    states = chroma.to(lm.device, torch.float32)
    if model.config.num_chroma != model.decoder.config.hidden_size:
        states = model.audio_enc_to_dec_proj(states)
    length = model.config.chroma_length
    if states.shape[1] < length:
        states = states.repeat(1, -(-length // states.shape[1]), 1)
    return states[:, :length]


def _left_pad(rows: list[torch.Tensor], bucket: int = 1) -> Prefix:
    lengths = torch.tensor([row.shape[0] for row in rows], dtype=torch.int64)
    longest = -(-int(lengths.max()) // bucket) * bucket
    if int(lengths.min()) == longest and bucket == 1:  # bucketed prefixes always carry a mask
        return Prefix(torch.stack(rows), None, lengths.to(rows[0].device))
    states = rows[0].new_zeros(len(rows), longest, rows[0].shape[-1])
    valid = torch.zeros(len(rows), longest, dtype=torch.bool, device=rows[0].device)
    for index, row in enumerate(rows):
        states[index, longest - row.shape[0] :] = row
        valid[index, longest - row.shape[0] :] = True
    return Prefix(states, valid, lengths.to(rows[0].device))
