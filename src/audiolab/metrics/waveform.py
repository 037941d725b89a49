"""Waveform metrics between a prediction and a reference: SNR, SI-SNR, level and amplitude health (RMS, RMS ratio,
peak, range, clipped fraction, DC offset, silence floor), and :func:`waveform_metrics`, the bundle a module logs
(with the spectral distances of :mod:`audiolab.metrics.spectral`).

Conventions (every waveform function):

* ``pred`` (model output) and ``target`` (reference) are ``[B, T]`` or ``[B, 1, T]`` (a single channel
  is squeezed; a 1-D ``[T]`` is treated as ``B = 1``) and must have the same length: trim the model
  output before calling. Samples are nominally in ``[-1, 1]`` (full scale = 1.0).
* Computation is done in float64 (float32 on MPS) for the time-domain metrics and float32 with autocast
  off for the spectral ones, whatever the input dtype, so bf16/fp16 inputs are safe.
* Functions return per-item tensors ``[B]`` (float32, on the input device) and the caller averages; only
  :func:`waveform_metrics` reduces over the batch. All metrics run under ``torch.no_grad()``.

Definitions: SNR as the users track it (not scale invariant); SI-SNR as
``torchmetrics.functional.audio.scale_invariant_signal_noise_ratio`` (zero-mean), computed by the one SI-SDR
function :func:`audiolab.losses.sdr.si_sdr` (the training loss uses the same function with gradients).
"""

from __future__ import annotations

import torch
from torch import Tensor

from audiolab.losses.sdr import si_sdr
from audiolab.metrics._inputs import EPS, _acc_dtype, _out, _pair, _wide
from audiolab.metrics.spectral import mel_distance, stft_distance

__all__ = [
    "EPS",
    "snr_db",
    "si_snr_db",
    "rms",
    "rms_ratio",
    "peak_abs",
    "value_range",
    "clipped_fraction",
    "dc_offset",
    "silence_floor_db",
    "waveform_metrics",
]


# ----------------------------------------------------------------------------------------------------------
# SNR family
# ----------------------------------------------------------------------------------------------------------
@torch.no_grad()
def snr_db(pred: Tensor, target: Tensor, eps: float = EPS) -> Tensor:
    """Plain (not scale-invariant) SNR in dB: ``10 log10((sum t^2 + eps) / (sum (t - p)^2 + eps))``.

    This is the metric users track: a gain error counts as noise (``pred = 0.5 * target`` gives
    ``10 log10(1 / 0.25) = 6.02`` dB). No mean removal. Equals
    ``torchmetrics.functional.audio.signal_noise_ratio``.

    Args:
        pred, target: ``[B, T]`` or ``[B, 1, T]`` samples.
        eps: added to numerator and denominator (identical signals give a large finite value).

    Returns:
        float32 ``[B]`` in dB.
    """
    p, t = _pair(pred, target)
    num = t.square().sum(-1) + eps
    den = (t - p).square().sum(-1) + eps
    return _out(10.0 * torch.log10(num / den))


@torch.no_grad()
def si_snr_db(pred: Tensor, target: Tensor, eps: float = EPS) -> Tensor:
    """Scale-invariant SNR in dB with zero-mean signals (= SI-SDR with ``zero_mean=True``), no gradients.

    The value of :func:`audiolab.losses.sdr.si_sdr` (the one SI-SDR; train with that function or
    :func:`audiolab.losses.sdr.neg_si_sdr_loss`), computed here in float64:
    ``p, t`` mean-removed; ``s = (<p, t> + eps) / (||t||^2 + eps) * t``; ``e = s - p``;
    ``10 log10((||s||^2 + eps) / (||e||^2 + eps))``. Same formula and eps as
    ``torchmetrics.functional.audio.scale_invariant_signal_noise_ratio``.
    A pure gain error gives a very large value (only ``eps`` in the denominator).

    Args:
        pred, target: ``[B, T]`` or ``[B, 1, T]`` samples.

    Returns:
        float32 ``[B]`` in dB.
    """
    p, t = _pair(pred, target)
    return _out(si_sdr(p, t, eps))


# ----------------------------------------------------------------------------------------------------------
# level / amplitude health
# ----------------------------------------------------------------------------------------------------------
@torch.no_grad()
def rms(x: Tensor) -> Tensor:
    """Root mean square per item, ``sqrt(mean(x^2))``. ``x`` ``[B, T]`` / ``[B, 1, T]`` -> float32 ``[B]``."""
    return _out(_wide(x).square().mean(-1).sqrt())


@torch.no_grad()
def rms_ratio(pred: Tensor, target: Tensor, min_target_rms: float = 1e-5) -> Tensor:
    """Amplitude drift ``rms(pred) / rms(target)`` per item; 1.0 is perfect, 0.5 means 6 dB too quiet.

    Items whose target RMS is below ``min_target_rms`` (default 1e-5 = -100 dBFS, i.e. silent clips) give
    NaN instead of a huge ratio; average with ``nanmean`` (as :func:`waveform_metrics` does).

    Returns:
        float32 ``[B]`` (linear ratio).
    """
    p, t = _pair(pred, target)
    rp, rt = p.square().mean(-1).sqrt(), t.square().mean(-1).sqrt()
    ratio = rp / rt.clamp(min=min_target_rms)
    return _out(torch.where(rt < min_target_rms, torch.full_like(ratio, float("nan")), ratio))


@torch.no_grad()
def peak_abs(x: Tensor) -> Tensor:
    """``max |x|`` per item (``output_peak`` / ``target_peak``). Returns float32 ``[B]``, full scale = 1."""
    return _out(_wide(x).abs().amax(-1))


@torch.no_grad()
def value_range(x: Tensor) -> Tensor:
    """``max(x) - min(x)`` per item (``output_range``). Returns float32 ``[B]``."""
    w = _wide(x)
    return _out(w.amax(-1) - w.amin(-1))


@torch.no_grad()
def clipped_fraction(x: Tensor, threshold: float = 1.0) -> Tensor:
    """Fraction of samples with ``|x| >= threshold`` per item (would clip when written as PCM).

    Returns:
        float32 ``[B]`` in [0, 1].
    """
    return _out((_wide(x).abs() >= threshold).to(_acc_dtype(x.device)).mean(-1))


@torch.no_grad()
def dc_offset(x: Tensor) -> Tensor:
    """Signed mean ``mean(x)`` per item (take ``.abs()`` for ``dc_offset_abs``). Returns float32 ``[B]``."""
    return _out(_wide(x).mean(-1))


def _frames(x: Tensor, frame_length: int, hop_length: int) -> Tensor:
    """``[B, T]`` -> ``[B, N, L]`` frames without padding (one whole-signal frame when ``T < frame_length``)."""
    if x.shape[-1] < frame_length:
        return x.unsqueeze(1)
    return x.unfold(-1, frame_length, hop_length)


@torch.no_grad()
def silence_floor_db(
    pred: Tensor,
    target: Tensor,
    *,
    frame_length: int = 1024,
    hop_length: int = 256,
    silence_threshold_db: float = -60.0,
    floor_db: float = -120.0,
) -> Tensor:
    """Level of ``pred`` where the **target** is silent: the codec's noise floor / hiss in pauses.

    Both signals are cut into frames of ``frame_length`` samples every ``hop_length`` (no padding; the tail
    that does not fill a frame is ignored; a signal shorter than one frame is one frame). A frame is silent
    when the target frame RMS is below ``silence_threshold_db`` dBFS (``20 log10(rms)``, full scale 1.0).
    The result is the energy-pooled level of ``pred`` over those frames::

        10 log10(max(mean_{silent frames} mean(pred_frame^2), 10^(floor_db / 10)))

    Returns NaN for items with no silent frame: skip them (``nanmean``; :func:`waveform_metrics` does).

    Returns:
        float32 ``[B]`` in dBFS (NaN where the target has no silent frame).
    """
    p, t = _pair(pred, target)
    fp, ft = _frames(p, frame_length, hop_length), _frames(t, frame_length, hop_length)
    ms_p, ms_t = fp.square().mean(-1), ft.square().mean(-1)  # [B, N]
    silent = ms_t < 10.0 ** (silence_threshold_db / 10.0)
    n_silent = silent.sum(-1)
    pooled = (ms_p * silent).sum(-1) / n_silent.clamp(min=1)
    db = 10.0 * torch.log10(pooled.clamp(min=10.0 ** (floor_db / 10.0)))
    return _out(torch.where(n_silent > 0, db, torch.full_like(db, float("nan"))))


@torch.no_grad()
def waveform_metrics(
    pred: Tensor, target: Tensor, sample_rate: int, *, spectral: bool = True
) -> dict[str, Tensor]:
    """All waveform metrics of this module, averaged over the batch (0-dim float32 tensors, input device).

    Keys: ``snr_db``, ``si_snr_db``, ``mel_distance``, ``stft_distance`` (only with ``spectral=True``),
    ``rms_ratio``, ``output_peak``, ``output_range``, ``clipped_fraction``, ``dc_offset`` (signed mean of the
    per-item offsets), ``dc_offset_abs`` (mean of ``|offset|``), ``silence_floor_db``, ``target_peak``.
    ``rms_ratio`` and ``silence_floor_db`` are NaN-skipping means (NaN when every item is NaN: the caller
    should skip logging a NaN).

    Args:
        pred, target: ``[B, T]`` or ``[B, 1, T]``, same shape, at ``sample_rate`` Hz.
        sample_rate: Hz (used by the mel filters).
        spectral: compute the (slower) mel and STFT distances.
    """
    p, t = _pair(pred, target)
    dc = dc_offset(p)
    out = {
        "snr_db": snr_db(p, t).mean(),
        "si_snr_db": si_snr_db(p, t).mean(),
        "rms_ratio": rms_ratio(p, t).nanmean(),
        "output_peak": peak_abs(p).mean(),
        "output_range": value_range(p).mean(),
        "clipped_fraction": clipped_fraction(p).mean(),
        "dc_offset": dc.mean(),
        "dc_offset_abs": dc.abs().mean(),
        "silence_floor_db": silence_floor_db(p, t).nanmean(),
        "target_peak": peak_abs(t).mean(),
    }
    if spectral:
        out["mel_distance"] = mel_distance(p, t, sample_rate).mean()
        out["stft_distance"] = stft_distance(p, t).mean()
    return out
