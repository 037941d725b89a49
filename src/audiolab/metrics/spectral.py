"""Spectral distances between two waveforms (validation logging and ``evaluate``): DAC's "mel distance" and
"STFT distance".

Conventions as in :mod:`audiolab.metrics.waveform`: ``pred`` / ``target`` ``[B, T]`` or ``[B, 1, T]`` of equal
length; computed in float32 with autocast off whatever the input dtype; per-item ``[B]`` float32 results; no
gradients. Definitions: DAC ``MelSpectrogramLoss`` / ``MultiScaleSTFTLoss`` with their class defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from audiolab.metrics._inputs import _pair

__all__ = ["mel_distance", "stft_distance"]


def _stft_mag(x: Tensor, n_fft: int) -> Tensor:
    """DAC/audiotools STFT magnitude: periodic Hann, hop n_fft/4, centred with reflect padding.

    Signals too short for reflect padding (``T <= n_fft // 2``) fall back to zero padding instead of raising.
    Returns float32 ``[B, n_fft // 2 + 1, frames]``.
    """
    from audiolab.audio.features import stft_magnitude

    pad_mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
    return stft_magnitude(x.float(), n_fft, n_fft // 4, center=True, pad_mode=pad_mode, power=1.0)


def _mel_mag(x: Tensor, sample_rate: int, n_fft: int, n_mels: int) -> Tensor:
    """Mel of the STFT *magnitude* (librosa/slaney filters, 0 .. sr/2), as audiotools ``mel_spectrogram``."""
    from audiolab.audio.features import mel_spectrogram

    pad_mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
    return mel_spectrogram(
        x.float(), int(sample_rate), n_fft, n_fft // 4, int(n_mels), power=1.0, norm="slaney",
        mel_scale="slaney", center=True, pad_mode=pad_mode,
    )


def _dac_distance(
    px: Tensor, tx: Tensor, clamp_eps: float, pow_: float, log_weight: float, mag_weight: float
) -> Tensor:
    """Per-item ``log_weight * L1(log10(clamp(P)^pow), log10(clamp(T)^pow)) + mag_weight * L1(P, T)``."""
    dims = tuple(range(1, px.dim()))
    log_p = px.clamp(min=clamp_eps).pow(pow_).log10()
    log_t = tx.clamp(min=clamp_eps).pow(pow_).log10()
    return log_weight * (log_p - log_t).abs().mean(dims) + mag_weight * (px - tx).abs().mean(dims)


@torch.no_grad()
def mel_distance(
    pred: Tensor,
    target: Tensor,
    sample_rate: int,
    *,
    window_lengths: Sequence[int] = (2048, 512),
    n_mels: Sequence[int] = (150, 80),
    clamp_eps: float = 1e-5,
    log_weight: float = 1.0,
    mag_weight: float = 1.0,
    pow: float = 2.0,
) -> Tensor:
    """DAC "mel distance": the value of ``dac.nn.loss.MelSpectrogramLoss`` with its class defaults.

    For each scale ``(w, m)`` in ``zip(window_lengths, n_mels)``: STFT magnitude with a periodic Hann window of
    ``w`` samples, hop ``w // 4``, centred reflect padding; ``M = |X| @ mel`` with ``m`` slaney-normalised
    librosa/slaney mel filters from 0 Hz to ``sample_rate / 2`` (the filters follow ``sample_rate``; the
    window and band counts stay DAC's, defined at 44.1 kHz). Then::

        d = sum_scales  log_weight * mean|log10(clamp(M_p, 1e-5)^2) - log10(clamp(M_t, 1e-5)^2)|
                      + mag_weight * mean|M_p - M_t|

    with means over (mel bands, frames) of each item (DAC's ``L1Loss`` averages over the batch too, which
    equals the batch mean of these values for equal-length items). DAC's *training* config uses a 7-scale
    variant with ``mag_weight 0``; the evaluation number (and this default) is the 2-scale one above. Lower is
    better; 0 for identical inputs. Signals shorter than ``w // 2 + 1`` samples use zero instead of reflect
    padding.

    Args:
        pred, target: ``[B, T]`` or ``[B, 1, T]`` samples at ``sample_rate`` Hz.
        sample_rate: Hz.

    Returns:
        float32 ``[B]`` (dimensionless, sum over scales).
    """
    if len(window_lengths) != len(n_mels):
        raise ValueError(f"window_lengths {window_lengths} and n_mels {n_mels} must have the same length")
    p, t = _pair(pred, target)
    total = torch.zeros(p.shape[0], device=p.device, dtype=torch.float32)
    with torch.autocast(device_type=p.device.type, enabled=False):
        for w, m in zip(window_lengths, n_mels):
            mp = _mel_mag(p, sample_rate, int(w), int(m))
            mt = _mel_mag(t, sample_rate, int(w), int(m))
            total = total + _dac_distance(mp, mt, clamp_eps, pow, log_weight, mag_weight)
    return total


@torch.no_grad()
def stft_distance(
    pred: Tensor,
    target: Tensor,
    *,
    window_lengths: Sequence[int] = (2048, 512),
    clamp_eps: float = 1e-5,
    log_weight: float = 1.0,
    mag_weight: float = 1.0,
    pow: float = 2.0,
) -> Tensor:
    """DAC "STFT distance": ``dac.nn.loss.MultiScaleSTFTLoss`` with its class defaults.

    For each window ``w``: periodic Hann STFT magnitude ``|X|`` (hop ``w // 4``, centred reflect padding)::

        d = sum_scales  log_weight * mean|log10(clamp(|X_p|, 1e-5)^2) - log10(clamp(|X_t|, 1e-5)^2)|
                      + mag_weight * mean|(|X_p| - |X_t|)|

    means over (frequency bins, frames) per item. 0 for identical inputs.

    Args:
        pred, target: ``[B, T]`` or ``[B, 1, T]`` samples.

    Returns:
        float32 ``[B]`` (dimensionless, sum over scales).
    """
    p, t = _pair(pred, target)
    total = torch.zeros(p.shape[0], device=p.device, dtype=torch.float32)
    with torch.autocast(device_type=p.device.type, enabled=False):
        for w in window_lengths:
            total = total + _dac_distance(
                _stft_mag(p, int(w)), _stft_mag(t, int(w)), clamp_eps, pow, log_weight, mag_weight
            )
    return total
