"""Unit tests for audiolab.dsp.core (magenta/ddsp semantics, synthetic signals only)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audiolab.dsp.core import (
    angular_cumsum,
    exp_sigmoid,
    fft_convolve,
    normalize_harmonics,
    remove_above_nyquist,
    upsample_linear,
    upsample_with_windows,
)


# ------------------------------------------------------------------------------------------------ exp_sigmoid
def test_exp_sigmoid_reference_values():
    assert exp_sigmoid(torch.tensor(0.0)).item() == pytest.approx(0.405, abs=1e-3)
    assert exp_sigmoid(torch.tensor(-5.0)).item() == pytest.approx(1.98e-5, rel=1e-2)
    # closed form: 2 * sigmoid(x)**ln(10) + 1e-7
    x = torch.linspace(-8, 8, 33, dtype=torch.float64)
    ref = 2.0 * (1.0 / (1.0 + np.exp(-x.numpy()))) ** math.log(10.0) + 1e-7
    np.testing.assert_allclose(exp_sigmoid(x).numpy(), ref, rtol=1e-12)


def test_exp_sigmoid_range():
    y = exp_sigmoid(torch.linspace(-200, 200, 1001))
    assert y.min().item() >= 1e-7 * (1 - 1e-6)
    assert y.max().item() <= 2.0 + 1e-6
    assert exp_sigmoid(torch.tensor(-200.0)).item() == pytest.approx(1e-7, rel=1e-3)
    assert exp_sigmoid(torch.tensor(200.0)).item() == pytest.approx(2.0, rel=1e-6)


# ------------------------------------------------------------------------------------------------ upsampling
def test_upsample_with_windows_constant_stays_constant():
    frames = torch.full((2, 10, 3), 0.7)
    out = upsample_with_windows(frames, 640)
    assert out.shape == (2, 640, 3)
    torch.testing.assert_close(out, torch.full_like(out, 0.7), atol=1e-6, rtol=0)


def test_upsample_with_windows_matches_raised_cosine_crossfade():
    """Frame i peaks at sample i*hop; between frames a Hann (raised-cosine) cross-fade; last frame held."""
    torch.manual_seed(0)
    n_frames, hop = 7, 16
    frames = torch.randn(2, n_frames, 3, dtype=torch.float64)
    out = upsample_with_windows(frames, n_frames * hop).numpy()
    f = np.concatenate([frames.numpy(), frames.numpy()[:, -1:]], axis=1)
    t = np.arange(n_frames * hop)
    j, n = t // hop, t % hop
    w = (0.5 - 0.5 * np.cos(np.pi * n / hop))[None, :, None]
    ref = f[:, j] * (1 - w) + f[:, j + 1] * w
    np.testing.assert_allclose(out, ref, atol=1e-12)
    np.testing.assert_allclose(out[:, ::hop], frames.numpy(), atol=1e-12)


def test_upsample_with_windows_rejects_indivisible():
    with pytest.raises(ValueError, match=r"(?s)1001.*10|10.*1001"):
        upsample_with_windows(torch.ones(1, 10, 1), 1001)


def test_upsample_with_windows_gradient():
    frames = torch.rand(1, 5, 2, requires_grad=True)
    upsample_with_windows(frames, 50).sum().backward()
    assert frames.grad is not None and torch.all(frames.grad > 0)


def test_upsample_linear_endpoints_and_values():
    frames = torch.tensor([0.0, 1.0, 4.0, 2.0]).view(1, 4, 1)
    out = upsample_linear(frames, 16)[0, :, 0]
    assert out.shape == (16,)
    torch.testing.assert_close(out[::4], frames[0, :, 0])  # frame i at sample i*hop
    assert out[0].item() == 0.0
    torch.testing.assert_close(out[12:], torch.full((4,), 2.0))  # last frame held to the end
    assert out[2].item() == pytest.approx(0.5)  # halfway between frames 0 and 1
    assert out[6].item() == pytest.approx(2.5)


def test_upsample_linear_non_integer_hop_matches_np_interp():
    torch.manual_seed(1)
    frames = torch.randn(1, 9, 2, dtype=torch.float64)
    n = 100
    out = upsample_linear(frames, n).numpy()[0]
    pos = np.arange(n) * 9 / n
    for c in range(2):
        np.testing.assert_allclose(out[:, c], np.interp(pos, np.arange(9), frames.numpy()[0, :, c]), atol=1e-12)


# ------------------------------------------------------------------------------------------------ nyquist / normalize
def test_remove_above_nyquist():
    amps = torch.ones(1, 2, 5)
    f0 = torch.tensor([[1000.0, 2000.0]])
    out = remove_above_nyquist(amps, f0, 8000)  # nyquist 4000: k*f0 >= 4000 removed
    torch.testing.assert_close(out[0, 0], torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(out[0, 1], torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))


def test_normalize_harmonics_sums_to_one_and_is_nan_safe():
    hd = torch.rand(2, 3, 6) + 0.1
    f0 = torch.tensor([[100.0, 1500.0, 9000.0], [0.0, 3000.0, 2000.0]])
    out = normalize_harmonics(hd, f0, 16000)
    assert torch.isfinite(out).all()
    sums = out.sum(-1)
    torch.testing.assert_close(sums[0, :2], torch.ones(2))
    assert sums[0, 2].item() == 0.0  # f0 above Nyquist: every harmonic removed -> zeros, not NaN
    torch.testing.assert_close(sums[1], torch.ones(3))
    assert torch.all(out[0, 1, 5:] == 0)  # 6 * 1500 = 9000 >= 8000
    hd0 = torch.zeros(1, 1, 4, requires_grad=True)
    z = normalize_harmonics(hd0, torch.tensor([[100.0]]), 16000)
    z.sum().backward()
    assert torch.all(z == 0) and torch.isfinite(hd0.grad).all()


# ------------------------------------------------------------------------------------------------ phase
@pytest.mark.parametrize("method", ["float64", "chunked"])
def test_angular_cumsum_accurate_for_60s_48k(method):
    sr, n = 48000, 60 * 48000
    rng = np.random.default_rng(0)
    f = 440.0 + 50.0 * rng.standard_normal(n)
    omega = torch.from_numpy(2 * np.pi * f / sr).float()
    phase = angular_cumsum(omega.view(1, -1), dim=1, method=method)[0].double().numpy()
    ref = np.cumsum(omega.double().numpy())
    err = np.angle(np.exp(1j * (phase - ref)))  # wrap-aware difference
    assert phase.dtype == np.float64 and phase.min() >= 0 and phase.max() <= 2 * np.pi + 1e-5
    assert np.abs(err).max() < 1e-4
    # the naive float32 cumsum the helper exists to avoid is measurably worse on the same data
    naive = torch.cumsum(omega, 0).double().numpy()
    assert np.abs(np.angle(np.exp(1j * (naive - ref)))).max() > 10 * np.abs(err).max()


def test_angular_cumsum_dim_and_gradient():
    omega = torch.full((2, 3, 100), 0.1, requires_grad=True)
    phase = angular_cumsum(omega, dim=2)
    assert phase.shape == omega.shape and phase.dtype == torch.float32
    torch.testing.assert_close(phase[0, 0, :5], torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5]))
    phase[..., 9].sum().backward()  # phase at t=9 depends on the first 10 increments
    torch.testing.assert_close(omega.grad[0, 0], torch.cat([torch.ones(10), torch.zeros(90)]))
    chunked = angular_cumsum(omega.detach().transpose(1, 2), dim=1, method="chunked", chunk_size=7)
    torch.testing.assert_close(chunked.transpose(1, 2), phase.detach(), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------ fft_convolve
@pytest.mark.parametrize("kernel_len", [1, 5, 64, 300])
def test_fft_convolve_matches_numpy(kernel_len):
    rng = np.random.default_rng(kernel_len)
    x = rng.standard_normal((3, 200))
    h = rng.standard_normal((3, kernel_len))
    full_ref = np.stack([np.convolve(x[i], h[i]) for i in range(3)])
    xt, ht = torch.from_numpy(x), torch.from_numpy(h)
    np.testing.assert_allclose(fft_convolve(xt, ht, mode="full").numpy(), full_ref, atol=1e-10)
    np.testing.assert_allclose(fft_convolve(xt, ht).numpy(), full_ref[:, :200], atol=1e-10)
    s = kernel_len // 2
    np.testing.assert_allclose(fft_convolve(xt, ht, mode="same").numpy(), full_ref[:, s : s + 200], atol=1e-10)
    # shared kernel broadcast over the batch
    shared = fft_convolve(xt, ht[:1]).numpy()
    np.testing.assert_allclose(shared[2], np.convolve(x[2], h[0])[:200], atol=1e-10)


def test_fft_convolve_bad_mode():
    with pytest.raises(ValueError):
        fft_convolve(torch.zeros(1, 4), torch.zeros(1, 2), mode="valid")
