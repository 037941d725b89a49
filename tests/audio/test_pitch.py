"""Tests for audiolab.audio.pitch (torchcrepe 'tiny' on synthetic harmonic tones)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiolab.audio.pitch import cents_between, estimate_f0, hz_to_midi, midi_to_hz


def _harmonic_tone(f0: float, sr: int, seconds: float, n_harmonics: int = 8) -> torch.Tensor:
    """Sawtooth-like tone (1/k amplitudes) below Nyquist, peak ~0.5."""
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    x = sum((1.0 / k) * torch.sin(2 * torch.pi * k * f0 * t) for k in range(1, n_harmonics + 1) if k * f0 < sr / 2)
    return (0.5 * x / x.abs().max()).float()


def _median_cents_error(f0: torch.Tensor, target_hz: float) -> float:
    return float(cents_between(f0.median(), torch.tensor(target_hz)).abs())


@pytest.mark.parametrize("viterbi", [True, False])
def test_440hz_tiny(viterbi):
    x = _harmonic_tone(440.0, 16000, 0.5)
    hop = 160
    f0, conf = estimate_f0(x, 16000, hop, model="tiny", viterbi=viterbi)
    assert f0.shape == (len(x) // hop,) and conf.shape == f0.shape
    assert _median_cents_error(f0, 440.0) < 20
    assert float(conf.median()) > 0.5  # a clean periodic tone is confidently voiced


def test_resampled_input_and_batch():
    # 22.05 kHz, hop 441 -> exactly 320 samples at 16 kHz
    x = torch.stack([_harmonic_tone(220.0, 22050, 0.3), _harmonic_tone(330.0, 22050, 0.3)])
    f0, conf = estimate_f0(x, 22050, 441, model="tiny", viterbi=False)
    assert f0.shape == conf.shape == (2, x.shape[-1] // 441)
    assert _median_cents_error(f0[0], 220.0) < 20
    assert _median_cents_error(f0[1], 330.0) < 20


def test_fractional_hop_alignment():
    # 44.1 kHz with hop 512 -> 185.76 samples at 16 kHz: interpolated path
    x = _harmonic_tone(440.0, 44100, 0.3)
    f0, conf = estimate_f0(x, 44100, 512, model="tiny", viterbi=False)
    assert f0.shape == conf.shape == (len(x) // 512,)
    assert _median_cents_error(f0, 440.0) < 20


def test_short_input_gives_zero_frames():
    f0, conf = estimate_f0(torch.zeros(100), 16000, 160, model="tiny")
    assert f0.shape == conf.shape == (0,)


def test_bad_model_name():
    with pytest.raises(ValueError, match="full.*tiny"):
        estimate_f0(torch.zeros(16000), 16000, 160, model="medium")


def test_unit_conversions():
    f = torch.tensor([440.0, 880.0, 0.0, -5.0, 261.6256])
    midi = hz_to_midi(f)
    torch.testing.assert_close(midi, torch.tensor([69.0, 81.0, 0.0, 0.0, 60.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(midi_to_hz(hz_to_midi(f[:2])), f[:2])
    torch.testing.assert_close(midi_to_hz(torch.tensor(69.0)), torch.tensor(440.0))
    torch.testing.assert_close(cents_between(torch.tensor(880.0), torch.tensor(440.0)), torch.tensor(1200.0))
    assert float(cents_between(440.0 * 2 ** (-50 / 1200), 440.0)) == pytest.approx(-50.0, abs=1e-3)
    assert isinstance(hz_to_midi(np.array([440.0])), torch.Tensor)
    # f <= 0 must not poison gradients with NaN
    g = torch.tensor([0.0, 440.0], requires_grad=True)
    hz_to_midi(g).sum().backward()
    assert torch.isfinite(g.grad).all()


@pytest.mark.parametrize("sr,hop", [(16000, 64), (44100, 512)])
def test_frame_alignment_of_pitch_step(sr, hop):
    # 220 Hz then 440 Hz, switching at 0.25 s; frame k is centred on sample k * hop, so the jump must
    # appear at frame ~0.25 * sr / hop (a missing/extra centre pad would shift it by several frames).
    x = torch.cat([_harmonic_tone(220.0, sr, 0.25), _harmonic_tone(440.0, sr, 0.25)])
    f0, _ = estimate_f0(x, sr, hop, model="tiny", viterbi=False)
    midi = hz_to_midi(f0)
    jump = int(torch.nonzero(midi > 63.0)[0])  # first frame closer to 440 Hz (69) than 220 Hz (57)
    # CREPE sees a 64 ms window, so its decision lags by up to ~10 ms, plus up to one hop of frame
    # quantisation; a missing or doubled centre pad (512 samples at 16 kHz) would be 32 ms off.
    error_ms = 1000.0 * (jump * hop - 0.25 * sr) / sr
    hop_ms = 1000.0 * hop / sr
    assert -hop_ms <= error_ms <= 10.0 + hop_ms, (jump, error_ms)


@pytest.mark.parametrize("viterbi", [True, False])
def test_same_input_same_f0(viterbi):
    """torchcrepe dithers f0 from numpy's global RNG: was up to +-20 cents apart between two identical calls."""
    x = _harmonic_tone(440.0, 16000, 0.5) * torch.linspace(0.2, 1.0, 8000)
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    a, ca = estimate_f0(x, 16000, 160, model="tiny", viterbi=viterbi)
    assert np.random.random() == before, "the caller's numpy RNG state must be restored"
    np.random.random(1000)  # whatever the process drew in between
    b, cb = estimate_f0(x, 16000, 160, model="tiny", viterbi=viterbi)
    assert torch.equal(a, b) and torch.equal(ca, cb)
    c, _ = estimate_f0(x, 16000, 160, model="tiny", viterbi=viterbi, seed=1)
    assert not torch.equal(a, c), "another seed must draw another dither (the dither is kept)"
    assert float(cents_between(a, c).abs().max()) <= 41.0  # two dithers of at most one 20-cent bin each
    batch, _ = estimate_f0(torch.stack([x, x]), 16000, 160, model="tiny", viterbi=viterbi, seed=0)
    assert torch.equal(batch[0], a) and torch.equal(batch[1], c)  # row b uses seed + b
