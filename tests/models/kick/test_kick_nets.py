"""Kick nets: 88,200 samples <-> 1x128x173 <-> 4x8x11 <-> vocoder samples; odd-size U-Net (and why not diffusers'
UNet2DModel); HiFi-GAN generator equal to an independent implementation (transformers' SpeechT5HifiGan)."""

from __future__ import annotations

import pytest
import torch

from audiolab.models.kick.audio import MelConfig
from audiolab.models.kick.hifigan import HiFiGANGenerator
from audiolab.models.kick.unet import KeywordEmbedding, LatentUNet
from audiolab.models.kick.vae import KickVAE


def test_shapes_audio_mel_latent_vocoder():
    mel = MelConfig()(torch.randn(2, 88200) * 0.1)
    assert mel.shape == (2, 128, 173)
    vae = KickVAE(channels=(4, 8, 8, 16))
    assert vae.latent_shape == (4, 8, 11)
    out = vae(mel[:, None])
    assert out["mu"].shape == (2, 4, 8, 11) and out["recon"].shape == (2, 1, 128, 173)
    assert 128 * 173 / (4 * 8 * 11) == pytest.approx(62.9, abs=0.1)  # the ~63x compression
    gen = HiFiGANGenerator(initial_channels=32)
    assert gen.hop == 512 and gen(mel).shape == (2, 173 * 512)
    with pytest.raises(ValueError, match=r"\[B, 1, 128, 173\]"):
        vae.encode(mel)
    with pytest.raises(ValueError, match="latent must be"):
        vae.decode(torch.zeros(1, 4, 8, 12))


def test_unet_odd_sizes_and_keyword_embedding():
    unet = LatentUNet(channels=(8, 16, 32), blocks_per_level=1, time_dim=16, keyword_dim=8, emb_dim=16,
                      max_keywords=10, attention_heads=2)
    x = torch.randn(3, 4, 8, 11)
    kw = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]])
    # zero-initialised output conv: the untrained net predicts 0; perturb it to see the conditioning
    torch.nn.init.normal_(unet.conv_out.weight, std=0.1)
    y = unet(x, torch.tensor([0, 500, 999]), kw)
    assert y.shape == x.shape
    emb = unet.keywords
    drop = torch.tensor([False, False, True])
    e = emb(kw, drop)
    assert torch.allclose(e[0], (emb.table[0] + emb.table[2]) / 2)  # mean of the active keywords
    assert torch.equal(e[1], emb.null) and torch.equal(e[2], emb.null)  # none active / dropped -> null
    with pytest.raises(ValueError, match="max_keywords"):
        KeywordEmbedding(2, 4)(torch.ones(1, 3))


def test_diffusers_unet2d_fails_on_8x11_but_not_8x12():
    from diffusers import UNet2DModel

    net = UNet2DModel(sample_size=(8, 12), in_channels=4, out_channels=4, block_out_channels=(8, 16, 16),
                      down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3, layers_per_block=1,
                      norm_num_groups=4)
    assert net(torch.randn(1, 4, 8, 12), 10).sample.shape == (1, 4, 8, 12)
    with pytest.raises(RuntimeError):
        net(torch.randn(1, 4, 8, 11), 10)  # 11 -> 6 -> 3 -> 6 -> 12 != 11: the skip concat fails


@pytest.mark.parametrize("width", [128, 32])
def test_hifigan_equals_transformers_speecht5_hifigan(width):
    transformers = pytest.importorskip("transformers", reason="the reference HiFi-GAN (transformers, dev extra)")
    cfg = transformers.SpeechT5HifiGanConfig(
        model_in_dim=128, sampling_rate=44100, upsample_initial_channel=width, upsample_rates=[8, 8, 2, 2, 2],
        upsample_kernel_sizes=[16, 16, 4, 4, 4], normalize_before=False)
    ref = transformers.SpeechT5HifiGan(cfg).eval()
    ours = HiFiGANGenerator(initial_channels=width).eval().remove_weight_norm()  # the reference has no weight norm
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    state = {k.replace("upsampler.", "ups."): v for k, v in ref.state_dict().items() if k not in ("mean", "scale")}
    ours.load_state_dict(state)
    mel = torch.randn(2, 128, 20)
    with torch.no_grad():
        assert torch.allclose(ours(mel), ref(mel.transpose(1, 2)), atol=1e-5)
    if width == 128:  # the reference paper sizes of the three widths at 128 mels / 5 stages
        sizes = {c: sum(p.numel() for p in HiFiGANGenerator(initial_channels=c).remove_weight_norm().parameters())
                 for c in (512, 256)}
        assert round(sizes[512] / 1e6, 2) == 14.13 and round(sizes[256] / 1e6, 2) == 3.65


def test_weight_norm_removal_keeps_output():
    g = HiFiGANGenerator(initial_channels=32).eval()
    mel = torch.randn(1, 128, 10)
    with torch.no_grad():
        a = g(mel)
        b = g.remove_weight_norm()(mel)
    assert torch.allclose(a, b, atol=1e-6)
