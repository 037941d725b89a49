"""HiFi-GAN generator (jik876/hifi-gan V1 layout) for 128-mel, hop-512, 44.1 kHz kicks.

``conv_pre`` Conv1d(n_mels -> C, k7) -> 5 stages [LeakyReLU(0.1) -> ConvTranspose1d(C/2^i -> C/2^(i+1), k_i,
stride u_i, padding (k_i - u_i) / 2) -> MRF = mean of 3 ResBlock1 (kernels 3, 7, 11; dilations 1, 3, 5)] ->
LeakyReLU(**0.01**, the reference's default-slope quirk) -> Conv1d(C/32 -> 1, k7) -> tanh.
Upsampling 8 * 8 * 2 * 2 * 2 = 512 = the hop: ``F`` frames -> ``512 F`` samples (173 -> 88,576, trimmed to 88,200
by the caller). Weight norm on every conv (``remove_weight_norm`` before CPU inference), init N(0, 0.01).
Widths: C = 512 (V1), 256 (the kick seed's default), 128.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["HiFiGANGenerator", "LRELU_SLOPE"]

LRELU_SLOPE = 0.1


def _init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
        m.weight.data.normal_(0.0, 0.01)


def _pad(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """3 x [lrelu -> dilated conv(d) -> lrelu -> conv(d=1)] + residual, dilations (1, 3, 5)."""

    def __init__(self, ch: int, kernel: int, dilations: Sequence[int] = (1, 3, 5)) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList([weight_norm(nn.Conv1d(ch, ch, kernel, dilation=d, padding=_pad(kernel, d)))
                                     for d in dilations])
        self.convs2 = nn.ModuleList([weight_norm(nn.Conv1d(ch, ch, kernel, padding=_pad(kernel)))
                                     for _ in dilations])
        self.apply(_init)

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class HiFiGANGenerator(nn.Module):
    """``forward(mel [B, n_mels, F]) -> audio [B, F * prod(upsample_rates)]`` in [-1, 1]."""

    def __init__(self, n_mels: int = 128, initial_channels: int = 256, upsample_rates: Sequence[int] = (8, 8, 2, 2, 2),
                 upsample_kernel_sizes: Sequence[int] = (16, 16, 4, 4, 4),
                 resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
                 resblock_dilations: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))) -> None:
        super().__init__()
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError(f"upsample_rates {list(upsample_rates)} and upsample_kernel_sizes "
                             f"{list(upsample_kernel_sizes)} must have the same length")
        self.n_mels = int(n_mels)
        self.hop = int(torch.prod(torch.tensor(list(upsample_rates))))
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = weight_norm(nn.Conv1d(n_mels, initial_channels, 7, padding=3))
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = initial_channels
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            out = initial_channels // (2 ** (i + 1))
            if out < 1:
                raise ValueError(f"initial_channels={initial_channels} is too small for {len(upsample_rates)} stages")
            self.ups.append(weight_norm(nn.ConvTranspose1d(ch, out, k, u, padding=(k - u) // 2)))
            for rk, rd in zip(resblock_kernel_sizes, resblock_dilations):
                self.resblocks.append(ResBlock1(out, rk, rd))
            ch = out
        self.conv_post = weight_norm(nn.Conv1d(ch, 1, 7, padding=3))
        self.ups.apply(_init)
        self.conv_post.apply(_init)

    def forward(self, mel: Tensor) -> Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"vocoder input must be a log-mel [B, {self.n_mels}, frames], got {tuple(mel.shape)}")
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            xs = None
            for j in range(self.num_kernels):
                r = self.resblocks[i * self.num_kernels + j](x)
                xs = r if xs is None else xs + r
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01, as in the reference implementation
        return torch.tanh(x).squeeze(1)

    def remove_weight_norm(self) -> HiFiGANGenerator:
        """Bake the weight-norm parametrizations into plain weights (faster inference; not trainable after)."""
        for m in self.modules():
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        return self
