"""Tiny codec checkpoints for the inference / container / CLI / token tests (no training, k-means init only)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

SR = 16000


def tiny_codec_cfg(*, causal: bool = True, lstm: int = 1, ratios: tuple[int, ...] = (4, 2), n_q: int = 4,
                   bins: int = 16, normalization: str = "none", segment_seconds: float = 1.0) -> dict:
    """``model.codec`` of a tiny codec (dimension 16, 4 filters)."""
    return {
        "channels": 1,
        "output": "unbounded",
        "normalization": normalization,
        "segment_seconds": segment_seconds,
        "seanet": {"dimension": 16, "n_filters": 4, "ratios": list(ratios), "lstm": lstm, "causal": causal},
        "quantizer": {"n_q": n_q, "bins": bins, "kmeans_iters": 2},
    }


def train_config(codec: dict) -> dict:
    """The smallest stored train config that :func:`audiolab.utils.checkpoint.build_module` can instantiate."""
    return {
        "model": {
            "_target_": "audiolab.models.codec.module.CodecModule",
            "sample_rate": SR,
            "codec": copy.deepcopy(codec),
            "loss": {"l1": {"weight": 1.0}, "mel": {"weight": 1.0, "window_sizes": [64, 128]}},
            "optim": {"optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 3.0e-4}},
            "eval_bandwidths": [],
        },
        "data": {"sample_rate": SR},
    }


def make_codec_checkpoint(path: Path, seed: int = 0, **codec_kw) -> Path:
    """Build a tiny ``CodecModule``, run one training-mode forward (k-means init: diverse codes), save it the way
    training does (``state_dict`` + ``audiolab_config``)."""
    from audiolab.callbacks.config_embed import CONFIG_KEY
    from audiolab.models.codec.module import CodecModule

    cfg = train_config(tiny_codec_cfg(**codec_kw))
    torch.manual_seed(seed)
    model_cfg = {k: v for k, v in cfg["model"].items() if k != "_target_"}
    module = CodecModule(**model_cfg)
    g = torch.Generator().manual_seed(seed + 1)
    audio = 0.1 * torch.randn(2, 8 * module.codec.hop_length * 50, generator=g)
    module.codec.train()
    with torch.no_grad():
        module.codec(audio)
    module.codec.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(), CONFIG_KEY: cfg}, path)
    return path


@pytest.fixture(scope="session")
def codec_ckpt(tmp_path_factory) -> Callable[..., Path]:
    """``codec_ckpt(name, seed=0, **codec_kw)`` -> path of a cached tiny codec checkpoint (one per name)."""
    root = tmp_path_factory.mktemp("codec_ckpts")
    made: dict[str, Path] = {}

    def _get(name: str, seed: int = 0, **codec_kw) -> Path:
        if name not in made:
            made[name] = make_codec_checkpoint(root / f"{name}.ckpt", seed=seed, **codec_kw)
        return made[name]

    return _get


@pytest.fixture(autouse=True, scope="module")
def _codec_one_thread():
    # tiny convs gain nothing from intra-op threads; on a shared 2-core box they make these tests much slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
