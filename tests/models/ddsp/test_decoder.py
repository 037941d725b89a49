"""Tests for audiolab.models.ddsp.decoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audiolab.models.ddsp.decoder import (
    GRUDecoder,
    MLPDecoder,
    TransformerDecoder,
    build_decoder,
    count_parameters,
)

B, F, OUT = 3, 50, 126
# Small widths keep the suite fast; the paper-sized GRU is only built in the parameter-count test.
SMALL = dict(hidden_size=32, layers_per_stack=2, gru_size=24, d_model=32, layers=2, heads=4)


def _make(backbone: str, in_features: int = 2, **kw) -> nn.Module:
    torch.manual_seed(0)
    cfg = {**SMALL, **kw}
    return build_decoder(backbone, in_features, OUT, **cfg).eval()


@pytest.mark.parametrize("backbone", ["mlp", "gru", "transformer"])
@pytest.mark.parametrize("in_features", [2, 4])
def test_shape(backbone: str, in_features: int) -> None:
    y = _make(backbone, in_features)(torch.randn(B, F, in_features))
    assert y.shape == (B, F, OUT)
    assert torch.isfinite(y).all()


def test_builder_types() -> None:
    assert isinstance(_make("mlp"), MLPDecoder)
    assert isinstance(_make("gru"), GRUDecoder)
    assert isinstance(_make("transformer"), TransformerDecoder)


@pytest.mark.parametrize("backbone", ["mlp", "gru", "transformer"])
def test_gradients_reach_every_parameter(backbone: str) -> None:
    m = _make(backbone, 4).train()
    m(torch.randn(B, F, 4)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("backbone", ["mlp", "gru", "transformer"])
def test_initial_outputs_moderate(backbone: str) -> None:
    # Outputs feed exp_sigmoid; huge initial values would saturate it. Use paper-scale inputs in [0, 1].
    y = _make(backbone, 2)(torch.rand(B, F, 2))
    assert y.abs().max() < 5.0
    assert y.std() > 0.05  # and not degenerate/zero


def _future_replaced(x: torch.Tensor, t: int) -> torch.Tensor:
    x2 = x.clone()
    x2[:, t + 1 :] = torch.randn_like(x2[:, t + 1 :])
    return x2


@pytest.mark.parametrize(
    "backbone,kw",
    [("gru", {}), ("gru", {"causal": False}), ("mlp", {}), ("transformer", {"causal": True})],
)
def test_causal(backbone: str, kw: dict) -> None:
    m = _make(backbone, **kw)
    torch.manual_seed(1)
    x = torch.randn(B, F, 2)
    t = 20
    y, y2 = m(x), m(_future_replaced(x, t))
    assert torch.allclose(y[:, : t + 1], y2[:, : t + 1], atol=1e-5)
    assert not torch.allclose(y[:, t + 1 :], y2[:, t + 1 :], atol=1e-5)  # the change did reach the model


def test_noncausal_transformer_sees_future() -> None:
    m = _make("transformer", causal=False)
    torch.manual_seed(1)
    x = torch.randn(B, F, 2)
    t = 20
    assert not torch.allclose(m(x)[:, : t + 1], m(_future_replaced(x, t))[:, : t + 1], atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("positional", ["none", "sinusoidal", "learned"])
def test_transformer_batch_independence(causal: bool, positional: str) -> None:
    m = _make("transformer", causal=causal, positional=positional)
    torch.manual_seed(2)
    x = torch.randn(B, F, 2)
    x2 = x.clone()
    x2[1] = torch.randn(F, 2)
    y, y2 = m(x), m(x2)
    assert torch.allclose(y[0], y2[0], atol=1e-5)
    assert torch.allclose(y[2], y2[2], atol=1e-5)
    assert not torch.allclose(y[1], y2[1], atol=1e-5)


def test_gru_streaming_matches_full() -> None:
    m = _make("gru")
    x = torch.randn(2, F, 2)
    a, h = m.forward_with_state(x[:, :20])
    b, _ = m.forward_with_state(x[:, 20:], h)
    assert torch.allclose(torch.cat([a, b], dim=1), m(x), atol=1e-5)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="allowed values.*mlp.*gru.*transformer"):
        build_decoder("lstm", 2, OUT)
    with pytest.raises(ValueError, match=r"d_model \(30\).*heads \(4\)"):
        build_decoder("transformer", 2, OUT, d_model=30, heads=4)
    with pytest.raises(ValueError, match="allowed values.*learned"):
        build_decoder("transformer", 2, OUT, positional="alibi")
    with pytest.raises(ValueError, match="expected input"):
        _make("gru", 2)(torch.randn(B, F, 3))


def test_layers_per_stack_zero() -> None:
    # tiny_instrument.gin: layers_per_stack 0 -> stacks are identity, GRU sees the raw features.
    m = build_decoder("gru", 2, OUT, layers_per_stack=0, gru_size=16)
    assert m(torch.randn(1, 5, 2)).shape == (1, 5, OUT)


def test_parameter_counts() -> None:
    # Paper solo_instrument config; magenta's Keras GRU(reset_after) has the same layout -> ~4.80M.
    assert count_parameters(build_decoder("gru", 2, OUT)) == 4_801_150
    m = build_decoder("transformer", 2, OUT, d_model=64, layers=2, heads=4)
    assert count_parameters(m) == 108_478
    m.out.weight.requires_grad_(False)
    assert count_parameters(m, trainable_only=True) == 108_478 - 64 * OUT
