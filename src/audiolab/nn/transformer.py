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

POSITIONAL_KINDS: tuple[str, ...] = ("none", "sinusoidal", "learned")


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


@dataclass
class KVCache:
    """Per-layer key/value cache for incremental causal decoding.

    ``keys[i]`` / ``values[i]`` are ``[B, H, T_past, Dh]`` for layer ``i`` (empty lists before the first
    call). The cache is mutated in place by :meth:`TransformerStack.forward`.
    """

    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        """Number of time steps already cached (the position offset of the next input)."""
        return 0 if not self.keys else int(self.keys[0].shape[2])


class MultiHeadSelfAttention(nn.Module):
    """Self-attention via ``F.scaled_dot_product_attention`` on ``[B, H, T, Dh]``.

    Keeping batch as its own axis (never folding it into the sequence) guarantees items never attend
    to each other.
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, causal: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """``x``: ``[B, T, D]`` -> ``[B, T, D]``. With ``cache``, ``x`` holds only the new steps."""
        q, k, v = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        attn_mask: Tensor | None = None
        is_causal = self.causal
        if cache is not None:
            if layer < len(cache.keys):
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
                cache.keys[layer], cache.values[layer] = k, v
            else:
                cache.keys.append(k)
                cache.values.append(v)
            t_new, t_all = q.shape[2], k.shape[2]
            if t_all != t_new:
                # SDPA's is_causal aligns the mask top-left, which is wrong when queries are the *last*
                # t_new of t_all keys; build the bottom-right aligned mask explicitly.
                is_causal = False
                if t_new > 1:
                    q_pos = torch.arange(t_all - t_new, t_all, device=x.device).unsqueeze(1)
                    attn_mask = torch.arange(t_all, device=x.device).unsqueeze(0) <= q_pos  # [Tq, Tk]
                # t_new == 1: the single query may see every cached key, so no mask is needed.
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
        self, d_model: int, heads: int, ff_multiplier: int = 4, dropout: float = 0.0, causal: bool = True
    ) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, heads, dropout=dropout, causal=causal)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_multiplier * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ff_multiplier * d_model, d_model),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """``[B, T, D]`` -> ``[B, T, D]``."""
        x = x + self.drop(self.attn(self.norm_attn(x), cache=cache, layer=layer))
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
        positional: one of ``"none"``, ``"sinusoidal"`` (fixed table) or ``"learned"`` (embedding).
        max_len: longest supported sequence (including any cached prefix). Enforced for every
            ``positional`` mode, so a config behaves the same when the positional kind is swapped.
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
    ) -> None:
        super().__init__()
        if heads <= 0 or d_model <= 0:
            raise ValueError(f"d_model and heads must be positive, got d_model={d_model}, heads={heads}")
        if d_model % heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        if positional not in POSITIONAL_KINDS:
            raise ValueError(f"unknown positional {positional!r}; allowed values: {list(POSITIONAL_KINDS)}")
        if max_len <= 0:
            raise ValueError(f"max_len must be positive, got {max_len}")
        self.d_model = d_model
        self.causal = causal
        self.positional = positional
        self.max_len = max_len
        if positional == "sinusoidal":
            # Non-persistent: it is a pure function of (max_len, d_model), so keep it out of checkpoints.
            self.register_buffer("pos_table", sinusoidal_table(max_len, d_model), persistent=False)
        elif positional == "learned":
            self.pos_embedding = nn.Embedding(max_len, d_model)
            # Small init so the learned table starts as a mild perturbation, like the sinusoid's O(1) scale.
            nn.init.normal_(self.pos_embedding.weight, std=0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, heads, ff_multiplier, dropout, causal) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)

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
        if total > self.max_len:
            raise ValueError(
                f"sequence length {total} (cached {start} + new {x.shape[1]}) exceeds max_len={self.max_len}; "
                "increase max_len or feed shorter sequences"
            )
        pos = self._positions(start, x.shape[1], x)
        if pos is not None:
            x = x + pos
        for i, block in enumerate(self.blocks):
            x = block(x, cache=cache, layer=i)
        return self.norm(x)
