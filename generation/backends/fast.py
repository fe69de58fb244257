"""The fast backend: Restyle's own decode loop over transformers' MusicGen-melody weights.

What it changes against `generate`, and why:
- one key/value cache allocated up front for prefix plus window (generate's dynamic cache grows by
  concatenation, copying the whole cache every step);
- conditional and unconditional rows in one forward, guidance and token choice on the device, the
  delay pattern applied on the device: no host sync per step;
- on CUDA, each step is captured once as a CUDA graph per span of cache length and replayed, which
  removes the Python and kernel-launch overhead that leaves a GPU mostly idle in stock loops.

The arithmetic is the same as transformers' (same modules, same op order, SDPA), so with greedy
choice the tokens match `generate` exactly on the CPU; tests hold it to that.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from generation.backends import StepHook, WindowBatch
from generation.backends.conditioning import Prefix, build_prefix
from generation.models import LoadedModel
from generation.sampling import SamplingParams, choose_tokens, row_keys

log = logging.getLogger(__name__)

# Cache-length spans one CUDA graph covers: attention reads the whole span, masked past the present.
GRAPH_SPAN = 256


@dataclass(frozen=True)
class _Attention:
    """Which cache slots a forward writes, and what its queries may read."""

    start: int | torch.Tensor  # first slot written (a 1-element tensor inside a graph)
    span: int  # slots read: 0..span-1
    mask: torch.Tensor | None  # boolean, True where a query may attend; None: plain causal or all
    causal: bool


@dataclass
class _State:
    """Everything one window's decode loop reads and writes, in fixed buffers."""

    keys_cache: list[torch.Tensor]  # per layer (rows, heads, slots, head_dim)
    values_cache: list[torch.Tensor]
    tokens: torch.Tensor  # (rows, codebooks, length) delayed layout; -1 where still to be chosen
    pattern: torch.Tensor  # (rows, codebooks, length) forced tokens, -1 where free
    valid: torch.Tensor  # (rows_all, slots) bool: slots a query may attend to
    positions: torch.Tensor  # (rows_all,) position of slot 0 for each row (negative when left-padded)
    row_keys: torch.Tensor  # (rows * codebooks,) sampler keys
    prefix_slots: int
    padded: bool  # some rows are left-padded: attention needs a mask
    guided: bool
    sampling: SamplingParams


class FastBackend:
    name = "fast"

    def __init__(self, lm: LoadedModel, fixed_spans: bool | None = None) -> None:
        """`fixed_spans` runs steps with fixed shapes (graph-ready); on CUDA they are also captured."""
        self.lm = lm
        self.causal_lm = lm.model.decoder
        self.core = self.causal_lm.model.decoder
        self.fixed_spans = lm.device.type == "cuda" if fixed_spans is None else fixed_spans

    @torch.inference_mode()
    def generate_window(self, batch: WindowBatch, on_step: StepHook) -> torch.Tensor:
        guided = batch.sampling.guidance_scale > 1
        prefix = build_prefix(self.lm, batch, guided)
        state = self._allocate(batch, prefix, guided)
        first = self._first_free(batch)
        self._prefill(state, prefix, first)
        loop = _FixedSpanLoop(self, state) if self.fixed_spans else None
        for position in range(first + 1, state.tokens.shape[-1]):
            on_step()
            if loop is not None:
                loop.advance(position)
            else:
                self._advance(state, torch.tensor([position], device=self.lm.device), span=None)
        on_step()
        return self._undelay(state.tokens, batch).cpu()

    # -- set-up ---------------------------------------------------------------------------------

    def _allocate(self, batch: WindowBatch, prefix: Prefix, guided: bool) -> _State:
        lm, config = self.lm, self.core.config
        pad = int(config.pad_token_id)
        start = torch.full((batch.rows * lm.num_codebooks, 1), pad, dtype=torch.long, device=lm.device)
        if batch.prompt_codes is not None:
            carried = batch.prompt_codes.reshape(batch.rows * lm.num_codebooks, -1).to(lm.device)
            start = torch.cat([start, carried], dim=-1)
        length = 1 + batch.window.total_frames + lm.delay
        _, pattern = self.causal_lm.build_delay_pattern_mask(start, pad_token_id=pad, max_length=length)
        pattern = pattern.reshape(batch.rows, lm.num_codebooks, length)
        rows_all = prefix.states.shape[0]
        slots = prefix.states.shape[1] + length
        if slots > self.core.embed_positions.weights.shape[0]:  # grow the table now, never mid-loop
            self.core.embed_positions.make_weights(slots, config.hidden_size)
        heads = config.num_attention_heads
        shape = (rows_all, heads, slots, config.hidden_size // heads)
        valid = torch.ones(rows_all, slots, dtype=torch.bool, device=lm.device)
        if prefix.valid is not None:
            valid[:, : prefix.states.shape[1]] = prefix.valid
        return _State(
            keys_cache=[torch.zeros(shape, dtype=lm.dtype, device=lm.device) for _ in self.core.layers],
            values_cache=[torch.zeros(shape, dtype=lm.dtype, device=lm.device) for _ in self.core.layers],
            tokens=pattern.clone(),
            pattern=pattern,
            valid=valid,
            positions=prefix.lengths - prefix.states.shape[1],
            row_keys=row_keys(batch.seeds, lm.num_codebooks, batch.window.index, lm.device),
            prefix_slots=prefix.states.shape[1],
            padded=prefix.valid is not None,
            guided=guided,
            sampling=batch.sampling,
        )

    @staticmethod
    def _first_free(batch: WindowBatch) -> int:
        """The first position of codebook 0 that is not forced: the start token plus the prompt."""
        return 1 + (batch.prompt_codes.shape[-1] if batch.prompt_codes is not None else 0)

    # -- the two kinds of forward ---------------------------------------------------------------

    def _prefill(self, state: _State, prefix: Prefix, first: int) -> None:
        """Run prefix and forced tokens in one forward, then choose the token at `first`."""
        embeds = self._embed(state.tokens[:, :, :first], state.guided)
        hidden = torch.cat([prefix.states, embeds], dim=1)
        slots = torch.arange(hidden.shape[1], device=hidden.device)
        mask = None
        if state.padded:  # causal, masked prefix padding; a padded slot sees itself so nothing is empty
            causal = slots[None, :] <= slots[:, None]
            mask = (causal[None] & state.valid[:, None, : hidden.shape[1]]) | torch.eye(
                hidden.shape[1], dtype=torch.bool, device=hidden.device
            )
            mask = mask[:, None]
        hidden = self._layers(state, hidden, slots, _Attention(0, hidden.shape[1], mask, causal=True))
        self._choose(state, hidden, torch.tensor([first], device=hidden.device))

    def _advance(self, state: _State, position: torch.Tensor, span: int | None) -> None:
        """Feed the token at `position - 1`, choose the one at `position` (a 1-element tensor).

        With `span=None` attention reads exactly the slots filled so far (eager); with an int it
        reads `span` slots, masked past the present, so the shapes stay fixed for a CUDA graph.
        """
        previous = state.tokens.index_select(2, position - 1)
        embeds = self._embed(previous, state.guided)
        slot = position - 1 + state.prefix_slots
        mask = None
        if span is None:
            span = int(slot) + 1
            if state.padded:
                mask = state.valid[:, None, None, :span]
        else:
            present = torch.arange(span, device=slot.device) <= slot
            mask = (state.valid[:, :span] & present)[:, None, None, :]
        hidden = self._layers(state, embeds, slot, _Attention(slot, span, mask, causal=False))
        self._choose(state, hidden, position)

    # -- pieces ---------------------------------------------------------------------------------

    def _embed(self, tokens: torch.Tensor, guided: bool) -> torch.Tensor:
        """Sum of the codebooks' embeddings (in transformers' order), doubled for guidance."""
        codebooks = tokens.shape[1]
        embeds = sum(self.core.embed_tokens[k](tokens[:, k]) for k in range(codebooks))
        return torch.cat([embeds, embeds]) if guided else embeds

    def _layers(self, state: _State, hidden, slots, attention: _Attention) -> torch.Tensor:
        positions = (state.positions[:, None] + slots.reshape(1, -1)).clamp(min=0)
        table = self.core.embed_positions.weights
        hidden = hidden + table[positions].to(hidden.dtype)
        for index, layer in enumerate(self.core.layers):
            hidden = self._layer(layer, hidden, state, index, attention)
        return self.core.layer_norm(hidden)

    def _layer(self, layer, hidden, state: _State, index: int, attention: _Attention):
        attn = layer.self_attn
        rows, length, width = hidden.shape
        heads = attn.num_heads
        residual = hidden
        hidden = layer.self_attn_layer_norm(hidden)
        query = attn.q_proj(hidden).view(rows, length, heads, -1).transpose(1, 2)
        key = attn.k_proj(hidden).view(rows, length, heads, -1).transpose(1, 2)
        value = attn.v_proj(hidden).view(rows, length, heads, -1).transpose(1, 2)
        keys, values = state.keys_cache[index], state.values_cache[index]
        start, span = attention.start, attention.span
        if isinstance(start, int):
            keys[:, :, start : start + length] = key
            values[:, :, start : start + length] = value
        else:
            keys.index_copy_(2, start, key)
            values.index_copy_(2, start, value)
        out = F.scaled_dot_product_attention(
            query,
            keys[:, :, :span],
            values[:, :, :span],
            attn_mask=attention.mask,
            is_causal=attention.causal and attention.mask is None,
            scale=attn.scaling,
        )
        out = out.transpose(1, 2).reshape(rows, length, width)
        hidden = residual + attn.out_proj(out)
        residual = hidden
        hidden = layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(hidden))))
        return residual + hidden

    def _choose(self, state: _State, hidden: torch.Tensor, position: torch.Tensor) -> None:
        """Guidance, token choice and the delay pattern for one position, all on the device.

        The heads run over every position of `hidden`, as in transformers, so the prefill's logits
        come out of the same matrix shapes (and the same bits) as generate's.
        """
        logits = self._logits(state, hidden)
        chosen = choose_tokens(logits, state.sampling, state.row_keys, position)
        forced = state.pattern.index_select(2, position).reshape(-1)
        chosen = torch.where(forced == -1, chosen, forced)
        state.tokens.index_copy_(2, position, chosen.reshape(state.tokens.shape[0], -1, 1))

    def _logits(self, state: _State, hidden: torch.Tensor) -> torch.Tensor:
        """Guided float32 logits `(rows * codebooks, vocab)` at the last position of `hidden`."""
        logits = torch.stack([head(hidden) for head in self.causal_lm.lm_heads], dim=1)[:, :, -1].float()
        logits = logits.reshape(-1, logits.shape[-1])  # (rows_all * codebooks, vocab)
        if state.guided:
            cond, uncond = logits.split(logits.shape[0] // 2)
            logits = uncond + (cond - uncond) * state.sampling.guidance_scale
        return logits

    def _undelay(self, tokens: torch.Tensor, batch: WindowBatch) -> torch.Tensor:
        pad = int(self.core.config.pad_token_id)
        return tokens[tokens != pad].reshape(batch.rows, self.lm.num_codebooks, -1)


class _FixedSpanLoop:
    """`_advance` with fixed shapes: one span of cache length per GRAPH_SPAN slots.

    On CUDA each span's step is captured once as a CUDA graph and replayed; elsewhere (tests) the
    same fixed-shape step simply runs, so its arithmetic is checked where no GPU is.
    """

    def __init__(self, backend: FastBackend, state: _State) -> None:
        self.backend = backend
        self.state = state
        self.position = torch.zeros(1, dtype=torch.long, device=backend.lm.device)
        self.capture = backend.lm.device.type == "cuda"
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.pool = None

    def advance(self, position: int) -> None:
        slots = self.state.tokens.shape[-1] + self.state.prefix_slots
        span = min(slots, (position + self.state.prefix_slots) // GRAPH_SPAN * GRAPH_SPAN + GRAPH_SPAN)
        self.position.fill_(position)
        if not self.capture:
            self.backend._advance(self.state, self.position, span)
            return
        if span not in self.graphs:
            self.graphs[span] = self._capture(span)
        self.graphs[span].replay()

    def _capture(self, span: int) -> torch.cuda.CUDAGraph:
        backend, state = self.backend, self.state
        saved = state.tokens.clone()  # the warm-up runs the step for real: undo its token write
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            backend._advance(state, self.position, span)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            backend._advance(state, self.position, span)
        self.pool = graph.pool()
        state.tokens.copy_(saved)
        log.debug("captured a decode step for a span of %d slots", span)
        return graph
