"""Kick fixtures: a small prepared kick folder (synthetic kicks + velocity layers of a few "real" drums)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from audiolab.audio.io import save_audio
from audiolab.models.kick.data import aggregate, preprocess
from audiolab.models.kick.synth import KickParams, render_kick, write_synthetic_set


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every test module of this family runs on one thread (tests/conftest.py::one_thread)."""


def write_layered_drums(folder: Path, n_drums: int = 6, layers: tuple[str, ...] = ("soft", "med", "hard")) -> None:
    """``n_drums`` drums x velocity layers named like a drum kit (``kit<d>/Kick-<layer>.wav``)."""
    for d in range(n_drums):
        p = KickParams(f_end=40.0 + 8 * d, sweep_ratio=3.0, sweep_tau=0.02, decay=0.4 + 0.1 * d, click=0.3, noise=0.1,
                       drive=1.5)
        for j, layer in enumerate(layers):
            save_audio(folder / f"kit{d}" / f"Kick-{layer.capitalize()}.wav", (0.3 + 0.3 * j) * render_kick(p, seed=d),
                       44100)


@pytest.fixture(scope="session")
def kick_root(tmp_path_factory) -> Path:
    """A kick_preprocess folder: 40 synthetic kicks + 6 layered drums (3 velocities each)."""
    base = tmp_path_factory.mktemp("kick_data")
    write_synthetic_set(base / "src" / "synthetic", n=40, seed=3, progress=False)
    write_layered_drums(base / "src" / "drums")
    aggregate({"synthetic": base / "src" / "synthetic", "drums": base / "src" / "drums"}, base / "raw")
    preprocess(base / "raw", base / "kick", progress=False)
    return base / "kick"


def random_log_mel(b: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 1, 128, 173, generator=g) - 5.0


__all__ = ["write_layered_drums", "random_log_mel", "np"]
