"""The differentiable SI-SDR against torchmetrics, a closed form, and at silence (finite gradients)."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

from audiolab.losses.sdr import neg_si_sdr_loss, si_sdr
from audiolab.metrics.waveform import si_snr_db


def _pair(batch: int = 3, n: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    target = torch.stack([0.3 * torch.sin(2 * math.pi * 220.0 * (b + 1) * t) for b in range(batch)]) + 0.05
    pred = 0.8 * target + 0.05 * torch.randn(target.shape, generator=g) - 0.1
    return pred, target


def test_equals_torchmetrics_zero_mean_si_sdr():
    pred, target = _pair()
    ref = scale_invariant_signal_distortion_ratio(pred, target, zero_mean=True)
    torch.testing.assert_close(si_sdr(pred, target), ref, rtol=1e-4, atol=1e-4)
    # [B, 1, T] keeps the channel axis; float64 stays float64
    torch.testing.assert_close(si_sdr(pred[:, None], target[:, None]), ref[:, None], rtol=1e-4, atol=1e-4)
    assert si_sdr(pred.double(), target.double()).dtype == torch.float64
    # the metric is the same function without gradients (computed in float64)
    torch.testing.assert_close(si_snr_db(pred, target), ref, rtol=1e-4, atol=1e-4)


def test_closed_form_orthogonal_noise_and_scale_invariance():
    n = 8000
    t = torch.arange(n, dtype=torch.float64) / 8000
    target = torch.sin(2 * math.pi * 100 * t)[None]  # whole periods: zero mean
    noise = torch.sin(2 * math.pi * 300 * t)[None]  # orthogonal to the target, zero mean
    noise = noise * (0.1 * target.norm() / noise.norm())  # ||noise||^2 = 0.01 ||target||^2
    pred = 2.0 * target + noise
    # s = 2 t, e = -noise: 10 log10(4 ||t||^2 / (0.01 ||t||^2)) = 10 log10(400)
    expected = 10 * math.log10(400.0)
    assert float(si_sdr(pred, target)) == pytest.approx(expected, abs=1e-6)
    assert float(si_sdr(-3.0 * pred + 0.5, target)) == pytest.approx(expected, abs=1e-6)  # gain and offset
    assert float(neg_si_sdr_loss(pred, target)) == pytest.approx(-expected, abs=1e-6)


@pytest.mark.parametrize("case", ["zero_target", "zero_pred", "both_zero"])
def test_gradient_finite_at_silence(case):
    pred, target = _pair(batch=2, n=1000)
    if case in ("zero_target", "both_zero"):
        target = torch.zeros_like(target)
    if case in ("zero_pred", "both_zero"):
        pred = torch.zeros_like(pred)
    pred = pred.clone().requires_grad_(True)
    loss = neg_si_sdr_loss(pred, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(pred.grad).all()


def test_fp32_under_autocast_and_gradient_improves():
    pred, target = _pair(batch=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = si_sdr(pred.bfloat16(), target.bfloat16())
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, si_sdr(pred.bfloat16().float(), target.bfloat16().float()))
    p = pred.clone().requires_grad_(True)
    before = si_sdr(p, target)
    neg_si_sdr_loss(p, target).backward()
    after = si_sdr(pred - 1e-3 * p.grad / p.grad.norm(dim=-1, keepdim=True), target)
    assert torch.all(after > before)
    with pytest.raises(ValueError, match="same shape"):
        si_sdr(pred[:, :-1], target)
