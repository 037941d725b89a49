"""Generation for :class:`~audiolab.models.tokenlm.model.TokenLM`: KV-cached incremental decoding, batched
classifier-free guidance, temperature / top-k / top-p sampling, prompted continuation.

CFG follows audiocraft and ``transformers``: ``logits = uncond + s * (cond - uncond)``; ``s = 1`` is the conditional
model alone (the unconditional branch is then skipped). Dia writes ``cond + s' * (cond - uncond)``, i.e. Dia's
``s'`` is our ``s' + 1`` (Dia ``cfg_scale=3`` = ``cfg_scale=4`` here). Cond and uncond run as one batch of ``2B``
through one forward and one KV cache.

A prompt is given as *undelayed* codes ``[B, K, P]``; :meth:`DelayPattern.template` places them into the layout once
and they are never overwritten or re-delayed (the parler-tts continuation bug was re-applying the delay to ids that
were already delayed).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from audiolab.models.tokenlm.model import TokenLM
from audiolab.models.tokenlm.patterns import UNKNOWN
from audiolab.nn.transformer import KVCache

log = logging.getLogger("audiolab")


def guided_logits(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """audiocraft CFG: ``uncond + scale * (cond - uncond)``."""
    return uncond + float(scale) * (cond - uncond)


def sample_logits(logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0,
                  generator: torch.Generator | None = None) -> Tensor:
    """Draw one id per row of ``logits`` ``[N, V]``.

    ``temperature == 0`` -> argmax (greedy). ``top_p > 0`` keeps the smallest set of ids whose probability mass
    reaches ``top_p`` (nucleus; overrides ``top_k``, as in audiocraft); else ``top_k > 0`` keeps the ``k`` largest.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_p > 0.0:
        probs = logits.softmax(dim=-1)
        sorted_p, sorted_idx = probs.sort(dim=-1, descending=True)
        # drop an id when the mass *before* it already reaches top_p (the top id is always kept)
        drop = (sorted_p.cumsum(dim=-1) - sorted_p) >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        choice = torch.multinomial(sorted_p / sorted_p.sum(dim=-1, keepdim=True), 1, generator=generator)
        return sorted_idx.gather(-1, choice).squeeze(-1)
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)


def _entropy(logits: Tensor) -> Tensor:
    """Natural-log entropy of ``softmax(logits)`` along the last axis."""
    logp = logits.float().log_softmax(dim=-1)
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(dim=-1)  # masked (-inf) logits add 0, not NaN


@torch.no_grad()
def generate(lm: TokenLM, n_frames: int, batch: int = 1, tags: Tensor | None = None, prompt: Tensor | None = None,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0, cfg_scale: float = 1.0,
             use_cache: bool = True, seed: int | None = None, trained_unconditional_frac: float | None = None,
             force_cfg_batch: bool = False, progress: bool = False) -> dict[str, Any]:
    """Generate ``n_frames`` frames (fewer when the model emits EOS).

    Args:
        lm: the network (its mode is left as it is; call ``.eval()`` first).
        n_frames: frames to produce (prompt included); with EOS, the longest output.
        batch: items ``B`` (taken from ``prompt``/``tags`` when given).
        tags: ``[B, max_tags]`` tag ids of a conditional model (``None`` = the null condition).
        prompt: ``[B, K, P]`` undelayed codes to continue; kept verbatim in the output.
        temperature, top_k, top_p: see :func:`sample_logits` (``temperature=0``: greedy).
        cfg_scale: audiocraft CFG scale ``s`` (1 = conditional only).
        use_cache: KV-cached incremental decoding (False: recompute the whole prefix every step, the reference).
        seed: seeds the sampler's own generator (the global RNG is not touched).
        trained_unconditional_frac: the ``unconditional_frac`` the model was trained with, if known: a warning is
            logged when ``cfg_scale != 1`` leans on an unconditional branch that was never trained (``0``).
        force_cfg_batch: run the ``2B`` CFG batch even when ``cfg_scale == 1`` (tests).

    Returns:
        ``{"codes": [B, K, T] long, "lengths": [B] long, "seq": [B, K, S] layout, "entropy": mean predictive entropy
        (nats, temperature 1) over generated positions, "steps": decoding steps, "seconds": wall time}``.
    """
    pattern = lm.pattern
    device = next(lm.parameters()).device
    if prompt is not None:
        batch = prompt.shape[0]
        if prompt.shape[1] != lm.n_q:
            raise ValueError(f"prompt has {prompt.shape[1]} codebooks, the model {lm.n_q}")
        if prompt.numel() and (int(prompt.min()) < 0 or int(prompt.max()) >= lm.card):
            raise ValueError(f"prompt codes must be in 0..{lm.card - 1}, got {int(prompt.min())}..{int(prompt.max())}")
    if tags is not None:
        batch = tags.shape[0]
        tags = tags.to(device)
    use_cfg = (cfg_scale != 1.0 or force_cfg_batch)
    if use_cfg and not lm.conditional:
        log.warning("cfg_scale=%s ignored: the model has no conditioning (model.conditioning.max_tags=0)", cfg_scale)
        use_cfg = False
    if use_cfg and cfg_scale != 1.0 and trained_unconditional_frac is not None and trained_unconditional_frac <= 0:
        log.warning("cfg_scale=%s leans on the unconditional branch, but the model was trained with "
                    "unconditional_frac=0: that branch never saw a null condition (use cfg_scale=1 or retrain with "
                    "model.conditioning.unconditional_frac > 0)", cfg_scale)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**31 - 1, (1,))))

    seq = pattern.template(batch, n_frames, prompt, device=device)
    s_len = seq.shape[2]
    cond_tags = tags if tags is not None else (lm.null_tags(batch, device) if lm.conditional else None)
    model_tags = torch.cat([cond_tags, lm.null_tags(batch, device)]) if use_cfg else cond_tags
    rep = 2 if use_cfg else 1
    s0 = pattern.first_unknown_step(seq)
    t0 = time.perf_counter()
    cache = KVCache() if use_cache else None
    entropies: list[Tensor] = []
    eos_allowed = torch.tensor([d == pattern.min_delay for d in pattern.delays], device=device)
    steps = 0
    bar = tqdm(total=s_len - s0, desc="generating", unit="step", disable=not progress)
    s = s0
    while s < s_len:
        if use_cache:
            new = seq[:, :, :s] if cache.length == 0 else seq[:, :, s - 1 : s]
            logits = lm(new.repeat(rep, 1, 1), model_tags, cache=cache)[:, :, -1]  # [rep*B, K, V]
        else:
            logits = lm(seq[:, :, :s].repeat(rep, 1, 1), model_tags)[:, :, -1]
        if use_cfg:
            logits = guided_logits(logits[:batch], logits[batch:], cfg_scale)
        if pattern.eos:
            # only the least-delayed codebook may end the sequence; the others get EOS by the cascade (Dia)
            logits[:, ~eos_allowed, pattern.card] = -math.inf
        todo = seq[:, :, s] == UNKNOWN  # [B, K]
        if todo.any():
            entropies.append(_entropy(logits)[todo])
            ids = sample_logits(logits.reshape(-1, logits.shape[-1]), temperature, top_k, top_p, gen).view(batch, lm.n_q)
            if pattern.eos:
                ids = torch.where(ids == pattern.card, torch.full_like(ids, pattern.eos_id), ids)
            seq[:, :, s] = torch.where(todo, ids, seq[:, :, s])
            if pattern.eos:
                for b, k in torch.nonzero(todo & (ids == pattern.eos_id)).tolist():
                    pattern.finish(seq, b, s - 1 - pattern.delays[k])
        steps += 1
        bar.update(1)
        s += 1
        if not (seq == UNKNOWN).any():
            break
    bar.close()
    seconds = time.perf_counter() - t0
    codes = pattern.revert(seq, n_frames)
    lengths = torch.full((batch,), n_frames, dtype=torch.long, device=device)
    if pattern.eos:
        ended = codes[:, 0] >= lm.card  # the EOS cascade writes EOS at the end frame of every codebook, PAD after
        first = torch.where(ended.any(dim=1), ended.float().argmax(dim=1), lengths)
        lengths = first.long()
    ent = torch.cat(entropies).mean().item() if entropies else float("nan")
    return {"codes": codes, "lengths": lengths, "seq": seq, "entropy": ent, "steps": steps, "seconds": seconds}
