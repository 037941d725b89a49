"""Waveform discriminators: MS-STFT (EnCodec / audiocraft), MPD and MSD (HiFi-GAN).

Every discriminator here takes audio ``[B, T]`` or ``[B, C, T]`` (channels are folded into the batch) and returns
``(logits, feature_maps)``: one logit tensor per sub-discriminator and, per sub-discriminator, the list of its
layer activations (used by feature matching). ``names`` labels the sub-discriminators for logging.

* :class:`MultiScaleSTFTDiscriminator` (EnCodec / audiocraft MS-STFTD). Per scale: complex STFT (Hann, hop
  ``n_fft/4``, ``normalized=True``) as real/imag channels ``[B, 2, frames, bins]``, Conv2d (3, 9) -> three Conv2d
  (3, 9) with time dilations 1, 2, 4 and frequency stride 2 -> Conv2d (3, 3) -> Conv2d (3, 3) to one logit map.
  Weight norm, LeakyReLU 0.2 (encodec; audiocraft uses 0.3), filters 32 (audiocraft default). Its feature maps are
  the activations *before* the output conv (the logits are not a feature map), as in audiocraft.
* :class:`MultiPeriodDiscriminator` (HiFi-GAN MPD, periods 2, 3, 5, 7, 11): the waveform is reflect-padded at the
  end to a multiple of the period ``p`` and folded to ``[B, 1, T/p, p]``; Conv2d 1 -> 32 -> 128 -> 512 -> 1024
  (kernel (5, 1), stride (3, 1), padding (2, 0)), Conv2d 1024 -> 1024 (5, 1) stride 1, output Conv2d 1024 -> 1
  (3, 1). Weight norm, LeakyReLU 0.1. 8,221,154 parameters per period, 41,105,770 for the five.
* :class:`MultiScaleDiscriminator` (HiFi-GAN MSD, from MelGAN): three :class:`ScaleDiscriminator` on the raw
  waveform and on x2 and x4 average-pooled copies (AvgPool1d(4, 2, padding=2) applied in a chain). Conv1d
  1 -> 128 (k15), grouped k41 convs 128 -> 128 -> 256 -> 512 -> 1024 -> 1024 (strides 2, 2, 4, 4, 1; groups
  4, 16, 16, 16, 16), Conv1d 1024 -> 1024 (k5), output Conv1d 1024 -> 1 (k3). The first scale uses spectral
  norm, the others weight norm; LeakyReLU 0.1. 29,618,821 parameters (9,870,209 + 2 x 9,874,306).

For MPD and MSD the feature maps include the output layer (HiFi-GAN's ``fmap.append(x)`` after ``conv_post``), so
HiFi-GAN feature matching over "all layers" is reproduced exactly. Parameter counts match jik876/hifi-gan's
``models.py`` (checked by tests/adversarial/test_discriminators.py). Initialization is PyTorch's default, as there
(``init_weights`` is applied to the generator only).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

DiscriminatorOutput = tuple[list[Tensor], list[list[Tensor]]]
"""``(logits, feature_maps)``: one logit tensor per sub-discriminator; per sub-discriminator its layer outputs."""

HIFIGAN_LRELU_SLOPE = 0.1


def _as_batch_of_mono(x: Tensor) -> Tensor:
    """``[B, T]`` / ``[B, C, T]`` -> ``[B*C, 1, T]``."""
    return x.reshape(-1, 1, x.shape[-1])


def _collect(outputs: Iterable[tuple[Tensor, list[Tensor]]]) -> DiscriminatorOutput:
    """Sub-discriminator ``(logits, feats)`` pairs -> ``(list of logits, list of feature-map lists)``."""
    logits, feats = [], []
    for lg, ft in outputs:
        logits.append(lg)
        feats.append(ft)
    return logits, feats


# --------------------------------------------------------------------------------------------- MS-STFT (EnCodec)
class STFTDiscriminator(nn.Module):
    """One MS-STFTD scale. ``x [B, T]`` -> (logits ``[B, 1, frames, bins']``, 5 feature maps)."""

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
    """MS-STFTD over several FFT sizes; audiocraft default scales n_fft [1024, 2048, 512, 256, 128]."""

    def __init__(self, n_ffts: Sequence[int] = (1024, 2048, 512, 256, 128), filters: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, filters) for n in n_ffts)
        self.names = [f"stft{int(n)}" for n in n_ffts]

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        """``x [B, T]`` or ``[B, C, T]`` (float, any scale) -> (logits, feature maps) per n_fft."""
        x = x.reshape(-1, x.shape[-1])
        return _collect(d(x) for d in self.discriminators)


# --------------------------------------------------------------------------------------------- MPD (HiFi-GAN)
def _hifigan_stack(convs: nn.ModuleList, post: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """conv -> LeakyReLU(0.1) per layer, then the output conv; feature maps include the output (HiFi-GAN)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), HIFIGAN_LRELU_SLOPE)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return torch.flatten(x, 1), feats


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN ``DiscriminatorP``. ``x [B, 1, T]`` -> (logits ``[B, frames·p]`` flattened, 6 feature maps)."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, use_spectral_norm: bool = False):
        super().__init__()
        if int(period) < 1:
            raise ValueError(f"MultiPeriodDiscriminator: periods must be >= 1, got {period}")
        self.period = int(period)
        norm = spectral_norm if use_spectral_norm else weight_norm
        pad = (kernel_size - 1) // 2  # HiFi-GAN: get_padding(5, 1) = 2
        chans = (1, 32, 128, 512, 1024)
        convs = [norm(nn.Conv2d(c_in, c_out, (kernel_size, 1), (stride, 1), padding=(pad, 0)))
                 for c_in, c_out in zip(chans[:-1], chans[1:])]
        convs.append(norm(nn.Conv2d(1024, 1024, (kernel_size, 1), 1, padding=(pad, 0))))
        self.convs = nn.ModuleList(convs)
        self.post = norm(nn.Conv2d(1024, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect")
            t += n_pad
        return _hifigan_stack(self.convs, self.post, x.view(b, c, t // self.period, self.period))


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN MPD: one :class:`PeriodDiscriminator` per period (default 2, 3, 5, 7, 11)."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11)):
        super().__init__()
        if not periods:
            raise ValueError("MultiPeriodDiscriminator: periods must be a non-empty list of ints, e.g. [2, 3, 5, 7, 11]")
        self.discriminators = nn.ModuleList(PeriodDiscriminator(int(p)) for p in periods)
        self.names = [f"p{int(p)}" for p in periods]

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        """``x [B, T]`` or ``[B, C, T]`` -> (logits, feature maps) per period."""
        x = _as_batch_of_mono(x)
        return _collect(d(x) for d in self.discriminators)


# --------------------------------------------------------------------------------------------- MSD (HiFi-GAN)
class ScaleDiscriminator(nn.Module):
    """HiFi-GAN ``DiscriminatorS`` (MelGAN). ``x [B, 1, T]`` -> (logits ``[B, ~T/64]``, 8 feature maps)."""

    def __init__(self, use_spectral_norm: bool = False):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        # (in, out, kernel, stride, groups, padding)
        layers = [(1, 128, 15, 1, 1, 7), (128, 128, 41, 2, 4, 20), (128, 256, 41, 2, 16, 20), (256, 512, 41, 4, 16, 20),
                  (512, 1024, 41, 4, 16, 20), (1024, 1024, 41, 1, 16, 20), (1024, 1024, 5, 1, 1, 2)]
        self.convs = nn.ModuleList(norm(nn.Conv1d(i, o, k, s, groups=g, padding=p)) for i, o, k, s, g, p in layers)
        self.post = norm(nn.Conv1d(1024, 1, 3, 1, padding=1))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        return _hifigan_stack(self.convs, self.post, x)


class MultiScaleDiscriminator(nn.Module):
    """HiFi-GAN MSD: ``n_scales`` :class:`ScaleDiscriminator` on x1, x2, x4 ... average-pooled audio; the first
    uses spectral norm (HiFi-GAN), the others weight norm."""

    def __init__(self, n_scales: int = 3):
        super().__init__()
        if int(n_scales) < 1:
            raise ValueError(f"MultiScaleDiscriminator: n_scales must be >= 1, got {n_scales}")
        self.discriminators = nn.ModuleList(ScaleDiscriminator(use_spectral_norm=i == 0) for i in range(int(n_scales)))
        self.pools = nn.ModuleList(nn.AvgPool1d(4, 2, padding=2) for _ in range(int(n_scales) - 1))
        self.names = [f"s{2**i}" for i in range(int(n_scales))]

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        """``x [B, T]`` or ``[B, C, T]`` -> (logits, feature maps) per scale (x1, x2, x4)."""
        return _collect(self._scales(_as_batch_of_mono(x)))

    def _scales(self, x: Tensor) -> Iterator[tuple[Tensor, list[Tensor]]]:
        for i, d in enumerate(self.discriminators):
            if i:
                x = self.pools[i - 1](x)  # x2, x4, ... average-pooled in a chain
            yield d(x)


# --------------------------------------------------------------------------------------------- combination
class CombinedDiscriminator(nn.Module):
    """Several discriminators trained by one optimizer, seen as one (HiFi-GAN: MPD + MSD).

    ``CombinedDiscriminator({"mpd": MultiPeriodDiscriminator(), "msd": MultiScaleDiscriminator()})`` returns the
    concatenated logits / feature maps, named ``mpd_p2 ... mpd_p11, msd_s1, msd_s2, msd_s4``. Losses summed over
    sub-discriminators then equal HiFi-GAN's ``loss_msd + loss_mpd``.
    """

    def __init__(self, discriminators: Mapping[str, nn.Module]):
        super().__init__()
        if not discriminators:
            raise ValueError("CombinedDiscriminator: give at least one named discriminator, e.g. {'mpd': ..., 'msd': ...}")
        self.parts = nn.ModuleDict(dict(discriminators))
        self.names = [f"{key}_{n}" for key, d in self.parts.items()
                      for n in getattr(d, "names", [str(i) for i in range(len(d.discriminators))])]

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        logits, feats = [], []
        for d in self.parts.values():
            lg, ft = d(x)
            logits += lg
            feats += ft
        return logits, feats


def hifigan_discriminator(periods: Sequence[int] = (2, 3, 5, 7, 11), n_scales: int = 3) -> CombinedDiscriminator:
    """HiFi-GAN's MPD + MSD as one module (one optimizer over both, as in jik876/hifi-gan ``train.py``)."""
    return CombinedDiscriminator({"mpd": MultiPeriodDiscriminator(periods), "msd": MultiScaleDiscriminator(n_scales)})
