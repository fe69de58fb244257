"""The source in as 5 Hz audio codes, the generated latents out as audio.

The source is encoded here rather than by the pipeline's `src_audio` path for two reasons: diffusers
samples the VAE posterior from the global random generator, so a candidate would depend on the batch
it ran in; and `src_audio` takes one length for the whole batch. Each job's source is encoded alone,
to the posterior mean (its codes depend on the source and nothing else), then handed to the pipeline
as `audio_codes`, the path that turns codes back into the DiT's 25 Hz context with the detokenizer.
"""

from __future__ import annotations

import numpy as np
import torch

from generation.acestep.fastvae import decoding
from generation.acestep.params import FRAMES_PER_CODE, SAMPLES_PER_FRAME


def fit_source(source: np.ndarray, samples: int) -> np.ndarray:
    """`source` looped (when shorter) or cut (when longer) to exactly `samples`."""
    repeats = -(-samples // source.shape[1])
    return np.tile(source, (1, repeats))[:, :samples]


def source_codes(pipe, source: np.ndarray, frames: int) -> str:
    """The pipeline's `<|audio_code_N|>` string for `source` fitted to `frames` latent frames."""
    fitted = fit_source(source, frames * SAMPLES_PER_FRAME)
    vae, tokenizer = pipe.vae, pipe.audio_tokenizer
    with torch.inference_mode():
        audio = torch.from_numpy(np.ascontiguousarray(fitted)).to(vae.device, vae.dtype)
        # The encoder's convolutions in bfloat16 when the tokenizer is: its latents are rounded to
        # bfloat16 on their way in anyway (the distance is measured: `benchmarks.acestep`).
        with decoding(vae.device, tokenizer.dtype):
            latents = vae.encode(audio[None]).latent_dist.mode()[:, :, :frames].transpose(1, 2)
        silence = pipe.condition_encoder.silence_latent.to(tokenizer.device, tokenizer.dtype)
        _, indices = tokenizer.tokenize(latents.to(tokenizer.device, tokenizer.dtype), silence)
    codes = indices[0, : frames // FRAMES_PER_CODE, 0].tolist()
    return "".join(f"<|audio_code_{code}|>" for code in codes)


def decode_latents(pipe, latents: torch.Tensor, samples: int, dtype: torch.dtype | None = None) -> np.ndarray:
    """Latents `(rows, frames, channels)` to audio `(rows, 2, samples)` float32, a row at a time;
    the decoder's convolutions in bfloat16 when `dtype` is (`generation.acestep.fastvae`).

    Like the pipeline, a row whose peak passes full scale is scaled down to it (so nothing clips);
    unlike it, rows are not all pushed to -1 dBFS: mastering sets the level later.
    """
    vae = pipe.vae
    out = []
    with torch.inference_mode(), decoding(vae.device, dtype):
        for row in latents:
            # Contiguous: the transposed view made the VAE's elementwise layers several times slower.
            frames = row.T.contiguous()[None].to(vae.device, vae.dtype)
            audio = vae.decode(frames).sample[0, :, :samples].float()
            peak = float(audio.abs().max())
            out.append((audio / peak if peak > 1.0 else audio).cpu().numpy())
    return np.stack(out).astype(np.float32, copy=False)
