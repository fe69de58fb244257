"""EnCodec codes to audio, in overlapping chunks so a long piece fits in memory.

The 32 kHz EnCodec decoder holds several float32 activations of 64 channels at the audio rate: for
300 s that is about 2.5 GB each, over 13 GB in all. Decoding 30 s at a time bounds it to about a
tenth. Each chunk is decoded with a second of codes either side as context (the convolutions see a
few frames, the LSTM forgets its start within that second), only its middle is kept, and
neighbouring chunks are crossfaded over a few milliseconds at each seam, so the seams match a
whole-piece decode to within rounding-level differences (tests hold it to that).
"""

from __future__ import annotations

import numpy as np
import torch

CHUNK_FRAMES = 1500  # 30 s at 50 Hz
CONTEXT_FRAMES = 50  # a second either side of a chunk
FADE_FRAMES = 2  # the crossfade at a seam: 40 ms


def decode_codes(
    lm, codes: torch.Tensor, chunk_frames: int = CHUNK_FRAMES, context_frames: int = CONTEXT_FRAMES
) -> np.ndarray:
    """EnCodec codes `(rows, codebooks, frames)` to audio `(rows, channels, samples)` float32."""
    out = []
    with torch.inference_mode():
        for row in codes.to(lm.device):
            # stereo checkpoints interleave the codebooks of the left and right channels
            streams = [row] if lm.audio_channels == 1 else [row[0::2], row[1::2]]
            channels = [_decode_stream(lm, s, chunk_frames, context_frames) for s in streams]
            out.append(np.concatenate(channels, axis=0))
    return np.stack(out)


def _decode_stream(lm, codes: torch.Tensor, chunk_frames: int, context_frames: int) -> np.ndarray:
    """One channel's codes `(codebooks, frames)` to `(1, frames * hop)`."""
    frames = codes.shape[-1]
    if frames <= chunk_frames:
        return _decode(lm, codes)
    hop = lm.sample_rate // lm.frame_rate
    fade = FADE_FRAMES * hop
    audio = np.zeros((1, frames * hop), dtype=np.float32)
    for start in range(0, frames, chunk_frames):
        end = min(frames, start + chunk_frames)
        low, high = max(0, start - context_frames), min(frames, end + context_frames)
        decoded = _decode(lm, codes[:, low:high])
        # keep [start, end] plus half a fade either side, weighted so the fades sum to one
        keep_from = max(low * hop, start * hop - fade // 2)
        keep_to = min(high * hop, end * hop + fade // 2)
        piece = decoded[:, keep_from - low * hop : keep_to - low * hop]
        seams = (start * hop if start > 0 else None, end * hop if end < frames else None)
        audio[:, keep_from:keep_to] += piece * _weights(np.arange(keep_from, keep_to), seams, fade)
    return audio


def _weights(samples: np.ndarray, seams: tuple[int | None, int | None], fade: int) -> np.ndarray:
    """Linear ramps across the chunk's inner seams (sample indices): up at the first, down at the
    second; a neighbour's ramp is the complement, so the weights sum to one everywhere."""
    centre = samples + 0.5
    weight = np.ones(len(samples))
    rise, fall = seams
    if rise is not None:
        weight = np.minimum(weight, np.clip((centre - (rise - fade / 2)) / fade, 0, 1))
    if fall is not None:
        weight = np.minimum(weight, np.clip(((fall + fade / 2) - centre) / fade, 0, 1))
    return weight.astype(np.float32)


def _decode(lm, codes: torch.Tensor) -> np.ndarray:
    codec = lm.model.audio_encoder
    audio = codec.decode(codes[None, None], audio_scales=[None]).audio_values[0]
    return audio.float().cpu().numpy()
