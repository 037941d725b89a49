"""Best-checkpoint probe: one fixed, named metric on one fixed batch every N steps.

Independent of auxiliary loss terms and their schedules, so checkpoints from runs (and stages) with different
loss recipes can be ranked on the same ruler. Writes ``probe_best.ckpt`` and ``probe_summary.json``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from audiolab.callbacks.ema import averaged_weights
from audiolab.data.cache import atomic_write_json
from audiolab.utils.rng import seeded

log = logging.getLogger("audiolab")


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


class ProbeCallback(Callback):
    """Calls ``pl_module.probe_metrics(batch) -> dict[str, float]`` on the datamodule's ``probe_batch(n)``.

    Logged as ``probe/<name>``; ``metric`` names the one that selects ``probe_best.ckpt`` (lower is better unless
    ``mode='max'``). The probe runs at step 0 (before any update) and every ``every_n_steps`` optimizer steps.
    """

    def __init__(self, metric: str = "spectral", every_n_steps: int = 50, n_examples: int = 4, output_dir: str | None = None,
                 mode: str = "min", save_checkpoint: bool = True, seed: int = 0):
        if every_n_steps < 1:
            raise ValueError(f"callbacks.probe.every_n_steps must be >= 1, got {every_n_steps}")
        if mode not in ("min", "max"):
            raise ValueError(f"callbacks.probe.mode must be 'min' or 'max', got {mode!r}")
        self.metric, self.every_n_steps, self.n_examples, self.mode = metric, every_n_steps, n_examples, mode
        self.output_dir = Path(output_dir) if output_dir else None
        self.save_checkpoint = save_checkpoint
        self.seed = seed
        self.history: list[dict[str, float]] = []
        self.best_value = math.inf if mode == "min" else -math.inf
        self.best_step = -1
        self._batch: Any = None
        self._last_step = -1
        self._t0: float | None = None
        self._time_offset = 0.0

    # ----------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "best_value": self.best_value, "best_step": self.best_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.best_value = state_dict.get("best_value", self.best_value)
        self.best_step = state_dict.get("best_step", self.best_step)
        # the step already probed: with gradient accumulation the first batches after a resume end at that step
        self._last_step = int(self.history[-1]["step"]) if self.history else -1

    @property
    def best_path(self) -> Path | None:
        return self.output_dir / "checkpoints" / "probe_best.ckpt" if self.output_dir else None

    @property
    def summary_path(self) -> Path | None:
        return self.output_dir / "probe_summary.json" if self.output_dir else None

    # ----------------------------------------------------------------------------------------------- hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "probe_batch"):
            raise RuntimeError("ProbeCallback needs a datamodule with probe_batch(n); disable it with callbacks.probe=null")
        if not hasattr(pl_module, "probe_metrics"):
            raise RuntimeError(f"{type(pl_module).__name__} has no probe_metrics(batch); disable callbacks.probe")
        self._batch = dm.probe_batch(self.n_examples)
        self._t0 = time.perf_counter()
        self._time_offset = self.history[-1].get("time_s", 0.0) if self.history else 0.0
        if trainer.global_step == 0 or not self.history:
            self._probe(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every_n_steps == 0 and step != self._last_step:
            self._probe(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step != self._last_step:
            self._probe(trainer, pl_module)

    # ----------------------------------------------------------------------------------------------- work
    def _probe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step
        self._last_step = step
        was_training = pl_module.training
        pl_module.eval()
        try:
            # the averaged weights when EMA is on (what validation and the checkpoints hold); a fixed metric: same
            # noise realisation every time, and the training RNG stream is left untouched
            with averaged_weights(trainer, pl_module), seeded(self.seed, pl_module.device), torch.no_grad():
                metrics = pl_module.probe_metrics(_to_device(self._batch, pl_module.device))
        finally:
            pl_module.train(was_training)
        if self.metric not in metrics:
            raise KeyError(f"callbacks.probe.metric={self.metric!r} is not among probe metrics {sorted(metrics)}")
        value = float(metrics[self.metric])
        # wall-clock seconds since fit start (validation and probes included): loss-vs-time curves for A/B tables
        elapsed = time.perf_counter() - self._t0 if self._t0 is not None else 0.0
        self.history.append({"step": step, "time_s": round(self._time_offset + elapsed, 3), **{k: float(v) for k, v in metrics.items()}})
        for logger in trainer.loggers:
            logger.log_metrics({f"probe/{k}": float(v) for k, v in metrics.items()}, step=step)
        better = (value < self.best_value if self.mode == "min" else value > self.best_value) and math.isfinite(value)
        better = trainer.strategy.broadcast(better, src=0)  # save_checkpoint has a barrier: all ranks must agree
        if better:
            self.best_value, self.best_step = value, step
            if self.save_checkpoint and self.best_path is not None:
                trainer.save_checkpoint(self.best_path, weights_only=False)  # full state; every rank calls it, rank 0 writes
        if trainer.is_global_zero:
            self.write_summary()

    def summary(self) -> dict[str, Any]:
        hist = self.history
        best = next((h for h in hist if h["step"] == self.best_step), None)
        return {
            "metric": f"probe/{self.metric}",
            "mode": self.mode,
            "initial_value": hist[0][self.metric] if hist else None,
            "final_value": hist[-1][self.metric] if hist else None,
            "best_value": self.best_value if hist else None,
            "best_step": self.best_step,
            "best_terms": best,
            "best_checkpoint": str(self.best_path) if self.best_path and self.best_path.exists() else None,
            "history": hist,
        }

    def write_summary(self) -> None:
        if self.summary_path is not None:
            atomic_write_json(self.summary_path, self.summary())


def find_probe(trainer: L.Trainer | None) -> ProbeCallback | None:
    """The trainer's :class:`ProbeCallback` (None without one): the documented accessor for modules and callbacks."""
    if trainer is None:
        return None
    return next((cb for cb in trainer.callbacks if isinstance(cb, ProbeCallback)), None)


def probe_history(trainer: L.Trainer | None) -> list[dict[str, float]]:
    """The probe history so far (``[{"step", "time_s", <metric>: value, ...}]``; restored on resume), or []."""
    probe = find_probe(trainer)
    return list(probe.history) if probe is not None else []


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "probe_summary.json"
    if not path.exists():
        raise FileNotFoundError(f"no probe summary at {path}")
    return json.loads(path.read_text())
