"""Adversarial losses over a list of sub-discriminator outputs: hinge, least-squares (LSGAN), feature matching.

Each function returns ``(total, per_discriminator)`` where ``per_discriminator[k]`` is sub-discriminator k's
contribution, so ``total == sum(per_discriminator)`` always (log them under the discriminator's ``names``).
``reduction`` says how sub-discriminators (and, for feature matching, layers) combine:

* ``"mean"``: divided by the number of sub-discriminators (audiocraft / EnCodec: hinge "divided by the number of
  sub-discriminators"; feature matching averaged over every layer of every sub-discriminator).
* ``"sum"``: summed (HiFi-GAN ``discriminator_loss`` / ``generator_loss`` / ``feature_loss``).

HiFi-GAN scaling convention: jik876/hifi-gan's ``feature_loss`` is ``2 * sum_k sum_l mean|D_k^l(y) - D_k^l(y_hat)|``
with the 2 *inside* the function. Here the factor is a weight: ``feature_matching_loss(..., reduction="sum")``
times ``feat_weight=2`` is HiFi-GAN's value; do not apply it twice. Likewise HiFi-GAN's total generator loss is
``lsgan_generator_loss(msd+mpd, "sum") + 2 * feature_matching_loss(msd+mpd, "sum") + 45 * mel_l1``.

Logits and feature maps may have any shape; each term is a mean over its elements. Real feature maps are detached
(they are targets). Losses are computed in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

Reduction = Literal["mean", "sum"]


def _combine(terms: list[Tensor], reduction: str, count: int | None = None) -> tuple[Tensor, list[Tensor]]:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"adversarial loss reduction must be 'mean' or 'sum', got {reduction!r}")
    if not terms:
        raise ValueError("adversarial loss: no discriminator outputs given")
    if reduction == "mean":
        n = count if count is not None else len(terms)
        terms = [t / n for t in terms]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total, terms


def hinge_discriminator_loss(real_logits: Sequence[Tensor], fake_logits: Sequence[Tensor],
                             reduction: Reduction = "mean") -> tuple[Tensor, list[Tensor]]:
    """``sum_k [mean relu(1 - D_k(y)) + mean relu(1 + D_k(y_hat))]`` (/K for ``"mean"``)."""
    terms = [torch.relu(1 - r.float()).mean() + torch.relu(1 + f.float()).mean() for r, f in zip(real_logits, fake_logits)]
    return _combine(terms, reduction)


def hinge_generator_loss(fake_logits: Sequence[Tensor], reduction: Reduction = "mean") -> tuple[Tensor, list[Tensor]]:
    """``sum_k -mean D_k(y_hat)`` (/K for ``"mean"``), audiocraft's hinge generator loss."""
    return _combine([-f.float().mean() for f in fake_logits], reduction)


def lsgan_discriminator_loss(real_logits: Sequence[Tensor], fake_logits: Sequence[Tensor],
                             reduction: Reduction = "mean") -> tuple[Tensor, list[Tensor]]:
    """``sum_k [mean (1 - D_k(y))^2 + mean D_k(y_hat)^2]`` (/K for ``"mean"``); HiFi-GAN uses ``"sum"``."""
    terms = [((1 - r.float()) ** 2).mean() + (f.float() ** 2).mean() for r, f in zip(real_logits, fake_logits)]
    return _combine(terms, reduction)


def lsgan_generator_loss(fake_logits: Sequence[Tensor], reduction: Reduction = "mean") -> tuple[Tensor, list[Tensor]]:
    """``sum_k mean (1 - D_k(y_hat))^2`` (/K for ``"mean"``); HiFi-GAN uses ``"sum"``."""
    return _combine([((1 - f.float()) ** 2).mean() for f in fake_logits], reduction)


def feature_matching_loss(real_feats: Sequence[Sequence[Tensor]], fake_feats: Sequence[Sequence[Tensor]],
                          reduction: Reduction = "mean") -> tuple[Tensor, list[Tensor]]:
    """L1 between real (detached) and fake feature maps of every layer of every sub-discriminator.

    ``"mean"``: ``sum_k sum_l mean|r - f| / (number of layers over all k)`` (audiocraft). ``"sum"``: no division
    (HiFi-GAN without its built-in factor 2; use weight 2).
    """
    terms, n_layers = [], 0
    for rf, ff in zip(real_feats, fake_feats):
        term = torch.zeros((), device=ff[0].device) if ff else torch.zeros(())
        for r, f in zip(rf, ff):
            term = term + (r.detach().float() - f.float()).abs().mean()
            n_layers += 1
        terms.append(term)
    return _combine(terms, reduction, count=max(n_layers, 1))


LossPair = tuple[Callable[..., tuple[Tensor, list[Tensor]]], Callable[..., tuple[Tensor, list[Tensor]]]]
ADVERSARIAL_LOSSES: dict[str, LossPair] = {
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    "lsgan": (lsgan_discriminator_loss, lsgan_generator_loss),
}
"""``name -> (discriminator_loss, generator_loss)`` for ``adversarial.loss``."""


def adversarial_losses(name: str) -> LossPair:
    """The (discriminator, generator) loss pair for ``hinge`` or ``lsgan``; a clear error otherwise."""
    if name not in ADVERSARIAL_LOSSES:
        raise ValueError(f"adversarial.loss must be one of {sorted(ADVERSARIAL_LOSSES)}, got {name!r}")
    return ADVERSARIAL_LOSSES[name]
