"""Mel VAE: log-mel ``[B, 1, 128, 173]`` <-> latent ``[B, 4, 8, 11]`` (352 floats, ~63x fewer than the mel).

Encoder: four stages of (Conv2d 3x3 stride 2 -> ResBlock), channels 32 -> 64 -> 128 -> 256, so
128 x 173 -> 64 x 87 -> 32 x 44 -> 16 x 22 -> 8 x 11 (``ceil(n / 2)`` per stage), then 1x1 convs to the mean and
log-variance. Decoder: 1x1 conv -> ResBlock, then four stages of (ConvTranspose2d 4x4 stride 2 -> ResBlock) back to
128 x 176, cropped to the input's 173 frames. ResBlocks: GroupNorm -> SiLU -> conv, twice, plus the input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["KickVAE", "ResBlock2d", "group_norm"]


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``max_groups`` that divides ``channels`` and leaves >= 4
    channels per group (at least 1 group)."""
    g = max([d for d in range(1, max_groups + 1) if channels % d == 0 and channels // d >= 4] or [1])
    return nn.GroupNorm(g, channels)


class ResBlock2d(nn.Module):
    """``x + conv(SiLU(GN(conv(SiLU(GN(x))))))``; a 1x1 conv on the skip when the channel count changes."""

    def __init__(self, in_ch: int, out_ch: int | None = None) -> None:
        super().__init__()
        out_ch = out_ch or in_ch
        self.block = nn.Sequential(group_norm(in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1),
                                   group_norm(out_ch), nn.SiLU(), nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.block(x)


class KickVAE(nn.Module):
    """Convolutional VAE over log-mels (see module docstring).

    Args:
        n_mels / n_frames: input size (128 x 173).
        channels: per down stage (the number of stages; each halves both axes, rounding up).
        latent_channels: channels of the latent (4).
        log_floor: value the log-mel takes in silence (``log(1e-5)``); the decoder predicts ``mel - log_floor``
            so an all-zero output is silence (a better start than 0 = ``mel`` of 1.0).
    """

    def __init__(self, n_mels: int = 128, n_frames: int = 173, channels: Sequence[int] = (32, 64, 128, 256),
                 latent_channels: int = 4, log_floor: float = math.log(1e-5)) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("vae.channels must list at least one stage")
        self.n_mels, self.n_frames = int(n_mels), int(n_frames)
        self.channels = channels
        self.latent_channels = int(latent_channels)
        self.log_floor = float(log_floor)
        enc: list[nn.Module] = []
        prev = 1
        for c in channels:
            enc += [nn.Conv2d(prev, c, 3, stride=2, padding=1), ResBlock2d(c)]
            prev = c
        self.encoder = nn.Sequential(*enc, group_norm(prev), nn.SiLU())
        self.to_mu = nn.Conv2d(prev, self.latent_channels, 1)
        self.to_logvar = nn.Conv2d(prev, self.latent_channels, 1)
        dec: list[nn.Module] = [nn.Conv2d(self.latent_channels, prev, 1), ResBlock2d(prev)]
        for c in [*reversed(channels[:-1]), channels[0] // 2 or 1]:
            dec += [nn.ConvTranspose2d(prev, c, 4, stride=2, padding=1), ResBlock2d(c) if c >= 16 else nn.SiLU()]
            prev = c
        self.decoder = nn.Sequential(*dec, group_norm(prev), nn.SiLU(), nn.Conv2d(prev, 1, 3, padding=1))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the latent for the configured input size, e.g. ``(4, 8, 11)``."""
        h, w = self.n_mels, self.n_frames
        for _ in self.channels:
            h, w = (h + 1) // 2, (w + 1) // 2
        return self.latent_channels, h, w

    def encode(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``mel`` ``[B, 1, n_mels, n_frames]`` -> ``(mu, logvar)`` each ``[B, C, h, w]``."""
        if mel.dim() != 4 or tuple(mel.shape[1:]) != (1, self.n_mels, self.n_frames):
            raise ValueError(f"VAE input must be [B, 1, {self.n_mels}, {self.n_frames}], got {tuple(mel.shape)}")
        h = self.encoder(mel - self.log_floor)
        return self.to_mu(h), self.to_logvar(h).clamp(-30.0, 20.0)

    def decode(self, z: Tensor) -> Tensor:
        """``z`` ``[B, C, h, w]`` -> log-mel ``[B, 1, n_mels, n_frames]`` (cropped from the decoder's even size)."""
        if tuple(z.shape[1:]) != self.latent_shape:
            raise ValueError(f"VAE latent must be [B, {', '.join(map(str, self.latent_shape))}], got {tuple(z.shape)}")
        out = self.decoder(z)
        return out[:, :, : self.n_mels, : self.n_frames] + self.log_floor

    def forward(self, mel: Tensor, sample: bool = True) -> dict[str, Tensor]:
        """Reconstruct: ``{"recon", "mu", "logvar", "z"}`` (``z`` drawn with the reparameterisation when
        ``sample``, else ``mu``)."""
        mu, logvar = self.encode(mel)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return {"recon": self.decode(z), "mu": mu, "logvar": logvar, "z": z}

    @staticmethod
    def kl(mu: Tensor, logvar: Tensor) -> Tensor:
        """KL(N(mu, sigma) || N(0, 1)) per latent element, averaged over batch and elements (scalar)."""
        return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).mean()
