"""Spectral distances against an independent numpy/librosa re-statement of DAC's losses."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch

from audiolab.metrics.spectral import mel_distance, stft_distance

SR = 16000


def _signal(batch: int = 3, seconds: float = 0.5, seed: int = 0) -> torch.Tensor:
    """Harmonic tones with different f0 and levels plus a little noise, ``[B, T]`` float32."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(SR * seconds)) / SR
    rows = []
    for b in range(batch):
        f0 = 110.0 * (b + 1)
        x = sum(0.3 / k * torch.sin(2 * math.pi * k * f0 * t + k) for k in range(1, 6))
        rows.append((0.5 + 0.5 * b) * x + 0.01 * torch.randn(t.shape, generator=g))
    return torch.stack(rows).float()


def _dac_reference(pred: np.ndarray, target: np.ndarray, mel: bool) -> float:
    """Independent numpy/librosa re-statement of DAC MelSpectrogramLoss / MultiScaleSTFTLoss defaults."""
    total = 0.0
    for w, n_mels in ((2048, 150), (512, 80)):
        def spec(x: np.ndarray, w: int = w, n_mels: int = n_mels) -> np.ndarray:
            s = np.abs(librosa.stft(x, n_fft=w, hop_length=w // 4, window="hann", center=True, pad_mode="reflect"))
            return librosa.filters.mel(sr=SR, n_fft=w, n_mels=n_mels) @ s if mel else s

        sp, st = spec(pred), spec(target)
        log_l1 = np.abs(np.log10(np.maximum(sp, 1e-5) ** 2) - np.log10(np.maximum(st, 1e-5) ** 2)).mean()
        total += log_l1 + np.abs(sp - st).mean()
    return float(total)


@pytest.mark.parametrize("kind", ["mel", "stft"])
def test_spectral_distances_match_dac_formula_zero_on_identity_and_grow_with_noise(kind):
    target = _signal(batch=2)
    fn = (lambda p, t: mel_distance(p, t, SR)) if kind == "mel" else stft_distance
    assert torch.all(fn(target, target) == 0)
    noisy = [target + s * torch.randn(target.shape, generator=torch.Generator().manual_seed(5)) for s in
             (0.003, 0.03, 0.3)]
    d = torch.stack([fn(p, target) for p in noisy])  # [levels, B]
    assert torch.all(d[1:] > d[:-1]) and torch.all(d[0] > 0)
    ref = _dac_reference(noisy[1][0].numpy(), target[0].numpy(), mel=kind == "mel")
    assert float(d[1, 0]) == pytest.approx(ref, rel=2e-3)
    # bf16 input and [B, 1, T] work (computed in float32)
    assert torch.isfinite(fn(noisy[1].bfloat16()[:, None], target.bfloat16()[:, None])).all()
