"""Tests for audiolab.models.codec.seanet: lengths, causality, streaming, receptive field, size."""

from __future__ import annotations

import pytest
import torch

from audiolab.models.codec.seanet import (
    SEANetDecoder,
    SEANetEncoder,
    StreamableConv1d,
    StreamableConvTranspose1d,
    StreamableLSTM,
    encoder_lookahead_samples,
)

# Tiny widths keep every test well under a second; only the parameter-count test builds the full model.
TINY = dict(n_filters=4, dimension=8)


pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(seed: int = 0, dtype: torch.dtype = torch.float32, **kw) -> tuple[SEANetEncoder, SEANetDecoder]:
    torch.manual_seed(seed)
    cfg = {**TINY, **kw}
    enc = SEANetEncoder(**cfg).to(dtype).eval()
    dec = SEANetDecoder(**cfg).to(dtype).eval()
    return enc, dec


def _signal(
    frames: int,
    hop: int,
    channels: int = 1,
    batch: int = 2,
    seed: int = 1,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, frames * hop, generator=g, dtype=dtype)


# -------------------------------------------------------------------------------- 1. lengths
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@pytest.mark.parametrize("lstm", [0, 1])
def test_lengths_small(causal: bool, pad_mode: str, lstm: int) -> None:
    for ratios, channels in (((2, 2), 1), ((4, 2), 2)):
        enc, dec = _pair(ratios=ratios, channels=channels, causal=causal, pad_mode=pad_mode, lstm=lstm)
        assert enc.hop_length == dec.hop_length == ratios[0] * ratios[1]
        with torch.no_grad():
            for frames in (1, 2, 3, 5, 8, 13):
                x = _signal(frames, enc.hop_length, channels=channels)
                z = enc(x)
                assert z.shape == (2, TINY["dimension"], frames)
                y = dec(z)
                assert y.shape == x.shape
                assert torch.isfinite(y).all()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_lengths_encodec_ratios(causal: bool, pad_mode: str) -> None:
    enc, dec = _pair(
        n_filters=2, dimension=4, ratios=(8, 5, 4, 2), causal=causal, pad_mode=pad_mode, lstm=1, norm="none"
    )
    assert enc.hop_length == 320
    with torch.no_grad():
        for frames in (1, 3, 10):
            x = _signal(frames, 320, batch=1)
            z = enc(x)
            assert z.shape == (1, 4, frames)
            assert dec(z).shape == x.shape


# -------------------------------------------------------------------------------- 2. errors
def test_length_not_multiple_of_hop() -> None:
    enc, _ = _pair(ratios=(4, 2), causal=True)
    for bad in (13, 7, 25):
        with pytest.raises(ValueError, match=rf"T={bad}\b.*hop_length=8\b"):
            enc(torch.randn(1, 1, bad))
    with pytest.raises(ValueError, match=r"T=12\b.*hop_length=8\b"):
        enc.forward_streaming(torch.randn(1, 1, 12), enc.streaming_state())
    enc(torch.randn(1, 1, 16))  # a multiple is accepted


def test_streaming_refused_for_non_causal() -> None:
    enc, dec = _pair(ratios=(2, 2), causal=False)
    with pytest.raises(ValueError, match="causal"):
        enc.streaming_state()
    with pytest.raises(ValueError, match="causal"):
        dec.forward_streaming(torch.randn(1, 8, 2))


# -------------------------------------------------------------------------------- 3. causality
@pytest.mark.parametrize("lstm", [0, 1])
def test_causality(lstm: int) -> None:
    frames, hop = 12, 8
    changed_before = {}
    for causal in (True, False):
        enc, dec = _pair(ratios=(4, 2), causal=causal, lstm=lstm, dtype=torch.float64)
        x = _signal(frames, hop, dtype=torch.float64)
        with torch.no_grad():
            z, y = enc(x), dec(enc(x))
            changed_before[causal] = False
            for t in (hop, 5 * hop, 9 * hop):  # frame boundaries: frame n needs its whole hop
                x2 = x.clone()
                x2[..., t:] += torch.randn_like(x2[..., t:])
                z2, y2 = enc(x2), dec(enc(x2))
                # the change itself must be visible at/after t, or the test could not tell anything
                assert (y2[..., t:] - y[..., t:]).abs().max() > 1e-6
                before = max(
                    (y2[..., :t] - y[..., :t]).abs().max(),
                    (z2[..., : t // hop] - z[..., : t // hop]).abs().max(),
                )
                if causal:
                    assert before < 1e-12, f"causal output before t={t} changed by {before}"
                changed_before[causal] |= bool(before > 1e-6)
    assert not changed_before[True]
    assert changed_before[False], "non-causal model never looked ahead: the causality check proves nothing"
    assert encoder_lookahead_samples(_pair(ratios=(4, 2), causal=True, lstm=lstm)[0]) == 0


# -------------------------------------------------------------------------------- 4. streaming
CHUNKINGS = ([1] * 12, [3, 1, 4, 1, 2, 1], [12], [2, 5, 5], [7, 1, 1, 3])  # in frames, each sums to 12


def _stream(module, x: torch.Tensor, chunks: list[int], unit: int) -> torch.Tensor:
    state, outs, pos = module.streaming_state(), [], 0
    for c in chunks:
        out, state = module.forward_streaming(x[..., pos : pos + c * unit], state)
        outs.append(out)
        pos += c * unit
    assert pos == x.shape[-1] and state.steps == x.shape[-1]
    return torch.cat(outs, dim=-1)


@pytest.mark.parametrize("lstm", [0, 2])
@pytest.mark.parametrize("ratios", [(2, 2), (4, 2)])
def test_streaming_matches_whole(lstm: int, ratios: tuple[int, int]) -> None:
    enc, dec = _pair(ratios=ratios, causal=True, lstm=lstm, n_residual_layers=2)
    hop = enc.hop_length
    x = _signal(12, hop)
    with torch.no_grad():
        z, y = enc(x), dec(enc(x))
        zs, ys = z.abs().max().item(), y.abs().max().item()
        for chunks in CHUNKINGS:
            z_stream = _stream(enc, x, chunks, hop)
            torch.testing.assert_close(z_stream, z, atol=1e-5 * zs, rtol=1e-5)
            torch.testing.assert_close(_stream(dec, z, chunks, 1), y, atol=1e-5 * ys, rtol=1e-5)
            # chained: streamed latents through the streaming decoder
            torch.testing.assert_close(_stream(dec, z_stream, chunks[::-1], 1), y, atol=1e-5 * ys, rtol=1e-5)


def test_streaming_state_is_reusable() -> None:
    enc, _ = _pair(ratios=(2, 2), causal=True, lstm=1)
    x = _signal(6, 4)
    with torch.no_grad():
        _, s1 = enc.forward_streaming(x[..., :8])
        a, _ = enc.forward_streaming(x[..., 8:], s1)
        b, _ = enc.forward_streaming(x[..., 8:], s1)  # same state again: must not have been mutated
        torch.testing.assert_close(a, b, atol=0, rtol=0)
        torch.testing.assert_close(torch.cat([enc(x[..., :8]), a], -1), enc(x), atol=1e-6, rtol=1e-5)


def test_streaming_reflect_first_chunk() -> None:
    enc, dec = _pair(ratios=(2, 2), causal=True, pad_mode="reflect", lstm=1)
    # deepest k=7 convs (encoder last, decoder first) reflect 6 frames: the first chunk needs 7 frames
    assert enc.min_first_chunk() == 7 * enc.hop_length
    assert dec.min_first_chunk() == 7
    x = _signal(12, 4)
    with torch.no_grad():
        z, y = enc(x), dec(enc(x))
        torch.testing.assert_close(_stream(enc, x, [7, 1, 4], 4), z, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(_stream(dec, z, [8, 2, 1, 1], 1), y, atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="first streamed chunk"):
            _stream(enc, x, [6, 6], 4)
        with pytest.raises(ValueError, match="first streamed chunk"):
            _stream(dec, z, [1] * 12, 1)
    assert _pair(ratios=(2, 2), causal=True)[0].min_first_chunk() == 4  # constant: one frame


def test_transposed_conv_bias_added_once() -> None:
    # k = 3s: a 1-frame chunk's tail spans two later chunks, and the bias must not accumulate in the overlap
    torch.manual_seed(0)
    conv = StreamableConvTranspose1d(3, 2, kernel_size=6, stride=2, causal=True, norm="none")
    torch.nn.init.constant_(conv.convtr.bias, 5.0)
    x = torch.randn(1, 3, 9)
    with torch.no_grad():
        whole, state, outs = conv(x), None, []
        for i in range(9):
            out, state = conv.forward_streaming(x[..., i : i + 1], state)
            outs.append(out)
    torch.testing.assert_close(torch.cat(outs, -1), whole, atol=1e-5, rtol=1e-5)


# -------------------------------------------------------------------------------- 5. receptive field
def _changes(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool((a - b).abs().max() > 1e-10)


@pytest.mark.parametrize("causal", [False, True])
def test_receptive_field_by_perturbation(causal: bool) -> None:
    enc, dec = _pair(ratios=(4, 2), causal=causal, n_residual_layers=2, dtype=torch.float64)
    hop, frames, n = 8, 48, 24
    left, ahead = enc.left_context_samples(), enc.lookahead_samples()
    assert enc.receptive_field_samples() == left + hop + ahead
    assert (ahead == 0) == causal and left > 0
    lo, hi = n * hop - left, (n + 1) * hop - 1 + ahead
    assert lo - 1 >= 0 and hi + 1 < frames * hop, "frame n must sit away from the padded edges"
    x = _signal(frames, hop, batch=1, dtype=torch.float64)
    with torch.no_grad():
        ref = enc(x)[..., n]
        for pos, inside in ((lo - 1, False), (lo, True), (hi, True), (hi + 1, False)):
            x2 = x.clone()
            x2[..., pos] += 3.0
            assert _changes(enc(x2)[..., n], ref) == inside, (pos, inside, lo, hi)

    f_left, f_ahead = dec.left_context_frames(), dec.lookahead_frames()
    assert dec.receptive_field_frames() == f_left + 1 + f_ahead
    assert (f_ahead == 0) == causal
    f_lo, f_hi = n - f_left, n + f_ahead
    assert f_lo - 1 >= 0 and f_hi + 1 < frames
    z = torch.randn(1, TINY["dimension"], frames, dtype=torch.float64)
    span = slice(n * hop, (n + 1) * hop)
    with torch.no_grad():
        ref = dec(z)[..., span]
        for pos, inside in ((f_lo - 1, False), (f_lo, True), (f_hi, True), (f_hi + 1, False)):
            z2 = z.clone()
            z2[..., pos] += 3.0
            assert _changes(dec(z2)[..., span], ref) == inside, (pos, inside, f_lo, f_hi)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", ["conv_k7", "conv_dilated", "conv_strided", "convtr_s2", "convtr_s3_k9"])
def test_layer_input_range_matches_jacobian(causal: bool, kind: str) -> None:
    # every output step, every phase: the analytic range is exactly the hull of the nonzero Jacobian columns
    torch.manual_seed(0)
    layer = {
        "conv_k7": lambda: StreamableConv1d(1, 1, 7, causal=causal, norm="none"),
        "conv_dilated": lambda: StreamableConv1d(1, 1, 3, dilation=3, causal=causal, norm="none"),
        "conv_strided": lambda: StreamableConv1d(1, 1, 6, stride=3, causal=causal, norm="none"),
        "convtr_s2": lambda: StreamableConvTranspose1d(1, 1, 4, stride=2, causal=causal, norm="none"),
        "convtr_s3_k9": lambda: StreamableConvTranspose1d(1, 1, 9, stride=3, causal=causal, norm="none"),
    }[kind]().double()
    x = torch.randn(1, 1, 30, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v)[0, 0], x)[:, 0, 0]  # [T_out, T_in]
    checked = 0
    for t in range(jac.shape[0]):
        lo, hi = layer.input_range(t, t)
        if lo < 0 or hi >= x.shape[-1]:
            continue  # edge outputs also see padding, not only inputs
        nz = (jac[t].abs() > 0).nonzero().flatten()
        assert (nz.min().item(), nz.max().item()) == (lo, hi), (t, lo, hi, nz.tolist())
        checked += 1
    assert checked >= 5


def test_padding_split_follows_encodec() -> None:
    # odd padding totals put the extra step on the left (encodec: right = total // 2, left = total - right)
    conv = StreamableConv1d(1, 1, 4, norm="none")  # total 3 -> left 2, right 1
    assert conv.input_range(10, 10) == (8, 11)
    assert StreamableConv1d(1, 1, 4, causal=True, norm="none").input_range(10, 10) == (7, 10)
    convtr = StreamableConvTranspose1d(1, 1, 5, stride=2, norm="none")  # crop 3 -> left 2, right 1
    x = torch.randn(1, 1, 6)
    full = torch.nn.functional.conv_transpose1d(x, convtr.convtr.weight, convtr.convtr.bias, 2)
    torch.testing.assert_close(convtr(x), full[..., 2:-1])
    causal = StreamableConvTranspose1d(1, 1, 5, stride=2, causal=True, norm="none")
    full = torch.nn.functional.conv_transpose1d(x, causal.convtr.weight, causal.convtr.bias, 2)
    torch.testing.assert_close(causal(x), full[..., :-3])


def test_lstm_residual_skip() -> None:
    lstm = StreamableLSTM(4, num_layers=2)
    for p in lstm.parameters():
        torch.nn.init.zeros_(p)  # zero LSTM -> h = 0, so only the skip path remains
    x = torch.randn(2, 4, 5)
    torch.testing.assert_close(lstm(x), x, atol=0, rtol=0)


def test_receptive_field_with_lstm() -> None:
    enc, dec = _pair(ratios=(4, 2), causal=False, lstm=1)
    with pytest.raises(ValueError, match="unbounded"):
        enc.receptive_field_samples()
    with pytest.raises(ValueError, match="unbounded"):
        dec.receptive_field_frames()
    plain, _ = _pair(ratios=(4, 2), causal=False)
    # the LSTM adds no look-ahead and leaves the conv part unchanged
    assert enc.lookahead_samples() == plain.lookahead_samples() > 0
    assert enc.receptive_field_samples(ignore_lstm=True) == plain.receptive_field_samples()


# -------------------------------------------------------------------------------- 6. size
def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_encodec_defaults() -> None:
    # encodec repo defaults (true_skip=False, 1x1-conv skips) give the reference 7.43 M / 7.43 M
    enc = SEANetEncoder(lstm=2, true_skip=False)
    dec = SEANetDecoder(lstm=2, true_skip=False)
    assert abs(_n_params(enc) / 7.43e6 - 1) < 0.02
    assert abs(_n_params(dec) / 7.43e6 - 1) < 0.02
    # identity skips (audiocraft) drop exactly the four weight-normed 1x1 convs: sum(d*d + 2d) over 32..256
    skip_params = sum(d * d + 2 * d for d in (32, 64, 128, 256))
    assert _n_params(enc) - _n_params(SEANetEncoder(lstm=2, true_skip=True)) == skip_params
    assert _n_params(dec) - _n_params(SEANetDecoder(lstm=2, true_skip=True)) == skip_params
    assert any("parametrizations" in name for name, _ in enc.named_parameters())
