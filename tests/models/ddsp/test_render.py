"""Whole-file rendering (models/ddsp/render.py) and the whole-file metrics: properties that need no training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiolab.models.ddsp.decoder import build_decoder
from audiolab.models.ddsp.metrics import silent_frames, whole_file_loudness
from audiolab.models.ddsp.render import decode_whole, render_whole, windowed_decode
from audiolab.models.ddsp.synth import build_ddsp

SR, FR = 16000, 250
SMALL = {"hidden_size": 16, "layers_per_stack": 1, "gru_size": 16, "d_model": 16, "layers": 2, "heads": 2,
         "rnn_size": 16}
STREAMABLE = [("mlp", {}), ("gru", {}), ("micro_rnn", {}),
              ("transformer", {"positional": "rotary", "attention_window": 20}),
              ("transformer", {"positional": "none", "attention_window": 20})]


def _net(backbone: str, **decoder):
    torch.manual_seed(0)
    return build_ddsp(SR, FR, {"n_harmonics": 8, "n_noise_bands": 9}, {"backbone": backbone, **SMALL, **decoder}).eval()


def _inputs(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    f0 = 220.0 * 2 ** (torch.randn(1, n, generator=g).cumsum(-1) * 0.01)
    ld = (-30.0 + 10.0 * torch.randn(1, n, generator=g)).clamp(-80, 0)
    return f0, ld


@pytest.mark.parametrize(("backbone", "extra"), STREAMABLE, ids=[f"{b}-{e.get('positional', '')}" for b, e in STREAMABLE])
def test_streamed_decoding_equals_one_pass(backbone: str, extra: dict) -> None:
    net = _net(backbone, **extra)
    assert net.decoder.streamable
    f0, ld = _inputs(230)
    with torch.no_grad():
        one = net.decoder(net.conditioning(f0, ld))
        chunked = decode_whole(net, f0, ld, chunk_frames=37)
    torch.testing.assert_close(chunked, one, atol=2e-5, rtol=1e-4)


def test_windowed_transformer_is_position_independent_past_its_receptive_field() -> None:
    """Rotary + window: the controls at a frame do not depend on where the file starts (what the training windows
    showed the model is what every frame of a long file sees)."""
    net = _net("transformer", positional="rotary", attention_window=20)
    f0, ld = _inputs(400)
    with torch.no_grad():
        whole = decode_whole(net, f0, ld)
        crop = decode_whole(net, f0[:, 250:], ld[:, 250:])
    span = 2 * 19  # layers * (window - 1)
    torch.testing.assert_close(crop[:, span:], whole[:, 250 + span :], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_absolute_positions_run_on_training_windows(positional: str) -> None:
    net = _net("transformer", positional=positional)
    assert not net.decoder.streamable
    seen: list[int] = []
    inner = net.decoder.forward
    net.decoder.forward = lambda x: (seen.append(x.shape[1]), inner(x))[1]  # record the lengths decoded
    f0, ld = _inputs(430)
    with torch.no_grad():
        out = decode_whole(net, f0, ld, window_frames=100)
    assert out.shape == (1, 430, net.out_features) and seen and max(seen) == 100
    # without a training window the old behaviour: one pass over everything
    seen.clear()
    with torch.no_grad():
        decode_whole(net, f0, ld)
    assert seen == [430]


def test_windowed_cross_fade_weights_sum_to_one() -> None:
    """A frame-wise decoder gives the same output windowed or in one pass: the cross-fade weights sum to 1."""
    torch.manual_seed(0)
    mlp = build_decoder("mlp", 2, 5, hidden_size=8, layers_per_stack=1).eval()
    x = torch.randn(2, 333, 2)
    with torch.no_grad():
        torch.testing.assert_close(windowed_decode(mlp, x, 64), mlp(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(windowed_decode(mlp, x[:, :50], 64), mlp(x[:, :50]))


def test_render_whole_shapes_and_silence() -> None:
    net = build_ddsp(SR, FR, {"n_harmonics": 8, "n_noise_bands": 9, "silence_gate_db": -79.0, "noise_initial_bias": 3.0},
                     {"backbone": "transformer", **SMALL, "positional": "rotary", "attention_window": 20}).eval()
    n = 600
    f0 = torch.full((n,), 220.0)
    ld = torch.cat([torch.full((200,), -20.0), torch.full((200,), -80.0), torch.full((200,), -20.0)])
    torch.manual_seed(0)
    out = render_whole(net, f0, ld)
    assert out["audio"].shape == (n * 64,) and out["harmonic_distribution"].shape == (n, 8)
    assert out["noise_magnitudes"].shape == (n, 9) and torch.isfinite(out["audio"]).all()
    m = whole_file_loudness(out["audio"], ld, SR, FR, block_frames=200)
    assert len(m["block_l1_db"]) == 3 and m["silent_frames"] == 200 - 2 * 8
    assert m["silent_loudness_db"] == pytest.approx(-80.0)


def test_whole_file_loudness_against_numpy() -> None:
    from audiolab.audio.features import a_weighted_loudness

    torch.manual_seed(0)
    audio = torch.randn(64 * 1100) * torch.linspace(0, 0.3, 64 * 1100)
    target = torch.linspace(-60, 0, 1100)
    m = whole_file_loudness(audio, target, SR, FR, block_frames=500)
    pred = a_weighted_loudness(audio[None], sample_rate=SR, frame_rate=FR)[0, :1100].double().numpy()
    err = np.abs(pred - target.double().numpy())
    assert m["loudness_l1_db"] == pytest.approx(err.mean())
    assert m["block_l1_db"] == pytest.approx([err[:500].mean(), err[500:1000].mean(), err[1000:].mean()])
    assert m["worst_block_l1_db"] == pytest.approx(max(m["block_l1_db"]))
    assert m["silent_frames"] == 0 and np.isnan(m["silent_loudness_db"])


def test_silent_frames_guard() -> None:
    ld = torch.tensor([-20.0] * 10 + [-80.0] * 30 + [-79.8] * 5 + [-20.0] * 10)
    s = silent_frames(ld, guard=8)
    assert s.tolist() == [False] * 18 + [True] * 19 + [False] * 18
    assert silent_frames(ld, guard=0).sum() == 35
