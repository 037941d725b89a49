"""Learnable FIR reverb (magenta/ddsp ``effects.Reverb``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audiolab.dsp.core import autocast_disabled, fft_convolve

__all__ = ["Reverb", "fft_convolve"]


class Reverb(nn.Module):
    """Convolution reverb with a free impulse response.

    ``wet = audio * ir_masked`` (causal linear convolution, same length as the input, no delay compensation:
    a room response starts at the direct sound), ``out = wet + audio`` when ``add_dry``.
    The first tap is forced to 0 because the dry path is added separately; otherwise tap 0 and the dry gain
    would be redundant and the model could learn to cancel the dry signal.

    Args:
        length: IR length in samples (48000 = 3 s at 16 kHz, magenta's solo_instrument setting).
        trainable: IR is an ``nn.Parameter``; otherwise a (saved) buffer that is not optimized.
        add_dry: add the input to the wet signal.
        init_std: the IR starts as ``N(0, init_std)`` (near silent, as in magenta's 1e-6).
    """

    def __init__(self, length: int = 48000, trainable: bool = True, add_dry: bool = True, init_std: float = 1e-6):
        super().__init__()
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.length = length
        self.trainable = trainable
        self.add_dry = add_dry
        ir = torch.randn(length) * init_std
        if trainable:
            self.ir = nn.Parameter(ir)
        else:
            self.register_buffer("ir", ir)
        mask = torch.ones(length)
        mask[0] = 0.0
        self.register_buffer("dry_mask", mask, persistent=False)

    def extra_repr(self) -> str:
        return f"length={self.length}, trainable={self.trainable}, add_dry={self.add_dry}"

    def impulse_response(self) -> Tensor:
        """The IR actually applied, [length] float32, with tap 0 = 0."""
        return self.ir.float() * self.dry_mask

    def forward(self, audio: Tensor) -> Tensor:
        """audio [B, T] -> [B, T] float32 (autocast disabled; FFT size next pow2 >= T + length - 1)."""
        if audio.ndim != 2:
            raise ValueError(f"audio must be [B, T], got {tuple(audio.shape)}")
        with autocast_disabled(audio.device):
            x = audio.float()
            wet = fft_convolve(x, self.impulse_response().unsqueeze(0), mode="causal")
            return wet + x if self.add_dry else wet
