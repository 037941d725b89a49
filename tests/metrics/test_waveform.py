"""Waveform metrics (SNR family, level health, the metric bundle) against closed forms and torchmetrics."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio, signal_noise_ratio

from audiolab.metrics.waveform import (
    clipped_fraction,
    dc_offset,
    rms_ratio,
    si_snr_db,
    silence_floor_db,
    snr_db,
    waveform_metrics,
)

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


def _noise_with_power(like: torch.Tensor, power: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """White noise whose per-row mean square is exactly ``power`` ([B])."""
    n = torch.randn(like.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return n * (power[:, None] / n.square().mean(-1, keepdim=True)).sqrt()


# ------------------------------------------------------------------------------------------- SNR family
def test_si_snr_matches_torchmetrics_including_bf16_input():
    target = _signal()
    pred = 0.7 * target + 0.05 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3)) + 0.02
    ours = si_snr_db(pred, target)
    ref = scale_invariant_signal_noise_ratio(pred, target)
    assert ours.shape == (3,) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, atol=1e-3, rtol=0)
    # [B, 1, T] is squeezed; a bf16 input is computed in wide precision from the same (rounded) samples
    ours_bf16 = si_snr_db(pred.bfloat16()[:, None], target.bfloat16()[:, None])
    ref_bf16 = scale_invariant_signal_noise_ratio(pred.bfloat16().double(), target.bfloat16().double())
    torch.testing.assert_close(ours_bf16, ref_bf16.float(), atol=1e-3, rtol=0)


def test_snr_closed_form_for_known_noise_power():
    target = _signal().double()
    p_sig = target.square().mean(-1)
    for snr in (20.0, 0.0, -5.0):
        pred = target + _noise_with_power(target, p_sig * 10 ** (-snr / 10))
        got = snr_db(pred, target)
        torch.testing.assert_close(got, torch.full((3,), snr, dtype=torch.float32), atol=1e-4, rtol=0)
        torch.testing.assert_close(got, signal_noise_ratio(pred, target).float(), atol=1e-4, rtol=0)


def test_gain_error_snr_vs_si_snr_and_rms_ratio():
    target = _signal()
    pred = 0.5 * target
    assert torch.all(si_snr_db(pred, target) > 60.0)  # scale invariant: a gain error is "perfect"
    torch.testing.assert_close(snr_db(pred, target), torch.full((3,), 10 * math.log10(4.0)), atol=1e-4, rtol=0)
    torch.testing.assert_close(rms_ratio(pred, target), torch.full((3,), 0.5), atol=1e-6, rtol=0)
    torch.testing.assert_close(rms_ratio(2 * target, target), torch.full((3,), 2.0), atol=1e-6, rtol=0)
    # a silent target gives NaN (skipped by the batch mean), not an astronomically large ratio
    target[1] = 0
    r = rms_ratio(pred, target)
    assert math.isnan(float(r[1])) and not torch.isnan(r[[0, 2]]).any()
    assert not math.isnan(float(waveform_metrics(pred, target, SR, spectral=False)["rms_ratio"]))


# ------------------------------------------------------------------------------------------- level health
def test_clipped_fraction_peak_range_and_dc_offset():
    x = (torch.arange(-200, 201) / 100.0)[None]  # -2.00 .. 2.00, exactly +-1.0 included
    assert float(clipped_fraction(x)[0]) == pytest.approx(202 / 401)
    const = torch.tensor([[0.25] * 1000, [-0.25] * 1000])
    torch.testing.assert_close(dc_offset(const), torch.tensor([0.25, -0.25]))
    m = waveform_metrics(torch.cat([x[:, :400], x[:, :400]]), torch.zeros(2, 400), SR, spectral=False)
    assert float(m["output_peak"]) == pytest.approx(2.0)
    assert float(m["output_range"]) == pytest.approx(3.99)
    m = waveform_metrics(const, torch.ones_like(const), SR, spectral=False)
    assert float(m["dc_offset"]) == pytest.approx(0.0, abs=1e-7)
    assert float(m["dc_offset_abs"]) == pytest.approx(0.25)
    assert float(m["target_peak"]) == pytest.approx(1.0)
    assert float(m["clipped_fraction"]) == 0.0


def test_silence_floor_measures_pred_level_where_target_is_silent():
    n = SR
    target = torch.zeros(2, n)
    target[:, : n // 2] = 0.5 * torch.sin(2 * math.pi * 440 * torch.arange(n // 2) / SR)
    level_db = torch.tensor([-50.0, -70.0])
    amp = 10 ** (level_db / 20)
    pred = target.clone()
    pred[:, n // 2 :] = amp[:, None] * torch.tensor([1.0, -1.0]).repeat(n // 4)  # constant-RMS hiss
    pred[:, : n // 2] += 0.3  # whatever happens where the target is loud is ignored
    torch.testing.assert_close(silence_floor_db(pred, target), level_db, atol=1e-3, rtol=0)
    # the -60 dBFS threshold: a -50 dBFS target passage (between loud ones) is not silent, a -70 dBFS one is
    quiet = target.clone()
    quiet[:, n // 8 : n // 4] = 10 ** (-50 / 20) * torch.tensor([1.0, -1.0]).repeat(n // 16)
    quiet[:, n // 2 :] = 10 ** (-70 / 20) * torch.tensor([1.0, -1.0]).repeat(n // 4)
    torch.testing.assert_close(silence_floor_db(pred, quiet), level_db, atol=1e-3, rtol=0)
    # target never silent -> NaN, and waveform_metrics skips it
    loud = torch.ones(2, n) * 0.1
    assert torch.isnan(silence_floor_db(pred, loud)).all()
    both = torch.stack([target[0], loud[0]])
    m = waveform_metrics(torch.stack([pred[0], pred[0]]), both, SR, spectral=False)
    assert float(m["silence_floor_db"]) == pytest.approx(-50.0, abs=1e-3)


def test_waveform_metrics_keys_and_short_clips():
    target = _signal(batch=2, seconds=0.05)  # 800 samples: shorter than the 2048 window -> zero padding
    m = waveform_metrics(target + 0.01, target, SR)
    assert set(m) == {
        "snr_db", "si_snr_db", "mel_distance", "stft_distance", "rms_ratio", "output_peak", "output_range",
        "clipped_fraction", "dc_offset", "dc_offset_abs", "silence_floor_db", "target_peak",
    }
    assert all(v.dim() == 0 for v in m.values())
    assert all(torch.isfinite(v) for k, v in m.items() if k != "silence_floor_db")
    with pytest.raises(ValueError, match="same"):
        snr_db(target[:, :-1], target)
