"""Offline kick metrics (no downloaded embedder): distribution distances on VAE-latent features,
memorization, and measured kick properties for keyword control.

* :func:`kid` — Kernel Inception Distance (unbiased MMD^2 with the cubic polynomial kernel
  ``k(x, y) = (x . y / d + 1) ** 3``), with a bootstrap standard deviation.
* :func:`frechet` — Fréchet distance between Gaussian fits (``torchaudio.functional.frechet_distance``) after a
  PCA fitted on the reference set (352-d latents vs a few hundred clips would give singular covariances).
* :func:`nearest_neighbour` — distance of each sample to its nearest training sample (memorization).
* :func:`kick_descriptors` — decay time, low-band pitch, spectral centroid, attack brightness, measured on a
  log-mel (the same function for real clips and generated mels).
* :func:`keyword_control` — per keyword: a one-descriptor threshold classifier fitted on labelled training clips,
  its accuracy and Cohen's d on held-out clips and on generated kicks (with vs without / opposite keyword).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["mel_l1", "kid", "frechet", "nearest_neighbour", "kick_descriptors",
           "cohens_d", "fit_threshold", "fit_stump", "keyword_control", "mel_band_frequencies"]


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

    With ``E(band, span)`` the mel power summed over a frequency band (Hz) and a time span (s, frame hop
    resolution):

    * ``decay_s``: time from the loudest frame until the frame energy first falls 30 dB below it (clips that never
      fall that far get the remaining length);
    * ``pitch_hz``: power-weighted mean band frequency below 150 Hz over 60 - 300 ms (the body after the sweep);
    * ``centroid_hz``: spectral centroid over the first 500 ms;
    * ``hf_attack_db``: ``E(> 2 kHz, 0 - 24 ms) / E(all, 0 - 24 ms)`` in dB (noise and click layers);
    * ``mid_attack_db``: ``E(150 - 1000 Hz, 0 - 24 ms) / E(< 150 Hz, 0 - 24 ms)`` in dB (a deep, fast sweep);
    * ``noise_db``: ``E(> 1 kHz, 23 - 100 ms) / E(all, 23 - 100 ms)`` in dB;
    * ``harm_db``: ``E(150 - 2000 Hz, 60 - 300 ms) / E(< 150 Hz, 60 - 300 ms)`` in dB (harmonics of the body);
    * ``hf_decay_s``: time by which 90 % of the energy above 4 kHz has passed (drive sustains the upper partials).

    Returns ``{name: float64 [B]}``.
    """
    m = log_mel.detach().cpu().numpy() if isinstance(log_mel, Tensor) else np.asarray(log_mel)
    if m.ndim == 4:
        m = m[:, 0]
    p = np.exp(m.astype(np.float64))  # mel power
    b, n_mels, n_frames = p.shape
    freqs = mel_band_frequencies(n_mels, 0.0, f_max or sample_rate / 2.0, htk)
    frame_s = hop / sample_rate

    def span(t0: float, t1: float) -> slice:
        a = int(round(t0 / frame_s))
        return slice(a, max(int(round(t1 / frame_s)), a + 1))

    def energy(lo: float, hi: float, t0: float, t1: float) -> np.ndarray:
        return p[:, (freqs >= lo) & (freqs < hi), span(t0, t1)].sum((1, 2)) + 1e-12

    def ratio_db(num: tuple, den: tuple) -> np.ndarray:
        return 10.0 * np.log10(energy(*num) / energy(*den))

    energy_db = 10.0 * np.log10(p.sum(1) + 1e-12)  # [B, F]
    decay = np.empty(b)
    for i in range(b):
        k = int(np.argmax(energy_db[i]))
        below = np.flatnonzero(energy_db[i, k:] < energy_db[i, k] - 30.0)
        decay[i] = (below[0] if len(below) else n_frames - k) * frame_s
    low = freqs < 150.0
    body = p[:, low, span(0.06, 0.3)].sum(-1)
    pitch = (body * freqs[low]).sum(1) / np.maximum(body.sum(1), 1e-12)
    head = p[:, :, span(0.0, 0.5)].sum(-1)
    centroid = (head * freqs).sum(1) / np.maximum(head.sum(1), 1e-12)
    hi = p[:, freqs > 4000.0, :].sum(1)
    hf_decay = np.argmax(np.cumsum(hi, 1) >= 0.9 * hi.sum(1, keepdims=True), axis=1) * frame_s
    inf = np.inf
    return {"decay_s": decay, "pitch_hz": pitch, "centroid_hz": centroid,
            "hf_attack_db": ratio_db((2000.0, inf, 0.0, 0.024), (0.0, inf, 0.0, 0.024)),
            "mid_attack_db": ratio_db((150.0, 1000.0, 0.0, 0.024), (0.0, 150.0, 0.0, 0.024)),
            "noise_db": ratio_db((1000.0, inf, 0.023, 0.1), (0.0, inf, 0.023, 0.1)),
            "harm_db": ratio_db((150.0, 2000.0, 0.06, 0.3), (0.0, 150.0, 0.06, 0.3)),
            "hf_decay_s": hf_decay}


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """(mean a - mean b) / pooled standard deviation (NaN when a set has < 2 values)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else float("nan")


def fit_threshold(pos: np.ndarray, neg: np.ndarray, sign: int) -> tuple[float, float]:
    """The threshold on a descriptor that best separates ``pos`` (keyword present) from ``neg``, predicting
    "present" when ``sign * (value - threshold) > 0``: ``(threshold, balanced accuracy)``."""
    values = np.unique(np.concatenate([pos, neg]))
    cands = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    best, best_acc = float(cands[0]), -1.0
    for c in cands:
        acc = float(0.5 * (np.mean(sign * (pos - c) > 0) + np.mean(sign * (neg - c) <= 0)))
        if acc > best_acc:
            best, best_acc = float(c), acc
    return best, best_acc


def fit_stump(pos: Mapping[str, np.ndarray], neg: Mapping[str, np.ndarray]) -> dict[str, float | str | int]:
    """A one-descriptor threshold classifier ("decision stump") for one keyword: the descriptor, direction and
    threshold with the best balanced accuracy on the labelled clips ``pos`` (with) vs ``neg`` (without)."""
    best: dict[str, float | str | int] = {"train_acc": -1.0}
    for name in sorted(pos):
        d = cohens_d(pos[name], neg[name])
        sign = 1 if not (d < 0) else -1
        thr, acc = fit_threshold(pos[name], neg[name], sign)
        if acc > float(best["train_acc"]):
            best = {"descriptor": name, "sign": sign, "threshold": thr, "train_acc": acc}
    return best


def _stump_acc(stump: Mapping[str, Any], pos: Mapping[str, np.ndarray], neg: Mapping[str, np.ndarray]) -> float:
    name, sign, thr = stump["descriptor"], int(stump["sign"]), float(stump["threshold"])
    return float(0.5 * (np.mean(sign * (pos[name] - thr) > 0) + np.mean(sign * (neg[name] - thr) <= 0)))


def keyword_control(gen: Mapping[str, dict[str, np.ndarray]], real_train: Mapping[str, dict[str, np.ndarray]],
                    real_test: Mapping[str, dict[str, np.ndarray]], keywords: Sequence[str],
                    opposites: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Keyword-control table: does a measured property of generated kicks follow the keyword?

    Per keyword, a decision stump (:func:`fit_stump`: one descriptor of :func:`kick_descriptors`, a direction and
    a threshold) is fitted on labelled *training* clips (with vs without the keyword; "without" = the opposite
    keyword's clips for exclusive pairs such as long/short). Reported: its balanced accuracy and Cohen's d
    (signed: > 0 = the descriptor moves the way the keyword does on training clips) on held-out labelled clips
    (``*_real``, the ceiling) and on generated kicks (``*_gen``: prompted with the keyword vs with its opposite,
    or vs the baseline prompt ``"none"``).

    Args:
        gen: ``{prompt keyword or "none": descriptors}`` of generated kicks.
        real_train / real_test: ``{"with:<kw>": descriptors, "without:<kw>": descriptors}``.
        keywords: keywords to report.
        opposites: ``{kw: opposite kw}`` (used for the generated "without" set).
    """
    opposites = dict(opposites or {})
    rows = []
    for kw in keywords:
        stump = fit_stump(real_train[f"with:{kw}"], real_train[f"without:{kw}"])
        name, sign = str(stump["descriptor"]), int(stump["sign"])
        te_pos, te_neg = real_test[f"with:{kw}"], real_test[f"without:{kw}"]
        other = opposites.get(kw) if opposites.get(kw) in gen else "none"
        g_pos, g_neg = gen[kw], gen[other]
        rows.append({"keyword": kw, "vs": other, "descriptor": name, "direction": "+" if sign > 0 else "-",
                     "threshold": float(stump["threshold"]), "acc_train": float(stump["train_acc"]),
                     "acc_real": _stump_acc(stump, te_pos, te_neg), "acc_gen": _stump_acc(stump, g_pos, g_neg),
                     "d_real": sign * cohens_d(te_pos[name], te_neg[name]),
                     "d_gen": sign * cohens_d(g_pos[name], g_neg[name]), "n_gen": int(len(g_pos[name]))})
    return rows
