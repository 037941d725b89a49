"""``python -m audiolab.evaluate ckpt_path=…`` — rebuild model and data from the checkpoint's stored config, test,
write ``metrics.json`` (and, for DDSP, resynthesized audio) into the evaluate run folder."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from audiolab.data.cache import atomic_write_json
from audiolab.utils.checkpoint import CheckpointError, check_target, load_trained
from audiolab.utils.config import CONF_DIR
from audiolab.utils.runs import apply_threads

log = logging.getLogger("audiolab")


def evaluate(ckpt_path: str, output_dir: str | Path, *, split: str = "test", write_audio: bool = True, max_audio_examples: int = 8,
             overrides: list[str] | None = None, accelerator: str = "auto", threads: int | str = "auto") -> dict[str, Any]:
    """``ckpt_path``: a ``.ckpt`` or a run folder (probe_best.ckpt, else last.ckpt), loaded by
    :func:`audiolab.utils.checkpoint.load_trained` (weights_only; the EMA weights when EMA was on)."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    apply_threads(threads)
    trained = load_trained(ckpt_path, overrides=overrides)
    cfg = trained.config
    check_target(cfg, "data", trained.path)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "stored_config.yaml").write_text(OmegaConf.to_yaml(cfg))
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True)
    datamodule = instantiate(cfg.data)
    module = trained.module
    if write_audio and hasattr(module, "audio_output_dir"):
        module.audio_output_dir = output_dir / "audio"
        module.max_audio_examples = max_audio_examples
    trainer = L.Trainer(accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
                        precision=cfg.trainer.get("precision", "32-true") if accelerator != "cpu" else "32-true",
                        default_root_dir=str(output_dir), enable_progress_bar=True,
                        # the stored limit (1.0 = the whole split, the default): the test of the training run, reproduced
                        limit_test_batches=cfg.trainer.get("limit_test_batches", 1.0))
    if split == "val":
        datamodule.test_dataloader = datamodule.val_dataloader  # evaluate on the validation split
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True)  # same RNG state as the test at the end of training
    metrics = trainer.test(module, datamodule=datamodule)
    result = {
        "checkpoint": str(trained.path),
        "global_step": trained.global_step,
        "split": split,
        "metrics": {k: float(v) for k, v in (metrics[0] if metrics else {}).items()},
        "experiment": cfg.get("task_name"),
    }
    atomic_write_json(output_dir / "metrics.json", result)
    log.info("wrote %s", output_dir / "metrics.json")
    return result


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        _run(cfg)
    except (CheckpointError, FileNotFoundError) as err:  # one line, like the other CLIs
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from err


def _run(cfg: DictConfig) -> None:
    evaluate(cfg.ckpt_path, cfg.paths.output_dir, split=cfg.split, write_audio=cfg.write_audio,
             max_audio_examples=cfg.max_audio_examples, overrides=list(cfg.overrides), accelerator=cfg.accelerator,
             threads=cfg.get("threads", "auto"))


if __name__ == "__main__":
    main()
