"""TSE losses and metrics against torchmetrics / closed forms; silence; the controls on constructed outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audiolab.losses.sdr import si_sdr
from audiolab.models.tse.metrics import (
    TSEScores,
    energy_ratio_db,
    max_xcorr,
    pesq_wb,
    stoi_score,
    summary_stats,
)
from audiolab.models.tse.module import complex_l1_loss, phase_sensitive_loss, target_absent_loss

SR = 16000


def test_si_sdr_matches_torchmetrics_zero_mean_and_a_closed_form():
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio as tm

    g = torch.Generator().manual_seed(0)
    s, n = torch.randn(4, 8000, generator=g), torch.randn(4, 8000, generator=g)
    est = s + 0.3 * n + 0.5  # offset: zero-mean matters
    assert torch.allclose(si_sdr(est, s), tm(est, s, zero_mean=True), atol=1e-3)
    # closed form: orthogonal noise at power ratio r -> SI-SDR = 10 log10(1 / r) whatever the gain
    t = torch.sin(torch.arange(8000) * 2 * math.pi * 50 / 8000)
    e = torch.sin(torch.arange(8000) * 2 * math.pi * 101 / 8000)  # orthogonal to t over whole periods
    assert float(si_sdr((3.0 * (t + 0.1 * e))[None], t[None])) == pytest.approx(20.0, abs=1e-2)


def test_si_sdr_gradients_are_finite_at_silence():
    for est, tgt in ((torch.zeros(2, 1000), torch.randn(2, 1000)), (torch.randn(2, 1000), torch.zeros(2, 1000)),
                     (torch.zeros(2, 1000), torch.zeros(2, 1000))):
        est = est.clone().requires_grad_(True)
        v = si_sdr(est, tgt)
        v.sum().backward()
        assert torch.isfinite(v).all() and torch.isfinite(est.grad).all()


def test_target_absent_loss_is_relative_and_bounded():
    mix = torch.randn(3, 4000)
    # 20 dB below the mixture, plus the floor term 10^(-30/10)
    assert torch.allclose(target_absent_loss(0.1 * mix, mix), torch.full((3,), 10 * math.log10(0.01 + 1e-3)), atol=1e-3)
    # silence reaches the floor, with a finite gradient
    est = torch.zeros(3, 4000, requires_grad=True)
    v = target_absent_loss(est, mix, max_suppression_db=30.0)
    v.sum().backward()
    assert torch.allclose(v, torch.full((3,), -30.0), atol=1e-2) and torch.isfinite(est.grad).all()
    # relative: scaling the input scales nothing; absolute: it does
    assert torch.allclose(target_absent_loss(0.5 * mix, mix), target_absent_loss(5 * mix, 10 * mix), atol=1e-4)
    a1 = target_absent_loss(0.01 * mix, mix, mode="absolute", threshold_db=-60)
    a2 = target_absent_loss(0.1 * mix, mix, mode="absolute", threshold_db=-60)
    assert (a2 - a1).mean() == pytest.approx(20.0, abs=0.1)


def test_spectral_terms_vanish_at_the_target_and_grow_with_phase_error():
    s = torch.randn(2, 4000)
    assert float(phase_sensitive_loss(s, s, 256, 64).max()) < 1e-5
    assert float(complex_l1_loss(s, s, 256, 64).max()) < 1e-5
    assert float(phase_sensitive_loss(-s, s, 256, 64).mean()) > float(phase_sensitive_loss(0.9 * s, s, 256, 64).mean())


def test_energy_ratio_xcorr_and_summary():
    x = torch.randn(2, 1000)
    assert torch.allclose(energy_ratio_db(0.1 * x, x), torch.full((2,), -20.0), atol=1e-4)
    y = torch.cat([torch.zeros(2, 300), x], dim=1)
    assert torch.allclose(max_xcorr(y, x), torch.ones(2), atol=1e-5)
    assert float(max_xcorr(torch.randn(1, 4000), torch.randn(1, 4000))[0]) < 0.2
    s = summary_stats([1.0, -1.0, 3.0, float("nan")], "si_sdri")
    assert s == {"si_sdri": 1.0, "si_sdri_median": 1.0, "si_sdri_pct_below_0": pytest.approx(100 / 3)}


def _speechlike(seed: int, n: int = 2 * SR) -> torch.Tensor:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from audiolab.models.tse.corpus import synth_utterance

    return torch.from_numpy(synth_utterance(120 + 40 * seed, (500.0 + 100 * seed, 1500.0), n / SR, seed))


def test_pesq_and_stoi_rank_clean_above_noisy_and_resample():
    s = _speechlike(0)[None]
    noisy = s + 0.5 * s.std() * torch.randn_like(s)
    p_clean, p_noisy = pesq_wb(s, s, SR)[0], pesq_wb(noisy, s, SR)[0]
    assert p_clean > 4.0 and p_noisy < p_clean
    s48 = torch.from_numpy(np.interp(np.arange(3 * s.shape[-1]) / 3, np.arange(s.shape[-1]), s[0].numpy())).float()[None]
    assert pesq_wb(s48, s48, 48000)[0] > 4.0  # 48 kHz is resampled to 16 kHz, not refused
    assert stoi_score(s, s, SR)[0] > 0.99 > stoi_score(noisy, s, SR)[0]
    assert math.isnan(pesq_wb(torch.zeros(1, SR), s, SR)[0])  # PESQ refuses silence: recorded as NaN


def _batch(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, enroll: torch.Tensor) -> dict:
    mix = a + b
    z = torch.zeros_like(a)
    return {"mixture": torch.stack([mix, mix, mix]), "target": torch.stack([a, b, z]), "other": torch.stack([b, a, z]),
            "enrollment": enroll, "present": torch.tensor([True, True, False]), "query": torch.tensor([0, 1, 2]),
            "mix_id": torch.tensor([0, 0, 0]), "swap_of": torch.tensor([-1, -1, 0]), "speaker": ["A", "B", ""],
            "enroll_speaker": ["A", "B", "A"], "description": ["A+B"] * 3}


def test_scores_of_a_perfect_extractor_and_of_one_that_ignores_the_mixture():
    a, b, c = _speechlike(0), _speechlike(1), _speechlike(2)
    enroll = torch.stack([_speechlike(3), _speechlike(4), _speechlike(3)])
    batch = _batch(a, b, c, enroll)
    good = TSEScores(SR, full=True)
    good.add(batch, torch.stack([a, b, 1e-3 * a]))
    s = good.summary()
    mix_sdr = float(si_sdr((a + b)[None], a[None]))
    assert s["si_sdri"] > 40 and s["swap_follow_pct"] == 100.0 and s["swap_si_sdr_other"] < -20
    assert s["mixture_si_sdr"] == pytest.approx(float(np.mean([mix_sdr, float(si_sdr((a + b)[None], b[None]))])), abs=1e-3)
    assert s["ta_suppression_db"] > 40 and s["pesq"] > s["mixture_pesq"] and s["stoi"] > s["mixture_stoi"]
    assert s["n_tp"] == 2 and s["n_ta"] == 1
    # an extractor that ignores the mixture and always returns the same output for an enrollment
    bad = TSEScores(SR)
    bad.add(batch, torch.stack([a, a, a]))  # swap row outputs the enrolled speaker's output from the other mixture
    sb = bad.summary()
    assert sb["swap_follow_pct"] == 50.0  # row 1 follows the wrong talker
    assert sb["mixswap_vs_original_db"] > 40  # the mixture-swap output equals the original output
    assert sb["ta_suppression_db"] < 6
