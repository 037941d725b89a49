"""DDSP-style resynthesis metrics: loudness L1 (dB) and f0 L1 (cents) with confidence gating (magenta metrics.py)."""

from __future__ import annotations

from typing import Any

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


#: Frames of this many dB or less above the loudness floor count as silent input (digital silence measures -80).
SILENCE_MARGIN_DB = 0.5
#: Silent frames closer than this to a sounding frame are not scored (the 512-point loudness window and the
#: control upsampling reach about 4 frames; 8 leaves a margin).
SILENCE_GUARD_FRAMES = 8
#: Block length (frames) of the per-block loudness L1: 500 frames = the 2 s training window at 250 Hz.
BLOCK_FRAMES = 500


def silent_frames(loudness_db: Tensor, floor_db: float = -80.0, guard: int = SILENCE_GUARD_FRAMES) -> Tensor:
    """``[F]`` bool: input at the loudness floor, at least ``guard`` frames away from any frame above it."""
    silent = loudness_db <= floor_db + SILENCE_MARGIN_DB
    if guard > 0 and silent.numel():
        sounding = (~silent).float()[None, None]
        near = torch.nn.functional.max_pool1d(sounding, 2 * guard + 1, stride=1, padding=guard)[0, 0] > 0
        silent = silent & ~near
    return silent


@torch.no_grad()
def whole_file_loudness(pred_audio: Tensor, target_loudness_db: Tensor, sample_rate: int, frame_rate: int,
                        block_frames: int = BLOCK_FRAMES, floor_db: float = -80.0) -> dict[str, Any]:
    """Loudness of a whole rendered file against the input's loudness: what the 2 s windows cannot see.

    Args:
        pred_audio: ``[T]`` output samples; target_loudness_db: ``[F]`` A-weighted loudness of the input (dB).

    Returns:
        ``loudness_l1_db`` (mean |error| over all frames), ``block_l1_db`` (list: mean |error| per block of
        ``block_frames`` frames, the last block may be shorter), ``worst_block_l1_db``, ``frames``,
        ``silent_frames`` (input at the floor, see :func:`silent_frames`), ``silent_loudness_db`` (mean output
        loudness there; the floor -80 dB is perfect, NaN without silent frames) and the sums behind them
        (``abs_error_sum``, ``silent_loudness_sum``) for exact averages over many files.
    """
    pred_db = a_weighted_loudness(pred_audio.float()[None], sample_rate=sample_rate, frame_rate=frame_rate)[0]
    n = min(pred_db.shape[-1], target_loudness_db.shape[-1])
    pred_db, target = pred_db[:n].double().cpu(), target_loudness_db[:n].double().cpu()
    err = (pred_db - target).abs()
    blocks = [float(err[s : s + block_frames].mean()) for s in range(0, n, block_frames)]
    silent = silent_frames(target, floor_db)
    k = int(silent.sum())
    return {
        "loudness_l1_db": float(err.mean()) if n else float("nan"),
        "block_l1_db": blocks,
        "worst_block_l1_db": max(blocks) if blocks else float("nan"),
        "frames": n,
        "abs_error_sum": float(err.sum()),
        "silent_frames": k,
        "silent_loudness_sum": float(pred_db[silent].sum()),
        "silent_loudness_db": float(pred_db[silent].mean()) if k else float("nan"),
    }
