"""Kick metrics against independent references: KID = torchmetrics' KernelInceptionDistance on the same features,
Fréchet = the closed form with scipy's sqrtm, nearest neighbour = scipy cdist; descriptors follow the synthesizer's
parameters; the keyword-control table separates labelled clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiolab.models.kick.audio import MelConfig, prepare_clip
from audiolab.models.kick.metrics import (
    cohens_d,
    fit_stump,
    frechet,
    keyword_control,
    kick_descriptors,
    kid,
    nearest_neighbour,
)
from audiolab.models.kick.synth import KickParams, render_kick


def test_kid_equals_torchmetrics():
    from torchmetrics.image.kid import KernelInceptionDistance

    class Identity(torch.nn.Module):
        def forward(self, x):
            return x

    g = torch.Generator().manual_seed(0)
    a = torch.randn(30, 12, generator=g, dtype=torch.float64)
    b = torch.randn(30, 12, generator=g, dtype=torch.float64) + 0.2
    ref = KernelInceptionDistance(feature=Identity(), subsets=1, subset_size=30, normalize=False)
    ref.update(a, real=True)
    ref.update(b, real=False)
    ours = kid(b, a, n_bootstrap=20)
    assert ours["kid"] == pytest.approx(float(ref.compute()[0]), rel=1e-9)
    assert ours["kid_std"] > 0
    same = kid(torch.randn(200, 12, generator=g), torch.randn(200, 12, generator=g), n_bootstrap=0)
    assert abs(same["kid"]) < 0.05  # unbiased: ~0 for one distribution


def test_frechet_closed_form_and_nearest_neighbour():
    from scipy.linalg import sqrtm
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(1)
    ref = rng.standard_normal((80, 6))
    x = rng.standard_normal((60, 6)) * 1.5 + 0.5
    y = rng.standard_normal((70, 6))
    mean = ref.mean(0)
    _, _, vt = np.linalg.svd(ref - mean, full_matrices=False)
    px, py = (x - mean) @ vt[:4].T, (y - mean) @ vt[:4].T
    s1, s2 = np.cov(px, rowvar=False), np.cov(py, rowvar=False)
    want = np.sum((px.mean(0) - py.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2)))
    assert frechet(x, y, reference=ref, dims=4) == pytest.approx(want, rel=1e-4)
    assert frechet(y, y, reference=ref, dims=4) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(nearest_neighbour(x, y), cdist(x, y).min(1), rtol=1e-6)
    assert np.all(nearest_neighbour(y, y) < 1e-6)


def _mels(params: list[KickParams]) -> torch.Tensor:
    audio = torch.from_numpy(np.stack([prepare_clip(render_kick(p, seed=i)) for i, p in enumerate(params)]))
    return MelConfig()(audio)


def test_descriptors_follow_synth_parameters():
    base = dict(sweep_ratio=3.0, sweep_tau=0.02, click=0.0, noise=0.0, drive=1.0)
    d = kick_descriptors(_mels([KickParams(f_end=50.0, decay=dec, **base) for dec in (0.2, 0.5, 1.2)]))
    assert d["decay_s"][0] < d["decay_s"][1] < d["decay_s"][2]
    # -30 dB of an exponential with T60 = decay is at decay / 2 (frame resolution 11.6 ms, window smearing)
    np.testing.assert_allclose(d["decay_s"], [0.1, 0.25, 0.6], atol=0.06)
    p = kick_descriptors(_mels([KickParams(f_end=f, decay=0.8, **base) for f in (40.0, 60.0, 85.0)]))["pitch_hz"]
    assert p[0] < p[1] < p[2] and np.all(np.abs(p - [40, 60, 85]) < 15)
    noisy = kick_descriptors(_mels([KickParams(f_end=50.0, decay=0.5, **{**base, "noise": n}) for n in (0.0, 0.5)]))
    assert noisy["hf_attack_db"][1] > noisy["hf_attack_db"][0] + 10


def test_keyword_control_on_labelled_sets():
    rng = np.random.default_rng(0)

    def desc(mean: float, n: int = 40) -> dict[str, np.ndarray]:
        return {"decay_s": rng.normal(mean, 0.05, n), "pitch_hz": rng.normal(50, 5, n)}

    train = {"with:long": desc(1.0), "without:long": desc(0.3)}
    test = {"with:long": desc(1.0), "without:long": desc(0.3)}
    stump = fit_stump(train["with:long"], train["without:long"])
    assert stump["descriptor"] == "decay_s" and stump["sign"] == 1 and 0.3 < stump["threshold"] < 1.0
    good = keyword_control({"long": desc(0.9), "none": desc(0.35)}, train, test, ["long"])[0]
    assert good["acc_real"] > 0.95 and good["acc_gen"] > 0.95 and good["d_gen"] > 5
    bad = keyword_control({"long": desc(0.6), "none": desc(0.6)}, train, test, ["long"])[0]
    assert bad["acc_gen"] == pytest.approx(0.5, abs=0.15) and abs(bad["d_gen"]) < 1
    assert cohens_d(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 0.0
