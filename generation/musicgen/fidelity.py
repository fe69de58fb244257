"""How far a reduced-precision model is from float32, as a distribution over next tokens.

Sampled runs drift apart after their first differing token, so the comparison is teacher-forced:
the float32 model generates one window, then both models read exactly those tokens and their guided
next-token distributions are compared at every step, for every codebook the delay pattern leaves
free: the KL divergence from float32, whether the most likely token agrees, and how much of the
top-k set (audiocraft samples from the top 250) the two share.
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
    mean_kl: float  # nats, KL(float32 || other), averaged over steps and free codebooks
    max_kl: float
    top1_agreement: float
    topk_overlap: float


class _Recording(FastBackend):
    """The fast loop, keeping each step's guided logits and optionally forcing every token."""

    def __init__(self, lm: LoadedModel, forced: torch.Tensor | None = None) -> None:
        super().__init__(lm, fixed_spans=False)
        self.forced = forced
        self.logits: list[torch.Tensor] = []
        self.tokens: torch.Tensor | None = None
        self.free: torch.Tensor | None = None

    def _allocate(self, batch, prefix, guided):
        state = super()._allocate(batch, prefix, guided)
        self.free = state.pattern == -1
        if self.forced is not None:
            state.pattern = self.forced.to(state.pattern.device)
        self.tokens = state.tokens
        return state

    def _logits(self, state, hidden):
        logits = super()._logits(state, hidden)
        self.logits.append(logits.clone())
        return logits


def _record(lm: LoadedModel, job: Job, forced: torch.Tensor | None = None) -> _Recording:
    engine = MusicGenEngine(lm, "fast")
    engine.backend = recording = _Recording(lm, forced)
    engine.generate_codes(job)
    return recording


def compare_precisions(reference: LoadedModel, other: LoadedModel, job: Job, top_k: int = 250) -> Distance:
    """Distance of `other` from `reference` over one window of `job` (30 s at most)."""
    first = _record(reference, job)
    second = _record(other, job, forced=first.tokens.clone())
    start = first.free.shape[-1] - len(first.logits)  # the first position chosen; those before are forced
    kls, top1, overlap = [], [], []
    for step, (p_logits, q_logits) in enumerate(zip(first.logits, second.logits, strict=True)):
        free = first.free[:, :, start + step].reshape(-1)
        if not free.any():
            continue
        p, q = p_logits[free].log_softmax(-1), q_logits[free].log_softmax(-1)
        kls.append((p.exp() * (p - q)).sum(-1))
        top1.append((p.argmax(-1) == q.argmax(-1)).float())
        k = min(top_k, p.shape[-1])
        mine, theirs = p.topk(k).indices, q.topk(k).indices
        shared = (mine[:, :, None] == theirs[:, None, :]).any(-1).float().mean(-1)
        overlap.append(shared)
    kl = torch.cat(kls)
    agree, shared = torch.cat(top1).mean(), torch.cat(overlap).mean()
    return Distance(len(first.logits), float(kl.mean()), float(kl.max()), float(agree), float(shared))
