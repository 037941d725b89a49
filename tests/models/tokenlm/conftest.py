"""Token-LM fixtures: a tiny codec checkpoint, a token export made with it from synthetic tagged audio, and a writer
for hand-made token folders (bad-input tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

SR = 16000


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every test module of this family runs on one thread (tests/conftest.py::one_thread)."""


def make_tiny_codec(path: Path, n_q: int = 4, bins: int = 16, seed: int = 0) -> Path:
    """A tiny codec (hop 8 at 16 kHz = 2000 Hz frames) after one k-means-initialising forward, saved the way
    training saves it (state_dict + stored config)."""
    from audiolab.callbacks.config_embed import CONFIG_KEY
    from audiolab.models.codec.module import CodecModule

    codec = {"channels": 1, "output": "unbounded", "normalization": "none",
             "seanet": {"dimension": 16, "n_filters": 4, "ratios": [4, 2], "lstm": 0, "causal": True},
             "quantizer": {"n_q": n_q, "bins": bins, "kmeans_iters": 2}}
    model = {"sample_rate": SR, "codec": codec,
             "loss": {"l1": {"weight": 1.0}, "mel": {"weight": 1.0, "window_sizes": [64, 128]}},
             "optim": {"optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 3.0e-4}},
             "eval_bandwidths": []}
    torch.manual_seed(seed)
    module = CodecModule(**model)
    module.codec.train()
    with torch.no_grad():
        module.codec(0.1 * torch.randn(2, 8 * 400, generator=torch.Generator().manual_seed(seed + 1)))
    module.codec.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(),
                CONFIG_KEY: {"model": {"_target_": "audiolab.models.codec.module.CodecModule", **model},
                             "data": {"sample_rate": SR}}}, path)
    return path


@pytest.fixture(scope="session")
def tiny_codec(tmp_path_factory) -> Path:
    return make_tiny_codec(tmp_path_factory.mktemp("tokenlm_codec") / "codec.ckpt")


@pytest.fixture(scope="session")
def token_dir(tmp_path_factory, tiny_codec) -> Path:
    """Token export (K=4 x 16 codes, 2000 Hz frames) of 8 tagged synthetic clips (0.06-0.1 s: 120-200 frames):
    melodic/piano tones and percussive/standard clicks; the manifest names the codec checkpoint."""
    from audiolab.models.codec.tokens import export_tokens

    root = tmp_path_factory.mktemp("tokenlm_audio")
    rng = np.random.default_rng(0)
    for i in range(8):
        n = int(SR * (0.06 + 0.005 * i))
        t = np.arange(n) / SR
        if i % 2 == 0:
            folder, x = root / "melodic" / "piano", 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t)
        else:
            folder = root / "percussive" / "standard"
            x = np.zeros(n)
            x[:: 400] = 0.8
            x = np.convolve(x, np.exp(-np.arange(80) / 10.0))[:n] + 0.01 * rng.standard_normal(n)
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(str(folder / f"clip_{i}.wav"), x.astype(np.float32), SR)
    out = tmp_path_factory.mktemp("tokenlm_tokens")
    export_tokens(str(tiny_codec), str(root), str(out), chunk_seconds=0)
    return out


def write_tokens(folder: Path, tokens: np.ndarray, manifest: dict | None = None, files: list[dict] | None = None) -> Path:
    """Hand-made token folder: ``tokens.npy`` + ``manifest.json`` (cardinality 16 and one file by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "tokens.npy", tokens)
    m = {"cardinality": 16, "n_q": int(tokens.shape[0]), "frame_rate": 50.0, "sample_rate": SR,
         "files": files if files is not None else [{"source": "a/x.wav", "offset": 0, "n_frames": int(tokens.shape[1])}]}
    m.update(manifest or {})
    (folder / "manifest.json").write_text(json.dumps(m))
    return folder
