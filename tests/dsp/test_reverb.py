"""Reverb: masked first tap, causality, equality with numpy convolution, autocast, trainability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiolab.dsp import Reverb
from audiolab.dsp.reverb import fft_convolve


def _reverb(length: int = 300, std: float = 0.1, **kwargs) -> Reverb:
    torch.manual_seed(0)
    return Reverb(length=length, init_std=std, **kwargs)


def test_init_and_parameters():
    r = Reverb()
    assert r.ir.shape == (48000,) and isinstance(r.ir, torch.nn.Parameter)
    assert 0.5e-6 < r.ir.std().item() < 2e-6
    fixed = Reverb(length=100, trainable=False)
    assert list(fixed.parameters()) == [] and "ir" in fixed.state_dict()


def test_first_tap_masked():
    r = _reverb()
    r.ir.data[0] = 5.0  # whatever is stored there, tap 0 must not be applied
    x = torch.zeros(1, 1000)
    x[0, 0] = 0.8
    y = r(x)
    assert y[0, 0].item() == pytest.approx(0.8, abs=1e-6)  # dry only
    assert _reverb(add_dry=False)(x)[0, 0].abs().item() < 1e-6
    # the tail is the (scaled) IR from tap 1 on
    torch.testing.assert_close(y[0, 1:300], 0.8 * r.ir.detach()[1:], atol=1e-5, rtol=0)


def test_causal():
    r = _reverb()
    torch.manual_seed(1)
    x = torch.randn(2, 2000)
    x2 = x.clone()
    x2[:, 1200:] = torch.randn(2, 800)
    y, y2 = r(x), r(x2)
    torch.testing.assert_close(y[:, :1200], y2[:, :1200], atol=1e-5, rtol=0)
    assert (y[:, 1200:] - y2[:, 1200:]).abs().max() > 0.1


@pytest.mark.parametrize("add_dry", [True, False])
def test_matches_numpy_convolution_truncated(add_dry):
    r = _reverb(length=500, add_dry=add_dry)
    x = np.random.default_rng(0).standard_normal((2, 3000))
    ir = r.ir.detach().double().numpy().copy()
    ir[0] = 0.0
    ref = np.stack([np.convolve(x[i], ir)[:3000] for i in range(2)]) + (x if add_dry else 0.0)
    out = r(torch.from_numpy(x).float())
    assert out.shape == (2, 3000) and out.dtype == torch.float32
    np.testing.assert_allclose(out.detach().double().numpy(), ref, atol=1e-4)


def test_ir_longer_than_audio():
    r = _reverb(length=5000)
    x = torch.randn(1, 1000)
    ir = r.impulse_response().detach().double().numpy()
    ref = np.convolve(x[0].double().numpy(), ir)[:1000] + x[0].double().numpy()
    np.testing.assert_allclose(r(x)[0].detach().double().numpy(), ref, atol=1e-4)


def test_bf16_autocast_fp32_and_gradient():
    r = _reverb()
    x = torch.randn(2, 1000)
    ref = r(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = r(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, ref)
    y.pow(2).sum().backward()
    assert r.ir.grad[0].item() == 0.0  # masked tap gets no gradient
    assert torch.isfinite(r.ir.grad).all() and r.ir.grad[1:].abs().sum() > 0


def test_fft_convolve_shared_kernel_and_1d():
    x = torch.randn(3, 100, dtype=torch.float64)
    h = torch.randn(10, dtype=torch.float64)
    torch.testing.assert_close(fft_convolve(x, h), fft_convolve(x, h.expand(3, 10)))
    with pytest.raises(ValueError):
        fft_convolve(x, torch.randn(2, 10))
