"""Tests for audiolab.nn.rvq.ResidualVectorQuantizer."""

from __future__ import annotations

import pytest
import torch

from audiolab.nn.rvq import ResidualVectorQuantizer

D, BINS, T, B = 16, 64, 50, 4


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: intra-op threads only add sync overhead (seconds on a loaded 2-core box)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _mixture(n_items: int = 4, t: int = T, n_centres: int = 32, seed: int = 0) -> torch.Tensor:
    """``[n_items, D, t]`` frames drawn from a fixed Gaussian mixture."""
    g = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(n_centres, D, generator=g)
    idx = torch.randint(0, n_centres, (n_items * t,), generator=g)
    frames = centres[idx] + 0.5 * torch.randn(n_items * t, D, generator=g)
    return frames.view(n_items, t, D).transpose(1, 2).contiguous()


def _rvq(**kw) -> ResidualVectorQuantizer:
    torch.manual_seed(0)
    cfg = dict(dim=D, n_q=8, bins=BINS, kmeans_iters=20)
    cfg.update(kw)
    return ResidualVectorQuantizer(**cfg)


def test_reconstruction_improves_with_n_q() -> None:
    x = _mixture(n_items=40)  # 2000 vectors
    rvq = _rvq(quantizer_dropout=False).train()
    rvq(x)  # k-means init of every layer on its residual
    rvq.eval()
    mse = [float((rvq.decode(rvq.encode(x, n_q=k)) - x).pow(2).mean()) for k in range(1, 9)]
    assert all(a > b for a, b in zip(mse, mse[1:])), mse
    assert mse[-1] < 0.2 * float(x.pow(2).mean())
    # forward in eval agrees with encode/decode
    out = rvq(x, n_q=3)
    assert torch.equal(out["codes"], rvq.encode(x, n_q=3))
    assert torch.allclose(out["quantized"], rvq.decode(out["codes"]), atol=1e-5)


def test_codebook_usage_after_kmeans() -> None:
    x = _mixture(n_items=50, n_centres=200)  # 2500 vectors, more clusters than codes
    rvq = _rvq(n_q=2, kmeans_iters=50, threshold_ema_dead_code=0.0, quantizer_dropout=False).train()
    rvq(x)
    assert bool(rvq.layers[0].inited)
    codes = rvq.eval().encode(x)
    for k in range(2):
        used = codes[:, k].unique().numel()
        assert used / BINS > 0.8, (k, used)
    # k-means beats codes drawn at random from the data (its own starting point) on the init batch
    frames = x.transpose(1, 2).reshape(-1, D)
    mse_kmeans = (rvq.decode(codes[:, :1]) - x).pow(2).mean()
    random_codes = frames[torch.randperm(frames.shape[0])[:BINS]]
    mse_random = torch.cdist(frames, random_codes).min(dim=1).values.pow(2).sum() / frames.numel()
    assert mse_kmeans < 0.8 * mse_random, (float(mse_kmeans), float(mse_random))


def test_dead_codes_replaced() -> None:
    x = _mixture(n_items=40)
    rvq = _rvq(n_q=1, kmeans_init=False, quantizer_dropout=False).train()
    layer = rvq.layers[0]
    # Put codes 0..9 far away from any data so they are never chosen, and mark them dead.
    dead = torch.arange(10)
    layer.embed[dead] = 1e3
    layer.embed_avg[dead] = 1e3
    layer.cluster_size.fill_(100.0)
    layer.cluster_size[dead] = 0.0
    layer.embed_avg.copy_(layer.embed * layer.cluster_size[:, None])
    layer.embed_avg[dead] = 1e3
    old = layer.embed.clone()
    out = rvq(x)
    assert out["replaced_codes"] >= 10
    assert not torch.allclose(layer.embed[dead], old[dead])
    frames = x.transpose(1, 2).reshape(-1, D)
    dist = torch.cdist(layer.embed[dead], frames)  # [10, N]
    assert dist.min(dim=1).values.max() < 1e-5  # every replaced code is a batch vector
    assert torch.all(layer.cluster_size[dead] == 2.0)
    # the replacement survives the next EMA update (embed_avg / cluster_size were reset with it)
    rvq(x)
    assert layer.embed[dead].abs().max() < frames.abs().max()
    # eval: no replacement, no change
    rvq.eval()
    before = layer.embed.clone()
    assert rvq(x)["replaced_codes"] == 0
    assert torch.equal(before, layer.embed)


def test_every_layer_commitment_has_gradient_and_ste_identity() -> None:
    x0 = _mixture(n_items=B)
    rvq = _rvq(n_q=4, quantizer_dropout=False).train()
    rvq(x0)  # init
    x = x0.clone().requires_grad_(True)
    out = rvq(x)
    per_layer = out["commitment_per_layer"]
    assert per_layer.shape == (4,)
    for k in range(4):
        (g,) = torch.autograd.grad(per_layer[k], x, retain_graph=True)
        assert g.abs().sum() > 0, f"layer {k} commitment has no gradient to x"
    assert torch.allclose(out["commitment"], per_layer.mean())
    # straight-through: d(sum(quantized * w))/dx == w
    w = torch.randn_like(x)
    (g,) = torch.autograd.grad((out["quantized"] * w).sum(), x)
    assert torch.equal(g, w)


def test_quantizer_dropout_covers_all_n_q() -> None:
    x = torch.randn(8, D, 10)
    rvq = _rvq(n_q=4, kmeans_iters=2, dropout_prob=1.0).train()
    seen: set[int] = set()
    for _ in range(30):
        out = rvq(x)
        n = out["n_q_per_item"]
        seen.update(n.tolist())
        assert out["codes"].shape == (8, int(n.max()), 10)
        assert out["commitment_per_layer"].shape == (int(n.max()),)
    assert seen == {1, 2, 3, 4}

    rvq = _rvq(n_q=4, kmeans_iters=2, dropout_prob=0.5).train()
    for _ in range(10):
        n = rvq(x)["n_q_per_item"]
        assert (n == 4).sum() >= 4
        assert torch.all(n[4:] == 4)
    # eval / explicit n_q: fixed for all items
    assert torch.all(rvq.eval()(x)["n_q_per_item"] == 4)
    assert torch.all(rvq.train()(x, n_q=2)["n_q_per_item"] == 2)


def test_dropout_masks_statistics_and_output() -> None:
    # Items beyond the first use only layer 0; layer 1's EMA must only see item 0's frames.
    rvq = _rvq(n_q=2, kmeans_init=False, threshold_ema_dead_code=0.0, quantizer_dropout=False).train()
    x = torch.randn(2, D, 20)
    n_items = torch.tensor([2, 1])
    rvq._n_q_per_item = lambda batch, n_q, device: n_items  # type: ignore[method-assign]
    before = rvq.layers[1].cluster_size.clone()
    embed0 = rvq.layers[0].embed.clone()  # the forward quantizes with the pre-update codebook
    out = rvq(x)
    added = (rvq.layers[1].cluster_size - 0.99 * before) / 0.01
    assert torch.isclose(added.sum(), torch.tensor(20.0), atol=1e-3)
    # item 1's quantized equals layer-0 only reconstruction
    q1 = embed0[out["codes"][1, 0]].t()[None]  # [1, D, T]
    assert torch.allclose(out["quantized"][1:], q1, atol=1e-5)


def test_bandwidth_mapping() -> None:
    rvq = ResidualVectorQuantizer(dim=8, n_q=32, bins=1024, kmeans_init=False)
    assert rvq.n_q_for_bandwidth(1.5, 75) == 2
    assert rvq.n_q_for_bandwidth(3.0, 75) == 4
    assert rvq.n_q_for_bandwidth(6.0, 75) == 8
    assert rvq.n_q_for_bandwidth(12.0, 75) == 16
    assert rvq.n_q_for_bandwidth(24.0, 75) == 32
    bws = rvq.supported_bandwidths(75)
    assert len(bws) == 32 and bws[0] == 0.75 and bws[-1] == 24.0
    assert [rvq.n_q_for_bandwidth(bw, 75) for bw in bws] == list(range(1, 33))
    # DAC 44.1 kHz: 86.13 frames/s, 9 codebooks -- round trip despite inexact floats
    dac = ResidualVectorQuantizer(dim=8, n_q=9, bins=1024, kmeans_init=False)
    dac_bws = dac.supported_bandwidths(44100 / 512)
    assert [dac.n_q_for_bandwidth(bw, 44100 / 512) for bw in dac_bws] == list(range(1, 10))
    with pytest.raises(ValueError, match=r"48.*kbps.*supported.*24\.0"):
        rvq.n_q_for_bandwidth(48.0, 75)
    with pytest.raises(ValueError, match="0.5"):
        rvq.n_q_for_bandwidth(0.5, 75)


def test_ema_update_closed_form() -> None:
    decay, eps = 0.9, 0.05  # large epsilon so that the Laplace smoothing is visible
    rvq = _rvq(
        n_q=1,
        kmeans_init=False,
        threshold_ema_dead_code=0.0,
        decay=decay,
        epsilon=eps,
        quantizer_dropout=False,
    )
    layer = rvq.layers[0]
    g = torch.Generator().manual_seed(1)
    layer.embed.copy_(torch.randn(BINS, D, generator=g))
    layer.cluster_size.copy_(torch.rand(BINS, generator=g) * 5 + 0.5)
    layer.embed_avg.copy_(torch.randn(BINS, D, generator=g))
    cs_old, ea_old, embed_old = layer.cluster_size.clone(), layer.embed_avg.clone(), layer.embed.clone()
    # one batch: all frames near code 3
    x = embed_old[3][None, :, None] + 0.01 * torch.randn(2, D, 7, generator=g)
    rvq.train()(x)
    frames = x.transpose(1, 2).reshape(-1, D)
    assert torch.all(torch.cdist(frames, embed_old).argmin(1) == 3)
    counts = torch.zeros(BINS)
    counts[3] = 14.0
    sums = torch.zeros(BINS, D)
    sums[3] = frames.sum(0)
    cs = decay * cs_old + (1 - decay) * counts
    ea = decay * ea_old + (1 - decay) * sums
    n = cs.sum()
    smoothed = (cs + eps) / (n + BINS * eps) * n
    assert torch.allclose(layer.cluster_size, cs)
    assert torch.allclose(layer.embed_avg, ea, atol=1e-6)
    assert torch.allclose(layer.embed, ea / smoothed[:, None], atol=1e-5)
    assert torch.allclose(
        layer.embed[3], (decay * ea_old[3] + (1 - decay) * sums[3]) / smoothed[3], atol=1e-5
    )


def test_factorized_variant() -> None:
    rvq = _rvq(n_q=4, codebook_dim=4, dropout_prob=0.5).train()
    assert not any(n.endswith("embed") for n, _ in rvq.named_buffers())
    x = torch.randn(B, D, T, requires_grad=True)
    out = rvq(x)
    assert out["quantized"].shape == (B, D, T)
    assert torch.isfinite(out["commitment"]) and out["commitment"] > 0
    (out["commitment"] + out["quantized"].pow(2).mean()).backward()
    for layer in rvq.layers[: out["codes"].shape[1]]:
        grads = [p.grad for p in layer.in_proj.parameters()]
        assert all(gr is not None for gr in grads) and sum(float(gr.abs().sum()) for gr in grads) > 0
    assert rvq.layers[0].codebook.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0
    rvq.eval()
    codes = rvq.encode(x, n_q=3)
    assert codes.shape == (B, 3, T) and codes.dtype == torch.long
    recon = rvq.decode(codes)
    assert recon.shape == (B, D, T)
    out = rvq(x, n_q=3)
    assert torch.equal(out["codes"], codes)
    assert torch.allclose(out["quantized"], recon, atol=1e-5)


@pytest.mark.parametrize("codebook_dim", [None, 4])
def test_bf16_autocast_gives_float32(codebook_dim: int | None) -> None:
    rvq = _rvq(n_q=2, kmeans_iters=2, codebook_dim=codebook_dim).train()
    x = torch.randn(B, D, T)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rvq(x.bfloat16())
        codes = rvq.encode(x.bfloat16())
        recon = rvq.decode(codes)
    assert out["quantized"].dtype == torch.float32
    assert out["commitment"].dtype == torch.float32
    assert recon.dtype == torch.float32
    assert out["codes"].dtype == torch.long


def test_bad_n_q_and_shapes() -> None:
    rvq = _rvq(n_q=2).eval()
    with pytest.raises(ValueError):
        rvq(torch.randn(1, D, 5), n_q=3)
    with pytest.raises(ValueError):
        rvq(torch.randn(1, D + 1, 5))
    with pytest.raises(ValueError):
        rvq.decode(torch.zeros(1, 3, 5, dtype=torch.long))


def test_dead_code_threshold_above_uniform_usage_warns_at_first_training_batch(caplog):
    """2 items x 200 frames over 1024 codes = 0.39 vectors per code per step < EnCodec's threshold 2: every code
    would be replaced every step. The quantizer says so at its first training batch; 64 x 75 frames (4.7) is fine."""
    from audiolab.nn.rvq import ResidualVectorQuantizer

    rvq = ResidualVectorQuantizer(dim=4, n_q=1, bins=1024, kmeans_iters=1, threshold_ema_dead_code=2.0).train()
    with caplog.at_level("WARNING", logger="audiolab"):
        rvq(torch.randn(2, 4, 200))
    assert "threshold_ema_dead_code=2" in caplog.text and "0.39" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="audiolab"):
        rvq(torch.randn(2, 4, 200))  # inited: no second warning
    assert caplog.text == ""
    big = ResidualVectorQuantizer(dim=4, n_q=1, bins=1024, kmeans_iters=1, threshold_ema_dead_code=2.0).train()
    assert not big.check_dead_code_threshold(64 * 75)
