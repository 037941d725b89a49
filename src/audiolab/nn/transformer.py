"""Pre-norm Transformer encoder stack shared by model families.

Used by the DDSP ``TransformerDecoder`` (frame-wise controls) and intended for reuse by the token LM,
which needs causal attention and incremental decoding; hence the optional :class:`KVCache`.

Shape conventions: ``B`` batch, ``T`` time steps (frames / tokens), ``D`` = ``d_model``, ``H`` heads,
``Dh = D // H``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

POSITIONAL_KINDS: tuple[str, ...] = ("none", "sinusoidal", "learned", "rotary")
#: Kinds that add a table indexed by absolute position to the input (bounded by ``max_len``).
ABSOLUTE_POSITIONAL: tuple[str, ...] = ("sinusoidal", "learned")


def sinusoidal_table(length: int, d_model: int) -> Tensor:
    """Fixed sinusoidal position table (Vaswani et al. 2017).

    Returns:
        ``[length, d_model]`` float32; even channels sin, odd channels cos.
    """
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # [L, 1]
    # Frequencies for the (ceil) half of the channels; odd d_model just drops the last cos column.
    inv_freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )  # [ceil(D/2)]
    angles = pos * inv_freq  # [L, ceil(D/2)]
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table


def rotary_angles(positions: Tensor, dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos / sin tables of rotary position embeddings (RoFormer, Su et al. 2021; GPT-NeoX "rotate half" layout).

    Args:
        positions: ``[T]`` absolute step indices (any integer dtype).
        dim: per-head width ``Dh`` (even).

    Returns:
        ``(cos, sin)``, each ``[T, Dh]`` float32: channel ``i`` and ``i + Dh/2`` share the frequency
        ``base ** (-2i / Dh)``. Angles are computed in float64 so that long streams (e.g. 60 s at 250 Hz = 15,000
        steps) keep their precision before the cast.
    """
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=positions.device) / dim)  # [Dh/2]
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]  # [T, Dh/2]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x [B, H, T, Dh]`` by the angles of :func:`rotary_angles` (``[T, Dh]``): the dot product of a
    rotated query at step ``i`` and a rotated key at step ``j`` depends on ``i - j`` only."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def attention_mask(q_pos: Tensor, k_pos: Tensor, causal: bool, window: int | None) -> Tensor | None:
    """Boolean ``[Tq, Tk]`` mask (True = may attend) from absolute step indices ``q_pos [Tq]``, ``k_pos [Tk]``.

    ``causal``: keys at steps ``<= q``; ``window`` (``W``): keys within ``W`` steps, i.e. ``q - W < k <= q``
    when causal and ``|q - k| < W`` otherwise. Returns None when nothing is masked.
    """
    diff = q_pos[:, None] - k_pos[None, :]  # [Tq, Tk] = q - k
    mask = torch.ones_like(diff, dtype=torch.bool)
    if causal:
        mask &= diff >= 0
    if window is not None:
        mask &= diff.abs() < window
    return None if bool(mask.all()) else mask


@dataclass
class KVCache:
    """Per-layer key/value cache for incremental causal decoding.

    ``keys[i]`` / ``values[i]`` are ``[B, H, T_kept, Dh]`` for layer ``i`` (empty lists before the first
    call). The cache is mutated in place by :meth:`TransformerStack.forward`. With an ``attention_window`` of
    ``W`` the cache keeps only the last ``W - 1`` steps (a fixed span: constant memory for any stream length);
    ``length`` still counts every step fed so far.
    """

    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)
    seen: int = 0

    @property
    def length(self) -> int:
        """Number of time steps fed so far (the position offset of the next input)."""
        return self.seen


class MultiHeadSelfAttention(nn.Module):
    """Self-attention via ``F.scaled_dot_product_attention`` on ``[B, H, T, Dh]``.

    Keeping batch as its own axis (never folding it into the sequence) guarantees items never attend
    to each other.
    """

    def __init__(
        self, d_model: int, heads: int, dropout: float = 0.0, causal: bool = True, window: int | None = None,
        rotary: bool = False,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.window = window
        self.rotary = rotary
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0, start: int = 0) -> Tensor:
        """``x``: ``[B, T, D]`` -> ``[B, T, D]``. With ``cache``, ``x`` holds only the new steps, the first of
        which is step ``start`` of the stream."""
        q, k, v = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        t_new = q.shape[2]
        q_pos = torch.arange(start, start + t_new, device=x.device)
        if self.rotary:
            cos, sin = rotary_angles(q_pos, q.shape[-1])
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # keys are cached already rotated
        k_pos = q_pos
        if cache is not None:
            if layer < len(cache.keys):
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
            else:
                cache.keys.append(k)
                cache.values.append(v)
            k_pos = torch.arange(start + t_new - k.shape[2], start + t_new, device=x.device)
            # a fixed span: the next query (step start + t_new) sees at most window - 1 earlier steps
            keep = k.shape[2] if self.window is None else min(k.shape[2], self.window - 1)
            cache.keys[layer], cache.values[layer] = k[:, :, k.shape[2] - keep :], v[:, :, k.shape[2] - keep :]
        attn_mask: Tensor | None = None
        is_causal = False
        if self.window is None and k.shape[2] == t_new:
            is_causal = self.causal  # the fast path: SDPA's own (top-left aligned) causal mask
        else:
            # queries are the *last* t_new steps of the keys (cache) or the window is bounded: explicit mask
            attn_mask = attention_mask(q_pos, k_pos, self.causal, self.window)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
        )  # [B, H, T, Dh]
        return self.proj(rearrange(out, "b h t d -> b t (h d)"))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + Attn(LN(x))`` then ``x + FF(LN(x))`` (GELU). Pre-norm trains stably without
    warm-up tricks at small scale."""

    def __init__(
        self, d_model: int, heads: int, ff_multiplier: int = 4, dropout: float = 0.0, causal: bool = True,
        window: int | None = None, rotary: bool = False,
    ) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, heads, dropout=dropout, causal=causal, window=window, rotary=rotary)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_multiplier * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ff_multiplier * d_model, d_model),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0, start: int = 0) -> Tensor:
        """``[B, T, D]`` -> ``[B, T, D]``; ``start``: stream step of ``x[:, 0]``."""
        x = x + self.drop(self.attn(self.norm_attn(x), cache=cache, layer=layer, start=start))
        return x + self.drop(self.ff(self.norm_ff(x)))


class TransformerStack(nn.Module):
    """Positional encoding + ``layers`` pre-norm Transformer blocks + final LayerNorm.

    Args:
        d_model: model width ``D``; must be divisible by ``heads``.
        layers: number of blocks.
        heads: attention heads ``H``.
        ff_multiplier: feed-forward hidden width is ``ff_multiplier * D``.
        dropout: residual, feed-forward and attention dropout (active only in train mode).
        causal: if True, step ``t`` attends only to steps ``<= t``.
        positional: ``"none"``, ``"sinusoidal"`` (fixed table added to the input), ``"learned"`` (embedding
            added to the input) or ``"rotary"`` (queries and keys rotated by their step: attention sees only
            relative offsets).
        max_len: longest supported sequence (including any cached prefix) for the absolute kinds
            (``sinusoidal``, ``learned``) and for unbounded attention. With ``attention_window`` set and a
            relative kind (``none``, ``rotary``) the output at a step depends only on the last ``W`` steps and
            not on where the stream started, so any length is accepted.
        attention_window: ``W`` (steps) or None (unbounded): each query attends to keys within ``W`` steps
            (``t - W < s <= t`` when causal). With a :class:`KVCache` only the last ``W - 1`` steps are kept.
    """

    def __init__(
        self,
        d_model: int,
        layers: int,
        heads: int,
        ff_multiplier: int = 4,
        dropout: float = 0.0,
        causal: bool = True,
        positional: str = "sinusoidal",
        max_len: int = 8192,
        attention_window: int | None = None,
    ) -> None:
        super().__init__()
        if heads <= 0 or d_model <= 0:
            raise ValueError(f"d_model and heads must be positive, got d_model={d_model}, heads={heads}")
        if d_model % heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        if positional not in POSITIONAL_KINDS:
            raise ValueError(f"unknown positional {positional!r}; allowed values: {list(POSITIONAL_KINDS)}")
        if positional == "rotary" and (d_model // heads) % 2:
            raise ValueError(f"positional='rotary' needs an even head width, got d_model/heads = {d_model // heads}")
        if max_len <= 0:
            raise ValueError(f"max_len must be positive, got {max_len}")
        if attention_window is not None and attention_window < 1:
            raise ValueError(f"attention_window must be >= 1 or null, got {attention_window}")
        self.d_model = d_model
        self.causal = causal
        self.positional = positional
        self.max_len = max_len
        self.attention_window = attention_window
        if positional == "sinusoidal":
            # Non-persistent: it is a pure function of (max_len, d_model), so keep it out of checkpoints.
            self.register_buffer("pos_table", sinusoidal_table(max_len, d_model), persistent=False)
        elif positional == "learned":
            self.pos_embedding = nn.Embedding(max_len, d_model)
            # Small init so the learned table starts as a mild perturbation, like the sinusoid's O(1) scale.
            nn.init.normal_(self.pos_embedding.weight, std=0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, heads, ff_multiplier, dropout, causal, window=attention_window,
                             rotary=positional == "rotary")
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)

    @property
    def unbounded_length(self) -> bool:
        """True when any sequence length is valid and the output does not depend on absolute position:
        bounded attention and no absolute position table."""
        return self.attention_window is not None and self.positional not in ABSOLUTE_POSITIONAL

    def _positions(self, start: int, length: int, x: Tensor) -> Tensor | None:
        """Position encodings for steps ``start .. start+length-1`` as ``[1, T, D]`` (or None)."""
        if self.positional == "sinusoidal":
            return self.pos_table[start : start + length].to(x.dtype).unsqueeze(0)
        if self.positional == "learned":
            idx = torch.arange(start, start + length, device=x.device)
            return self.pos_embedding(idx).unsqueeze(0)
        return None

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        """Run the stack.

        Args:
            x: ``[B, T, D]``. With ``cache``, only the new steps (positions continue from
                ``cache.length``).
            cache: optional :class:`KVCache` for incremental decoding (causal stacks only); updated in
                place. Feeding a sequence in chunks gives the same outputs as one full call.

        Returns:
            ``[B, T, D]``.
        """
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"expected input [B, T, {self.d_model}], got {tuple(x.shape)}")
        if cache is not None and not self.causal:
            # A non-causal stack would need to recompute past steps once future ones arrive.
            raise ValueError("KVCache incremental decoding requires causal=True")
        start = 0 if cache is None else cache.length
        total = start + x.shape[1]
        if total > self.max_len and not self.unbounded_length:
            raise ValueError(
                f"sequence length {total} (cached {start} + new {x.shape[1]}) exceeds max_len={self.max_len}; "
                "increase max_len or feed shorter sequences"
            )
        pos = self._positions(start, x.shape[1], x)
        if pos is not None:
            x = x + pos
        for i, block in enumerate(self.blocks):
            x = block(x, cache=cache, layer=i, start=start)
        if cache is not None:
            cache.seen = total
        return self.norm(x)
