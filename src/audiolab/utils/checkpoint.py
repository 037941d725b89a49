"""Rebuild models and data from the config stored in a checkpoint (no training code paths needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from audiolab.callbacks.config_embed import CONFIG_KEY


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "probe_best.ckpt", path / "checkpoints" / "last.ckpt"):
            if candidate.exists():
                path = candidate
                break
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"checkpoint {str(path)!r} could not be read ({err})") from err
    if CONFIG_KEY not in ckpt:
        raise ValueError(f"checkpoint {str(path)!r} has no stored '{CONFIG_KEY}': was it written by audiolab.train?")
    ckpt["_path"] = str(path)
    return ckpt


def stored_config(ckpt: dict[str, Any], overrides: list[str] | None = None) -> DictConfig:
    cfg = OmegaConf.create(ckpt[CONFIG_KEY])
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return cfg


def build_module(cfg: DictConfig, ckpt: dict[str, Any] | None = None):
    """Instantiate ``cfg.model`` and load the checkpoint's (EMA-averaged when EMA was on) weights."""
    from hydra.utils import instantiate

    module = instantiate(cfg.model, _recursive_=False)
    if ckpt is not None:
        module.load_state_dict(ckpt["state_dict"])
    return module
