"""Multi-scale complex-STFT discriminator (EnCodec / audiocraft MS-STFTD) and its hinge + feature-matching losses.

Per scale: complex STFT (Hann, hop ``n_fft/4``, ``normalized=True``) as real/imag channels ``[B, 2, T, F]``,
Conv2d (3, 9) -> three Conv2d (3, 9) with time dilations 1, 2, 4 and frequency stride 2 -> Conv2d (3, 3) ->
Conv2d (3, 3) to one logit map. Weight norm, LeakyReLU 0.2 (encodec). Filters 32 (audiocraft default).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


class STFTDiscriminator(nn.Module):
    def __init__(self, n_fft: int, filters: int = 32, dilations: Sequence[int] = (1, 2, 4), negative_slope: float = 0.2):
        super().__init__()
        self.n_fft = int(n_fft)
        self.hop = self.n_fft // 4
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        convs = [weight_norm(nn.Conv2d(2, filters, (3, 9), padding=(1, 4)))]
        for d in dilations:
            convs.append(weight_norm(nn.Conv2d(filters, filters, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4))))
        convs.append(weight_norm(nn.Conv2d(filters, filters, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(filters, 1, (3, 3), padding=(1, 1)))
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``x [B, T]`` -> (logits ``[B, 1, frames, bins']``, feature maps)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = torch.stft(x.float(), self.n_fft, self.hop, window=self.window, normalized=True, center=True,
                              return_complex=True)
        z = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, frames, bins]
        feats = []
        for conv in self.convs:
            z = self.act(conv(z))
            feats.append(z)
        return self.post(z), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    """Audiocraft default scales n_fft [1024, 2048, 512, 256, 128]."""

    def __init__(self, n_ffts: Sequence[int] = (1024, 2048, 512, 256, 128), filters: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, filters) for n in n_ffts)

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        x = x.reshape(-1, x.shape[-1])
        logits, feats = [], []
        for d in self.discriminators:
            lg, ft = d(x)
            logits.append(lg)
            feats.append(ft)
        return logits, feats


def discriminator_hinge_loss(real_logits: list[Tensor], fake_logits: list[Tensor]) -> Tensor:
    """``mean_k [relu(1 - D_k(x)) + relu(1 + D_k(x_hat))]`` averaged over sub-discriminators."""
    total = sum(torch.relu(1 - r).mean() + torch.relu(1 + f).mean() for r, f in zip(real_logits, fake_logits))
    return total / len(real_logits)


def generator_adversarial_loss(fake_logits: list[Tensor]) -> Tensor:
    """Hinge generator loss as in audiocraft: ``-mean D_k(x_hat)``, averaged over sub-discriminators."""
    return sum(-f.mean() for f in fake_logits) / len(fake_logits)


def feature_matching_loss(real_feats: list[list[Tensor]], fake_feats: list[list[Tensor]]) -> Tensor:
    """L1 between real (detached) and fake feature maps, averaged over layers and sub-discriminators."""
    total, n = 0.0, 0
    for rf, ff in zip(real_feats, fake_feats):
        for r, f in zip(rf, ff):
            total = total + (r.detach() - f).abs().mean()
            n += 1
    return total / max(n, 1)
