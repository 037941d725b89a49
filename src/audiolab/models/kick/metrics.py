"""Offline kick metrics (no downloaded embedder): distribution distances on VAE-latent features,
memorization, and measured kick properties for keyword control.

* :func:`kid` — Kernel Inception Distance (unbiased MMD^2 with the cubic polynomial kernel
  ``k(x, y) = (x . y / d + 1) ** 3``), with a bootstrap standard deviation.
* :func:`frechet` — Fréchet distance between Gaussian fits (``torchaudio.functional.frechet_distance``) after a
  PCA fitted on the reference set (352-d latents vs a few hundred clips would give singular covariances).
* :func:`nearest_neighbour` — distance of each sample to its nearest training sample (memorization).
* :func:`kick_descriptors` — decay time, low-band pitch, spectral centroid, attack brightness, measured on a
  log-mel (the same function for real clips and generated mels).
* :func:`keyword_control` — per keyword: Cohen's d of the keyword's descriptor between "with" and "without"
  (or the opposite keyword), and the accuracy of a one-threshold classifier fitted on real labelled clips.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["mel_l1", "kid", "frechet", "nearest_neighbour", "kick_descriptors", "DESCRIPTOR_OF",
           "cohens_d", "fit_threshold", "keyword_control", "mel_band_frequencies"]


def mel_l1(pred: Tensor, target: Tensor) -> float:
    """Mean absolute log-mel difference (natural-log units) over every bin and frame."""
    return float((pred.float() - target.float()).abs().mean())


def _flat(x: Tensor | np.ndarray) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    return a.reshape(len(a), -1).astype(np.float64)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kid(x: Tensor | np.ndarray, y: Tensor | np.ndarray, n_bootstrap: int = 100, seed: int = 0) -> dict[str, float]:
    """KID between feature sets ``x`` ``[M, ...]`` and ``y`` ``[N, ...]`` (flattened; M, N >= 2).

    Returns ``{"kid": unbiased MMD^2, "kid_std": bootstrap std (resampling both sets)}``; 0 in expectation
    for two samples of one distribution (it can be slightly negative).
    """
    a, b = _flat(x), _flat(y)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"kid needs >= 2 samples per set, got {len(a)} and {len(b)}")
    value = _mmd2_unbiased(a, b)
    rng = np.random.default_rng(seed)
    boots = [_mmd2_unbiased(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))])
             for _ in range(int(n_bootstrap))]
    return {"kid": value, "kid_std": float(np.std(boots)) if boots else float("nan")}


def frechet(x: Tensor | np.ndarray, y: Tensor | np.ndarray, reference: Tensor | np.ndarray | None = None,
            dims: int = 16) -> float:
    """Fréchet distance between Gaussian fits of ``x`` and ``y`` in the top-``dims`` principal components of
    ``reference`` (default: ``y``), computed by ``torchaudio.functional.frechet_distance``."""
    from torchaudio.functional import frechet_distance

    a, b = _flat(x), _flat(y)
    ref = _flat(reference) if reference is not None else b
    mean = ref.mean(0)
    k = int(min(dims, ref.shape[1], len(a) - 1, len(b) - 1, len(ref) - 1))
    if k < 1:
        raise ValueError(f"frechet needs >= 2 samples per set, got {len(a)}, {len(b)}, reference {len(ref)}")
    _, _, vt = np.linalg.svd(ref - mean, full_matrices=False)
    pa, pb = (a - mean) @ vt[:k].T, (b - mean) @ vt[:k].T

    def stats(p: np.ndarray) -> tuple[Tensor, Tensor]:
        return torch.from_numpy(p.mean(0)), torch.from_numpy(np.atleast_2d(np.cov(p, rowvar=False)))

    return float(frechet_distance(*stats(pa), *stats(pb)))


def nearest_neighbour(x: Tensor | np.ndarray, bank: Tensor | np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Euclidean distance ``[M]`` from each row of ``x`` to its nearest row of ``bank`` (flattened features)."""
    a, b = _flat(x), _flat(bank)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2.0 * a @ b.T
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    return np.sqrt(np.clip(d2.min(1), 0.0, None))


# ----------------------------------------------------------------------------------------------- descriptors
def mel_band_frequencies(n_mels: int = 128, f_min: float = 0.0, f_max: float = 22050.0, htk: bool = True) -> np.ndarray:
    """Centre frequency (Hz) of each mel band (librosa's ``mel_frequencies`` without the two edges)."""
    import librosa

    return librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=f_max, htk=htk)[1:-1]


def kick_descriptors(log_mel: Tensor | np.ndarray, sample_rate: int = 44100, hop: int = 512,
                     f_max: float | None = None, htk: bool = True) -> dict[str, np.ndarray]:
    """Measured properties of kicks from log-mels ``[B, n_mels, frames]`` (or ``[B, 1, n_mels, frames]``).

    * ``decay_s``: time from the loudest frame until the frame energy (sum of mel power) first falls 30 dB below
      it (the frame hop is the resolution; clips that never fall that far get the clip length).
    * ``pitch_hz``: power-weighted mean band frequency below 150 Hz over 60 - 300 ms (the body after the sweep).
    * ``centroid_hz``: spectral centroid over the first 500 ms (drive and noise raise it).
    * ``attack_hz``: spectral centroid of the first 3 frames (click and a fast, deep sweep raise it).

    Returns ``{name: float64 [B]}``.
    """
    m = log_mel.detach().cpu().numpy() if isinstance(log_mel, Tensor) else np.asarray(log_mel)
    if m.ndim == 4:
        m = m[:, 0]
    p = np.exp(m.astype(np.float64))  # mel power
    b, n_mels, n_frames = p.shape
    freqs = mel_band_frequencies(n_mels, 0.0, f_max or sample_rate / 2.0, htk)
    frame_s = hop / sample_rate
    energy_db = 10.0 * np.log10(p.sum(1) + 1e-12)  # [B, F]
    decay = np.empty(b)
    for i in range(b):
        k = int(np.argmax(energy_db[i]))
        below = np.flatnonzero(energy_db[i, k:] < energy_db[i, k] - 30.0)
        decay[i] = (below[0] if len(below) else n_frames - k) * frame_s
    lo, hi = int(round(0.06 / frame_s)), max(int(round(0.3 / frame_s)), int(round(0.06 / frame_s)) + 1)
    low = freqs < 150.0
    body = p[:, low, lo:hi].sum(-1)
    pitch = (body * freqs[low]).sum(1) / np.maximum(body.sum(1), 1e-12)
    head = p[:, :, : max(1, int(round(0.5 / frame_s)))].sum(-1)
    centroid = (head * freqs).sum(1) / np.maximum(head.sum(1), 1e-12)
    att = p[:, :, :3].sum(-1)
    attack = (att * freqs).sum(1) / np.maximum(att.sum(1), 1e-12)
    return {"decay_s": decay, "pitch_hz": pitch, "centroid_hz": centroid, "attack_hz": attack}


#: keyword -> (descriptor that should move, +1 if the keyword raises it, -1 if it lowers it)
DESCRIPTOR_OF: dict[str, tuple[str, int]] = {
    "long": ("decay_s", +1), "short": ("decay_s", -1), "sub": ("pitch_hz", -1), "high": ("pitch_hz", +1),
    "distorted": ("centroid_hz", +1), "clean": ("centroid_hz", -1), "noisy": ("centroid_hz", +1),
    "click": ("attack_hz", +1), "punchy": ("attack_hz", +1),
}


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """(mean a - mean b) / pooled standard deviation (NaN when a set has < 2 values)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else float("nan")


def fit_threshold(pos: np.ndarray, neg: np.ndarray, sign: int) -> float:
    """The threshold on a descriptor that best separates ``pos`` (keyword present) from ``neg`` (balanced
    accuracy), predicting "present" when ``sign * (value - threshold) > 0``."""
    values = np.unique(np.concatenate([pos, neg]))
    cands = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    best, best_acc = float(cands[0]), -1.0
    for c in cands:
        acc = 0.5 * (np.mean(sign * (pos - c) > 0) + np.mean(sign * (neg - c) <= 0))
        if acc > best_acc:
            best, best_acc = float(c), acc
    return best


def keyword_control(gen: Mapping[str, dict[str, np.ndarray]], real_train: Mapping[str, dict[str, np.ndarray]],
                    real_test: Mapping[str, dict[str, np.ndarray]], keywords: Sequence[str],
                    opposites: Mapping[str, str] | None = None) -> list[dict[str, float | str]]:
    """Keyword-control table.

    Args:
        gen: ``{prompt keyword: descriptors}`` of kicks generated with that keyword, plus ``"none"`` for kicks
            generated with the baseline prompt (no property keyword).
        real_train / real_test: ``{"with:<kw>": descriptors, "without:<kw>": descriptors}`` of labelled real
            clips (the threshold is fitted on ``real_train``, accuracies measured on ``real_test`` and ``gen``).
        keywords: keywords to report (each must have an entry in :data:`DESCRIPTOR_OF`).
        opposites: ``{kw: opposite kw}``; the generated "without" set is the opposite keyword's kicks when given,
            else the baseline ``"none"`` kicks.

    Returns rows ``{keyword, descriptor, d_real, d_gen, acc_real, acc_gen, n_gen}``: Cohen's d of the descriptor
    between with/without (signed so that > 0 means "moves the expected way") and the balanced accuracy of the
    threshold classifier.
    """
    opposites = dict(opposites or {})
    rows = []
    for kw in keywords:
        name, sign = DESCRIPTOR_OF[kw]
        tr_pos, tr_neg = real_train[f"with:{kw}"][name], real_train[f"without:{kw}"][name]
        te_pos, te_neg = real_test[f"with:{kw}"][name], real_test[f"without:{kw}"][name]
        thr = fit_threshold(tr_pos, tr_neg, sign)
        g_pos = gen[kw][name]
        g_neg = gen[opposites[kw]][name] if kw in opposites and opposites[kw] in gen else gen["none"][name]

        def acc(pos: np.ndarray, neg: np.ndarray, thr: float = thr, sign: int = sign) -> float:
            return float(0.5 * (np.mean(sign * (pos - thr) > 0) + np.mean(sign * (neg - thr) <= 0)))

        rows.append({"keyword": kw, "descriptor": name, "vs": opposites.get(kw, "none"),
                     "d_real": sign * cohens_d(te_pos, te_neg), "d_gen": sign * cohens_d(g_pos, g_neg),
                     "acc_real": acc(te_pos, te_neg), "acc_gen": acc(g_pos, g_neg), "n_gen": int(len(g_pos))})
    return rows
