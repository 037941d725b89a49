"""Differentiable DSP building blocks shared by the synths (magenta/ddsp ``ddsp/core.py`` semantics).

Conventions: ``B`` batch, ``F`` frames, ``T`` samples, ``C`` channels, ``K`` harmonics.
Frequencies are in Hz, phases in radians, sample rates in Hz. Frame ``i`` of a control signal sits at
sample ``i * hop`` with ``hop = T / F`` (no centre padding), and the last frame is held to the end.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "TWO_PI",
    "angular_cumsum",
    "autocast_disabled",
    "exp_sigmoid",
    "fft_convolve",
    "harmonic_numbers",
    "next_power_of_2",
    "normalize_harmonics",
    "remove_above_nyquist",
    "safe_divide",
    "upsample_linear",
    "upsample_with_windows",
]

TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def autocast_disabled(device: torch.device | str) -> Iterator[None]:
    """Disable autocast for ``device``'s type inside the block.

    The synths and the reverb use ``sin``/FFTs whose bf16/fp16 versions are inaccurate (and half FFTs only
    accept power-of-2 sizes), so they always run in fp32 even when the caller trains under autocast.
    """
    device_type = torch.device(device).type
    try:
        ctx = torch.autocast(device_type=device_type, enabled=False)
    except RuntimeError:  # a device type autocast does not know (e.g. 'meta'): nothing to disable
        ctx = contextlib.nullcontext()
    with ctx:
        yield


def next_power_of_2(n: int) -> int:
    """Smallest power of two ``>= n`` (``n >= 1``)."""
    return 1 << max(int(n) - 1, 0).bit_length()


def harmonic_numbers(n_harmonics: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``[1, 2, ..., K]`` as a float tensor of shape [K]."""
    return torch.arange(1, n_harmonics + 1, device=device, dtype=dtype)


def safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` with a zero denominator replaced by 1 (so 0/0 -> 0, never NaN/inf).

    magenta's ``safe_divide`` substitutes 1e-7 instead; for the non-negative distributions divided here the
    numerator is all zeros whenever the sum is zero, so both give exactly 0.
    """
    return numerator / torch.where(denominator == 0, torch.ones_like(denominator), denominator)


# --------------------------------------------------------------------------------------------------- scaling
def exp_sigmoid(x: Tensor, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7) -> Tensor:
    """``max_value * sigmoid(x) ** ln(exponent) + threshold`` (DDSP's positive-output nonlinearity).

    Output range ``[threshold, max_value + threshold]``; ``f(0) = 0.405``, ``f(-5) = 1.98e-5``. The small
    floor keeps log-magnitudes finite; the ``ln(10)`` power makes the output behave like a gain in dB.
    """
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


# --------------------------------------------------------------------------------------------------- resampling
def _check_frames(frames: Tensor, n_samples: int) -> None:
    if frames.ndim != 3:
        raise ValueError(f"expected frames of shape [B, F, C], got {tuple(frames.shape)}")
    if frames.shape[1] < 1:
        raise ValueError("need at least one frame")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")


def upsample_linear(frames: Tensor, n_samples: int) -> Tensor:
    """Linear interpolation of frame-rate controls to audio rate (magenta ``resample(..., 'linear')``).

    Frame ``i`` sits at sample ``i * hop`` with ``hop = n_samples / F`` (need not be an integer); samples
    after the last frame hold its value (magenta's ``add_endpoint=True``).

    Args:
        frames: [B, F, C] control values.
        n_samples: output length T.

    Returns:
        [B, T, C] in the dtype of ``frames``.
    """
    _check_frames(frames, n_samples)
    n_frames = frames.shape[1]
    # Exact integer arithmetic for the source position t * F / T, so frame i lands exactly on sample i*hop.
    t = torch.arange(n_samples, device=frames.device, dtype=torch.int64)
    num = t * n_frames
    i0 = torch.div(num, n_samples, rounding_mode="floor")
    frac = ((num - i0 * n_samples).to(torch.float64) / n_samples).to(frames.dtype)[None, :, None]
    i1 = torch.clamp(i0 + 1, max=n_frames - 1)  # hold the last frame to the end
    left = frames.index_select(1, i0)
    right = frames.index_select(1, i1)
    return left + (right - left) * frac


def upsample_with_windows(frames: Tensor, n_samples: int) -> Tensor:
    """Hann-window overlap-add upsampling (magenta ``upsample_with_windows``, the amplitude resampler).

    The last frame is appended (hold to the end), each frame is multiplied by a periodic Hann window of
    ``2 * hop`` samples, windows are overlap-added at 50 % (they sum to exactly 1, so constants stay constant)
    and one hop is trimmed from each end. Frame ``i`` peaks at sample ``i * hop``; between two frames the
    output is a raised-cosine cross-fade, which is smoother than linear interpolation (no kinks at frames).

    Implemented as the cross-fade itself: sample ``i * hop + j`` is ``x[i] * w[hop + j] + x[i + 1] * w[j]`` (the
    falling half of frame ``i``'s window plus the rising half of frame ``i + 1``'s), two broadcast multiplies on a
    ``[B, C, F, hop]`` view; the same numbers as a ``conv_transpose1d`` with the window as kernel and stride
    ``hop``, many times faster on CPU (no col2im over thousands of single-channel signals).

    Args:
        frames: [B, F, C] control values.
        n_samples: output length T; must be a multiple of F.

    Returns:
        [B, T, C] in the dtype of ``frames`` (a transposed view of a contiguous [B, C, T] tensor).

    Raises:
        ValueError: if ``n_samples % F != 0``.
    """
    _check_frames(frames, n_samples)
    batch, n_frames, n_channels = frames.shape
    if n_samples % n_frames != 0:
        raise ValueError(
            f"upsample_with_windows needs n_samples to be a multiple of the number of frames, "
            f"got n_samples={n_samples} and n_frames={n_frames}"
        )
    hop = n_samples // n_frames
    x = torch.cat([frames, frames[:, -1:, :]], dim=1).permute(0, 2, 1)  # [B, C, F+1], endpoint held
    window = torch.hann_window(2 * hop, periodic=True, dtype=frames.dtype, device=frames.device)
    rising, falling = window[:hop], window[hop:]
    y = x[..., :-1, None] * falling + x[..., 1:, None] * rising  # [B, C, F, hop]
    return y.reshape(batch, n_channels, n_samples).transpose(1, 2)


# --------------------------------------------------------------------------------------------------- harmonics
def remove_above_nyquist(harmonic_amps: Tensor, f0_hz: Tensor, sample_rate: float) -> Tensor:
    """Zero harmonic amplitudes whose frequency ``k * f0`` is at or above Nyquist (``sample_rate / 2``).

    Args:
        harmonic_amps: [B, *, K] amplitudes (or distribution) of harmonics k = 1..K.
        f0_hz: [B, *] fundamental in Hz, at the same rate as ``harmonic_amps``.
        sample_rate: Hz.

    Returns:
        [B, *, K]; ``torch.where`` (not a multiply) so masked entries get exactly 0 and no gradient.
    """
    k = harmonic_numbers(harmonic_amps.shape[-1], device=harmonic_amps.device, dtype=f0_hz.dtype)
    above = f0_hz.unsqueeze(-1) * k >= sample_rate / 2.0
    return torch.where(above, torch.zeros((), dtype=harmonic_amps.dtype, device=harmonic_amps.device), harmonic_amps)


def normalize_harmonics(harmonic_distribution: Tensor, f0_hz: Tensor, sample_rate: float) -> Tensor:
    """Remove harmonics at/above Nyquist, then normalize the distribution to sum to 1 over K.

    Args:
        harmonic_distribution: [B, F, K] non-negative (unnormalized) weights.
        f0_hz: [B, F] Hz.
        sample_rate: Hz.

    Returns:
        [B, F, K]; a frame whose remaining weights sum to 0 (e.g. f0 above Nyquist) becomes all zeros, not NaN.
    """
    hd = remove_above_nyquist(harmonic_distribution, f0_hz, sample_rate)
    return safe_divide(hd, hd.sum(dim=-1, keepdim=True))


# --------------------------------------------------------------------------------------------------- phase
def _supports_float64(device: torch.device) -> bool:
    return device.type != "mps"  # MPS has no float64; every other backend we target does


def angular_cumsum(
    angular_frequency: Tensor, dim: int = 1, *, method: str = "auto", chunk_size: int = 256
) -> Tensor:
    """Accurate running phase ``cumsum(angular_frequency)`` wrapped to ``[0, 2*pi)``.

    A float32 cumsum over minutes of audio loses the fractional phase (the running sum reaches 1e5-1e6 rad,
    where float32's spacing is ~0.01-0.06 rad, i.e. tens of cents of pitch error). Two accurate methods:

    * ``"float64"``: cumsum in float64, wrap mod 2*pi, cast back (what torchaudio's oscillator bank does).
    * ``"chunked"``: float32 cumsum inside chunks of ``chunk_size`` samples (sums stay below
      ``chunk_size * 2*pi``), plus per-chunk offsets accumulated in float64 (on CPU if the device has no
      float64, e.g. MPS) and wrapped mod 2*pi (the idea of magenta's ``angular_cumsum``).

    ``"auto"`` picks float64 when the device supports it, else chunked. Both are vectorized and differentiable
    (``remainder`` has gradient 1).

    Args:
        angular_frequency: [..., T, ...] radians per sample (``2*pi*f/sr``), any float dtype.
        dim: the time dimension.
        method: ``"auto"``, ``"float64"`` or ``"chunked"``.
        chunk_size: chunk length for ``"chunked"``.

    Returns:
        Same shape and dtype as the input; element t is ``sum_{s<=t} omega[s]`` mod 2*pi (the first sample
        already includes its own increment, as in magenta).
    """
    if method == "auto":
        method = "float64" if _supports_float64(angular_frequency.device) else "chunked"
    if method == "float64":
        phase = torch.cumsum(angular_frequency.to(torch.float64), dim=dim)
        return torch.remainder(phase, TWO_PI).to(angular_frequency.dtype)
    if method != "chunked":
        raise ValueError(f"method must be 'auto', 'float64' or 'chunked', got {method!r}")

    x = angular_frequency.movedim(dim, -1)
    n = x.shape[-1]
    pad = (-n) % chunk_size
    # Wrapping each increment first bounds the in-chunk sum by chunk_size * 2*pi without changing phase mod 2*pi.
    x = torch.remainder(F.pad(x, (0, pad)), TWO_PI)
    x = x.reshape(*x.shape[:-1], -1, chunk_size)  # [..., n_chunks, chunk]
    local = torch.cumsum(x, dim=-1)
    totals = local[..., -1]  # [..., n_chunks] phase advance of each chunk
    acc_device = totals.device if _supports_float64(totals.device) else torch.device("cpu")
    totals64 = totals.to(device=acc_device, dtype=torch.float64)
    # Exclusive cumsum: chunk c starts at the (wrapped) sum of chunks 0..c-1.
    offsets = torch.remainder(torch.cumsum(totals64, dim=-1) - totals64, TWO_PI)
    offsets = offsets.to(device=x.device, dtype=x.dtype)
    phase = torch.remainder(local + offsets.unsqueeze(-1), TWO_PI)
    phase = phase.reshape(*phase.shape[:-2], -1)[..., :n]
    return phase.movedim(-1, dim)


# --------------------------------------------------------------------------------------------------- convolution
def fft_convolve(signal: Tensor, kernel: Tensor, *, mode: str = "causal") -> Tensor:
    """Linear (not circular) convolution of each row of ``signal`` with ``kernel`` via FFT.

    Args:
        signal: [B, T].
        kernel: [B, L], [1, L] (shared) or [L].
        mode: ``"causal"``: first T samples of the full convolution (output at t depends only on inputs <= t,
            no delay compensation; a reverb). ``"same"``: T samples centred on kernel tap ``L // 2`` (removes
            the delay of a linear-phase kernel whose centre tap is ``L // 2``). ``"full"``: all T + L - 1 samples.

    Returns:
        [B, T] (or [B, T + L - 1] for ``"full"``), computed in at least float32 (half inputs are upcast since
        half FFTs are inaccurate and restricted to power-of-2 sizes). FFT size is the next power of 2
        ``>= T + L - 1``.
    """
    if kernel.ndim == 1:
        kernel = kernel.unsqueeze(0)
    if signal.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"expected signal [B, T] and kernel [B or 1, L], got {tuple(signal.shape)} and {tuple(kernel.shape)}")
    if kernel.shape[0] not in (1, signal.shape[0]):
        raise ValueError(f"kernel batch {kernel.shape[0]} must be 1 or match signal batch {signal.shape[0]}")
    dtype = torch.promote_types(torch.promote_types(signal.dtype, kernel.dtype), torch.float32)
    signal, kernel = signal.to(dtype), kernel.to(dtype)
    n, length = signal.shape[-1], kernel.shape[-1]
    n_full = n + length - 1
    n_fft = next_power_of_2(n_full)
    spec = torch.fft.rfft(signal, n=n_fft) * torch.fft.rfft(kernel, n=n_fft)
    full = torch.fft.irfft(spec, n=n_fft)[..., :n_full]
    if mode == "causal":
        return full[..., :n]
    if mode == "same":
        start = length // 2
        return full[..., start : start + n]
    if mode == "full":
        return full
    raise ValueError(f"mode must be 'causal', 'same' or 'full', got {mode!r}")
