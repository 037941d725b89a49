"""Synthetic speakers for TSE tests (no Debian packages needed): harmonic 'vowels' with a per-speaker f0 and
formant filter, syllable-rate amplitude envelopes, written as one folder per speaker with a corpus manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def synth_utterance(f0: float, formants: tuple[float, ...], seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    # slow f0 contour (intonation) and syllables of 120-300 ms separated by short pauses
    f = f0 * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = np.zeros(n)
    for h in range(1, int(3800 / f0)):
        amp = sum(np.exp(-((h * f0 - fc) ** 2) / (2 * (0.12 * fc) ** 2)) for fc in formants) + 0.02
        x += amp * np.sin(h * phase) / h**0.5
    env = np.zeros(n)
    pos = int(0.05 * sr)
    while pos < n:
        d = int(rng.uniform(0.12, 0.3) * sr)
        env[pos : pos + d] = np.hanning(min(d, n - pos) + 2)[1:-1][: max(0, min(d, n - pos))]
        pos += d + int(rng.uniform(0.03, 0.15) * sr)
    x = x * env
    return (0.1 * x / (np.sqrt(np.mean(x**2)) + 1e-9)).astype(np.float32)


SPEAKERS = {  # name: (f0 Hz, formants Hz, kind)
    "s_a": (100.0, (500.0, 1500.0), "tts"), "s_b": (140.0, (700.0, 1100.0), "tts"),
    "s_c": (190.0, (300.0, 2300.0), "tts"), "s_d": (230.0, (600.0, 1900.0), "tts"),
    "s_e": (120.0, (400.0, 1000.0), "tts"), "s_f": (170.0, (800.0, 1300.0), "tts"),
    "s_g": (260.0, (350.0, 2700.0), "tts"), "s_h": (90.0, (650.0, 1700.0), "tts"),
    "w_a": (210.0, (450.0, 2100.0), "words"), "w_b": (110.0, (550.0, 900.0), "words"),
    "w_c": (150.0, (750.0, 2500.0), "words"),
}


def make_corpus(root: Path, n_utts: int = 4, seconds: float = 2.5) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    utterances, speakers = [], {}
    for s_idx, (name, (f0, formants, kind)) in enumerate(SPEAKERS.items()):
        (root / name).mkdir(exist_ok=True)
        for k in range(n_utts):
            rel = f"{name}/u{k:02d}.wav"
            x = synth_utterance(f0, formants, seconds + 0.3 * (k % 3), seed=1000 * s_idx + k)
            sf.write(root / rel, x, SR, subtype="PCM_16")
            role = "any" if kind == "tts" else ("enroll" if k == 0 else "mix")
            utterances.append({"file": rel, "speaker": name, "role": role})
        speakers[name] = {"kind": kind}
    (root / "manifest.json").write_text(json.dumps({"speakers": speakers, "utterances": utterances}))
    return root


@pytest.fixture(scope="session")
def tse_corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("tse_corpus"))
