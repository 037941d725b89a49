"""Config helpers: resolvers, instantiation of callback/logger groups, stored-config round trips."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("audiolab")

CONF_DIR = Path(os.environ.get("AUDIOLAB_CONF", Path(__file__).resolve().parents[3] / "conf"))


def _wandb_offline() -> bool:
    """Offline unless the user is logged in (API key in env or netrc) — nothing is uploaded by surprise."""
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path.home() / ".netrc"
    try:
        return not (netrc.exists() and "api.wandb.ai" in netrc.read_text())
    except OSError:
        return True


def _root_dir() -> str:
    """$AUDIOLAB_ROOT or the launch directory. A resolver, not ``${oc.env:X,${hydra:runtime.cwd}}``: the default of
    oc.env is evaluated eagerly, and the sweeper resolves ``hydra.sweep.dir`` before ``hydra:runtime`` exists."""
    return os.environ.get("AUDIOLAB_ROOT") or os.getcwd()


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("audiolab_wandb_offline"):
        OmegaConf.register_new_resolver("audiolab_wandb_offline", _wandb_offline)
    if not OmegaConf.has_resolver("audiolab_root"):
        OmegaConf.register_new_resolver("audiolab_root", _root_dir)


register_resolvers()


def _enabled_entries(group: DictConfig | None) -> dict[str, DictConfig]:
    entries: dict[str, DictConfig] = {}
    if not group:
        return entries
    for name, entry in group.items():
        if entry is None or not isinstance(entry, DictConfig) or "_target_" not in entry:
            continue
        if not entry.get("enabled", True):
            continue
        # resolve while still attached to the root so ${paths.*} interpolations work
        plain = OmegaConf.to_container(entry, resolve=True)
        plain.pop("enabled", None)
        entries[str(name)] = OmegaConf.create(plain)
    return entries


def instantiate_group(group: DictConfig | None, **extra: Any) -> dict[str, Any]:
    """Instantiate every enabled ``_target_`` entry of a config group (callbacks, loggers)."""
    out = {}
    for name, entry in _enabled_entries(group).items():
        log.info("instantiating %s <%s>", name, entry._target_)
        out[name] = instantiate(entry, **extra)
    return out


def plain(x: Any) -> Any:
    """A DictConfig section as plain, resolved Python containers; anything else unchanged."""
    return OmegaConf.to_container(x, resolve=True) if isinstance(x, DictConfig) else x


def to_container(cfg: DictConfig) -> dict:
    """Resolved plain-dict copy, safe to store in a checkpoint (no hydra: interpolations left)."""
    # Hydra's own node (present when composed with return_hydra_config) holds run-mode-only interpolations
    keys = [k for k in cfg.keys() if k != "hydra"]
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def validate_train_config(cfg: DictConfig) -> None:
    """Fail early, naming the keys, for combinations that cannot work."""
    trainer = cfg.get("trainer", {})
    if trainer.get("precision") in ("bf16-mixed", "16-mixed") and trainer.get("accelerator") == "cpu":
        if trainer.get("precision") == "16-mixed":
            raise ValueError("trainer.precision=16-mixed needs a GPU (trainer.accelerator=cpu); use bf16-mixed or 32-true")
    if cfg.get("ckpt_path") and cfg.get("init_from"):
        raise ValueError("ckpt_path (full resume) and init_from (weights only) cannot both be set; choose one")
    strategy = str(trainer.get("strategy", ""))
    if strategy.startswith("ddp") and not strategy.startswith("ddp_spawn"):
        try:
            from hydra.core.hydra_config import HydraConfig

            mode = HydraConfig.get().mode.name
            launcher = str(HydraConfig.get().launcher.get("_target_", ""))
        except Exception:  # noqa: BLE001 - not under @hydra.main
            mode, launcher = "RUN", ""
        if mode == "MULTIRUN" and "submitit" not in launcher:
            raise ValueError(
                "trainer.strategy=ddp re-executes the command per rank and cannot run under a basic-launcher "
                "multirun (-m); use hydra/launcher=slurm (submitit) or trainer=ddp_sim"
            )
    cbs = cfg.get("callbacks") or {}
    ckpt = cbs.get("model_checkpoint")
    if ckpt and ckpt.get("monitor") and ckpt.get("save_top_k", 1) != 0:
        if trainer.get("limit_val_batches", 1.0) == 0:
            raise ValueError("callbacks.model_checkpoint.monitor needs validation, but trainer.limit_val_batches=0")
