"""Band-limited additive harmonic synthesizer (magenta/ddsp ``synths.Harmonic`` semantics)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audiolab.dsp.core import (
    TWO_PI,
    angular_cumsum,
    autocast_disabled,
    harmonic_numbers,
    normalize_harmonics,
    safe_divide,
    upsample_linear,
    upsample_with_windows,
)

__all__ = ["HarmonicSynth"]

_AMP_UPSAMPLE = ("window", "linear")


def _frames_2d(x: Tensor, name: str) -> Tensor:
    """Accept [B, F] or [B, F, 1] (decoder heads often keep a trailing channel)."""
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 2:
        raise ValueError(f"{name} must be [B, F] (or [B, F, 1]), got {tuple(x.shape)}")
    return x


class HarmonicSynth(nn.Module):
    """Sum of K harmonic sinusoids of a time-varying f0, band-limited below Nyquist.

    ``out(t) = sum_k A_k(t) * sin(k * phi(t))``, ``phi(t) = 2*pi * sum_{s<=t} f0(s) / sr`` (mod 2*pi).

    Steps (magenta ``Harmonic.get_controls`` + ``harmonic_synthesis``):
      1. At frame rate, zero harmonics with ``k * f0 >= sr/2`` (if ``normalize_below_nyquist``) and normalize
         the distribution to sum to 1 (always, as magenta does; an all-zero frame stays zero).
      2. ``A_k = amplitude * distribution_k``; upsample with the Hann-OLA ``"window"`` method (or ``"linear"``),
         f0 linearly.
      3. Remove harmonics above Nyquist again per sample: interpolated f0 can cross the limit between frames.
      4. Phase of f0 accumulated in float64 and wrapped (accurate for hours of audio), then multiplied by k.
         magenta cumsums each harmonic's own frequency; ``k * phi`` is the same signal up to rounding and
         costs one [B, T] cumsum instead of a [B, T, K] one.

    Everything runs in fp32 with autocast disabled, so a bf16-autocast training step still gets fp32 audio.
    There are no parameters.

    Args:
        sample_rate: Hz.
        normalize_below_nyquist: frame-rate Nyquist removal before normalizing (magenta default True).
        amp_upsample: ``"window"`` (magenta default) or ``"linear"``.
    """

    def __init__(self, sample_rate: int = 16000, normalize_below_nyquist: bool = True, amp_upsample: str = "window"):
        super().__init__()
        if amp_upsample not in _AMP_UPSAMPLE:
            raise ValueError(f"amp_upsample must be one of {_AMP_UPSAMPLE}, got {amp_upsample!r}")
        self.sample_rate = sample_rate
        self.normalize_below_nyquist = normalize_below_nyquist
        self.amp_upsample = amp_upsample

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, normalize_below_nyquist={self.normalize_below_nyquist}, amp_upsample={self.amp_upsample!r}"

    def forward(self, f0_hz: Tensor, amplitude: Tensor, harmonic_distribution: Tensor, n_samples: int) -> Tensor:
        """Render audio.

        Args:
            f0_hz: [B, F] fundamental in Hz ([B, F, 1] accepted).
            amplitude: [B, F] overall linear amplitude, >= 0 (e.g. ``exp_sigmoid`` output; [B, F, 1] accepted).
            harmonic_distribution: [B, F, K] non-negative, unnormalized harmonic weights.
            n_samples: T; a multiple of F for ``amp_upsample="window"``.

        Returns:
            audio [B, T] float32.
        """
        f0_hz = _frames_2d(f0_hz, "f0_hz")
        amplitude = _frames_2d(amplitude, "amplitude")
        if harmonic_distribution.ndim != 3 or harmonic_distribution.shape[:2] != f0_hz.shape:
            raise ValueError(
                f"harmonic_distribution must be [B, F, K] matching f0 {tuple(f0_hz.shape)}, got {tuple(harmonic_distribution.shape)}"
            )
        if amplitude.shape != f0_hz.shape:
            raise ValueError(f"amplitude {tuple(amplitude.shape)} must match f0 {tuple(f0_hz.shape)}")

        with autocast_disabled(f0_hz.device):
            f0 = f0_hz.float()
            dist = harmonic_distribution.float()
            sr = float(self.sample_rate)

            # 1-2. frame-rate controls -> per-harmonic amplitudes [B, F, K]
            if self.normalize_below_nyquist:
                dist = normalize_harmonics(dist, f0, sr)
            else:
                dist = safe_divide(dist, dist.sum(dim=-1, keepdim=True))
            harm_amps = amplitude.float().unsqueeze(-1) * dist
            if self.amp_upsample == "window":
                amps = upsample_with_windows(harm_amps, n_samples)
            else:
                amps = upsample_linear(harm_amps, n_samples)
            # Work in [B, K, T]: upsample_with_windows' result is a view of a contiguous [B, K, T] tensor, and
            # time-last keeps every [B, K, T] op below contiguous (no hidden copies / strided kernels).
            amps = amps.transpose(1, 2)
            # f0 is interpolated and turned into radians/sample in float64 ([B, T] only, cheap): a float32
            # increment carries a *systematic* ~6e-8 relative error that a float64 cumsum would faithfully
            # integrate into ~0.01 rad of drift after 60 s. (MPS has no float64: float32 there.)
            acc_dtype = torch.float64 if f0.device.type != "mps" else torch.float32
            f0_up = upsample_linear(f0.to(acc_dtype).unsqueeze(-1), n_samples)[..., 0]  # [B, T]

            # 3. per-sample anti-aliasing
            k = harmonic_numbers(dist.shape[-1], device=f0.device).unsqueeze(-1)  # [K, 1]
            above = f0_up.unsqueeze(1) * k.to(acc_dtype) >= sr / 2.0  # [B, K, T] bool
            amps = amps.masked_fill(above, 0.0)

            # 4. accurate phase (wrapped to [0, 2*pi) before going back to float32), then sum of sinusoids
            phase = angular_cumsum(f0_up * (TWO_PI / sr), dim=-1).float()  # [B, T]
            sines = torch.sin(phase.unsqueeze(1) * k)  # [B, K, T]
            return (amps * sines).sum(dim=1)
