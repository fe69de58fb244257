"""The reference backend: transformers' `MusicgenMelodyForConditionalGeneration.generate`.

Kept as the fallback and as the oracle the fast path is tested against. Two hooks adapt it:
a logits processor that picks tokens with Restyle's per-candidate sampler (generate then runs
greedy, so the pick stands), and a stopping criterion that reports each step, honours cancel, and
keeps the raw token matrix, because generate itself returns decoded audio, not codes.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import LogitsProcessor, StoppingCriteria

from generation.musicgen.backends import StepHook, WindowBatch
from generation.musicgen.models import LoadedModel
from generation.musicgen.sampling import choose_tokens, row_keys


class _SeededChoice(LogitsProcessor):
    """A logits processor that leaves only the chosen token finite.

    generate appends its own guidance processor after the ones it is given, so this one still sees
    the conditional and unconditional rows: it applies guidance itself (the same formula) and hands
    on zeros for the unconditional half, which guidance then maps back onto the pick.
    """

    def __init__(self, batch: WindowBatch, num_codebooks: int, device: torch.device) -> None:
        self.sampling = batch.sampling
        self.keys = row_keys(batch.seeds, num_codebooks, batch.window.index, device)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows = input_ids.shape[0]
        guided = scores
        if scores.shape[0] == 2 * rows:
            cond, uncond = scores.split(rows)
            guided = uncond + (cond - uncond) * self.sampling.guidance_scale
        chosen = choose_tokens(guided, self.sampling, self.keys, input_ids.shape[-1])
        picked = torch.full_like(guided, float("-inf")).scatter_(-1, chosen[:, None], 0.0)
        return torch.cat([picked, torch.zeros_like(picked)]) if scores.shape[0] == 2 * rows else picked


class _StepWatch(StoppingCriteria):
    """A stopping criterion that never stops on its own: progress, cancel and the last token matrix."""

    def __init__(self, on_step: StepHook) -> None:
        self.on_step = on_step
        self.last_ids: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        self.last_ids = input_ids
        self.on_step()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class ReferenceBackend:
    name = "reference"

    def __init__(self, lm: LoadedModel) -> None:
        self.lm = lm

    @torch.inference_mode()
    def generate_window(self, batch: WindowBatch, on_step: StepHook) -> torch.Tensor:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        lm, model = self.lm, self.lm.model
        pad = int(model.decoder.config.pad_token_id)
        text = lm.tokenizer(batch.prompts, return_tensors="pt", padding=True).to(lm.device)
        start = torch.full((batch.rows * lm.num_codebooks, 1), pad, dtype=torch.long, device=lm.device)
        if batch.prompt_codes is not None:
            carried = batch.prompt_codes.reshape(batch.rows * lm.num_codebooks, -1).to(lm.device)
            start = torch.cat([start, carried], dim=-1)
        watch = _StepWatch(on_step)
        with _no_checkpoint_defaults(model):
            model.generate(
                input_ids=text.input_ids,
                attention_mask=text.attention_mask,
                input_features=batch.chroma.to(lm.device, torch.float32),
                decoder_input_ids=start[:, 1:] if batch.prompt_codes is not None else None,
                generation_config=_generation_config(batch, pad, lm.delay),
                logits_processor=LogitsProcessorList([_SeededChoice(batch, lm.num_codebooks, lm.device)]),
                stopping_criteria=StoppingCriteriaList([watch]),
            )
        return self._codes(watch.last_ids, start, pad, batch.rows)

    def _codes(self, ids: torch.Tensor, start: torch.Tensor, pad: int, rows: int) -> torch.Tensor:
        """Undo the delay pattern exactly as generate does before it decodes."""
        decoder = self.lm.model.decoder
        _, pattern = decoder.build_delay_pattern_mask(start, pad_token_id=pad, max_length=ids.shape[-1])
        ids = decoder.apply_delay_pattern_mask(ids, pattern)
        return ids[ids != pad].reshape(rows, self.lm.num_codebooks, -1).cpu()


def _generation_config(batch: WindowBatch, pad: int, delay: int):
    """Every field generate reads, set here: greedy over `_SeededChoice`'s single finite logit.

    generate only builds unconditional rows for a scale above 1; below it (audiocraft mixes those
    in too) any such scale does, since `_SeededChoice` applies the job's own.
    """
    from transformers import GenerationConfig

    guidance = batch.sampling.guidance_scale
    return GenerationConfig(
        do_sample=False,
        num_beams=1,
        num_return_sequences=1,
        guidance_scale=(guidance if guidance > 1 else 2.0) if batch.sampling.guided else 1.0,
        max_new_tokens=batch.window.steps(delay),
        min_new_tokens=0,
        decoder_start_token_id=pad,
        bos_token_id=pad,
        pad_token_id=pad,
        eos_token_id=[],
        use_cache=True,
        cache_implementation="dynamic",
        repetition_penalty=1.0,
        return_dict_in_generate=False,
    )


@contextmanager
def _no_checkpoint_defaults(model):
    """generate fills every field a config leaves unset from the checkpoint's generation_config.json
    (guidance 3, top_k 50, a max length...): hide it for the call, so a job gets only its own."""
    from transformers import GenerationConfig

    saved = model.generation_config
    model.generation_config = GenerationConfig()
    try:
        yield
    finally:
        model.generation_config = saved
