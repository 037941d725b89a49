"""The DDSP research options (issue 13.3), each off by default and switched by one config key: voiced input from
CREPE confidence, biquad control smoothing, the gated micro-RNN backbone, autoregressive residual controls, the
anti-collapse entropy regularizer; and the silence gate."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from audiolab.models.ddsp.decoder import MicroRNNDecoder, build_decoder, count_parameters
from audiolab.models.ddsp.module import DDSPModule, harmonic_entropy, schedule_weight
from audiolab.models.ddsp.synth import (
    DDSPConfig,
    ar_residual,
    biquad,
    biquad_lowpass_coefficients,
    build_ddsp,
    silence_gate,
)
from audiolab.utils.config import CONF_DIR

SR, FR = 16000, 250
TINY_DECODER = {"backbone": "mlp", "hidden_size": 16, "layers_per_stack": 1}


def _net(**net):
    torch.manual_seed(0)
    return build_ddsp(SR, FR, {"n_harmonics": 8, "n_noise_bands": 9, **net}, TINY_DECODER).eval()


def test_defaults_leave_the_options_off() -> None:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=ddsp_transformer"])
    net, loss = cfg.model.net, cfg.model.loss
    assert net.voiced_input == "none" and net.smoothing == "none" and net.ar_residual is False
    assert cfg.model.decoder.backbone == "transformer" and loss.entropy.weight == 0.0
    # and the dataclass defaults agree with the config file (one place to read them)
    d = DDSPConfig()
    assert (d.voiced_input, d.smoothing, d.ar_residual) == ("none", "none", False)


# ----------------------------------------------------------------------------------------------- voiced input
@pytest.mark.parametrize("mode", ["soft", "binary"])
def test_voiced_input_feature(mode: str) -> None:
    net = _net(voiced_input=mode, voiced_threshold=0.6)
    assert net.in_features == 3
    conf = torch.tensor([[0.1, 0.59, 0.6, 0.95]])
    x = net.conditioning(torch.full((1, 4), 220.0), torch.full((1, 4), -20.0), conf)
    expected = (conf >= 0.6).float() if mode == "binary" else conf
    torch.testing.assert_close(x[..., -1], expected)
    with pytest.raises(ValueError, match="confidence"):
        net.conditioning(torch.full((1, 4), 220.0), torch.full((1, 4), -20.0))


def test_voiced_input_changes_the_output() -> None:
    net = _net(voiced_input="soft")
    f0, ld = torch.full((1, 20), 220.0), torch.full((1, 20), -20.0)
    a = net.controls(f0, ld, torch.ones(1, 20))["amplitude"]
    b = net.controls(f0, ld, torch.zeros(1, 20))["amplitude"]
    assert not torch.allclose(a, b)


# ----------------------------------------------------------------------------------------------- biquad
def test_biquad_coefficients_equal_scipy_butterworth() -> None:
    signal = pytest.importorskip("scipy.signal")
    for cutoff in (5.0, 20.0, 60.0):
        b_ref, a_ref = signal.butter(2, cutoff, fs=FR)
        b, a = biquad_lowpass_coefficients(cutoff, FR)
        np.testing.assert_allclose(b, b_ref, rtol=1e-9)
        np.testing.assert_allclose(a, a_ref, rtol=1e-9)


def test_biquad_filters_like_scipy_and_keeps_values_above_one() -> None:
    signal = pytest.importorskip("scipy.signal")
    torch.manual_seed(0)
    x = torch.rand(2, 300, 3) * 2.0  # controls go up to 2: no clamping to [-1, 1]
    y = biquad(x, 20.0, FR)
    b, a = signal.butter(2, 20.0, fs=FR)
    ref = signal.lfilter(b, a, x.numpy().astype(np.float64), axis=1)
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-5)
    assert float(y.max()) > 1.0


def test_biquad_smoothing_option_reduces_frame_jitter() -> None:
    f0, ld = torch.full((1, 200), 220.0), -20.0 + 10.0 * torch.randn(1, 200).clamp(-2, 2)  # jittery loudness
    rough = _net()(f0, ld)["amplitude"]
    smooth = _net(smoothing="biquad", smoothing_cutoff_hz=10.0)(f0, ld)["amplitude"]
    assert smooth.diff(dim=-1).abs().mean() < 0.5 * rough.diff(dim=-1).abs().mean()


# ----------------------------------------------------------------------------------------------- micro-RNN
@pytest.mark.parametrize("hidden", [16, 64])
def test_micro_rnn_is_small_causal_and_streams(hidden: int) -> None:
    torch.manual_seed(0)
    m = build_decoder("micro_rnn", 2, 126, rnn_size=hidden).eval()
    assert isinstance(m, MicroRNNDecoder)
    # GRU(h, h) + Linear(2, h) + LayerNorm + Linear(h, 126): a few thousand parameters, not millions
    assert count_parameters(m) == 3 * (2 * hidden * hidden + 2 * hidden) + (2 * hidden + hidden) + 2 * hidden + (hidden + 1) * 126
    x = torch.randn(2, 40, 2)
    full = m(x)
    x2 = x.clone()
    x2[:, 25:] = torch.randn(2, 15, 2)
    assert torch.allclose(m(x2)[:, :25], full[:, :25], atol=1e-6)  # causal
    y1, state = m.stream(x[:, :17])
    y2, _ = m.stream(x[:, 17:], state)
    torch.testing.assert_close(torch.cat([y1, y2], 1), full)


def test_micro_rnn_rejects_a_big_hidden_size() -> None:
    with pytest.raises(ValueError, match="micro_rnn"):
        build_decoder("micro_rnn", 2, 10, rnn_size=1024)


# ----------------------------------------------------------------------------------------------- AR residual
def test_ar_residual_matches_the_recursion_and_learns_its_coefficient() -> None:
    torch.manual_seed(0)
    d = torch.randn(2, 30, 4)
    a = torch.tensor([0.1, 0.5, 0.8, 0.95], requires_grad=True)
    y = ar_residual(d, a)
    ref = torch.zeros_like(d)
    prev = torch.zeros(2, 4)
    for t in range(30):
        prev = a.detach() * prev + (1 - a.detach()) * d[:, t]
        ref[:, t] = prev
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    y.pow(2).sum().backward()
    assert a.grad is not None and torch.all(a.grad != 0)


def test_ar_residual_option_has_a_learned_coefficient_and_unit_dc_gain() -> None:
    net = _net(ar_residual=True, ar_init=0.7)
    assert net.ar_logit.shape == (net.out_features,)
    torch.testing.assert_close(torch.sigmoid(net.ar_logit), torch.full((net.out_features,), 0.7))
    # a constant decoder output is reached again after the transient: unit DC gain
    const = torch.full((1, 400, net.out_features), 0.3)
    y = ar_residual(const, torch.sigmoid(net.ar_logit))
    torch.testing.assert_close(y[:, -1], const[:, -1], atol=1e-5, rtol=0)
    assert "ar_logit" in dict(net.named_parameters())


# ----------------------------------------------------------------------------------------------- entropy
def test_harmonic_entropy_equals_scipy_and_temperature_flattens() -> None:
    stats = pytest.importorskip("scipy.stats")
    torch.manual_seed(0)
    h = torch.rand(3, 5, 12) ** 4
    ent = harmonic_entropy(h, 1.0)
    ref = stats.entropy(h.numpy(), axis=-1)
    np.testing.assert_allclose(ent.numpy(), ref, rtol=1e-5)
    hot = harmonic_entropy(h, 1e4)
    assert torch.all(hot > ent) and torch.allclose(hot, torch.full_like(hot, math.log(12)), atol=1e-3)
    assert torch.all(harmonic_entropy(h, 0.5) < ent)


def test_schedule_weight() -> None:
    assert schedule_weight(5, 0.1, 10, 20, 0) == 0.0
    assert schedule_weight(20, 0.1, 10, 20, 0) == pytest.approx(0.05)
    assert schedule_weight(500, 0.1, 10, 20, 0) == pytest.approx(0.1)
    assert schedule_weight(30 + 50, 0.1, 10, 20, 100) == pytest.approx(0.05)
    assert schedule_weight(30 + 200, 0.1, 10, 20, 100) == 0.0


def _module(**loss) -> DDSPModule:
    torch.manual_seed(0)
    return DDSPModule(SR, FR, net={"n_harmonics": 8, "n_noise_bands": 9, "head": "softmax"}, decoder=TINY_DECODER,
                      loss={"spectral": {"fft_sizes": [256, 64]}, **loss},
                      optim={"optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 1.0}})


def test_entropy_regularizer_counteracts_collapse() -> None:
    """From a collapsed start (all energy in one harmonic), steps on the regularized loss raise the entropy, the
    same steps without it do not."""
    batch = {"audio": torch.zeros(2, 64 * 40), "f0_hz": torch.full((2, 40), 110.0), "loudness_db": torch.full((2, 40), -20.0)}

    def entropy_after(weight: float) -> float:
        m = _module(entropy={"weight": weight, "temperature": 2.0})
        with torch.no_grad():
            m.net.decoder.out.bias[1:9] = torch.tensor([5.0] + [0.0] * 7)  # collapsed on harmonic 1
        opt = torch.optim.SGD(m.parameters(), lr=0.2)
        for step in range(5):
            terms, _ = m._losses(batch, step)
            opt.zero_grad()
            terms["loss"].backward()
            opt.step()
        out = m._run(batch)
        return float(harmonic_entropy(out["harmonic_distribution"]).mean())

    assert entropy_after(2.0) > entropy_after(0.0) + 0.3


def test_entropy_regularizer_is_logged_and_off_by_default() -> None:
    batch = {"audio": torch.zeros(1, 64 * 20), "f0_hz": torch.full((1, 20), 110.0), "loudness_db": torch.full((1, 20), -20.0)}
    assert "entropy" not in _module()._losses(batch, 0)[0]
    terms = _module(entropy={"weight": 0.5, "warmup_steps": 10})._losses(batch, 3)[0]
    assert float(terms["entropy_weight"]) == 0.0 and float(terms["entropy"]) > 0
    with pytest.raises(ValueError, match="entropy"):
        _module(entropy={"weight": 0.1, "temperature": 0.0})


# ----------------------------------------------------------------------------------------------- silence gate
def test_silence_gate_makes_silence_silent() -> None:
    torch.testing.assert_close(silence_gate(torch.tensor([-80.0, -79.5, -79.0, -20.0]), -79.0),
                               torch.tensor([0.0, 0.5, 1.0, 1.0]))
    net = _net(silence_gate_db=-79.0, noise_initial_bias=5.0)  # loud noise at init: the gate must still close
    ld = torch.tensor([[-20.0] * 50 + [-80.0] * 100 + [-20.0] * 50])
    out = net(torch.full((1, 200), 220.0), ld)
    assert torch.all(out["amplitude"][0, 50:150] == 0) and torch.all(out["noise_magnitudes"][0, 50:150] == 0)
    quiet = out["audio"][0, 60 * 64 : 140 * 64]  # away from the edges (control upsampling, noise filter taps)
    assert float(quiet.abs().max()) == 0.0
    ungated = _net(noise_initial_bias=5.0)(torch.full((1, 200), 220.0), ld)["audio"][0, 60 * 64 : 140 * 64]
    assert float(ungated.abs().max()) > 1e-3


def test_bad_option_values_name_the_key() -> None:
    for net, key in [({"voiced_input": "maybe"}, "voiced_input"), ({"smoothing": "biquad", "smoothing_cutoff_hz": 200.0},
                     "smoothing_cutoff_hz"), ({"ar_init": 1.0}, "ar_init"), ({"silence_gate_db": -90.0}, "silence_gate_db")]:
        with pytest.raises(ValueError, match=key):
            _net(**copy.deepcopy(net))
