"""Tests for audiolab.audio.features: STFT, mel vs librosa, DDSP v2 A-weighted loudness."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from audiolab.audio.features import (
    a_weighted_loudness,
    log_mel_spectrogram,
    mel_spectrogram,
    stft_magnitude,
)

SR = 16000


def _sine(freq: float, amp: float = 0.1, seconds: float = 0.5, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * torch.pi * freq * t)).float()


def _noise(n: int, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_stft_magnitude_shapes_power_and_dtype():
    x = torch.from_numpy(_noise(4000))
    s = stft_magnitude(x, 256, 64)
    assert s.shape == (1, 129, 1 + 4000 // 64)
    s2 = stft_magnitude(torch.stack([x, x]), 256, 64, power=2.0)
    assert s2.shape == (2, 129, 1 + 4000 // 64)
    torch.testing.assert_close(s2[0], s[0] ** 2, rtol=1e-4, atol=1e-6)
    # same spectra as librosa's (periodic Hann, un-normalised) for reflect padding
    ref = np.abs(librosa.stft(x.numpy(), n_fft=256, hop_length=64, pad_mode="reflect"))
    np.testing.assert_allclose(s[0].numpy(), ref, rtol=1e-4, atol=1e-4 * ref.max())
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        s_ac = stft_magnitude(x, 256, 64)
    assert s_ac.dtype == torch.float32
    torch.testing.assert_close(s_ac, s)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_fft=1024, hop_length=256, n_mels=80),
        dict(n_fft=512, hop_length=128, n_mels=64, f_min=40.0, f_max=7600.0, power=1.0),
        dict(n_fft=1024, hop_length=256, n_mels=80, pad_mode="reflect", norm=None, mel_scale="htk"),
    ],
)
def test_mel_matches_librosa(kwargs):
    x = _noise(SR // 2) + _sine(440, 0.3).numpy()
    kw = dict(kwargs)
    mel = mel_spectrogram(torch.from_numpy(x), SR, kw.pop("n_fft"), kw.pop("hop_length"), kw.pop("n_mels"), **kw)
    ref = librosa.feature.melspectrogram(
        y=x, sr=SR, n_fft=kwargs["n_fft"], hop_length=kwargs["hop_length"], n_mels=kwargs["n_mels"],
        fmin=kwargs.get("f_min", 0.0), fmax=kwargs.get("f_max"), power=kwargs.get("power", 2.0),
        norm=kwargs.get("norm", "slaney"), htk=kwargs.get("mel_scale", "slaney") == "htk",
        pad_mode=kwargs.get("pad_mode", "constant"),
    )
    assert mel.shape == (1,) + ref.shape
    np.testing.assert_allclose(mel[0].numpy(), ref, rtol=1e-4, atol=1e-4 * ref.max())


def test_log_mel_floor_and_grad():
    x = torch.zeros(2, 4000)
    x[1] = torch.from_numpy(_noise(4000))
    x.requires_grad_(True)
    lm = log_mel_spectrogram(x, SR, 512, 128, 40, eps=1e-5)
    assert lm.shape == (2, 40, 1 + 4000 // 128)
    assert torch.allclose(lm[0], torch.full_like(lm[0], float(np.log(1e-5))))
    lm[1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad[1].abs().sum() > 0


def _numpy_loudness(x, sr=SR, frame_rate=250, n_fft=512, range_db=80.0, ref_db=0.0):
    """Independent float64 reimplementation of ddsp.spectral_ops.compute_loudness (v2, padding='center')."""
    hop = sr // frame_rate
    xp = np.pad(np.asarray(x, np.float64), (n_fft // 2, n_fft // 2), mode="constant")
    n_frames = 1 + (len(xp) - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = np.stack([xp[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    with np.errstate(divide="ignore"):
        a_db = librosa.A_weighting(np.arange(n_fft // 2 + 1) * sr / n_fft)
    avg = np.mean(power * 10 ** (a_db / 10), axis=-1)
    db = 10 * np.log10(np.maximum(avg, 10 ** (-range_db / 10))) - ref_db
    return np.maximum(db, -range_db)


@pytest.mark.parametrize("ref_db,range_db", [(0.0, 80.0), (20.7, 120.0)])
def test_loudness_matches_numpy_reference(ref_db, range_db):
    # noise burst + tone + a silent gap so both clamped and unclamped frames are covered
    x = _noise(8000) * np.r_[np.ones(4000), np.zeros(2000), np.ones(2000)].astype(np.float32)
    x = x + _sine(1000, 0.05, 0.5).numpy()
    x[4000:6000] = 0
    ours = a_weighted_loudness(torch.from_numpy(x), SR, ref_db=ref_db, range_db=range_db)
    ref = _numpy_loudness(x, ref_db=ref_db, range_db=range_db)
    assert ours.shape == (1, 8000 // 64 + 1) == (1,) + ref.shape
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=2e-3)
    assert ours.min() == -range_db  # the silent gap hits the floor


def test_loudness_shape_batch_and_errors():
    x = torch.from_numpy(np.stack([_noise(16000, 1), _noise(16000, 2)]))
    ld = a_weighted_loudness(x)
    assert ld.shape == (2, 16000 // 64 + 1)
    ld48 = a_weighted_loudness(torch.from_numpy(_noise(48000)), 48000, 250, n_fft=1536)
    assert ld48.shape == (1, 48000 // 192 + 1)
    with pytest.raises(ValueError, match="frame_rate"):
        a_weighted_loudness(x, 16000, 300)


def test_loudness_gain_monotonic_and_6db():
    x = _sine(1000, 0.01)
    gains_db = [0.0, 6.0, 12.0, 18.0]
    levels = [a_weighted_loudness(x * 10 ** (g / 20))[0, 10:-10].mean().item() for g in gains_db]
    assert all(b > a for a, b in zip(levels, levels[1:]))
    for lo, hi in zip(levels, levels[1:]):
        assert abs((hi - lo) - 6.0) < 0.1
    assert levels[0] > -70  # really in the non-clamped regime


def test_a_weighting_100hz_vs_1khz():
    low = a_weighted_loudness(_sine(100, 0.1))[0, 10:-10].mean().item()
    mid = a_weighted_loudness(_sine(1000, 0.1))[0, 10:-10].mean().item()
    expected = float(librosa.A_weighting(np.array([100.0]))[0] - librosa.A_weighting(np.array([1000.0]))[0])
    assert expected < -15  # sanity: A-weighting strongly attenuates 100 Hz
    assert abs((low - mid) - expected) < 1.0


@pytest.mark.parametrize("range_db", [80.0, 60.0])
def test_silence_is_floor(range_db):
    ld = a_weighted_loudness(torch.zeros(2, 3200), range_db=range_db)
    assert torch.equal(ld, torch.full_like(ld, -range_db))


def test_loudness_differentiable():
    x = _sine(500, 0.1).requires_grad_(True)
    a_weighted_loudness(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
