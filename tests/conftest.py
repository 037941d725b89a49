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
