"""The token LM network: summed per-codebook embeddings -> causal Transformer (KV cache) -> per-codebook heads.

Knows nothing about Lightning (the recipe is :mod:`audiolab.models.tokenlm.module`); generation lives in
:mod:`audiolab.models.tokenlm.sampling`.

Conditioning on tags is a *prefix*: ``max_tags`` slots, each the embedding of one tag id (``0`` = no tag), placed
before the first audio step. The unconditional (null) condition is all slots ``0`` — built by
:meth:`TokenLM.null_tags`, the same function at training (conditioning dropout) and at inference (CFG). A prefix
keeps cond and uncond the same length, so classifier-free guidance is one batched forward and one KV cache.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from audiolab.models.tokenlm.patterns import DelayPattern
from audiolab.nn.transformer import KVCache, TransformerStack


class TokenLM(nn.Module):
    """Delay-pattern LM over ``n_q`` codebooks of ``card`` codes.

    Args:
        n_q: codebooks ``K``.
        card: codebook size.
        pattern: ``"delay"`` | ``"parallel"``.
        delays: per-codebook delays (``None`` = ``0..K-1``).
        eos: one EOS per codebook at the end of a sequence (variable-length generation).
        d_model, layers, heads, ff_multiplier, dropout, positional, max_len: the shared
            :class:`~audiolab.nn.transformer.TransformerStack` (``max_len`` counts prefix + audio steps).
        n_tags: size of the tag vocabulary (ids ``1..n_tags``; ``0`` = no tag). ``0`` = unconditional model.
        max_tags: prefix slots (tags per item at most).
    """

    def __init__(self, n_q: int, card: int, pattern: str = "delay", delays: Sequence[int] | None = None,
                 eos: bool = False, d_model: int = 256, layers: int = 4, heads: int = 4, ff_multiplier: int = 4,
                 dropout: float = 0.0, positional: str = "sinusoidal", max_len: int = 4096, n_tags: int = 0,
                 max_tags: int = 0) -> None:
        super().__init__()
        self.pattern = DelayPattern(n_q, card, kind=pattern, delays=delays, eos=eos)
        self.n_q, self.card, self.d_model = int(n_q), int(card), int(d_model)
        self.n_tags, self.max_tags = int(n_tags), int(max_tags) if n_tags > 0 else 0
        self.embeddings = nn.ModuleList(nn.Embedding(self.pattern.n_input, d_model) for _ in range(n_q))
        for emb in self.embeddings:
            # GPT-style small init: K summed unit-variance embeddings would swamp the positional signal
            nn.init.normal_(emb.weight, std=0.02)
        self.tag_embedding = nn.Embedding(self.n_tags + 1, d_model) if self.max_tags > 0 else None
        if self.tag_embedding is not None:
            nn.init.normal_(self.tag_embedding.weight, std=0.02)
        self.stack = TransformerStack(d_model, layers, heads, ff_multiplier=ff_multiplier, dropout=dropout,
                                      causal=True, positional=positional, max_len=max_len)
        # K heads as one matmul (block of K independent [D, n_out] heads)
        self.heads = nn.Linear(d_model, n_q * self.pattern.n_output)

    @property
    def conditional(self) -> bool:
        return self.max_tags > 0

    def null_tags(self, batch: int, device: torch.device | None = None) -> Tensor:
        """The unconditional condition ``[B, max_tags]`` (all slots empty)."""
        return torch.zeros(batch, self.max_tags, dtype=torch.long, device=device)

    def embed(self, seq: Tensor) -> Tensor:
        """``[B, K, S]`` layout ids -> ``[B, S, D]`` (sum over codebooks)."""
        if seq.dim() != 3 or seq.shape[1] != self.n_q:
            raise ValueError(f"expected a token layout [B, {self.n_q}, S], got {tuple(seq.shape)}")
        return sum(emb(seq[:, k]) for k, emb in enumerate(self.embeddings))

    def forward(self, seq: Tensor, tags: Tensor | None = None, cache: KVCache | None = None) -> Tensor:
        """Next-step logits.

        Args:
            seq: ``[B, K, S]`` layout ids (inputs ``seq[..., :-1]`` of a training layout); with ``cache``, only the
                new steps.
            tags: ``[B, max_tags]`` tag ids (``0`` = empty slot); ``None`` = the null condition. Used only when the
                prefix is not cached yet (first call).
            cache: optional :class:`KVCache`, updated in place (incremental decoding).

        Returns:
            ``[B, K, S, n_output]``: logits at step ``s`` predict the tokens of step ``s + 1``.
        """
        x = self.embed(seq)
        n_prefix = 0
        if self.tag_embedding is not None and (cache is None or cache.length == 0):
            if tags is None:
                tags = self.null_tags(seq.shape[0], seq.device)
            if tags.shape != (seq.shape[0], self.max_tags):
                raise ValueError(f"tags must be [{seq.shape[0]}, {self.max_tags}], got {tuple(tags.shape)}")
            x = torch.cat([self.tag_embedding(tags), x], dim=1)
            n_prefix = self.max_tags
        h = self.stack(x, cache=cache)[:, n_prefix:]
        logits = self.heads(h)  # [B, S, K * n_out]
        return logits.view(h.shape[0], h.shape[1], self.n_q, self.pattern.n_output).transpose(1, 2)
