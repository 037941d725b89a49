"""Input handling shared by the metric modules: shapes ``[T] / [B, T] / [B, 1, T] -> [B, T]`` and the wide
accumulation dtype (float64; float32 on MPS, which has no float64)."""

from __future__ import annotations

import torch
from torch import Tensor

from audiolab.losses.sdr import EPS  # additive epsilon of the SNR ratios (torchmetrics' float32 value)

__all__ = ["EPS"]


def _as_bt(x: Tensor, name: str = "audio") -> Tensor:
    """``[T]`` -> ``[1, T]``; ``[B, T]`` unchanged; ``[B, 1, T]`` -> ``[B, T]``; anything else raises."""
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x)
    if x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"{name} must be mono [B, 1, T], got shape {tuple(x.shape)}")
        return x[:, 0]
    if x.dim() == 2:
        return x
    if x.dim() == 1:
        return x.unsqueeze(0)
    raise ValueError(f"{name} must be [B, T] or [B, 1, T], got shape {tuple(x.shape)}")


def _acc_dtype(device: torch.device) -> torch.dtype:
    """float64 for accumulation except on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _wide(x: Tensor, name: str = "audio") -> Tensor:
    """``[B, T]`` view of ``x`` in the accumulation dtype."""
    x = _as_bt(x, name)
    return x.to(_acc_dtype(x.device))


def _pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Both as ``[B, T]`` in the accumulation dtype; shapes must match."""
    p, t = _wide(pred, "pred"), _wide(target, "target")
    if p.shape != t.shape:
        raise ValueError(
            f"pred {tuple(p.shape)} and target {tuple(t.shape)} must have the same [B, T] shape "
            "(trim the decoder output to the target length first)"
        )
    return p, t


def _out(x: Tensor) -> Tensor:
    return x.to(torch.float32)
