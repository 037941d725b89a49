"""Time-varying filtered noise (magenta/ddsp ``synths.FilteredNoise``, with windowed frames)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiolab.dsp.core import autocast_disabled, next_power_of_2

__all__ = ["FilteredNoise", "frequency_impulse_response"]


def frequency_impulse_response(magnitudes: Tensor) -> Tensor:
    """Linear-phase FIR from zero-phase band magnitudes (magenta ``frequency_impulse_response``, window=ir_size).

    Args:
        magnitudes: [..., n_bands] linear magnitudes at ``n_bands`` frequencies evenly spaced from 0 Hz to
            Nyquist (inclusive).

    Returns:
        [..., ir_size] with ``ir_size = 2 * (n_bands - 1)``: ``irfft`` (zero phase, peak at tap 0), rolled so the
        peak is at tap ``ir_size // 2``, times a periodic Hann window of ``ir_size`` (peak 1 at that tap). The
        result is exactly symmetric about tap ``ir_size // 2``, i.e. a pure delay of ``ir_size // 2`` samples.
    """
    n_bands = magnitudes.shape[-1]
    ir_size = 2 * (n_bands - 1)
    ir = torch.fft.irfft(magnitudes, n=ir_size)  # real input = zero phase
    ir = torch.roll(ir, shifts=ir_size // 2, dims=-1)
    # The Hann window trades the brick-wall band edges' long ringing for a short, smooth IR.
    window = torch.hann_window(ir_size, periodic=True, dtype=ir.dtype, device=ir.device)
    return ir * window


class FilteredNoise(nn.Module):
    """White noise shaped by a per-frame zero-phase (linear-phase, delay-compensated) FIR filter.

    Method (my choice among the two the design allows): **windowed overlapping noise segments**. The noise is
    cut into segments of ``2 * hop`` samples centred on each frame position ``i * hop`` (``hop = T / F``),
    each multiplied by a periodic Hann window (50 % overlap, the windows sum to exactly 1), convolved with that
    frame's FIR (batched FFT convolution), and the filtered segments are overlap-added. The FIR's constant
    ``ir_size // 2`` delay is cropped away, so there is **no net delay**. Because the filters cross-fade with
    the same raised-cosine as :func:`upsample_with_windows` instead of switching at frame edges (magenta's
    non-overlapping frames), there is no frame-edge discontinuity; and with a flat filter of gain g_i the output
    is exactly ``noise * upsample_with_windows(g)``. The last frame is held to the end (as the harmonic
    amplitudes are). Noise outside [0, T) is treated as zero.

    magenta differences: magenta uses non-overlapping rectangular frames and crops ``(ir_size-1)//2 - 1`` = 62
    samples for a 128-tap filter whose true delay is 64, leaving a 2-sample lag; here the delay is exactly 0.

    Args:
        n_bands: number of magnitude bands (linear 0..Nyquist); the FIR has ``2 * (n_bands - 1)`` taps.
        window: window applied to both the FIR and the noise segments; only ``"hann"`` is supported.
        initial_bias: documented here, **applied by callers** to raw logits before ``exp_sigmoid``
            (magenta's -5.0 starts the noise at ~2e-5, -94 dB). Stored as an attribute only.
    """

    def __init__(self, n_bands: int = 65, window: str = "hann", initial_bias: float = -5.0):
        super().__init__()
        if n_bands < 2:
            raise ValueError(f"n_bands must be >= 2, got {n_bands}")
        if window != "hann":
            raise ValueError(f"only window='hann' is supported, got {window!r}")
        self.n_bands = n_bands
        self.window = window
        self.initial_bias = initial_bias

    @property
    def ir_size(self) -> int:
        return 2 * (self.n_bands - 1)

    def extra_repr(self) -> str:
        return f"n_bands={self.n_bands}, window={self.window!r}, initial_bias={self.initial_bias}"

    def forward(self, magnitudes: Tensor, n_samples: int, noise: Tensor | None = None) -> Tensor:
        """Render filtered noise.

        Args:
            magnitudes: [B, F, n_bands] linear magnitudes (>= 0) per frame.
            n_samples: T, a multiple of F.
            noise: optional [B, T] excitation; default fresh ``U(-1, 1)`` white noise.

        Returns:
            [B, T] float32.

        Raises:
            ValueError: on shape mismatches or ``n_samples % F != 0``.
        """
        if magnitudes.ndim != 3 or magnitudes.shape[-1] != self.n_bands:
            raise ValueError(f"magnitudes must be [B, F, {self.n_bands}], got {tuple(magnitudes.shape)}")
        batch, n_frames, _ = magnitudes.shape
        if n_samples % n_frames != 0:
            raise ValueError(
                f"FilteredNoise needs n_samples to be a multiple of the number of frames, "
                f"got n_samples={n_samples} and n_frames={n_frames}"
            )
        hop = n_samples // n_frames
        seg = 2 * hop
        ir_size = self.ir_size

        with autocast_disabled(magnitudes.device):
            mags = magnitudes.float()
            if noise is None:
                noise = torch.rand(batch, n_samples, device=mags.device, dtype=mags.dtype) * 2.0 - 1.0
            else:
                if noise.shape != (batch, n_samples):
                    raise ValueError(f"noise must be [B, T] = {(batch, n_samples)}, got {tuple(noise.shape)}")
                noise = noise.to(device=mags.device, dtype=mags.dtype)

            # F+1 frames (last one held) so the windows sum to 1 over all of [0, T).
            mags = torch.cat([mags, mags[:, -1:, :]], dim=1)
            ir = frequency_impulse_response(mags)  # [B, F+1, ir_size]

            # Segment i covers samples [(i-1)*hop, (i+1)*hop): pad one hop each side, unfold, window.
            padded = F.pad(noise, (hop, hop))
            segments = padded.unfold(-1, seg, hop)  # [B, F+1, 2*hop] (a view)
            segments = segments * torch.hann_window(seg, periodic=True, dtype=mags.dtype, device=mags.device)

            # Batched linear convolution of every segment with its own FIR.
            conv_len = seg + ir_size - 1
            n_fft = next_power_of_2(conv_len)
            spec = torch.fft.rfft(segments, n=n_fft) * torch.fft.rfft(ir, n=n_fft)
            filtered = torch.fft.irfft(spec, n=n_fft)[..., :conv_len]  # [B, F+1, conv_len]

            # Overlap-add at hop with fold: output index j <-> sample j - hop - ir_size//2.
            out_len = n_frames * hop + conv_len
            ola = F.fold(
                filtered.transpose(1, 2),  # [B, conv_len, F+1]
                output_size=(1, out_len),
                kernel_size=(1, conv_len),
                stride=(1, hop),
            ).view(batch, out_len)
            start = hop + ir_size // 2  # drop the padding hop and the FIR's linear-phase delay
            return ola[:, start : start + n_samples]
