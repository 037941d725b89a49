"""DDSP-style resynthesis metrics: loudness L1 (dB) and f0 L1 (cents) with confidence gating (magenta metrics.py)."""

from __future__ import annotations

import torch
from torch import Tensor

from audiolab.audio.features import a_weighted_loudness
from audiolab.audio.pitch import cents_between, estimate_f0


@torch.no_grad()
def loudness_l1_db(pred_audio: Tensor, target_loudness_db: Tensor, sample_rate: int, frame_rate: int) -> Tensor:
    """Mean |L(pred) - L_target| in dB over all frames. pred_audio [B, T], target [B, F] (same A-weighted loudness)."""
    pred_db = a_weighted_loudness(pred_audio, sample_rate=sample_rate, frame_rate=frame_rate)[..., : target_loudness_db.shape[-1]]
    return (pred_db - target_loudness_db).abs().mean()


@torch.no_grad()
def f0_l1_cents(
    pred_audio: Tensor,
    target_f0_hz: Tensor,
    target_confidence: Tensor,
    sample_rate: int,
    hop_length: int,
    *,
    model: str = "tiny",
    confidence_threshold: float = 0.85,
) -> dict[str, float]:
    """CREPE (viterbi) on the generated audio vs the target f0, on frames whose target confidence >= threshold.

    Returns ``f0_l1_cents`` (mean absolute cents over inlier frames), ``f0_outlier_ratio`` (frames > 1200 cents off
    or untracked), ``f0_frames`` (frames counted) and the sums behind them (``f0_cents_sum``, ``f0_inliers``,
    ``f0_outliers``). Magenta reports the L1 in MIDI: divide cents by 100 to compare.
    """
    errors = []
    outliers = 0
    counted = 0
    for i in range(pred_audio.shape[0]):
        mask = target_confidence[i] >= confidence_threshold
        if not bool(mask.any()):
            continue
        f0_pred, _ = estimate_f0(pred_audio[i].float().cpu(), sample_rate, hop_length, model=model, viterbi=True)
        n = min(f0_pred.shape[-1], target_f0_hz.shape[-1])
        m = mask[:n].cpu() & (target_f0_hz[i, :n].cpu() > 0)
        fp, ft = f0_pred[:n][m], target_f0_hz[i, :n].cpu()[m]
        valid = fp > 0
        cents = cents_between(fp[valid].double(), ft[valid].double()).abs()
        outliers += int((~valid).sum()) + int((cents > 1200).sum())
        counted += int(m.sum())
        errors.append(cents[cents <= 1200])
    allc = torch.cat(errors) if errors else torch.zeros(0)
    return {
        "f0_l1_cents": float(allc.mean()) if allc.numel() else float("nan"),
        "f0_outlier_ratio": outliers / counted if counted else float("nan"),
        "f0_frames": counted,
        # sums for exact averaging over many batches / processes
        "f0_cents_sum": float(allc.sum()),
        "f0_inliers": int(allc.numel()),
        "f0_outliers": outliers,
    }
