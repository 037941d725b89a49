"""Keyword-conditioned latent U-Net for ``[B, 4, 8, 11]`` latents (odd sizes: 11 -> 6 -> 3 -> 6 -> 11).

Conditioning vector (``emb_dim`` 256) = MLP(sinusoidal timestep embedding, 64) + Linear(mean of the active
keywords' embeddings, 64); a sample without keywords gets a learned null embedding instead of the mean (the
"unconditional" branch of classifier-free guidance). CondResBlock: GN -> SiLU -> conv -> + Linear(emb) ->
GN -> SiLU -> dropout -> conv, plus the (1x1-projected) input. Levels: 64 ch at 8 x 11 -> 128 at 4 x 6 -> 256 at
2 x 3; the middle is ResBlock - self-attention - ResBlock; the decoder upsamples to the skip's exact size
(nearest, ``size=`` of the skip: 3 -> 6 -> 11, where a plain x2 would give 12), concatenates the skip and
mixes with a 1x1 conv. diffusers' ``UNet2DModel`` upsamples by exactly 2 (6 -> 12 != 11), hence this net.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiolab.models.kick.vae import group_norm

__all__ = ["LatentUNet", "timestep_embedding", "KeywordEmbedding"]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding ``[B, dim]`` of (possibly fractional) timesteps ``t`` ``[B]``: ``[cos, sin]`` of
    ``t * max_period ** (-k / (dim / 2))`` (DDPM / diffusers ``get_timestep_embedding`` with ``flip_sin_to_cos``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class KeywordEmbedding(nn.Module):
    """Average of the active keywords' embeddings, or the learned null embedding when none is active.

    ``forward(multi_hot [B, V], drop [B] bool | None) -> [B, dim]``; ``drop`` forces the null embedding (CFG).
    The table has ``max_keywords`` rows so the vocabulary (known only once the data is set up) may be any size
    up to it.
    """

    def __init__(self, max_keywords: int, dim: int) -> None:
        super().__init__()
        self.max_keywords = int(max_keywords)
        self.table = nn.Parameter(torch.randn(self.max_keywords, dim) * 0.02)
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, multi_hot: Tensor, drop: Tensor | None = None) -> Tensor:
        v = multi_hot.shape[-1]
        if v > self.max_keywords:
            raise ValueError(f"{v} keywords but the embedding table has {self.max_keywords} rows "
                             f"(raise model.unet.max_keywords)")
        w = multi_hot.float()
        count = w.sum(-1, keepdim=True)
        mean = (w @ self.table[:v]) / count.clamp(min=1.0)
        none = count.squeeze(-1) == 0
        if drop is not None:
            none = none | drop
        return torch.where(none[:, None], self.null.expand_as(mean), mean)


class CondResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.conv1 = group_norm(in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2, self.conv2 = group_norm(out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: a stable start for deep stacks
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the ``H * W`` positions (pre-GroupNorm, residual)."""

    def __init__(self, ch: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = group_norm(ch)
        self.attn = nn.MultiheadAttention(ch, heads, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        s = self.norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]
        out, _ = self.attn(s, s, s, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class LatentUNet(nn.Module):
    """ε- or v-predicting U-Net over latents (see module docstring).

    Args:
        in_channels: latent channels (4).
        channels: per level (64, 128, 256); level ``i > 0`` is reached by a stride-2 conv.
        blocks_per_level: CondResBlocks per level on the way down (and up).
        time_dim / keyword_dim / emb_dim: 64 / 64 / 256.
        max_keywords: rows of the keyword table (>= the vocabulary size).
        attention_heads: of the middle self-attention.
        dropout: inside the ResBlocks.

    ``forward(x [B, C, H, W], t [B], keywords [B, V] multi-hot, drop_keywords [B] bool | None) -> [B, C, H, W]``.
    """

    def __init__(self, in_channels: int = 4, channels: Sequence[int] = (64, 128, 256), blocks_per_level: int = 2,
                 time_dim: int = 64, keyword_dim: int = 64, emb_dim: int = 256, max_keywords: int = 512,
                 attention_heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        self.in_channels, self.channels, self.time_dim = int(in_channels), channels, int(time_dim)
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.keywords = KeywordEmbedding(max_keywords, keyword_dim)
        self.keyword_proj = nn.Linear(keyword_dim, emb_dim)
        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = channels[0]
        skip_ch = []
        for i, c in enumerate(channels):
            if i > 0:
                self.downsample.append(nn.Conv2d(prev, prev, 3, stride=2, padding=1))
            blocks = nn.ModuleList()
            for _ in range(blocks_per_level):
                blocks.append(CondResBlock(prev, c, emb_dim, dropout))
                prev = c
            self.down.append(blocks)
            skip_ch.append(prev)
        self.mid1 = CondResBlock(prev, prev, emb_dim, dropout)
        self.mid_attn = SelfAttention2d(prev, attention_heads)
        self.mid2 = CondResBlock(prev, prev, emb_dim, dropout)
        self.merge = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in reversed(range(len(channels))):
            c = channels[i]
            self.merge.append(nn.Conv2d(prev + skip_ch[i], c, 1))  # concat skip + 1x1
            self.up.append(nn.ModuleList([CondResBlock(c, c, emb_dim, dropout) for _ in range(blocks_per_level)]))
            prev = c
        self.norm_out = group_norm(prev)
        self.conv_out = nn.Conv2d(prev, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def embed(self, t: Tensor, keywords: Tensor, drop_keywords: Tensor | None = None) -> Tensor:
        """Conditioning vector ``[B, emb_dim]``."""
        return self.time_mlp(timestep_embedding(t, self.time_dim)) + self.keyword_proj(
            self.keywords(keywords, drop_keywords))

    def forward(self, x: Tensor, t: Tensor, keywords: Tensor, drop_keywords: Tensor | None = None) -> Tensor:
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.embed(t.to(x.device), keywords.to(x.device), drop_keywords)
        h = self.conv_in(x)
        skips = []
        for i, blocks in enumerate(self.down):
            if i > 0:
                h = self.downsample[i - 1](h)  # (H, W) -> (ceil(H/2), ceil(W/2)): 8x11 -> 4x6 -> 2x3
            for blk in blocks:
                h = blk(h, emb)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for merge, blocks in zip(self.merge, self.up):
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")  # explicit size: 3 -> 6 -> 11
            h = merge(torch.cat([h, skip], dim=1))
            for blk in blocks:
                h = blk(h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))
