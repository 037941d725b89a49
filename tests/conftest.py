"""Shared fixtures: compose Hydra configs in-process with outputs in tmp folders; W&B never runs in tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from audiolab.utils.config import CONF_DIR

os.environ.setdefault("WANDB_MODE", "disabled")
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


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
