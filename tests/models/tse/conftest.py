"""Synthetic speakers for TSE tests (no Debian packages needed): harmonic 'vowels' with a per-speaker f0 and
formant filter, syllable-rate amplitude envelopes, written as one folder per speaker with a corpus manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from audiolab.models.tse.corpus import synth_utterance

SR = 16000


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
