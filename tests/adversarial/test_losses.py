"""Adversarial losses vs closed-form values and vs the reference formulas (HiFi-GAN, audiocraft) written in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiolab.adversarial import (
    adversarial_losses,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)

# two sub-discriminators with constant logits: closed-form values by hand
REAL = [torch.full((2, 5), 0.5), torch.full((2, 3, 4), -2.0)]
FAKE = [torch.full((2, 5), 0.25), torch.full((2, 3, 4), 3.0)]


def test_hinge_closed_form():
    # D: [relu(1-0.5) + relu(1+0.25)] + [relu(1+2) + relu(1+3)] = 1.75 + 7
    total, per = hinge_discriminator_loss(REAL, FAKE, reduction="sum")
    assert [float(t) for t in per] == pytest.approx([1.75, 7.0]) and float(total) == pytest.approx(8.75)
    total, per = hinge_discriminator_loss(REAL, FAKE)  # mean over the 2 sub-discriminators (audiocraft)
    assert float(total) == pytest.approx(4.375) and [float(t) for t in per] == pytest.approx([0.875, 3.5])
    total, per = hinge_generator_loss(FAKE)  # -mean D(y_hat)
    assert float(total) == pytest.approx((-0.25 - 3.0) / 2)


def test_lsgan_closed_form():
    # D: [(1-0.5)^2 + 0.25^2] + [(1+2)^2 + 3^2] = 0.3125 + 18 ; G: (1-0.25)^2 + (1-3)^2 = 0.5625 + 4
    total, per = lsgan_discriminator_loss(REAL, FAKE, reduction="sum")
    assert [float(t) for t in per] == pytest.approx([0.3125, 18.0]) and float(total) == pytest.approx(18.3125)
    total, per = lsgan_generator_loss(FAKE, reduction="sum")
    assert [float(t) for t in per] == pytest.approx([0.5625, 4.0]) and float(total) == pytest.approx(4.5625)
    assert float(lsgan_generator_loss(FAKE)[0]) == pytest.approx(4.5625 / 2)


def _random_outputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    shapes = [[(2, 4, 30), (2, 8, 15), (2, 1, 15)], [(2, 4, 20), (2, 1, 10)]]
    real = [[torch.randn(s, generator=g) for s in d] for d in shapes]
    fake = [[torch.randn(s, generator=g) for s in d] for d in shapes]
    return real, fake


def test_against_hifigan_formulas_in_numpy():
    """jik876/hifi-gan: discriminator_loss / generator_loss sum over sub-discriminators; feature_loss is
    2 * sum over all layers of mean |r - g| (the 2 is our feat weight)."""
    real, fake = _random_outputs(0)
    r_logits, f_logits = [d[-1] for d in real], [d[-1] for d in fake]
    rn, fn = [x.numpy() for x in r_logits], [x.numpy() for x in f_logits]
    d_ref = sum(np.mean((1 - r) ** 2) + np.mean(f ** 2) for r, f in zip(rn, fn))
    g_ref = sum(np.mean((1 - f) ** 2) for f in fn)
    fm_ref = 2 * sum(np.mean(np.abs(r.numpy() - f.numpy())) for rd, fd in zip(real, fake) for r, f in zip(rd, fd))
    assert float(lsgan_discriminator_loss(r_logits, f_logits, reduction="sum")[0]) == pytest.approx(d_ref, rel=1e-6)
    assert float(lsgan_generator_loss(f_logits, reduction="sum")[0]) == pytest.approx(g_ref, rel=1e-6)
    assert 2 * float(feature_matching_loss(real, fake, reduction="sum")[0]) == pytest.approx(fm_ref, rel=1e-6)


def test_feature_matching_mean_is_audiocraft_average_over_all_layers():
    real, fake = _random_outputs(1)
    layers = [np.mean(np.abs(r.numpy() - f.numpy())) for rd, fd in zip(real, fake) for r, f in zip(rd, fd)]
    total, per = feature_matching_loss(real, fake)
    assert float(total) == pytest.approx(np.mean(layers), rel=1e-6)
    # per-discriminator shares add up to the total: layers 0-2 belong to the first, 3-4 to the second
    assert [float(t) for t in per] == pytest.approx([sum(layers[:3]) / 5, sum(layers[3:]) / 5], rel=1e-6)


@pytest.mark.parametrize("fn", [hinge_discriminator_loss, lsgan_discriminator_loss])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_per_discriminator_terms_sum_to_total(fn, reduction):
    real, fake = _random_outputs(2)
    total, per = fn([d[-1] for d in real], [d[-1] for d in fake], reduction=reduction)
    assert float(total) == pytest.approx(float(sum(per)), rel=1e-6) and len(per) == 2


def test_feature_matching_does_not_push_the_real_branch():
    real, fake = _random_outputs(3)
    real = [[r.requires_grad_() for r in d] for d in real]
    fake = [[f.requires_grad_() for f in d] for d in fake]
    feature_matching_loss(real, fake)[0].backward()
    assert all(r.grad is None for d in real for r in d)
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for d in fake for f in d)


def test_names_and_bad_values():
    assert adversarial_losses("lsgan") == (lsgan_discriminator_loss, lsgan_generator_loss)
    with pytest.raises(ValueError, match="adversarial.loss"):
        adversarial_losses("wasserstein")
    with pytest.raises(ValueError, match="reduction"):
        hinge_generator_loss(FAKE, reduction="max")
