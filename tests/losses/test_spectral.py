"""Tests for audiolab.losses.spectral.MultiScaleSpectralLoss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiolab.losses.spectral import MultiScaleSpectralLoss, auraloss_equivalent

T = 8192


def _signals(seed: int = 0, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T) / 16000
    target = 0.3 * torch.sin(2 * torch.pi * 330 * t) + 0.05 * torch.randn(batch, T, generator=g)
    pred = 0.2 * torch.sin(2 * torch.pi * 335 * t) + 0.08 * torch.randn(batch, T, generator=g)
    return pred.float(), target.float()


def _numpy_mss(pred, target, fft_sizes, overlap=0.75, eps=1e-5, mag_w=1.0, log_w=1.0):
    """Independent float64 reference: reflect pad, own framing, periodic Hann, np.fft.rfft; sum over scales."""

    def mag(x, n_fft, hop):
        xp = np.pad(x.astype(np.float64), [(0, 0), (n_fft // 2, n_fft // 2)], mode="reflect")
        n_frames = 1 + (xp.shape[-1] - n_fft) // hop
        win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
        idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]  # [frames, n_fft]
        return np.abs(np.fft.rfft(xp[:, idx] * win, axis=-1))  # [B, frames, F]

    total_mag = total_log = 0.0
    for n_fft in fft_sizes:
        hop = int(n_fft * (1 - overlap))
        s, s_hat = mag(target, n_fft, hop), mag(pred, n_fft, hop)
        total_mag += np.mean(np.abs(s - s_hat))
        total_log += np.mean(np.abs(np.log(np.maximum(s, eps)) - np.log(np.maximum(s_hat, eps))))
    return mag_w * total_mag + log_w * total_log, total_mag, total_log


def test_zero_for_identical():
    _, target = _signals()
    out = MultiScaleSpectralLoss()(target, target.clone())
    assert set(out) == {"loss", "mag", "logmag"}
    for v in out.values():
        assert v.shape == () and float(v) == 0.0


@pytest.mark.parametrize("with_silence", [False, True])
def test_matches_numpy_reference(with_silence):
    pred, target = _signals(1)
    if with_silence:  # exact zeros exercise the shared eps clamp in the log term
        target[:, 2000:4000] = 0.0
    sizes = (2048, 1024, 512, 256, 128, 64)
    loss = MultiScaleSpectralLoss(sizes, mag_weight=2.0, logmag_weight=0.5)
    out = loss(pred, target)
    ref_loss, ref_mag, ref_log = _numpy_mss(pred.numpy(), target.numpy(), sizes, mag_w=2.0, log_w=0.5)
    assert float(out["mag"]) == pytest.approx(ref_mag, rel=1e-5)
    assert float(out["logmag"]) == pytest.approx(ref_log, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(ref_loss, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(2.0 * float(out["mag"]) + 0.5 * float(out["logmag"]), rel=1e-6)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_matches_auraloss_equivalent(reduction):
    pred, target = _signals(2)
    loss = MultiScaleSpectralLoss(mag_weight=1.0, logmag_weight=1.0, reduction_over_scales=reduction)
    aura, factor = auraloss_equivalent(loss)
    assert factor == (6.0 if reduction == "sum" else 1.0)
    ours = float(loss(pred, target)["loss"])
    theirs = float(aura(pred[:, None], target[:, None])) * factor
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_sum_vs_mean_over_scales():
    pred, target = _signals(3)
    s = MultiScaleSpectralLoss(reduction_over_scales="sum")(pred, target)
    m = MultiScaleSpectralLoss(reduction_over_scales="mean")(pred, target)
    torch.testing.assert_close(s["loss"], 6.0 * m["loss"])


def test_gradient_flows_and_autocast():
    pred, target = _signals(4)
    pred = pred.clone().requires_grad_(True)
    loss = MultiScaleSpectralLoss()
    out = loss(pred, target)
    out["loss"].backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out_ac = loss(pred.detach(), target)
    assert out_ac["loss"].dtype == torch.float32
    torch.testing.assert_close(out_ac["loss"], out["loss"].detach())


def test_bad_config_and_inputs():
    for overlap in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="overlap"):
            MultiScaleSpectralLoss(overlap=overlap)
    with pytest.raises(ValueError, match="fft_sizes"):
        MultiScaleSpectralLoss(fft_sizes=())
    with pytest.raises(ValueError, match="hop"):
        MultiScaleSpectralLoss(fft_sizes=(64,), overlap=0.99)
    with pytest.raises(ValueError, match="reduction_over_scales"):
        MultiScaleSpectralLoss(reduction_over_scales="max")
    loss = MultiScaleSpectralLoss(fft_sizes=(2048, 512))
    short = torch.zeros(2, 1000)
    with pytest.raises(ValueError, match=r"2048.*\(2048, 512\)"):
        loss(short, short)
    with pytest.raises(ValueError, match="shapes differ"):
        loss(torch.zeros(2, 4096), torch.zeros(1, 4096))
