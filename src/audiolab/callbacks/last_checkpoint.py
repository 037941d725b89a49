"""``checkpoints/last.ckpt`` every N optimizer steps, after validation, and at the end of training.

Why not ``ModelCheckpoint(save_last=True, every_n_train_steps=N)``: with a monitor it defers step-triggered saves
until validation, so ``last.ckpt`` was written only every 200-500 steps; its "last" file gets a version suffix
(``last-v1.ckpt``) next to an older one; and with manual optimization it warns on every step-triggered save.

Saves happen where Lightning's resume logic expects them: at the end of the batch that reached a multiple of N
(a validation due right after it runs and saves again, so ``last.ckpt`` holds the post-validation state), after each
validation, and at the end of training. The write goes through the trainer's checkpoint IO (atomic in
``audiolab.train``); :class:`audiolab.utils.runs.RunState` keeps the CSV consistent with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint


class LastCheckpoint(Checkpoint):
    """Writes ``<dirpath>/<filename>`` (default ``last.ckpt``) every ``every_n_steps`` trainer steps (0 = only after
    validation and at the end)."""

    def __init__(self, dirpath: str, every_n_steps: int = 100, filename: str = "last.ckpt"):
        if int(every_n_steps) < 0:
            raise ValueError(f"callbacks.last_checkpoint.every_n_steps must be >= 0, got {every_n_steps}")
        self.dirpath, self.filename, self.every_n_steps = Path(dirpath), filename, int(every_n_steps)
        self._saved_step: int | None = None
        self._prev_step = 0

    @property
    def path(self) -> Path:
        return self.dirpath / self.filename

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or self._saved_step == trainer.global_step:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # full state; every rank calls it, rank 0 writes
        self._saved_step = trainer.global_step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._saved_step = trainer.global_step if trainer.global_step > 0 else None  # a resume: that state is on disk
        self._prev_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # "crossed a multiple of N": a GAN's global_step advances by 2 per batch and may jump over it
        step, prev, n = trainer.global_step, self._prev_step, self.every_n_steps
        self._prev_step = step
        if n and step // n != prev // n and step != self._saved_step:
            self._save(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"every_n_steps": self.every_n_steps}
