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
    """A DictConfig / ListConfig section as plain, resolved Python containers; anything else unchanged."""
    return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else x


def to_container(cfg: DictConfig) -> dict:
    """Resolved plain-dict copy, safe to store in a checkpoint (no hydra: interpolations left)."""
    # Hydra's own node (present when composed with return_hydra_config) holds run-mode-only interpolations
    keys = [k for k in cfg.keys() if k != "hydra"]
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True, throw_on_missing=False)  # type: ignore[return-value]


_INT, _NUM, _BOOL, _STR, _NONE = "integer", "number", "boolean", "string", "null"
#: Typed schema of the family-neutral keys: key -> accepted kinds (a value of another type names the key and stops
#: the run before any folder is created). Family keys are checked by the family's own constructors.
TYPED_KEYS: dict[str, tuple[str, ...]] = {
    "seed": (_INT, _NONE), "train": (_BOOL,), "test": (_BOOL,), "overwrite": (_BOOL,), "init_strict": (_BOOL,),
    "run_name": (_STR, _INT), "task_name": (_STR,), "ckpt_path": (_STR, _NONE), "init_from": (_STR, _NONE),
    "threads": (_INT, "auto"), "optimized_metric": (_STR, _NONE),
    "objective.monitor": (_STR, _NONE), "objective.mode": ("min", "max"), "objective.probe": (_STR,),
    "objective.gradient_clip_val": (_NUM, _NONE),
    "trainer.max_steps": (_INT,), "trainer.max_epochs": (_INT, _NONE), "trainer.min_steps": (_INT, _NONE),
    "trainer.val_check_interval": (_NUM, _NONE), "trainer.check_val_every_n_epoch": (_INT, _NONE),
    "trainer.log_every_n_steps": (_INT,), "trainer.num_sanity_val_steps": (_INT,),
    "trainer.accumulate_grad_batches": (_INT,), "trainer.gradient_clip_val": (_NUM, _NONE),
    "trainer.limit_train_batches": (_NUM, _NONE), "trainer.limit_val_batches": (_NUM, _NONE),
    "trainer.limit_test_batches": (_NUM, _NONE), "trainer.deterministic": (_BOOL, "warn"),
    "trainer.precision": (_STR, _INT), "trainer.accelerator": (_STR,),
    "data.batch_size": (_INT,), "data.num_workers": (_INT,), "data.sample_rate": (_INT,),
    "callbacks.probe.every_n_steps": (_INT,), "callbacks.probe.n_examples": (_INT,),
    "callbacks.last_checkpoint.every_n_steps": (_INT,), "callbacks.media.every_n_steps": (_INT,),
    "callbacks.ema.decay": (_NUM,), "callbacks.ema.update_every_n_steps": (_INT,), "callbacks.ema.start_step": (_INT,),
    "callbacks.ema.warmup": (_BOOL,), "callbacks.ema.enabled": (_BOOL,), "callbacks.ema.submodule": (_STR, _NONE),
}


def _is_kind(value: Any, kind: str) -> bool:
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _NUM:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _STR:
        return isinstance(value, str)
    if kind == _NONE:
        return value is None
    return value == kind  # a literal choice


def validate_types(cfg: DictConfig) -> None:
    """Check :data:`TYPED_KEYS` (those present); one ValueError naming every wrong key, e.g.
    ``trainer.max_steps='abc' (str): expected an integer``. Needs no Hydra run (usable before any folder exists)."""
    errors = []
    for key, kinds in TYPED_KEYS.items():
        try:
            value = OmegaConf.select(cfg, key, default="__absent__", throw_on_missing=False)
        except Exception as err:  # noqa: BLE001 - an interpolation that cannot resolve here (e.g. ${hydra:...})
            if "hydra" in str(err).lower():
                continue
            errors.append(f"{key}: {err}")
            continue
        if isinstance(value, str) and value == "__absent__":
            continue
        if not any(_is_kind(value, k) for k in kinds):
            names = [("an " if k == _INT else "a ") + k if k in (_INT, _NUM, _BOOL, _STR) else repr(k) if k != _NONE else "null"
                     for k in kinds]
            errors.append(f"{key}={value!r} ({type(value).__name__}): expected {' or '.join(names)}")
    if errors:
        raise ValueError("wrong config value" + ("s" if len(errors) > 1 else "") + ": " + "; ".join(errors))


def validate_train_config(cfg: DictConfig) -> None:
    """Fail early, naming the keys, for combinations that cannot work."""
    objective = cfg.get("objective")
    for key in ("monitor", "probe"):
        if objective is None or OmegaConf.is_missing(objective, key) or key not in objective:
            raise ValueError(f"objective.{key} is not set: choose an experiment (experiment=<name>) or set "
                             f"objective.{key} (e.g. objective.monitor=val/<metric> objective.probe=<probe metric>)")
    validate_types(cfg)
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
