"""Parametric kick synthesizer whose parameters become keywords: the labelled set that checks conditioning.

A kick here is a swept sine body ``sin(2 pi cumsum f(t) / sr) * exp(-t / tau)`` with
``f(t) = f_end + (f_start - f_end) exp(-t / sweep_tau)``, plus a high-passed noise click (4 ms decay), plus a
low-passed noise layer (80 ms decay), through ``tanh(drive x) / tanh(drive)``. Parameters are drawn
independently (log-uniform where they are scales), so every keyword appears with every other one; the
keyword of a parameter is decided by fixed thresholds (:data:`KEYWORD_RULES`), so "long" kicks really are
longer than "short" ones and the generated ones can be checked against the same rule.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from audiolab.models.kick.audio import CLIP_SECONDS, SAMPLE_RATE

__all__ = ["KickParams", "KEYWORD_RULES", "OPPOSITES", "sample_params", "keywords_for", "render_kick",
           "synth_name", "write_synthetic_set"]


@dataclass(frozen=True)
class KickParams:
    """One synthetic kick. Frequencies in Hz, times in seconds, levels linear (relative to the body)."""

    f_end: float        # body pitch after the sweep
    sweep_ratio: float  # f_start / f_end
    sweep_tau: float    # pitch-sweep time constant
    decay: float        # T60 of the body amplitude (time to -60 dB)
    click: float        # click level, 0..1
    noise: float        # noise-layer level, 0..0.5
    drive: float        # tanh drive (1 = nearly clean)

    @property
    def f_start(self) -> float:
        return self.f_end * self.sweep_ratio


# keyword -> (parameter rule). Parameters drawn as in sample_params; the fractions are the share of the set.
KEYWORD_RULES: dict[str, Callable[[KickParams], bool]] = {
    "short": lambda p: p.decay < 0.35,                                # ~34 %
    "long": lambda p: p.decay > 0.9,                                  # ~28 %
    "sub": lambda p: p.f_end < 48.0,                                  # ~32 %
    "high": lambda p: p.f_end > 72.0,                                 # ~28 %
    "punchy": lambda p: p.sweep_ratio > 4.0 and p.sweep_tau < 0.02,   # ~23 %
    "click": lambda p: p.click > 0.6,                                 # ~40 %
    "noisy": lambda p: p.noise > 0.3,                                 # ~40 %
    "distorted": lambda p: p.drive > 3.5,                             # ~40 %
    "clean": lambda p: p.drive < 1.5,                                 # ~19 %
}
#: Keyword pairs that exclude each other (compared against each other in the keyword-control table).
OPPOSITES = (("long", "short"), ("sub", "high"), ("distorted", "clean"))

_RANGES = {  # name: (low, high, log-uniform)
    "f_end": (35.0, 95.0, True),
    "sweep_ratio": (1.5, 8.0, True),
    "sweep_tau": (0.005, 0.06, True),
    "decay": (0.15, 1.8, True),
    "click": (0.0, 1.0, False),
    "noise": (0.0, 0.5, False),
    "drive": (1.0, 8.0, True),
}


def sample_params(rng: np.random.Generator) -> KickParams:
    """Independent draws from the ranges above (log-uniform for frequencies, times, ratios and drive)."""
    vals = {}
    for f in fields(KickParams):
        lo, hi, log = _RANGES[f.name]
        u = rng.random()
        vals[f.name] = float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if log else lo + u * (hi - lo))
    return KickParams(**vals)


def keywords_for(params: KickParams) -> list[str]:
    """The property keywords of ``params`` in :data:`KEYWORD_RULES` order."""
    return [k for k, rule in KEYWORD_RULES.items() if rule(params)]


def _one_pole_lowpass(x: np.ndarray, cutoff_hz: float, sr: int) -> np.ndarray:
    a = math.exp(-2.0 * math.pi * cutoff_hz / sr)
    from scipy.signal import lfilter

    return lfilter([1.0 - a], [1.0, -a], x)


def render_kick(params: KickParams, seed: int, sample_rate: int = SAMPLE_RATE,
                seconds: float = CLIP_SECONDS) -> np.ndarray:
    """Render one kick: float32 ``[round(seconds * sample_rate)]``, peak 1 (deterministic for a ``seed``)."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(seed)
    freq = params.f_end + (params.f_start - params.f_end) * np.exp(-t / params.sweep_tau)
    phase = 2.0 * np.pi * np.cumsum(freq) / sample_rate
    env = np.exp(-t / (params.decay / math.log(1000.0))) * np.minimum(1.0, t / 0.001)  # 1 ms attack ramp
    body = np.sin(phase) * env
    white = rng.standard_normal(n)
    click = params.click * 0.5 * np.diff(white, prepend=0.0) * np.exp(-t / 0.004)
    noise = params.noise * _one_pole_lowpass(white, 3000.0, sample_rate) * 3.0 * np.exp(-t / 0.08)
    x = body + click + noise
    x = np.tanh(params.drive * x) / math.tanh(params.drive)
    return (x / max(float(np.abs(x).max()), 1e-9)).astype(np.float32)


def synth_name(index: int, params: KickParams) -> str:
    """File name carrying the keywords: ``kick_synth_00012_long_sub.wav`` (numbers are not keywords)."""
    return "_".join(["kick", "synth", f"{index:05d}", *keywords_for(params)]) + ".wav"


def write_synthetic_set(out_dir: str | Path, n: int = 2000, seed: int = 0, sample_rate: int = SAMPLE_RATE,
                        progress: bool = True) -> Path:
    """Write ``n`` synthetic kicks to ``out_dir`` (WAV, 16-bit) and ``params.csv`` (name, parameters, keywords).

    Reuses files that already exist with the same parameters (the set is deterministic in ``(n, seed)``).
    Returns ``out_dir``.
    """
    from audiolab.audio.io import save_audio
    from audiolab.data.cache import atomic_write_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    iterator = range(int(n))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="synthetic kicks", unit="kick")
    for i in iterator:
        p = sample_params(rng)
        name = synth_name(i, p)
        path = out / name
        if not path.is_file():
            save_audio(path, render_kick(p, seed=int(seed) * 1_000_003 + i, sample_rate=sample_rate), sample_rate)
        rows.append({"filename": name, **asdict(p), "keywords": " ".join(keywords_for(p))})
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["filename"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "params.csv", buf.getvalue().encode())
    return out
