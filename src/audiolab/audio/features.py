"""Differentiable spectral features: STFT magnitude, mel spectrograms and DDSP v2 A-weighted loudness.

Conventions shared by every function here:

* input audio is ``[T]`` or ``[B, T]`` (samples, nominally in [-1, 1]); a 1-D input is treated as
  ``B = 1`` and the output keeps the batch dimension;
* computation runs in float32 with autocast disabled, because half-precision FFTs only support
  power-of-2 sizes and lose too much precision in log/power terms;
* everything is built from :func:`stft_magnitude` so the whole project shares one STFT definition
  (periodic Hann window, un-normalised magnitudes, like ``tf.signal.stft`` and ``librosa.stft``).
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import torch
import torchaudio.functional as AF

__all__ = [
    "stft_magnitude",
    "mel_spectrogram",
    "log_mel_spectrogram",
    "a_weighting_db",
    "a_weighted_loudness",
]


def _as_batch(audio: torch.Tensor) -> torch.Tensor:
    """``[T]`` -> ``[1, T]``; ``[B, T]`` unchanged; anything else raises."""
    if not isinstance(audio, torch.Tensor):
        audio = torch.as_tensor(np.asarray(audio))
    if audio.dim() == 1:
        return audio.unsqueeze(0)
    if audio.dim() == 2:
        return audio
    raise ValueError(f"audio must be [T] or [B, T], got shape {tuple(audio.shape)}")


def stft_magnitude(
    audio: torch.Tensor,
    n_fft: int,
    hop_length: int,
    *,
    win_length: int | None = None,
    center: bool = True,
    pad_mode: str = "reflect",
    power: float = 1.0,
) -> torch.Tensor:
    """Un-normalised STFT magnitude ``|X|**power`` with a periodic Hann window.

    Args:
        audio: ``[T]`` or ``[B, T]`` samples.
        n_fft: FFT size in samples.
        hop_length: hop in samples.
        win_length: Hann window length (<= n_fft, zero-padded to n_fft, centred); default n_fft.
        center: pad ``n_fft // 2`` samples on both sides so frame ``k`` is centred on sample ``k * hop``.
        pad_mode: ``"reflect"`` or ``"constant"`` (zeros) etc., as in ``torch.nn.functional.pad``.
        power: exponent on the magnitude (1 = magnitude, 2 = power).

    Returns:
        float32 ``[B, n_fft // 2 + 1, frames]`` where ``frames = 1 + T // hop`` if center
        else ``1 + (T - n_fft) // hop``.
    """
    if n_fft <= 0 or hop_length <= 0:
        raise ValueError(f"n_fft and hop_length must be positive, got n_fft={n_fft}, hop_length={hop_length}")
    x = _as_batch(audio)
    n = x.shape[-1]
    if center and pad_mode == "reflect" and n <= n_fft // 2:
        raise ValueError(
            f"signal of {n} samples is too short for reflect padding with n_fft={n_fft} "
            f"(needs more than {n_fft // 2} samples)"
        )
    if not center and n < n_fft:
        raise ValueError(f"signal of {n} samples is shorter than n_fft={n_fft} with center=False")
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        wl = n_fft if win_length is None else int(win_length)
        window = torch.hann_window(wl, periodic=True, device=x.device, dtype=torch.float32)
        spec = torch.stft(
            x,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=wl,
            window=window,
            center=center,
            pad_mode=pad_mode,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        if power == 2.0:
            # re^2 + im^2 avoids the sqrt and has a finite gradient at |X| = 0.
            return spec.real.square() + spec.imag.square()
        mag = spec.abs()
        return mag if power == 1.0 else mag.pow(power)


@functools.lru_cache(maxsize=64)
def _mel_fbank(
    n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int, norm: str | None, mel_scale: str,
    device: str,
) -> torch.Tensor:
    """Cached torchaudio mel filterbank ``[n_freqs, n_mels]`` on ``device``."""
    fb = AF.melscale_fbanks(
        n_freqs=n_freqs, f_min=f_min, f_max=f_max, n_mels=n_mels, sample_rate=sample_rate,
        norm=norm, mel_scale=mel_scale,
    )
    return fb.to(device=device, dtype=torch.float32)


def mel_spectrogram(
    audio: torch.Tensor,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    *,
    f_min: float = 0.0,
    f_max: float | None = None,
    power: float = 2.0,
    norm: str | None = "slaney",
    mel_scale: str = "slaney",
    center: bool = True,
    pad_mode: str = "constant",
) -> torch.Tensor:
    """Mel spectrogram equal to ``librosa.feature.melspectrogram`` with the same arguments.

    ``pad_mode`` defaults to ``"constant"`` (zero padding) because that is librosa >= 0.10's
    default; pass ``"reflect"`` to match torchaudio's ``MelSpectrogram`` default instead.
    ``mel_scale="slaney"`` corresponds to librosa's ``htk=False``, ``"htk"`` to ``htk=True``.

    Args:
        audio: ``[T]`` or ``[B, T]`` samples.
        sample_rate: Hz. n_fft / hop_length: samples. n_mels: number of mel bands.
        f_min / f_max: band edges in Hz (``f_max`` defaults to ``sample_rate / 2``).
        power: 1 for magnitude, 2 for power.

    Returns:
        float32 ``[B, n_mels, frames]``.
    """
    x = _as_batch(audio)
    fmax = float(sample_rate) / 2.0 if f_max is None else float(f_max)
    with torch.autocast(device_type=x.device.type, enabled=False):
        spec = stft_magnitude(x, n_fft, hop_length, center=center, pad_mode=pad_mode, power=power)
        fb = _mel_fbank(n_fft // 2 + 1, float(f_min), fmax, int(n_mels), int(sample_rate), norm, mel_scale,
                        str(spec.device))
        return torch.einsum("fm,bft->bmt", fb, spec)


def log_mel_spectrogram(
    audio: torch.Tensor,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    *,
    f_min: float = 0.0,
    f_max: float | None = None,
    power: float = 2.0,
    norm: str | None = "slaney",
    mel_scale: str = "slaney",
    center: bool = True,
    pad_mode: str = "constant",
    eps: float = 1e-5,
) -> torch.Tensor:
    """Natural log of :func:`mel_spectrogram`, floored at ``eps``: ``log(clamp(mel, min=eps))``.

    Returns:
        float32 ``[B, n_mels, frames]`` (natural-log units).
    """
    mel = mel_spectrogram(
        audio, sample_rate, n_fft, hop_length, n_mels, f_min=f_min, f_max=f_max, power=power, norm=norm,
        mel_scale=mel_scale, center=center, pad_mode=pad_mode,
    )
    return torch.log(torch.clamp(mel, min=eps))


@functools.lru_cache(maxsize=32)
def _a_weighting_power(sample_rate: int, n_fft: int, device: str) -> torch.Tensor:
    """Linear power weights ``10**(A_dB/10)`` per rFFT bin, ``[n_fft // 2 + 1]`` float32 on ``device``."""
    a_db = a_weighting_db(sample_rate, n_fft)
    return torch.from_numpy(10.0 ** (a_db / 10.0)).to(device=device, dtype=torch.float32)


def a_weighting_db(sample_rate: int, n_fft: int) -> np.ndarray:
    """A-weighting in dB per rFFT bin (librosa, default ``min_db=-80`` floor), ``[n_fft // 2 + 1]`` float64."""
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    with np.errstate(divide="ignore"):  # the DC bin hits log10(0) -> -inf, which min_db then floors
        return np.asarray(librosa.A_weighting(freqs), dtype=np.float64)


def a_weighted_loudness(
    audio: torch.Tensor,
    sample_rate: int = 16000,
    frame_rate: int = 250,
    n_fft: int = 512,
    range_db: float = 80.0,
    ref_db: float = 0.0,
    center: bool = True,
) -> torch.Tensor:
    """A-weighted loudness in dB with DDSP v2 (``ddsp.spectral_ops.compute_loudness``) semantics.

    ``hop = sample_rate // frame_rate``; ``P = |STFT|^2 * 10**(A_dB / 10)`` (periodic Hann of ``n_fft``,
    zero ``'constant'`` centre padding like DDSP's ``pad(..., padding='center')``); ``p = mean_f P`` in the
    **linear** power domain; ``db = 10 log10(max(p, 10**(-range_db/10))) - ref_db``; ``db = max(db, -range_db)``.

    Args:
        audio: ``[T]`` or ``[B, T]`` samples at ``sample_rate`` Hz.
        sample_rate: Hz; must be a multiple of ``frame_rate``.
        frame_rate: loudness frames per second.
        n_fft: analysis window / FFT size in samples.
        range_db: dynamic range; the output floor is ``-range_db``.
        ref_db: reference level subtracted in dB.
        center: centre (zero) padding -> ``T // hop + 1`` frames; otherwise ``1 + (T - n_fft) // hop``.

    Returns:
        float32 ``[B, T // hop + 1]`` loudness in dB (callers usually keep the first ``T // hop`` frames).

    Raises:
        ValueError: ``sample_rate % frame_rate != 0``.
    """
    if frame_rate <= 0 or sample_rate % frame_rate != 0:
        raise ValueError(
            f"sample_rate ({sample_rate}) must be an integer multiple of frame_rate ({frame_rate}) "
            "so that the hop is a whole number of samples"
        )
    hop = sample_rate // frame_rate
    x = _as_batch(audio)
    with torch.autocast(device_type=x.device.type, enabled=False):
        power = stft_magnitude(x, n_fft, hop, center=center, pad_mode="constant", power=2.0)  # [B, F, N]
        weights = _a_weighting_power(int(sample_rate), int(n_fft), str(power.device))
        avg_power = (power * weights[None, :, None]).mean(dim=1)  # [B, N], mean in the linear domain
        floor = 10.0 ** (-range_db / 10.0)
        db = 10.0 * torch.log10(torch.clamp(avg_power, min=floor)) - ref_db
        return torch.clamp(db, min=-range_db)
