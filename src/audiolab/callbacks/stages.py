"""Staged training: a list of override sets run one after another.

Stage k+1 starts (weights only) from stage k's probe-best checkpoint. Each stage has its own folder
``<run>/stages/<k>_<name>`` with its probe summary; ``<run>/stages_summary.json`` ranks the stages on the probe
metric and names the recommended checkpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from audiolab.data.cache import atomic_write_json
from audiolab.utils.runs import checkpoint_files

log = logging.getLogger("audiolab")


def stage_config(cfg: DictConfig, index: int, stage: DictConfig, base_dir: Path, init_from: str | None) -> DictConfig:
    """The config of one stage: base config + the stage's dotlist overrides, own folder, init from the previous best."""
    name = stage.get("name") or f"stage{index}"
    overrides = list(stage.get("overrides") or [])
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ValueError(f"stages[{index}].overrides must be key=value strings, got {bad}")
    base = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "stages"])
    # keep the hydra node for ${hydra:...} resolution
    merged = OmegaConf.merge(base, OmegaConf.from_dotlist(overrides))
    with open_dict(merged):
        merged.paths.output_dir = str(base_dir / "stages" / f"{index}_{name}")
        merged.init_from = init_from
        merged.stages = None
        resuming = cfg.get("ckpt_path") in ("last", "last_or_new")
        if resuming and checkpoint_files(merged.paths.output_dir):
            merged.ckpt_path, merged.init_from = "last", None  # resume this stage in place
        else:
            merged.ckpt_path, merged.init_from = None, init_from
            # a stage folder left without any checkpoint by an interrupted run: nothing to keep, start it again
            merged.overwrite = bool(resuming or cfg.get("overwrite", False))
        if merged.get("logger") and merged.logger.get("wandb"):
            merged.logger.wandb.name = f"{merged.logger.wandb.name}-{name}"
            merged.logger.wandb.id = None
    return merged


def run_stages(cfg: DictConfig, train_fn: Callable[[DictConfig], dict[str, Any]]) -> dict[str, Any]:
    base_dir = Path(cfg.paths.output_dir)
    init_from = cfg.get("init_from")
    rows = []
    last_result: dict[str, Any] = {}
    for index, stage in enumerate(cfg.stages):
        scfg = stage_config(cfg, index, stage, base_dir, init_from)
        name = stage.get("name") or f"stage{index}"
        done = Path(scfg.paths.output_dir) / "stage_done.json"
        if cfg.get("ckpt_path") in ("last", "last_or_new") and done.exists():
            log.info("stage %s already finished; skipping", name)
            row = json.loads(done.read_text())
        else:
            log.info("=== stage %d/%d: %s (init_from=%s)", index + 1, len(cfg.stages), name, init_from)
            last_result = train_fn(scfg)
            summary = last_result.get("probe_summary") or {}
            row = {
                "stage": name,
                "index": index,
                "output_dir": scfg.paths.output_dir,
                "init_from": init_from,
                "overrides": list(stage.get("overrides") or []),
                "metric": summary.get("metric"),
                "initial_value": summary.get("initial_value"),
                "min_value": summary.get("best_value"),
                "final_value": summary.get("final_value"),
                "best_step": summary.get("best_step"),
                "best_checkpoint": summary.get("best_checkpoint"),
                "test": {k: v for k, v in last_result.items() if k.startswith("test/")},
            }
            atomic_write_json(done, row)
        rows.append(row)
        if row.get("best_checkpoint"):
            init_from = row["best_checkpoint"]
        else:
            log.warning("stage %s produced no probe-best checkpoint; the next stage starts from the same weights", name)
    maximize = (cfg.get("callbacks") or {}).get("probe", {}).get("mode", "min") == "max"
    ranked = sorted([r for r in rows if r.get("min_value") is not None], key=lambda r: r["min_value"], reverse=maximize)
    summary = {
        "stages": rows,
        "ranking": [r["stage"] for r in ranked],
        "recommended_stage": ranked[0]["stage"] if ranked else None,
        "recommended_checkpoint": ranked[0]["best_checkpoint"] if ranked else None,
        "recommended_value": ranked[0]["min_value"] if ranked else None,
    }
    atomic_write_json(base_dir / "stages_summary.json", summary)
    log.info("stages summary: %s", base_dir / "stages_summary.json")
    metric = rows[-1].get("metric") if rows else None
    out = {**last_result, "stages_summary": summary}
    if metric and summary["recommended_value"] is not None:
        out[metric] = summary["recommended_value"]
    return out
