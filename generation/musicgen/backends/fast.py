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
from functools import partial

import torch
import torch.nn.functional as F

from generation.musicgen.backends import StepHook, WindowBatch
from generation.musicgen.backends.conditioning import Prefix, build_prefix
from generation.musicgen.backends.device import LAG_STEPS, StepLag, device_scope
from generation.musicgen.backends.fixed import CudaGraphs, FixedSpanLoop, ShapeCache
from generation.musicgen.backends.mixed import Float32Stream
from generation.musicgen.kvcache import Int8Cache, int8_cache_fits
from generation.musicgen.models import LoadedModel
from generation.musicgen.quantize import split
from generation.musicgen.sampling import SamplingParams, choose_tokens, row_keys

log = logging.getLogger(__name__)

# Prefix slots (chroma and text) are rounded up to a multiple of this with fixed spans: with the
# 235 chroma frames, prompts of 1 to 21 text tokens share one shape, 22 to 53 the next.
PREFIX_BUCKET = 32


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
    step: torch.Tensor  # (1,) the position a fixed-span step chooses (read by captured graphs)

    @property
    def shape_key(self) -> tuple:
        """What a captured step depends on besides the buffers' contents."""
        rows, slots = self.valid.shape
        return (rows, slots, self.prefix_slots, self.padded, self.guided, self.sampling)

    def refill(self, fresh: _State) -> None:
        """Take a new window's contents into these (persistent) buffers; the caches need none:
        every slot a step reads is written first, and masked slots weigh nothing."""
        for name in ("tokens", "pattern", "valid", "positions", "row_keys"):
            getattr(self, name).copy_(getattr(fresh, name))


class FastBackend:
    name = "fast"

    def __init__(
        self, lm: LoadedModel, fixed_spans: bool | None = None, fp32_stream: bool | None = None
    ) -> None:
        """`fixed_spans` runs steps with fixed shapes (graph-ready); on CUDA they are also captured,
        over buffers kept per shape, so windows and jobs of one shape reuse them and their graphs.
        `fp32_stream` keeps the residual stream, norms and positions in float32 around the
        products (audiocraft's float16 autocast split, `generation.musicgen.backends.mixed`): by
        default for float16 and bfloat16 weights."""
        self.lm = lm
        self.causal_lm = lm.model.decoder
        self.core = self.causal_lm.model.decoder
        if fp32_stream is None:  # int8 layers keep their tuned bfloat16-in, bfloat16-out steps
            int8 = hasattr(self.core.layers[0].self_attn, "qkv_proj")
            fp32_stream = lm.dtype in (torch.float16, torch.bfloat16) and not int8
        self.stream = Float32Stream(self.core, lm.dtype) if fp32_stream else None
        self.fixed_spans = lm.device.type == "cuda" if fixed_spans is None else fixed_spans
        self.shapes = ShapeCache()
        # What captures fixed-span steps (tests hand in a stand-in); None runs them as they come.
        self.graphs = CudaGraphs(lm.device) if self.fixed_spans and lm.device.type == "cuda" else None
        self.lag_steps = LAG_STEPS
        self.make_event = None  # tests hand in a stand-in for torch.cuda.Event

    def release(self) -> None:
        """Let go of the kept buffers and graphs (before retrying after running out of memory)."""
        self.shapes.clear()

    @torch.inference_mode()
    def generate_window(self, batch: WindowBatch, on_step: StepHook) -> torch.Tensor:
        device = self.lm.device
        lag = StepLag(device, on_step, self.lag_steps, self.make_event)
        with device_scope(device):
            guided = batch.sampling.guided
            # Fixed spans round the prefix up to a bucket (left-padded, masked): a prompt of another
            # length then reuses the buffers and graphs of the same shape instead of capturing anew.
            bucket = PREFIX_BUCKET if self.fixed_spans else 1
            dtype = torch.float32 if self.stream is not None else self.lm.dtype
            prefix = build_prefix(self.lm, batch, guided, bucket=bucket, dtype=dtype)
            state = self._allocate(batch, prefix, guided)
            first = self._first_free(batch)
            self._prefill(state, prefix, first)
            lag.step_queued()
            loop = FixedSpanLoop(self, state) if self.fixed_spans else None
            for position in range(first + 1, state.tokens.shape[-1]):
                if loop is not None:
                    loop.advance(position)
                else:
                    self._advance(state, torch.tensor([position], device=device), span=None)
                lag.step_queued()
            lag.finish()
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
            self.shapes.clear()  # captured graphs read the old table
        if self.stream is not None:
            self.stream.table()  # made (or remade) here, outside any capture
        valid = torch.ones(rows_all, slots, dtype=torch.bool, device=lm.device)
        if prefix.valid is not None:
            valid[:, : prefix.states.shape[1]] = prefix.valid
        fresh = _State(
            keys_cache=[],
            values_cache=[],
            tokens=pattern.clone(),
            pattern=pattern,
            valid=valid,
            positions=prefix.lengths - prefix.states.shape[1],
            row_keys=row_keys(batch.seeds, lm.num_codebooks, batch.window.index, lm.device),
            prefix_slots=prefix.states.shape[1],
            padded=prefix.valid is not None,
            guided=guided,
            sampling=batch.sampling,
            step=torch.zeros(1, dtype=torch.long, device=lm.device),
        )
        return self.shapes.reuse(fresh, self._with_cache) if self.fixed_spans else self._with_cache(fresh)

    def _with_cache(self, state: _State) -> _State:
        config = self.core.config
        heads = config.num_attention_heads
        rows, slots = state.valid.shape
        shape = (rows, heads, slots, config.hidden_size // heads)
        if self._int8_cache():  # keys and values in one object per layer
            state.keys_cache = state.values_cache = [Int8Cache.allocate(*shape) for _ in self.core.layers]
            return state
        make = partial(torch.zeros, shape, dtype=self.lm.dtype, device=self.lm.device)
        state.keys_cache = [make() for _ in self.core.layers]
        state.values_cache = [make() for _ in self.core.layers]
        return state

    def _int8_cache(self) -> bool:
        """int8 layers with the native kernel keep an int8 cache, on eager steps (fixed spans mask
        a float cache)."""
        attention = self.core.layers[0].self_attn
        head_dim = self.core.config.hidden_size // self.core.config.num_attention_heads
        return (
            hasattr(attention, "qkv_proj")
            and attention.qkv_proj.native
            and not self.fixed_spans
            and int8_cache_fits(head_dim)
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
            mask = _additive((state.valid[:, :span] & present)[:, None, None, :], self.lm.dtype)
        hidden = self._layers(state, embeds, slot, _Attention(slot, span, mask, causal=False))
        self._choose(state, hidden, position)

    # -- pieces ---------------------------------------------------------------------------------

    def _embed(self, tokens: torch.Tensor, guided: bool) -> torch.Tensor:
        """Sum of the codebooks' embeddings (in transformers' order), doubled for guidance."""
        codebooks = tokens.shape[1]
        up = (lambda x: x.float()) if self.stream is not None else (lambda x: x)
        embeds = sum(up(self.core.embed_tokens[k](tokens[:, k])) for k in range(codebooks))
        return torch.cat([embeds, embeds]) if guided else embeds

    def _layers(self, state: _State, hidden, slots, attention: _Attention) -> torch.Tensor:
        positions = (state.positions[:, None] + slots.reshape(1, -1)).clamp(min=0)
        if self.stream is not None:
            hidden = hidden.float() + self.stream.table()[positions]
        else:
            hidden = hidden + self.core.embed_positions.weights[positions].to(hidden.dtype)
        for index, layer in enumerate(self.core.layers):
            hidden = self._layer(layer, hidden, state, index, attention)
        if self.stream is not None:
            return self.stream.norm(self.core.layer_norm, hidden, last=True)
        return self.core.layer_norm(hidden)

    def _norm(self, module, hidden: torch.Tensor) -> torch.Tensor:
        return module(hidden) if self.stream is None else self.stream.norm(module, hidden)

    def _layer(self, layer, hidden, state: _State, index: int, attention: _Attention):
        attn = layer.self_attn
        residual = hidden  # float32 with `self.stream`: the products' outputs are added to it
        hidden = self._norm(layer.self_attn_layer_norm, hidden)
        if hasattr(attn, "qkv_proj"):  # int8 layers: q, k and v in one product
            query, key, value = split(attn.qkv_proj, hidden)
        else:
            query, key, value = attn.q_proj(hidden), attn.k_proj(hidden), attn.v_proj(hidden)
        keys, values = state.keys_cache[index], state.values_cache[index]
        if isinstance(keys, Int8Cache):
            valid = state.valid if state.padded else None
            out = self._int8_attention(
                keys, (query, key, value), attention, valid=valid, scaling=attn.scaling
            )
        else:
            start, length = attention.start, key.shape[1]
            key, value = self._heads(key), self._heads(value)
            if isinstance(start, int):
                keys[:, :, start : start + length] = key
                values[:, :, start : start + length] = value
            else:
                keys.index_copy_(2, start, key)
                values.index_copy_(2, start, value)
            span = attention.span
            out = self._attend(
                self._heads(query), keys[:, :, :span], values[:, :, :span], attention, attn.scaling
            )
        hidden = residual + attn.out_proj(out)
        residual = hidden
        hidden = layer.fc2(layer.activation_fn(layer.fc1(self._norm(layer.final_layer_norm, hidden))))
        return residual + hidden

    def _heads(self, projected: torch.Tensor) -> torch.Tensor:
        """(rows, length, width) to (rows, heads, length, head_dim)."""
        rows, length, _ = projected.shape
        return projected.view(rows, length, self.core.config.num_attention_heads, -1).transpose(1, 2)

    @staticmethod
    def _attend(query, keys, values, attention: _Attention, scaling: float) -> torch.Tensor:
        out = F.scaled_dot_product_attention(
            query,
            keys,
            values,
            attn_mask=attention.mask,
            is_causal=attention.causal and attention.mask is None,
            scale=scaling,
        )
        rows, heads, length, head_dim = out.shape
        return out.transpose(1, 2).reshape(rows, length, heads * head_dim)

    def _int8_attention(self, cache: Int8Cache, projected, attention: _Attention, *, valid, scaling: float):
        """Over the int8 cache (`generation.musicgen.kvcache`); a prefill (slot 0 on) attends over
        its own float keys and values, then stores them."""
        (query, key, value), start = projected, attention.start
        cache.store(key, value, int(start))
        if isinstance(start, int):
            return self._attend(*map(self._heads, projected), attention, scaling)
        return cache.attend(query, attention.span, valid, scaling)

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


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean attention mask as an additive one (0 where allowed, -inf elsewhere), made once per
    step rather than by SDPA in every layer; on CUDA a mask in the queries' dtype is what the
    memory-efficient and cuDNN kernels take as it is (flash takes no mask at all). The benchmark's
    attention table (`benchmarks.attention`) times the choices on the device."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(
        ~allowed, float("-inf")
    )
