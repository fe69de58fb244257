"""How far one way of decoding is from another, as a distribution over next tokens.

Sampled runs drift apart after their first differing token, so the comparison is teacher-forced:
the first run generates one window, then the second reads exactly those tokens and their guided
next-token distributions are compared at every step, for every codebook the delay pattern leaves
free: the KL divergence from the first, whether the most likely token agrees, and how much of the
top-k set (audiocraft samples from the top 250) the two share. Used for a reduced precision against
float32 (`compare_precisions`) and for captured graphs against eager steps (the GPU tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from generation.interface import Job
from generation.musicgen.backends.fast import FastBackend
from generation.musicgen.engine import MusicGenEngine
from generation.musicgen.models import LoadedModel


@dataclass(frozen=True)
class Distance:
    steps: int
    mean_kl: float  # nats, KL(first || second), averaged over steps and free codebooks
    max_kl: float
    top1_agreement: float
    topk_overlap: float


class Recording(FastBackend):
    """The fast loop, keeping each step's guided logits and optionally forcing every token.

    The logits go into one buffer indexed by the step's position tensor, so a captured CUDA graph
    records every replay too (a Python list would only see the capture).
    """

    def __init__(
        self,
        lm: LoadedModel,
        forced: torch.Tensor | None = None,
        fixed_spans: bool = False,
        fp32_stream: bool | None = None,
    ) -> None:
        super().__init__(lm, fixed_spans=fixed_spans, fp32_stream=fp32_stream)
        self.forced = forced
        self.logits: torch.Tensor | None = None  # (positions, rows * codebooks, vocab) float32
        self.tokens: torch.Tensor | None = None
        self.free: torch.Tensor | None = None  # (rows, codebooks, positions): chosen, not forced
        self.first = 0  # the first position chosen; those before are forced

    def _allocate(self, batch, prefix, guided):
        state = super()._allocate(batch, prefix, guided)
        self.free = state.pattern == -1
        if self.forced is not None:
            state.pattern.copy_(self.forced.to(state.pattern.device))
        self.tokens = state.tokens
        self.first = self._first_free(batch)
        vocab = self.causal_lm.lm_heads[0].out_features
        rows = batch.rows * self.lm.num_codebooks
        self.logits = torch.zeros(state.tokens.shape[-1], rows, vocab, device=self.lm.device)
        return state

    def _choose(self, state, hidden, position) -> None:
        self.logits.index_copy_(0, position, self._logits(state, hidden)[None])
        super()._choose(state, hidden, position)


def record(
    lm: LoadedModel,
    job: Job,
    forced: torch.Tensor | None = None,
    fixed_spans: bool = False,
    fp32_stream: bool | None = None,
) -> Recording:
    """One window of `job` through a `Recording` backend (tokens forced to `forced` if given)."""
    engine = MusicGenEngine(lm, "fast")
    engine.backend = recording = Recording(lm, forced, fixed_spans, fp32_stream)
    engine.generate_codes(job)
    return recording


def distance(first: Recording, second: Recording, top_k: int = 250) -> Distance:
    """How far `second` (forced to `first`'s tokens) is from `first`, over the free positions."""
    steps = first.logits.shape[0] - first.first
    free = first.free[:, :, first.first :].reshape(-1, steps).T.cpu()  # (steps, rows * codebooks)
    p = first.logits[first.first :].cpu()[free].log_softmax(-1)
    q = second.logits[first.first :].cpu()[free].log_softmax(-1)
    kl = (p.exp() * (p - q)).sum(-1)
    agree = (p.argmax(-1) == q.argmax(-1)).float().mean()
    shared = torch.cat([_overlap(a, b, top_k) for a, b in zip(p.split(256), q.split(256), strict=True)])
    return Distance(steps, float(kl.mean()), float(kl.max()), float(agree), float(shared.mean()))


def _overlap(p: torch.Tensor, q: torch.Tensor, top_k: int) -> torch.Tensor:
    """The share of each row's top-k tokens the two have in common (in chunks: k x k per row)."""
    k = min(top_k, p.shape[-1])
    mine, theirs = p.topk(k).indices, q.topk(k).indices
    return (mine[:, :, None] == theirs[:, None, :]).any(-1).float().mean(-1)


def compare_precisions(
    reference: LoadedModel, other: LoadedModel, job: Job, top_k: int = 250, fp32_stream: bool | None = None
) -> Distance:
    """Distance of `other` from `reference` over one window of `job` (30 s at most); `fp32_stream`
    as `FastBackend` takes it, for `other`."""
    first = record(reference, job)
    return distance(first, record(other, job, forced=first.tokens.clone(), fp32_stream=fp32_stream), top_k)
