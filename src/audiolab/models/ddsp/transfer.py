"""Timbre transfer like magenta's colab: dataset statistics stored with the model, and ``--auto-adjust``.

Training computes statistics of its training split (:func:`dataset_statistics`: pitch and loudness of the frames
where a note is on, with quantiles) and the module stores them in every checkpoint under
:data:`STATS_KEY` as plain Python types (floats, ints, lists), so ``torch.load(path, weights_only=True)`` reads them.

At transfer time :func:`auto_adjust` follows magenta's timbre-transfer colab (``ddsp/colab/demos/
timbre_transfer.ipynb``, ``ddsp.training.postprocessing``):

1. note detection (:func:`detect_notes`): CREPE confidence squared, smoothed over 40 frames, times the loudness above
   the floor, compared with the same quantity for the file's mean loudness at confidence 0.7;
2. octave shift: the mean MIDI pitch of the input's note-on frames is moved by whole octaves towards the dataset's
   mean pitch (``(target - mean) / 12`` rounded with floor above 1.5 octaves, else ceil, as the colab does);
3. loudness: the note-on frames are quantile-mapped (the input's own empirical CDF, then the inverse CDF of the
   dataset's note-on loudness), the note-off frames are turned down by ``quiet_db * (1 - note_on_ratio)`` (20 dB).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["STATS_KEY", "N_QUANTILES", "detect_notes", "dataset_statistics", "quantile_map", "auto_adjust",
           "read_dataset_statistics"]

#: Key of the statistics in a checkpoint dict.
STATS_KEY = "ddsp_dataset_statistics"
#: Quantile landmarks (magenta's QuantileTransformer default).
N_QUANTILES = 1000
LOUDNESS_FLOOR_DB = -80.0
#: Frames dropped at the end of every source before fitting (magenta: ``trim_end = 20``).
TRIM_END = 20
MAX_MIDI = 110.0


def _smooth(x: np.ndarray, size: int) -> np.ndarray:
    """Box filter of ``size`` frames, 'same' length (zero padded, as tf.nn.conv1d with padding SAME)."""
    return np.convolve(x, np.ones(size) / size, mode="same") if size > 1 else x


def hz_to_midi(f0_hz: np.ndarray) -> np.ndarray:
    """MIDI number of ``f0_hz`` (0 Hz and below map to 0, as ddsp.core.hz_to_midi)."""
    f = np.asarray(f0_hz, dtype=np.float64)
    out = np.zeros_like(f)
    pos = f > 0
    out[pos] = 12.0 * (np.log2(f[pos]) - np.log2(440.0)) + 69.0
    return out


def detect_notes(loudness_db: np.ndarray, confidence: np.ndarray, *, threshold: float = 1.0, exponent: float = 2.0,
                 smoothing: int = 40, confidence_threshold: float = 0.7, min_db: float = LOUDNESS_FLOOR_DB,
                 mean_db: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Note-on mask and note-on ratio ``[F]`` of one sequence (magenta ``postprocessing.detect_notes``).

    ``mean_db``: the reference loudness (default: this sequence's mean; the dataset statistics pass the mean over
    the whole training split, as magenta's array-wide mean does).
    """
    ld = np.asarray(loudness_db, dtype=np.float64)
    mean = float(np.mean(ld)) if mean_db is None else float(mean_db)
    db = _smooth(np.asarray(confidence, dtype=np.float64) ** exponent, smoothing) * (ld - min_db)
    db_threshold = (mean - min_db) * confidence_threshold**exponent
    ratio = db / db_threshold if db_threshold > 0 else np.zeros_like(db)
    return ratio >= threshold, ratio


def _quantiles(x: np.ndarray, n: int = N_QUANTILES) -> tuple[np.ndarray, np.ndarray]:
    refs = np.linspace(0.0, 1.0, max(1, min(n, x.size)))
    q = np.maximum.accumulate(np.percentile(x, refs * 100.0))  # monotone despite rounding (numpy#14685)
    return refs, q


def _cdf(x: np.ndarray, refs: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Empirical CDF through the quantile landmarks; the mean of the up and down interpolation handles repeated
    quantiles (sklearn / magenta QuantileTransformer)."""
    u = 0.5 * (np.interp(x, q, refs) - np.interp(-x, -q[::-1], -refs[::-1]))
    u[x >= q[-1]] = 1.0
    u[x <= q[0]] = 0.0
    return u


def quantile_map(x: np.ndarray, target_quantiles: Sequence[float]) -> np.ndarray:
    """Map ``x`` through its own empirical CDF and then the inverse CDF given by ``target_quantiles`` (landmarks at
    evenly spaced levels 0..1): the output has the target's distribution and the input's order."""
    x = np.asarray(x, dtype=np.float64)
    refs, q = _quantiles(x)
    u = _cdf(x, refs, q)
    tq = np.asarray(target_quantiles, dtype=np.float64)
    return np.interp(u, np.linspace(0.0, 1.0, tq.size), tq)


def dataset_statistics(sources: Sequence[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Statistics of training sources (each a dict with ``f0_hz``, ``confidence``, ``loudness_db`` ``[F]``).

    Returns plain types only: ``n_frames`` / ``n_note_frames`` (int), ``mean_pitch`` / ``mean_loudness_db`` over all
    frames, ``mean_pitch_note`` / ``std_pitch_note`` / ``mean_loudness_db_note`` / ``std_loudness_db_note`` over note-on
    frames (floats), ``quantile_levels`` (``[0 .. 1]``, :data:`N_QUANTILES` values), ``loudness_db_quantiles`` and
    ``pitch_quantiles`` (MIDI) of the note-on frames (lists of floats).
    """
    trimmed = []
    for s in sources:
        n = len(s["loudness_db"])
        end = n - TRIM_END if n > 2 * TRIM_END else n
        trimmed.append({k: np.asarray(s[k], dtype=np.float64)[:end] for k in ("f0_hz", "confidence", "loudness_db")})
    if not trimmed or sum(len(s["loudness_db"]) for s in trimmed) == 0:
        raise ValueError("dataset_statistics: no frames in the training sources")
    ld_all = np.concatenate([s["loudness_db"] for s in trimmed])
    pitch_all = np.concatenate([hz_to_midi(s["f0_hz"]) for s in trimmed])
    mean_db = float(ld_all.mean())
    masks = []
    for s in trimmed:
        on, _ = detect_notes(s["loudness_db"], s["confidence"], mean_db=mean_db)
        masks.append(on if on.any() else np.ones_like(on))  # magenta: no notes -> the whole source
    mask = np.concatenate(masks)
    ld_on, pitch_on = ld_all[mask], pitch_all[mask]
    refs, ld_q = _quantiles(ld_on)
    _, p_q = _quantiles(pitch_on)
    return {
        "n_frames": int(ld_all.size),
        "n_note_frames": int(mask.sum()),
        "mean_pitch": float(pitch_all.mean()),
        "mean_loudness_db": mean_db,
        "mean_pitch_note": float(pitch_on.mean()),
        "std_pitch_note": float(pitch_on.std()),
        "mean_loudness_db_note": float(ld_on.mean()),
        "std_loudness_db_note": float(ld_on.std()),
        "quantile_levels": [float(r) for r in refs],
        "loudness_db_quantiles": [float(v) for v in ld_q],
        "pitch_quantiles": [float(v) for v in p_q],
    }


def auto_adjust(f0_hz: np.ndarray, loudness_db: np.ndarray, confidence: np.ndarray, stats: dict[str, Any], *,
                octave: bool = True, loudness: bool = True, threshold: float = 1.0,
                quiet_db: float = 20.0) -> dict[str, Any]:
    """Adjust one input's conditioning ``[F]`` to the training statistics (see the module docstring).

    Returns ``f0_hz``, ``loudness_db`` (float32 arrays), ``octaves`` (the whole-octave shift applied),
    ``mask_on`` (bool ``[F]``) and ``notes`` (bool: whether any note was detected; nothing is changed otherwise).
    """
    f0 = np.asarray(f0_hz, dtype=np.float64).copy()
    ld = np.asarray(loudness_db, dtype=np.float64).copy()
    mask_on, ratio = detect_notes(ld, confidence, threshold=threshold)
    result: dict[str, Any] = {"octaves": 0.0, "mask_on": mask_on, "notes": bool(mask_on.any())}
    if mask_on.any():
        if octave:
            diff = (float(stats["mean_pitch"]) - float(hz_to_midi(f0)[mask_on].mean())) / 12.0
            octaves = float(np.floor(diff) if diff > 1.5 else np.ceil(diff))
            f0 = np.clip(f0 * 2.0**octaves, 0.0, 440.0 * 2.0 ** ((MAX_MIDI - 69.0) / 12.0))
            result["octaves"] = octaves
        if loudness:
            ld[mask_on] = quantile_map(ld[mask_on], stats["loudness_db_quantiles"])
            off = ~mask_on
            ld[off] -= quiet_db * (1.0 - ratio[off])
            ld = np.maximum(ld, LOUDNESS_FLOOR_DB)
    result["f0_hz"] = f0.astype(np.float32)
    result["loudness_db"] = ld.astype(np.float32)
    return result


def read_dataset_statistics(ckpt: dict[str, Any] | str | Path) -> dict[str, Any] | None:
    """The statistics stored in a checkpoint (a loaded dict, or a path read with ``weights_only=True``), or None
    for checkpoints written before they existed."""
    if not isinstance(ckpt, dict):
        import torch

        ckpt = torch.load(Path(ckpt), map_location="cpu", weights_only=True)
    stats = ckpt.get(STATS_KEY)
    return dict(stats) if isinstance(stats, dict) else None
