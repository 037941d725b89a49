"""Kick clip conventions and THE kick mel settings (one definition for dataset, VAE target, vocoder input and
vocoder loss, all computed by :func:`audiolab.audio.features.log_mel_spectrogram`).

Clip: mono, 44.1 kHz, 2 s = 88,200 samples, peak -1 dBFS, 0.2 s linear fade-out.
Mel: n_fft 2048 (Hann), hop 512, 128 HTK mel bands 0 - 22,050 Hz without area normalisation, power 2,
``center=True`` with zero padding (librosa's ``melspectrogram(..., htk=True, norm=None)`` exactly),
``log(clamp(mel, 1e-5))``: 88,200 samples -> ``1 + 88200 // 512 = 173`` frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from audiolab.audio.features import log_mel_spectrogram

__all__ = ["SAMPLE_RATE", "CLIP_SECONDS", "CLIP_SAMPLES", "MelConfig", "prepare_clip", "SilentClipError"]

SAMPLE_RATE = 44100
CLIP_SECONDS = 2.0
CLIP_SAMPLES = 88200


class SilentClipError(ValueError):
    """A clip has no signal (peak below 1e-6), so it cannot be peak-normalised."""


@dataclass(frozen=True)
class MelConfig:
    """Log-mel front-end settings (see the module docstring). ``mel_scale="htk"`` is librosa's ``htk=True``."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None
    power: float = 2.0
    norm: str | None = None
    mel_scale: str = "htk"
    center: bool = True
    pad_mode: str = "constant"
    eps: float = 1e-5

    @classmethod
    def from_dict(cls, d: dict | None) -> MelConfig:
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown mel settings {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def frames(self, n_samples: int) -> int:
        """Mel frames of ``n_samples`` samples (``1 + n // hop`` with ``center=True``)."""
        if self.center:
            return 1 + int(n_samples) // self.hop_length
        return 1 + (int(n_samples) - self.n_fft) // self.hop_length

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel of ``audio`` ``[T]`` or ``[B, T]`` -> float32 ``[B, n_mels, frames]`` (natural log)."""
        return log_mel_spectrogram(
            audio, self.sample_rate, self.n_fft, self.hop_length, self.n_mels, f_min=self.f_min, f_max=self.f_max,
            power=self.power, norm=self.norm, mel_scale=self.mel_scale, center=self.center, pad_mode=self.pad_mode,
            eps=self.eps)

    @property
    def log_floor(self) -> float:
        """The smallest log-mel value, ``log(eps)`` (silence)."""
        return float(np.log(self.eps))


def prepare_clip(audio: np.ndarray, n_samples: int = CLIP_SAMPLES, peak_db: float = -1.0,
                 fade_samples: int = round(0.2 * SAMPLE_RATE), name: str = "clip") -> np.ndarray:
    """Pad (zeros) / trim to ``n_samples``, scale the peak to ``peak_db`` dBFS, linear fade-out over the last
    ``fade_samples`` samples. ``audio`` is mono ``[T]`` at the target rate; returns float32 ``[n_samples]``.

    Raises:
        SilentClipError: the first ``n_samples`` samples are silent (peak < 1e-6); the message names ``name``.
    """
    x = np.asarray(audio, dtype=np.float64).reshape(-1)[:n_samples]
    if len(x) < n_samples:
        x = np.pad(x, (0, n_samples - len(x)))
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak < 1e-6:
        raise SilentClipError(f"{name}: silent in its first {n_samples} samples (peak {peak:.2e})")
    x = x * (10.0 ** (peak_db / 20.0) / peak)
    if fade_samples > 0:
        k = min(int(fade_samples), n_samples)
        # 1 -> 0 over the last k samples (the last sample is exactly 0: no click at the clip end)
        x[n_samples - k:] *= np.linspace(1.0, 0.0, k)
    return x.astype(np.float32)
