"""Mixture simulation for target speaker extraction: speed perturbation, rooms, noise, levels, overlap.

Every function is deterministic given its arguments (random draws come from an explicit
``numpy.random.Generator``); :mod:`audiolab.models.tse.data` turns a *recipe* (a plain dict of every draw) into
audio with :func:`render_mixture`, so validation/test manifests are lists of recipes and a training item is a recipe
drawn from ``default_rng([seed, epoch, index])``.

Conventions: audio is float32 numpy ``[T]`` at the model rate ``sr`` (Hz); levels in dB; a speed factor ``f``
plays the signal ``f`` times faster (duration / f, every frequency x f: pitch and formants move together).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio

__all__ = [
    "speed_perturb",
    "colored_noise",
    "rms_db",
    "scale_to_db",
    "RIRBank",
    "generate_rirs",
    "SPEED_QUANTUM",
]

#: Speed factors are rounded to this step so the polyphase resampler stays short (orig/new = 100f/100).
SPEED_QUANTUM = 0.01
_DB_FLOOR = -240.0


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster: ``y(t) = x(factor * t)``.

    Resampling from rate ``r`` to ``r / factor`` and *keeping* the result (not resampling back, which would undo
    it): length becomes ``round(len(x) / factor)`` and every frequency (pitch, formants) is multiplied by
    ``factor``. ``factor`` is rounded to :data:`SPEED_QUANTUM`; 1.0 returns ``x`` unchanged.

    Args:
        x: ``[T]`` float32 samples.
        factor: > 0, typically 0.9-1.1.
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    q = int(round(factor / SPEED_QUANTUM))
    base = int(round(1.0 / SPEED_QUANTUM))
    if q == base:
        return x
    g = math.gcd(q, base)
    y = torchaudio.functional.resample(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), q // g, base // g)
    return y.numpy()


def rms_db(x: np.ndarray) -> float:
    """RMS level in dB (re full scale 1.0); -240 for silence."""
    ms = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10.0 * math.log10(ms) if ms > 1e-24 else _DB_FLOOR


def scale_to_db(x: np.ndarray, level_db: float) -> np.ndarray:
    """``x`` scaled to an RMS of ``level_db`` (silence is returned unchanged)."""
    cur = rms_db(x)
    if cur <= _DB_FLOOR:
        return x
    return (x * 10 ** ((level_db - cur) / 20.0)).astype(np.float32)


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS, ``[n]`` float32."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    spec = spec / f ** (exponent / 2.0)
    spec[0] = 0.0
    y = np.fft.irfft(spec, n=n)
    return (y / (np.sqrt(np.mean(y**2)) + 1e-12)).astype(np.float32)


# -- rooms ----------------------------------------------------------------------------------------------------------
def generate_rirs(n_rooms: int, n_sources: int, sr: int, seed: int, rt60: tuple[float, float] = (0.2, 0.6),
                  early_ms: float = 50.0) -> dict[str, np.ndarray]:
    """Image-method rooms (pyroomacoustics ``ShoeBox``): one microphone and ``n_sources`` talker positions per room.

    Room 3-9 x 3-7 x 2.5-3.5 m, RT60 ~ U(rt60) s (Sabine inversion), microphone and sources >= 0.5 m from the walls,
    sources 0.7-3 m from the microphone. Every RIR is scaled so its direct path has amplitude 1.

    Returns:
        ``rirs [R, S, L]`` float32 (zero-padded to the longest), ``direct [R, S]`` int (sample of the direct path,
        from the geometry plus pyroomacoustics' fractional-delay offset), ``rt60 [R]``, ``early [R, S]`` int (direct
        + ``early_ms``: the end of the early part used for an early-reverberation target).
    """
    import pyroomacoustics as pra

    rng = np.random.default_rng([seed, 303])
    out_rirs, directs, rts = [], [], []
    offset = pra.constants.get("frac_delay_length") // 2
    c = pra.constants.get("c")
    for _ in range(int(n_rooms)):
        dim = np.array([rng.uniform(3, 9), rng.uniform(3, 7), rng.uniform(2.5, 3.5)])
        t60 = float(rng.uniform(*rt60))
        e_abs, max_order = pra.inverse_sabine(t60, dim)
        room = pra.ShoeBox(dim, fs=int(sr), materials=pra.Material(e_abs), max_order=int(max_order))
        mic = np.array([rng.uniform(0.5, d - 0.5) for d in dim])
        mic[2] = rng.uniform(1.0, min(1.8, dim[2] - 0.5))
        room.add_microphone(mic)
        dists = []
        for _s in range(int(n_sources)):
            for _try in range(100):
                p = np.array([rng.uniform(0.5, d - 0.5) for d in dim])
                p[2] = rng.uniform(1.2, min(1.9, dim[2] - 0.3))
                dist = float(np.linalg.norm(p - mic))
                if 0.7 <= dist <= 3.0:
                    break
            room.add_source(p)
            dists.append(dist)
        room.compute_rir()
        rirs = [np.asarray(room.rir[0][s], dtype=np.float64) for s in range(int(n_sources))]
        d_idx = [int(round(dist / c * sr)) + offset for dist in dists]
        rirs = [r / (np.abs(r[max(0, d - 2): d + 3]).max() + 1e-12) for r, d in zip(rirs, d_idx)]
        out_rirs.append(rirs)
        directs.append(d_idx)
        rts.append(t60)
    length = max(len(r) for room in out_rirs for r in room)
    arr = np.zeros((len(out_rirs), int(n_sources), length), np.float32)
    for i, room in enumerate(out_rirs):
        for s, r in enumerate(room):
            arr[i, s, : len(r)] = r
    direct = np.array(directs, dtype=np.int64)
    early = direct + int(round(early_ms * 1e-3 * sr))
    return {"rirs": arr, "direct": direct, "rt60": np.array(rts, np.float32), "early": early}


class RIRBank:
    """A cached set of generated rooms: ``cache_dir/rirs_<sr>_<n_rooms>x<n_sources>_seed<seed>.npz``."""

    def __init__(self, cache_dir: str | os.PathLike, *, sr: int, n_rooms: int, n_sources: int, seed: int,
                 rt60: tuple[float, float] = (0.2, 0.6), early_ms: float = 50.0):
        from audiolab.data.cache import atomic_save_npz

        lo, hi = float(rt60[0]), float(rt60[1])
        name = f"rirs_{sr}_{n_rooms}x{n_sources}_seed{seed}_rt{lo:g}-{hi:g}_early{early_ms:g}.npz"
        path = Path(cache_dir).expanduser() / name
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            print(f"generating {n_rooms} rooms x {n_sources} sources at {sr} Hz -> {path}", flush=True)
            atomic_save_npz(path, **generate_rirs(n_rooms, n_sources, sr, seed, (lo, hi), early_ms))
        with np.load(path) as z:
            self.rirs, self.direct, self.early, self.rt60 = z["rirs"], z["direct"], z["early"], z["rt60"]
        self.path = path

    def __len__(self) -> int:
        return int(self.rirs.shape[0])

    @property
    def n_sources(self) -> int:
        return int(self.rirs.shape[1])

    def apply(self, x: np.ndarray, room: int, source: int, n_out: int, context: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Convolve ``x`` (``context`` samples of lead-in, then the ``n_out`` wanted ones) with one room's RIR.

        Returns ``(reverberant, early, dry)``, each ``[n_out]``: the full RIR, the RIR cut after the early part
        (direct + ``early_ms``), and the direct path alone (a delayed copy) — all aligned with each other.
        """
        rir = self.rirs[room, source]
        d, e = int(self.direct[room, source]), int(self.early[room, source])
        full = _fftconv(x, rir)[context : context + n_out]
        early = _fftconv(x, rir[:e])[context : context + n_out]
        dry = np.zeros(len(x) + d, np.float32)
        dry[d:] = x
        return _fit(full, n_out), _fit(early, n_out), _fit(dry[context : context + n_out], n_out)

    def context(self) -> int:
        return int(self.rirs.shape[-1])


def _fftconv(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = len(x) + len(h) - 1
    nfft = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[:n].astype(np.float32)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)))


def mix_levels(target: np.ndarray, others: list[np.ndarray], sirs_db: list[float]) -> list[np.ndarray]:
    """Scale every interferer so that ``rms(target) / rms(interferer) = sir`` dB (silent ones unchanged)."""
    t_db = rms_db(target)
    return [scale_to_db(o, t_db - s) for o, s in zip(others, sirs_db)]


def describe(recipe: dict[str, Any]) -> str:
    """One line naming the speakers and conditions of a recipe (for logs and media file names)."""
    talkers = recipe["talkers"]
    spk = "+".join(t["speaker"] for t in talkers)
    extra = []
    if recipe.get("noise"):
        extra.append(f"snr{recipe['noise']['snr_db']:.0f}")
    if recipe.get("room") is not None:
        extra.append("rev")
    return spk + ("_" + "_".join(extra) if extra else "")
