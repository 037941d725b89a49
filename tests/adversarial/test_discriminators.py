"""Discriminators: HiFi-GAN MPD / MSD parameter counts vs jik876/hifi-gan, layer layout, shapes, folding/pooling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audiolab.adversarial import (
    CombinedDiscriminator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    MultiScaleSTFTDiscriminator,
    PeriodDiscriminator,
    ScaleDiscriminator,
    hifigan_discriminator,
)

# Counted by instantiating jik876/hifi-gan models.py (MultiPeriodDiscriminator(), MultiScaleDiscriminator()).
REF_MPD_PARAMS = 41_105_770
REF_MPD_PER_PERIOD = 8_221_154
REF_MSD_PARAMS = 29_618_821
REF_MSD_PER_SCALE = [9_870_209, 9_874_306, 9_874_306]  # the first uses spectral norm: no weight-norm gains


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def conv_params(c_in: int, c_out: int, kernel: int, groups: int = 1, weight_norm: bool = True) -> int:
    """weight + bias (+ one weight-norm gain per output channel)."""
    return c_out * (c_in // groups) * kernel + c_out + (c_out if weight_norm else 0)


@pytest.fixture(scope="module")
def mpd():
    torch.manual_seed(0)
    return MultiPeriodDiscriminator()


@pytest.fixture(scope="module")
def msd():
    torch.manual_seed(0)
    return MultiScaleDiscriminator()


def test_mpd_parameter_count_matches_reference_and_layer_formula(mpd):
    assert mpd.names == ["p2", "p3", "p5", "p7", "p11"]
    assert n_params(mpd) == REF_MPD_PARAMS
    assert [n_params(d) for d in mpd.discriminators] == [REF_MPD_PER_PERIOD] * 5
    chans = [1, 32, 128, 512, 1024, 1024]
    formula = sum(conv_params(i, o, 5) for i, o in zip(chans[:-1], chans[1:])) + conv_params(1024, 1, 3)
    assert formula == REF_MPD_PER_PERIOD


def test_mpd_layer_layout(mpd):
    d = mpd.discriminators[0]
    convs = list(d.convs) + [d.post]
    assert [c.kernel_size for c in convs] == [(5, 1)] * 5 + [(3, 1)]
    assert [c.stride for c in convs] == [(3, 1)] * 4 + [(1, 1)] * 2
    assert [c.padding for c in convs] == [(2, 0)] * 5 + [(1, 0)]
    assert [c.out_channels for c in convs] == [32, 128, 512, 1024, 1024, 1]
    assert all(hasattr(c.parametrizations.weight, "original0") for c in convs)  # weight norm: (g, v)


def test_msd_parameter_count_matches_reference_and_layer_formula(msd):
    assert msd.names == ["s1", "s2", "s4"]
    assert n_params(msd) == REF_MSD_PARAMS
    assert [n_params(d) for d in msd.discriminators] == REF_MSD_PER_SCALE
    layers = [(1, 128, 15, 1), (128, 128, 41, 4), (128, 256, 41, 16), (256, 512, 41, 16), (512, 1024, 41, 16),
              (1024, 1024, 41, 16), (1024, 1024, 5, 1), (1024, 1, 3, 1)]
    for i, wn in enumerate((False, True, True)):
        assert sum(conv_params(*spec, weight_norm=wn) for spec in layers) == REF_MSD_PER_SCALE[i]


def test_msd_layer_layout(msd):
    first, second = msd.discriminators[0], msd.discriminators[1]
    convs = list(second.convs) + [second.post]
    assert [c.kernel_size[0] for c in convs] == [15, 41, 41, 41, 41, 41, 5, 3]
    assert [c.stride[0] for c in convs] == [1, 2, 2, 4, 4, 1, 1, 1]
    assert [c.groups for c in convs] == [1, 4, 16, 16, 16, 16, 1, 1]
    assert [c.padding[0] for c in convs] == [7, 20, 20, 20, 20, 20, 2, 1]
    # first scale: spectral norm (one parametrization without a gain); others: weight norm (g, v)
    assert not hasattr(first.convs[0].parametrizations.weight, "original0")
    assert hasattr(second.convs[0].parametrizations.weight, "original0")
    assert [(p.kernel_size, p.stride, p.padding) for p in msd.pools] == [((4,), (2,), (2,))] * 2


def test_hifigan_shapes_on_a_segment(mpd, msd):
    """8192-sample segment (HiFi-GAN's): logit / feature-map shapes as jik876's models produce them."""
    x = 0.1 * torch.randn(2, 8192)
    with torch.no_grad():
        logits, feats = mpd(x)
        assert [tuple(lg.shape) for lg in logits] == [(2, 102), (2, 102), (2, 105), (2, 105), (2, 110)]
        assert [tuple(f.shape) for f in feats[0]] == [(2, 32, 1366, 2), (2, 128, 456, 2), (2, 512, 152, 2),
                                                     (2, 1024, 51, 2), (2, 1024, 51, 2), (2, 1, 51, 2)]
        assert all(len(f) == 6 for f in feats)
        logits, feats = msd(x.unsqueeze(1))  # [B, 1, T] accepted too
        assert [tuple(lg.shape) for lg in logits] == [(2, 128), (2, 65), (2, 33)]
        assert [f.shape[-1] for f in feats[0]] == [8192, 4096, 2048, 512, 128, 128, 128, 128]
        assert all(len(f) == 8 for f in feats)


def test_period_fold_processes_each_phase_independently():
    """Kernels are (k, 1): column j of the folded signal sees only samples j, j+p, j+2p, ..."""
    torch.manual_seed(1)
    d = PeriodDiscriminator(3).eval()
    d1 = PeriodDiscriminator(1).eval()
    d1.load_state_dict(d.state_dict())  # same layers, no folding
    x = torch.randn(1, 1, 3 * 90)
    with torch.no_grad():
        full = d(x)[0].view(1, -1, 3)
        for j in range(3):
            assert torch.allclose(full[..., j], d1(x[..., j::3])[0], atol=1e-5)


def test_period_reflect_pads_to_a_multiple():
    d = PeriodDiscriminator(5).eval()
    x = torch.randn(1, 1, 103)
    padded = torch.cat([x, x[..., -3:-1].flip(-1)], dim=-1)  # reflect: 2 samples mirrored about the last one
    with torch.no_grad():
        assert torch.allclose(d(x)[0], d(padded)[0])


def test_leaky_relu_slope_is_hifigans(msd):
    x = torch.randn(1, 1, 256)
    d: ScaleDiscriminator = msd.discriminators[1]
    with torch.no_grad():
        _, feats = d(x)
        assert torch.allclose(feats[0], F.leaky_relu(d.convs[0](x), 0.1))


def test_msd_scales_see_average_pooled_audio(msd):
    x = torch.randn(1, 1, 1024)
    pool = nn.AvgPool1d(4, 2, padding=2)
    with torch.no_grad():
        logits, _ = msd(x)
        assert torch.allclose(logits[2], msd.discriminators[2](pool(pool(x)))[0], atol=1e-6)


def test_combined_names_and_outputs():
    torch.manual_seed(0)
    d = CombinedDiscriminator({"a": MultiPeriodDiscriminator([2, 3]), "b": MultiScaleSTFTDiscriminator([128], filters=4)})
    assert d.names == ["a_p2", "a_p3", "b_stft128"]
    logits, feats = d(torch.randn(2, 1024))
    assert len(logits) == len(feats) == 3
    assert hifigan_discriminator().names == ["mpd_p2", "mpd_p3", "mpd_p5", "mpd_p7", "mpd_p11", "msd_s1", "msd_s2", "msd_s4"]


def test_msstft_shapes_and_parameters():
    """MS-STFTD (moved from the codec): 5 feature maps per scale before the output conv; weight norm everywhere."""
    torch.manual_seed(0)
    d = MultiScaleSTFTDiscriminator([256, 128], filters=8)
    assert d.names == ["stft256", "stft128"]
    f = 8
    per_scale = (conv_params(2, f, 27) + 3 * conv_params(f, f, 27) + conv_params(f, f, 9) + conv_params(f, 1, 9))
    assert n_params(d) == 2 * per_scale
    x = torch.randn(3, 4000)
    logits, feats = d(x)
    frames = 4000 // 64 + 1
    assert tuple(logits[0].shape) == (3, 1, frames, 129 // 8 + 1)  # bins 129 -> stride 2 three times
    assert [tuple(t.shape) for t in feats[0]][0] == (3, f, frames, 129)
    assert len(feats[1]) == 5


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="periods"):
        MultiPeriodDiscriminator([])
    with pytest.raises(ValueError, match="n_scales"):
        MultiScaleDiscriminator(0)
