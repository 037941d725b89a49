"""DDSP resynthesis metrics against closed-form signals."""

from __future__ import annotations

import math

import torch

from audiolab.audio.features import a_weighted_loudness
from audiolab.models.ddsp.metrics import f0_l1_cents, loudness_l1_db

SR, HOP = 16000, 64


def _tone(f0: float, seconds: float = 1.0, amp: float = 0.3) -> torch.Tensor:
    t = torch.arange(int(SR * seconds)) / SR
    return sum(amp / k * torch.sin(2 * math.pi * k * f0 * t) for k in range(1, 6)).float()


def test_loudness_l1_zero_for_same_audio_and_tracks_gain():
    x = _tone(440.0)[None]
    target = a_weighted_loudness(x, SR, 250)[..., : x.shape[-1] // HOP]
    assert float(loudness_l1_db(x, target, SR, 250)) < 1e-4
    louder = x * 10 ** (6 / 20)
    assert abs(float(loudness_l1_db(louder, target, SR, 250)) - 6.02) < 0.1


def test_f0_l1_cents_measures_a_semitone():
    pred = torch.stack([_tone(440.0), _tone(440.0)])
    n = pred.shape[-1] // HOP
    conf = torch.ones(2, n)
    same = f0_l1_cents(pred, torch.full((2, n), 440.0), conf, SR, HOP, model="tiny")
    off = f0_l1_cents(pred, torch.full((2, n), 440.0 * 2 ** (1 / 12)), conf, SR, HOP, model="tiny")
    assert same["f0_l1_cents"] < 25
    assert abs(off["f0_l1_cents"] - 100) < 25
    assert same["f0_inliers"] > 0.9 * 2 * n and same["f0_outlier_ratio"] < 0.1
    # frames below the confidence threshold are not counted
    gated = f0_l1_cents(pred, torch.full((2, n), 440.0), torch.zeros(2, n), SR, HOP, model="tiny")
    assert gated["f0_frames"] == 0 and math.isnan(gated["f0_l1_cents"])
