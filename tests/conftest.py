"""Shared fixtures: compose Hydra configs in-process with outputs in tmp folders; W&B never runs in tests.

Framework fixtures are parametrized over every ``conf/experiment/*.yaml``: a new family is covered by adding its
configs (experiment + ``conf/debug_model/fast_<model>.yaml``). ``debug=fast`` must then run in the test suite
without downloaded data: self-contained (DDSP: the embedded demo) or reading ``$AUDIOLAB_DEBUG_AUDIO``, a folder of
audio with ``speech/`` and ``music/`` sub-folders of synthetic tones that this file creates once per session.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from audiolab.utils.config import CONF_DIR

os.environ.setdefault("WANDB_MODE", "disabled")
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.fixture(scope="session", autouse=True)
def debug_audio(tmp_path_factory) -> Path:
    """``$AUDIOLAB_DEBUG_AUDIO``: speech/ and music/ folders of 1.5-2.5 s harmonic tones with noise at 16 and
    44.1 kHz (what ``debug=fast`` of a folder-of-audio family reads in tests)."""
    root = tmp_path_factory.mktemp("debug_audio")
    rng = np.random.default_rng(0)
    for cat, sr in (("speech", 16000), ("music", 44100)):
        for i in range(4):
            n = int(sr * (1.5 + 0.25 * i))
            t = np.arange(n) / sr
            f0 = 110.0 * (i + 1)
            x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)) * 0.2 + 0.01 * rng.standard_normal(n)
            (root / cat).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / cat / f"{cat}_{i}.wav"), x.astype(np.float32), sr)
    old = os.environ.get("AUDIOLAB_DEBUG_AUDIO")
    os.environ["AUDIOLAB_DEBUG_AUDIO"] = str(root)
    yield root
    if old is None:
        os.environ.pop("AUDIOLAB_DEBUG_AUDIO", None)
    else:
        os.environ["AUDIOLAB_DEBUG_AUDIO"] = old


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One prepared-feature cache for the whole session (CREPE on the embedded demo runs once)."""
    return tmp_path_factory.mktemp("audiolab_cache")


def compose_train(overrides: list[str], output_dir: Path, cache_dir: Path, config_name: str = "train") -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.root_dir = str(output_dir)
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
        cfg.paths.cache_dir = str(cache_dir)
    return cfg


@pytest.fixture
def make_cfg(tmp_path, shared_cache):
    def _make(overrides: list[str], output_dir: Path | None = None, config_name: str = "train") -> DictConfig:
        return compose_train(overrides, output_dir or tmp_path / "run", shared_cache, config_name)

    yield _make
    GlobalHydra.instance().clear()


def drop_hydra_node(cfg: DictConfig) -> DictConfig:
    """The config as ``@hydra.main`` hands it to the task function: no ``hydra`` node (HydraConfig stays set)."""
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


@pytest.fixture
def make_run_cfg(make_cfg):
    """Like ``make_cfg``, but returns the config the way ``@hydra.main`` passes it to ``train_one`` (no ``hydra`` node)."""

    def _make(overrides: list[str], output_dir: Path | None = None, config_name: str = "train") -> DictConfig:
        return drop_hydra_node(make_cfg(overrides, output_dir, config_name))

    return _make


@pytest.fixture(scope="session")
def compose_run(shared_cache):
    """Session-scoped composer for module-scoped run fixtures: ``compose_run(overrides, output_dir)`` (no hydra node)."""

    def _make(overrides: list[str], output_dir: Path, config_name: str = "train") -> DictConfig:
        return drop_hydra_node(compose_train(overrides, Path(output_dir), shared_cache, config_name))

    yield _make
    GlobalHydra.instance().clear()


# ------------------------------------------------------------------------------------------------ one fit per experiment
@dataclass
class FastRun:
    """A finished ``experiment=<name> debug=fast`` run (fit + test), shared by every check of that experiment."""

    experiment: str
    out: Path
    cfg: Any
    result: dict[str, Any]
    family: str | None
    files: dict[str, Any] = field(default_factory=dict)

    @property
    def staged(self) -> bool:
        return bool(self.cfg.get("stages"))

    @property
    def folders(self) -> list[Path]:
        """The run folder(s) holding checkpoints: the run, or each stage of a staged run."""
        return sorted((self.out / "stages").iterdir()) if self.staged else [self.out]

    def copy_to(self, dest: Path) -> Path:
        """A copy of the run folder (for checks that write into it)."""
        shutil.copytree(self.out, dest)
        return dest


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory, compose_run):
    """``fast_run(experiment) -> FastRun``: runs ``debug=fast`` once per experiment and session (torch on one
    thread, as ``threads=auto`` gives on a 2-core machine), then hands out the same result."""
    from audiolab.train import run
    from audiolab.utils.checkpoint import family_of

    done: dict[str, FastRun] = {}

    def _get(experiment: str) -> FastRun:
        if experiment not in done:
            out = tmp_path_factory.mktemp(f"fast_{experiment}") / "run"
            cfg = compose_run([f"experiment={experiment}", "debug=fast", "threads=1"], out)
            result = run(cfg)
            done[experiment] = FastRun(experiment, out, cfg, result, family_of(str(cfg.model._target_)))
        return done[experiment]

    return _get

@pytest.fixture(scope="session", autouse=True)
def debug_tokens(tmp_path_factory) -> Path:
    """``$AUDIOLAB_DEBUG_TOKENS`` (read by conf/debug_model/fast_tokenlm.yaml): a token export (K=4 x 1024 codes at
    50 frames/s) of a few tagged tones, made by a tiny untrained codec that the manifest names, so ``debug=fast`` of
    the token LM runs without `make tokenlm-data` and its demos decode to audio."""
    import numpy as np
    import soundfile as sf
    import torch

    from audiolab.callbacks.config_embed import CONFIG_KEY
    from audiolab.models.codec.module import CodecModule
    from audiolab.models.codec.tokens import export_tokens

    root = tmp_path_factory.mktemp("debug_tokens")
    for i in range(6):
        folder = root / "audio" / ("melodic" if i % 2 else "percussive")
        folder.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(16000 * (1.5 + 0.25 * i))) / 16000
        sf.write(str(folder / f"tone_{i}.wav"), (0.3 * np.sin(2 * np.pi * 110 * (i + 1) * t)).astype(np.float32), 16000)
    model = {"sample_rate": 16000,
             "codec": {"channels": 1, "output": "unbounded", "normalization": "none",
                       "seanet": {"dimension": 16, "n_filters": 4, "ratios": [8, 5, 4, 2], "lstm": 0, "causal": True},
                       "quantizer": {"n_q": 4, "bins": 1024, "kmeans_init": False}},
             "loss": {"l1": {"weight": 1.0}, "mel": {"weight": 1.0, "window_sizes": [64, 128]}},
             "optim": {"optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 3.0e-4}},
             "eval_bandwidths": []}
    torch.manual_seed(0)
    ckpt = root / "codec.ckpt"
    torch.save({"state_dict": CodecModule(**model).state_dict(), "global_step": 0,
                CONFIG_KEY: {"model": {"_target_": "audiolab.models.codec.module.CodecModule", **model},
                             "data": {"sample_rate": 16000}}}, ckpt)
    export_tokens(str(ckpt), str(root / "audio"), str(root / "tokens"), chunk_seconds=0)
    old = os.environ.get("AUDIOLAB_DEBUG_TOKENS")
    os.environ["AUDIOLAB_DEBUG_TOKENS"] = str(root / "tokens")
    yield root / "tokens"
    if old is None:
        os.environ.pop("AUDIOLAB_DEBUG_TOKENS", None)
    else:
        os.environ["AUDIOLAB_DEBUG_TOKENS"] = old


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module: tiny nets gain nothing from more, and on a shared 2-core box
    oversubscription makes them many times slower. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``
    or from a family conftest's autouse fixture."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
