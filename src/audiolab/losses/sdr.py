"""Scale-invariant SDR (= SI-SNR with zero-mean signals): the one SI-SDR of the project, differentiable.

:func:`si_sdr` is the training objective of separation / extraction models (``neg_si_sdr_loss``) and the value
behind the metric :func:`audiolab.metrics.waveform.si_snr_db` (which calls it without gradients). Definition
(Le Roux et al. 2019, "SDR — half-baked or well done?"), with the epsilons of
``torchmetrics.functional.audio.scale_invariant_signal_distortion_ratio(zero_mean=True)``::

    p, t  = pred - mean(pred), target - mean(target)          # per item, over time
    alpha = (<p, t> + eps) / (||t||^2 + eps)
    s     = alpha * t                                          # the part of p explained by t
    e     = s - p                                              # everything else
    SI-SDR = 10 log10((||s||^2 + eps) / (||e||^2 + eps))   dB

Precision: computed with autocast disabled in float32, or float64 for float64 inputs (bf16/fp16 inputs are
upcast: their sums of squares overflow or lose the digits the log ratio needs). No square root and ``eps`` in
every ratio, so the value and its gradient stay finite for an all-zero prediction or target (silence).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["EPS", "si_sdr", "neg_si_sdr_loss"]

#: Additive epsilon of the ratios; the value torchmetrics uses for float32 inputs.
EPS: float = float(torch.finfo(torch.float32).eps)


def si_sdr(pred: Tensor, target: Tensor, eps: float = EPS) -> Tensor:
    """Zero-mean scale-invariant SDR in dB per item, differentiable.

    Args:
        pred, target: ``[..., T]`` samples of the same shape (e.g. ``[B, T]`` or ``[B, 1, T]``).
        eps: added to the numerator and denominator of both ratios.

    Returns:
        ``[...]`` dB (``[B]`` for ``[B, T]``; ``[B, 1]`` for ``[B, 1, T]``), float32 (float64 for float64 inputs).
        A pure gain error gives a very large value; identical silence gives 0 dB.
    """
    if pred.shape != target.shape:
        raise ValueError(f"si_sdr: pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    dtype = torch.float64 if torch.float64 in (pred.dtype, target.dtype) else torch.float32
    with torch.autocast(device_type=pred.device.type, enabled=False):
        p, t = pred.to(dtype), target.to(dtype)
        p = p - p.mean(-1, keepdim=True)
        t = t - t.mean(-1, keepdim=True)
        alpha = ((p * t).sum(-1, keepdim=True) + eps) / (t.square().sum(-1, keepdim=True) + eps)
        s = alpha * t
        e = s - p
        return 10.0 * torch.log10((s.square().sum(-1) + eps) / (e.square().sum(-1) + eps))


def neg_si_sdr_loss(pred: Tensor, target: Tensor, eps: float = EPS) -> Tensor:
    """``-mean(si_sdr(pred, target))``: a scalar loss in dB to minimise (``[..., T]`` inputs as :func:`si_sdr`)."""
    return -si_sdr(pred, target, eps).mean()
