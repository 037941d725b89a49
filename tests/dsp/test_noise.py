"""FilteredNoise: zero net delay, frequency shaping, smooth frame cross-fades, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiolab.dsp import FilteredNoise, frequency_impulse_response, upsample_with_windows

SR, N_BANDS = 16000, 65


def _uniform(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, n, generator=g) * 2 - 1


def test_impulse_response_is_linear_phase_centred():
    ir = frequency_impulse_response(torch.rand(3, N_BANDS))
    assert ir.shape == (3, 128)
    centre = 64
    torch.testing.assert_close(ir[:, centre + 1 :], ir[:, 1:centre].flip(-1))  # symmetric about tap 64
    flat = frequency_impulse_response(torch.ones(N_BANDS))
    expected = torch.zeros(128)
    expected[centre] = 1.0
    torch.testing.assert_close(flat, expected, atol=1e-6, rtol=0)


def test_flat_magnitudes_pass_noise_unchanged_no_delay():
    noise = _uniform(2, 64000)
    out = FilteredNoise(N_BANDS)(torch.ones(2, 1000, N_BANDS), 64000, noise=noise)
    assert out.shape == (2, 64000)
    torch.testing.assert_close(out, noise, atol=1e-5, rtol=0)
    # cross-correlation peak at lag 0
    x, y = noise[0].double().numpy(), out[0].double().numpy()
    lags = np.arange(-20, 21)
    xc = [np.dot(x[100:-100], np.roll(y, -lag)[100:-100]) for lag in lags]
    assert lags[int(np.argmax(xc))] == 0


def test_impulse_through_lowpass_is_centred_on_input():
    """A symmetric (linear-phase) response must peak exactly where the impulse is: no net delay."""
    n_frames, n = 100, 6400
    mags = torch.zeros(1, n_frames, N_BANDS)
    mags[..., :20] = 1.0
    impulse = torch.zeros(1, n)
    impulse[0, 3210] = 1.0
    out = FilteredNoise(N_BANDS)(mags, n, noise=impulse)[0]
    assert int(out.abs().argmax()) == 3210
    torch.testing.assert_close(out[3211:3274], out[3147:3210].flip(0), atol=1e-6, rtol=0)
    assert out[: 3210 - 64].abs().max() < 1e-6 and out[3210 + 65 :].abs().max() < 1e-6  # 128-tap support


def test_lowpass_attenuates_high_frequencies():
    n_frames, n = 500, 32000
    mags = torch.zeros(1, n_frames, N_BANDS)
    mags[..., :16] = 1.0  # pass 0..1875 Hz (125 Hz per band)
    out = FilteredNoise(N_BANDS)(mags, n, noise=_uniform(1, n))[0].double().numpy()
    psd = np.abs(np.fft.rfft(out * np.hanning(n))) ** 2
    freqs = np.fft.rfftfreq(n, 1 / SR)
    low = psd[(freqs > 100) & (freqs < 1500)].mean()
    high = psd[freqs > 4000].mean()
    assert 10 * np.log10(low / high) > 20
    # and the pass band keeps roughly the input level (a flat filter would give ratio 1)
    inp = _uniform(1, n)[0].double().numpy()
    psd_in = np.abs(np.fft.rfft(inp * np.hanning(n))) ** 2
    assert 0.5 < low / psd_in[(freqs > 100) & (freqs < 1500)].mean() < 2.0


def test_time_varying_gain_crossfades_like_window_upsampling():
    """Flat filters with per-frame gain g: output == noise * upsample_with_windows(g) exactly (no frame-edge jumps)."""
    torch.manual_seed(0)
    n_frames, n = 50, 3200
    gains = torch.rand(2, n_frames, 1)
    noise = _uniform(2, n, seed=3)
    out = FilteredNoise(N_BANDS)(gains.expand(-1, -1, N_BANDS), n, noise=noise)
    torch.testing.assert_close(out, noise * upsample_with_windows(gains, n)[..., 0], atol=1e-5, rtol=0)


def test_default_noise_shape_range_and_silence():
    fn = FilteredNoise(N_BANDS)
    out = fn(torch.full((3, 40, N_BANDS), 0.5), 2560)
    assert out.shape == (3, 2560) and out.dtype == torch.float32
    assert out.abs().max() <= 0.5 + 1e-5 and out.std() > 0.1
    assert torch.all(fn(torch.zeros(1, 40, N_BANDS), 2560) == 0)
    assert fn.initial_bias == -5.0 and fn.ir_size == 128


def test_errors():
    fn = FilteredNoise(N_BANDS)
    with pytest.raises(ValueError, match="2561"):
        fn(torch.ones(1, 40, N_BANDS), 2561)
    with pytest.raises(ValueError):
        fn(torch.ones(1, 40, 33), 2560)
    with pytest.raises(ValueError):
        fn(torch.ones(1, 40, N_BANDS), 2560, noise=torch.zeros(1, 100))


def test_gradients_reach_magnitudes_and_bf16_autocast():
    mags = torch.rand(2, 20, N_BANDS, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = FilteredNoise(N_BANDS)(mags, 1280, noise=_uniform(2, 1280))
    assert out.dtype == torch.float32
    (out**2).sum().backward()
    assert mags.grad is not None and torch.isfinite(mags.grad).all()
    assert (mags.grad.abs().sum(-1) > 0).all()  # every frame receives gradient
