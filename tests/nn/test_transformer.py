"""Tests for audiolab.nn.transformer.TransformerStack."""

from __future__ import annotations

import pytest
import torch

from audiolab.nn.transformer import KVCache, TransformerStack


def _stack(**kw) -> TransformerStack:
    torch.manual_seed(0)
    cfg = dict(d_model=32, layers=2, heads=4)
    cfg.update(kw)
    return TransformerStack(**cfg).eval()


@pytest.mark.parametrize("positional", ["none", "sinusoidal", "learned", "rotary"])
@pytest.mark.parametrize("causal", [True, False])
def test_shape(positional: str, causal: bool) -> None:
    m = _stack(positional=positional, causal=causal)
    y = m(torch.randn(3, 17, 32))
    assert y.shape == (3, 17, 32)
    assert torch.isfinite(y).all()


def test_positional_changes_output() -> None:
    # With no positional signal, a constant sequence gives the same output at every step; with one, it must not.
    x = torch.ones(1, 8, 32)
    assert torch.allclose(_stack(positional="none")(x)[0, 0], _stack(positional="none")(x)[0, -1], atol=1e-5)
    for kind in ("sinusoidal", "learned"):  # (rotary acts on relative offsets: a constant input stays constant)
        y = _stack(positional=kind)(x)
        assert not torch.allclose(y[0, 0], y[0, -1], atol=1e-4), kind


@pytest.mark.parametrize("positional", ["none", "sinusoidal", "learned"])
def test_max_len_exceeded(positional: str) -> None:
    m = _stack(positional=positional, max_len=16)
    m(torch.randn(1, 16, 32))  # exactly max_len is fine
    with pytest.raises(ValueError, match="max_len=16"):
        m(torch.randn(1, 17, 32))


def test_max_len_counts_cache() -> None:
    m = _stack(max_len=8)
    cache = KVCache()
    m(torch.randn(1, 6, 32), cache=cache)
    with pytest.raises(ValueError, match="exceeds max_len"):
        m(torch.randn(1, 3, 32), cache=cache)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match=r"d_model \(30\).*heads \(4\)"):
        TransformerStack(30, 1, 4)
    with pytest.raises(ValueError, match="allowed values.*sinusoidal"):
        TransformerStack(32, 1, 4, positional="alibi")
    with pytest.raises(ValueError, match="even head width"):
        TransformerStack(12, 1, 4, positional="rotary")
    with pytest.raises(ValueError, match="attention_window"):
        TransformerStack(32, 1, 4, attention_window=0)
    with pytest.raises(ValueError, match="expected input"):
        _stack()(torch.randn(2, 5, 16))


def test_causality() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 20, 32)
    x2 = x.clone()
    x2[:, 11:] = torch.randn(2, 9, 32)
    causal = _stack(causal=True)
    assert torch.allclose(causal(x)[:, :11], causal(x2)[:, :11], atol=1e-5)
    noncausal = _stack(causal=False)
    assert not torch.allclose(noncausal(x)[:, :11], noncausal(x2)[:, :11], atol=1e-5)


@pytest.mark.parametrize("chunks", [[1] * 12, [5, 1, 6], [12]])
def test_kv_cache_matches_full(chunks: list[int]) -> None:
    m = _stack(positional="learned")
    x = torch.randn(2, 12, 32)
    full = m(x)
    cache, outs, t = KVCache(), [], 0
    for n in chunks:
        outs.append(m(x[:, t : t + n], cache=cache))
        t += n
    assert cache.length == 12
    assert torch.allclose(torch.cat(outs, dim=1), full, atol=1e-5)


def test_kv_cache_requires_causal() -> None:
    with pytest.raises(ValueError, match="causal"):
        _stack(causal=False)(torch.randn(1, 4, 32), cache=KVCache())


def test_dropout_only_in_train() -> None:
    m = _stack(dropout=0.5)
    x = torch.randn(2, 10, 32)
    assert torch.allclose(m(x), m(x))
    m.train()
    assert not torch.allclose(m(x), m(x))


def test_rotary_matches_transformers_llama() -> None:
    """Our rotary tables and rotation equal transformers' Llama implementation (the GPT-NeoX layout)."""
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    from audiolab.nn.transformer import apply_rotary, rotary_angles

    rope = llama.LlamaRotaryEmbedding(LlamaConfig(hidden_size=32, num_attention_heads=4, max_position_embeddings=64))
    x = torch.randn(2, 4, 10, 8)
    pos = torch.arange(3000, 3010)
    cos_ref, sin_ref = rope(x, pos[None])
    cos, sin = rotary_angles(pos, 8)
    assert torch.allclose(cos, cos_ref[0], atol=1e-4) and torch.allclose(sin, sin_ref[0], atol=1e-4)
    q_ref, _ = llama.apply_rotary_pos_emb(x, x, cos_ref, sin_ref)
    assert torch.allclose(apply_rotary(x, cos, sin), q_ref, atol=1e-4)


def test_rotary_scores_depend_on_offset_only() -> None:
    from audiolab.nn.transformer import apply_rotary, rotary_angles

    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(i: int, j: int) -> float:
        ci, si = rotary_angles(torch.tensor([i]), 16)
        cj, sj = rotary_angles(torch.tensor([j]), 16)
        return float((apply_rotary(q, ci, si) * apply_rotary(k, cj, sj)).sum())

    assert score(7, 3) == pytest.approx(score(5007, 5003), abs=1e-3)
    assert score(7, 3) != pytest.approx(score(7, 5), abs=1e-3)


@pytest.mark.parametrize("positional", ["none", "rotary"])
def test_window_output_depends_only_on_last_steps(positional: str) -> None:
    """With a window W and L layers, step t sees steps > t - L(W-1) only, wherever the sequence starts: the
    whole-sequence output equals the output of a crop that starts anywhere before that span."""
    w, layers = 5, 2
    m = _stack(positional=positional, attention_window=w, layers=layers, max_len=16)
    x = torch.randn(2, 40, 32)  # longer than max_len: accepted, positions are relative
    full = m(x)
    span = layers * (w - 1)
    for start in (3, 11, 20):
        crop = m(x[:, start:])
        t0 = start + span  # from here on the crop has the whole receptive field
        assert torch.allclose(crop[:, t0 - start :], full[:, t0:], atol=1e-5)
    # and the window matters: an unbounded stack gives another output
    assert not torch.allclose(_stack(positional=positional, layers=layers)(x)[:, -1], full[:, -1], atol=1e-4)


@pytest.mark.parametrize("chunks", [[1] * 12, [5, 1, 6], [12], [3, 9]])
def test_fixed_span_kv_cache_matches_full(chunks: list[int]) -> None:
    m = _stack(positional="rotary", attention_window=4)
    x = torch.randn(2, 12, 32)
    full = m(x)
    cache, outs, t = KVCache(), [], 0
    for n in chunks:
        outs.append(m(x[:, t : t + n], cache=cache))
        t += n
        assert all(k.shape[2] <= 3 for k in cache.keys)  # W - 1 kept steps, whatever the stream length
    assert cache.length == 12
    assert torch.allclose(torch.cat(outs, dim=1), full, atol=1e-5)
