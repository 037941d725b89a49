"""``python -m audiolab.train experiment=ddsp_transformer`` — compose, seed, instantiate, fit, test the best.

Everything else lives in callbacks, datamodules and modules. Staged training (``stages:``) runs one fit per stage.
"""

from __future__ import annotations

import logging
import math
import uuid
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, WeightAveraging
from omegaconf import DictConfig, OmegaConf, open_dict

from audiolab.callbacks.config_embed import ConfigEmbedder
from audiolab.data.cache import atomic_write_json
from audiolab.utils.config import CONF_DIR, instantiate_group, to_container, validate_train_config

log = logging.getLogger("audiolab")


def _wandb_id(output_dir: Path) -> str:
    """One W&B run id per run folder, so `ckpt_path=last` continues the same W&B run."""
    path = output_dir / "wandb_id.txt"
    if path.exists():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:12]
    output_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id)
    return run_id


def _resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    if not ckpt_path:
        return None
    if ckpt_path == "last":
        last = output_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            log.info("resuming from %s", last)
            return str(last)
        log.info("ckpt_path=last but %s does not exist yet: starting fresh", last)
        return None
    if not Path(ckpt_path).exists():
        raise FileNotFoundError(f"ckpt_path={ckpt_path!r} does not exist")
    return ckpt_path


def load_weights(model: torch.nn.Module, path: str) -> None:
    """Weights-only start (``init_from``): no optimizer state, step 0."""
    if not Path(path).exists():
        raise FileNotFoundError(f"init_from={path!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["state_dict"] if "state_dict" in state else state)
    log.info("initialized weights from %s", path)


def train_one(cfg: DictConfig) -> dict[str, Any]:
    """One fit (+ test). Returns the callback metrics and paths of interest."""
    validate_train_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True)

    if cfg.get("logger") and cfg.logger.get("wandb") and cfg.logger.wandb.get("id") is None:
        with open_dict(cfg):
            cfg.logger.wandb.id = _wandb_id(output_dir)
    resolved = to_container(cfg)
    (output_dir / "resolved_config.yaml").write_text(OmegaConf.to_yaml(resolved))

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model, _recursive_=False)
    if cfg.get("init_from"):
        load_weights(model, cfg.init_from)

    callbacks = list(instantiate_group(cfg.get("callbacks")).values()) + [ConfigEmbedder(resolved)]
    loggers = list(instantiate_group(cfg.get("logger")).values())
    if not loggers:  # LearningRateMonitor refuses to run without a logger (logger=none)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    for lg in loggers:
        lg.log_hyperparams(resolved)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    result: dict[str, Any] = {"output_dir": str(output_dir)}
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=_resolve_ckpt_path(cfg.get("ckpt_path"), output_dir))
    result.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})

    probe = next((c for c in callbacks if type(c).__name__ == "ProbeCallback"), None)
    if probe is not None and probe.history:
        summary = probe.summary()
        result.update({"probe_summary": summary, f"probe/{probe.metric}": summary["best_value"]})
    if cfg.get("test", True):
        best = _best_checkpoint(trainer, probe)
        log.info("testing %s", best or "current weights")
        if cfg.get("seed") is not None:
            # the noise synth draws from the global RNG: reseed so evaluate.py reproduces these numbers
            L.seed_everything(int(cfg.seed), workers=True)
        test_trainer = trainer
        for cb in trainer.callbacks:
            if isinstance(cb, WeightAveraging):
                # otherwise on_load_checkpoint restores the raw weights ("current_model_state") for the test,
                # while evaluate.py (and every consumer of the file) sees the averaged state_dict
                cb._average_model = None
        if "spawn" in str(cfg.trainer.get("strategy", "")):
            # spawned test workers get a copy of a CSV logger that never saw the training columns; test on one device
            test_trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, logger=False,
                                     precision=cfg.trainer.get("precision", "32-true"), default_root_dir=str(output_dir),
                                     limit_test_batches=cfg.trainer.get("limit_test_batches", 1.0))
        if best:
            metrics = test_trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=False)
        else:
            metrics = test_trainer.test(model, datamodule=datamodule)
        if metrics:
            result.update({k: float(v) for k, v in metrics[0].items()})
        result["tested_checkpoint"] = best
        if test_trainer.is_global_zero:
            atomic_write_json(output_dir / "test_metrics.json", {"checkpoint": best, **(metrics[0] if metrics else {})})
    _finish_loggers(loggers)
    return result


def _best_checkpoint(trainer: L.Trainer, probe: Any) -> str | None:
    if probe is not None and probe.best_path is not None and probe.best_path.exists():
        return str(probe.best_path)
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and getattr(ckpt, "best_model_path", ""):
        return ckpt.best_model_path
    return None


def _finish_loggers(loggers: list) -> None:
    """Close W&B between multirun jobs, or every job ends up in one W&B run."""
    from lightning.pytorch.loggers import WandbLogger

    for lg in loggers:
        if isinstance(lg, WandbLogger):
            import wandb

            wandb.finish()


def run(cfg: DictConfig) -> dict[str, Any]:
    if cfg.get("stages"):
        from audiolab.callbacks.stages import run_stages

        return run_stages(cfg, train_one)
    return train_one(cfg)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    result = run(cfg)
    metric = cfg.get("optimized_metric")
    value = result.get(metric) if metric else None
    if metric:
        log.info("%s = %s", metric, value)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


if __name__ == "__main__":
    main()
