"""TF-GridNet V2 extractor: ESPnet parity, FiLM / re-injection identity at init, conditioning, caching, precision."""

from __future__ import annotations

import copy

import pytest
import torch

from audiolab.models.tse.nets import FiLM, GridNetV2Block, TSENet, band_edges, count_parameters

BANDS = [[500, 2000], [1000, 8000]]


def small_net(**kw) -> TSENet:
    cfg = dict(sample_rate=16000, n_fft=256, hop_length=128, encoder="bandsplit", bands=BANDS, emb_dim=8, lstm_hidden=8,
               n_blocks=2, attn_heads=2, attn_qk_dim=2, fusion="concat_project")
    cfg.update(kw)
    torch.manual_seed(0)
    return TSENet(**cfg).eval()


def test_gridnet_block_matches_espnet_parameter_formula():
    # ESPnet WSJ0-2mix default (D48 I4 J1 H192 L4 F65, 6 blocks) = 8.18 M incl. the 3x3 conv in/out (reference table)
    blocks = sum(count_parameters(GridNetV2Block(48, 65, 4, 1, 192, 4)) for _ in range(6))
    conv_in = 2 * 48 * 9 + 48 + 2 * 48  # Conv2d(2 -> 48, 3x3) + GroupNorm(1, 48)
    deconv = 48 * 4 * 9 + 4  # ConvTranspose2d(48 -> 2 sources x 2, 3x3)
    assert blocks + conv_in + deconv == 8_175_874


def test_gridnet_block_equals_espnet_block():
    pytest.importorskip("espnet2.enh.separator.tfgridnetv2_separator")
    from audiolab.models.tse.bench import block_parity

    for name, r in block_parity().items():
        assert r["params_ours"] == r["params_peer"], name
        assert r["max_abs_diff"] < 1e-4, (name, r)


def test_band_edges_cover_all_bins():
    edges = band_edges(2048, 48000, [[100, 1000], [200, 4000], [400, 8000], [800, 16000], [1000, 24000]])
    assert edges[0] == 0 and edges[-1] == 1025 and len(edges) - 1 == 53
    assert all(b > a for a, b in zip(edges[:-1], edges[1:]))


def test_film_is_exact_identity_at_init():
    film = FiLM(8, 16)
    x, z = torch.randn(3, 16, 5, 7), torch.randn(3, 8)
    assert torch.equal(film(x, z), x)


def test_film_and_reinjection_are_identity_at_init():
    base = small_net()
    full = small_net(film=True, film_blocks=[0, 1], reinject_blocks=[0, 1])
    # copy the shared weights: the extra modules must not change the output before training
    missing = full.load_state_dict(base.state_dict(), strict=False)
    assert not missing.unexpected_keys
    x, e = torch.randn(2, 8000), torch.randn(2, 8000)
    with torch.no_grad():
        assert torch.allclose(full(x, e), base(x, e), atol=1e-6)


def test_enrollment_changes_the_output():
    net = small_net(film=True)
    with torch.no_grad():  # give FiLM a non-zero gain so both paths carry the enrollment
        net.film_fusion.lin.weight.normal_(0, 0.5)
    x = torch.randn(1, 8000)
    e1, e2 = torch.randn(1, 8000), torch.sin(torch.arange(8000) * 0.05)[None]
    with torch.no_grad():
        y1, y2 = net(x, e1), net(x, e2)
    assert (y1 - y2).abs().max() > 1e-4 * y1.abs().max()


def test_enrollment_cache_equals_direct_path_and_broadcasts():
    net = small_net(film=True, reinject_blocks=[1])
    x, e = torch.randn(3, 8000), torch.randn(1, 6000)
    with torch.no_grad():
        direct = net(x, e.expand(3, -1))
        cached = net(x, enrollment_cache=net.encode_enrollment(e))
    assert torch.allclose(direct, cached, atol=1e-5)


def test_output_length_and_scale_follow_the_mixture():
    net = small_net()
    x, e = torch.randn(2, 7777), torch.randn(2, 5000)
    with torch.no_grad():
        y1, y2 = net(x, e), net(10 * x, e)
    assert y1.shape == x.shape
    assert torch.allclose(y2, 10 * y1, rtol=1e-3, atol=1e-5)  # input std normalisation undone at the output


def test_gradient_checkpointing_gives_the_same_gradients():
    a = small_net(film=True).train()
    b = copy.deepcopy(a)
    b.grad_checkpointing = True
    x, e = torch.randn(1, 2000), torch.randn(1, 2000)
    a(x, e).square().mean().backward()
    b(x, e).square().mean().backward()
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        if pa.grad is not None:
            assert torch.allclose(pa.grad, pb.grad, atol=1e-6, rtol=1e-4), n


def test_lstms_run_in_fp32_under_bf16_autocast():
    net = small_net()
    seen = []
    for m in net.modules():
        if isinstance(m, torch.nn.LSTM):
            m.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].dtype, out[0].dtype)))
    x, e = torch.randn(1, 4000), torch.randn(1, 4000)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x, e)
    assert seen and all(i == torch.float32 and o == torch.float32 for i, o in seen)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("mode", ["zero_reference", "skip"])
def test_conditioning_dropout_modes(mode):
    net = small_net(film=True, cond_dropout=1.0, cond_dropout_mode=mode).train()
    with torch.no_grad():
        net.film_fusion.lin.weight.normal_(0, 0.5)
    x = torch.randn(1, 4000)
    with torch.no_grad():
        y1, y2 = net(x, torch.randn(1, 4000)), net(x, torch.randn(1, 4000))
    # every row dropped: the output no longer depends on the enrollment
    assert torch.allclose(y1, y2, atol=1e-6)
    net.eval()  # never at inference
    with torch.no_grad():
        assert not torch.allclose(net(x, torch.randn(1, 4000)), net(x, torch.randn(1, 4000)), atol=1e-6)


def test_bad_config_names_the_key():
    with pytest.raises(ValueError, match="reinject_blocks"):
        small_net(reinject_blocks=[5])
    with pytest.raises(ValueError, match="fusion"):
        small_net(fusion="sum")
    with pytest.raises(ValueError, match="bands"):
        small_net(bands=None)


def test_mask_output_passes_the_mixture_at_init():
    net = small_net(output="mask")
    for mlp in net.decoder.mlps:  # isolate the bias: a zero last-layer weight leaves exactly the 1 + 0j mask
        torch.nn.init.zeros_(mlp[-1].weight)
    x, e = torch.randn(2, 8000), torch.randn(2, 8000)
    with torch.no_grad():
        y = net(x, e)
    assert torch.allclose(y, x, atol=1e-4)


def test_band_log_energy_restores_the_level_the_band_norm_removes():
    from audiolab.models.tse.nets import BandSplitEncoder

    torch.manual_seed(0)
    edges = band_edges(256, 16000, [[500, 8000]])
    spec = torch.randn(1, 129, 5, dtype=torch.complex64)
    louder = spec.clone()
    louder[:, edges[1] : edges[2]] *= 10.0  # one band 20 dB up
    plain = BandSplitEncoder(8, edges, 1e-5)
    assert torch.allclose(plain(spec), plain(louder), atol=1e-4)  # LayerNorm per band: level invisible
    enc = BandSplitEncoder(8, edges, 1e-5, log_energy=True)
    a, b = enc(spec), enc(louder)
    changed = (a - b).abs().amax(dim=(0, 1, 2))  # [K]
    assert changed[1] > 1e-3 and torch.all(changed[torch.arange(len(changed)) != 1] < 1e-5)
