"""``python -m audiolab.train experiment=ddsp_transformer`` — compose, seed, instantiate, fit, test the best.

Everything else lives in callbacks, datamodules and modules. Staged training (``stages:``) runs one fit per stage.
"""

from __future__ import annotations

import logging
import math
import sys
import uuid
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict

from audiolab.callbacks.config_embed import ConfigEmbedder
from audiolab.callbacks.probe import find_probe
from audiolab.data.cache import atomic_write_json
from audiolab.utils.checkpoint import CheckpointError, load_weights, read_checkpoint, resolve_checkpoint
from audiolab.utils.config import CONF_DIR, instantiate_group, to_container, validate_train_config
from audiolab.utils.runs import (
    AtomicCheckpointIO,
    RunFolderError,
    RunState,
    apply_threads,
    check_run_folder,
    clean_temp_files,
    is_child_rank,
    resolve_resume,
    restore_logs,
)

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


def init_weights(model: L.LightningModule, source: str, strict: bool = True) -> None:
    """Weights-only start (``init_from``): no optimizer state, step 0. ``strict=False`` loads the matching tensors and
    prints a table of the others; strict, a mismatch is one error naming the keys."""
    try:
        path = resolve_checkpoint(source)
        ckpt = read_checkpoint(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"init_from: {err}") from err
    except CheckpointError as err:
        raise CheckpointError(f"init_from: {err}") from err
    state = ckpt.get("state_dict", ckpt)
    load_weights(model, state, strict=strict, source=f"init_from={str(path)!r}",
                 hint="init_strict=false loads the tensors that match and lists the rest")
    log.info("initialized weights from %s", path)


def train_one(cfg: DictConfig) -> dict[str, Any]:
    """One fit (+ test). Returns the callback metrics and paths of interest."""
    validate_train_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    first_rank = not is_child_rank()  # DDP relaunches this command per rank: rank 0 owns the folder
    if first_rank:
        check_run_folder(output_dir, cfg.get("ckpt_path"), bool(cfg.get("overwrite", False)))
    resume = resolve_resume(output_dir, cfg.get("ckpt_path"))
    threads = apply_threads(cfg.get("threads", "auto"))
    log.info("torch threads: %d (threads=%s)", threads, cfg.get("threads", "auto"))
    output_dir.mkdir(parents=True, exist_ok=True)
    if first_rank:
        clean_temp_files(output_dir / "checkpoints")
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True)

    if cfg.get("logger") and cfg.logger.get("wandb") and cfg.logger.wandb.get("id") is None:
        with open_dict(cfg):
            cfg.logger.wandb.id = _wandb_id(output_dir)
    resolved = to_container(cfg)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model, _recursive_=False)
    if cfg.get("init_from"):
        init_weights(model, cfg.init_from, strict=bool(cfg.get("init_strict", True)))
    (output_dir / "resolved_config.yaml").write_text(OmegaConf.to_yaml(resolved))

    # RunState first: it marks the rows of each finished batch before other callbacks log for the next one
    callbacks = [RunState(), *instantiate_group(cfg.get("callbacks")).values(), ConfigEmbedder(resolved)]
    loggers = list(instantiate_group(cfg.get("logger")).values())
    if first_rank:
        restore_logs(loggers, resume)
    if not loggers:  # LearningRateMonitor refuses to run without a logger (logger=none)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    for lg in loggers:
        lg.log_hyperparams(resolved)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                     plugins=[AtomicCheckpointIO()])

    result: dict[str, Any] = {"output_dir": str(output_dir)}
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(resume.path) if resume else None, weights_only=True)
    result.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})

    probe = find_probe(trainer)
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
        if "spawn" in str(cfg.trainer.get("strategy", "")):
            # spawned test workers get a copy of a CSV logger that never saw the training columns; test on one device
            test_trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, logger=False,
                                     precision=cfg.trainer.get("precision", "32-true"), default_root_dir=str(output_dir),
                                     limit_test_batches=cfg.trainer.get("limit_test_batches", 1.0),
                                     plugins=[AtomicCheckpointIO()])
        # EMA (when on) swaps the averaged weights in for the test: the numbers evaluate.py reproduces from the file
        if best:
            metrics = test_trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=True)
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
    ckpt = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    if ckpt is not None and ckpt.best_model_path:
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

        validate_train_config(cfg)
        check_run_folder(cfg.paths.output_dir, cfg.get("ckpt_path"), bool(cfg.get("overwrite", False)))
        return run_stages(cfg, train_one)
    return train_one(cfg)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        result = run(cfg)
    except (RunFolderError, CheckpointError) as err:  # one line, like the CLIs: what is wrong and what to do
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from err
    metric = cfg.get("optimized_metric")
    value = result.get(metric) if metric else None
    if metric:
        log.info("%s = %s", metric, value)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


if __name__ == "__main__":
    main()
