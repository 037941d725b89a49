"""Audio snapshots, control dumps and figures: files in the run folder and, when present, W&B."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger

from audiolab.audio.io import save_audio
from audiolab.callbacks.ema import averaged_weights
from audiolab.callbacks.probe import _to_device
from audiolab.utils.rng import seeded

log = logging.getLogger("audiolab")


class MediaLogger(Callback):
    """Every ``every_n_steps`` (and at the end) calls ``pl_module.media(probe_batch, n_examples)``.

    The module returns ``{"audio": {name: [T]}, "figures": {name: Figure}, "arrays": {name: {key: ndarray}},
    "sample_rate": int}``. Files go to ``<output_dir>/media/step_<step>/``.
    """

    def __init__(self, every_n_steps: int = 500, n_examples: int = 2, output_dir: str | None = None):
        self.every_n_steps, self.n_examples = int(every_n_steps), int(n_examples)
        self.output_dir = Path(output_dir) if output_dir else None
        self._batch: Any = None
        self._last = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_steps <= 0 or not hasattr(pl_module, "media"):
            return
        dm = trainer.datamodule
        self._batch = dm.probe_batch(self.n_examples) if dm is not None and hasattr(dm, "probe_batch") else None
        if self._batch is not None and trainer.global_step == 0:
            self.log_media(trainer, pl_module)  # the untrained model: a reference to listen against

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._batch is not None and trainer.global_step % self.every_n_steps == 0 and trainer.global_step != self._last:
            self.log_media(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._batch is not None and trainer.global_step != self._last:
            self.log_media(trainer, pl_module)

    def log_media(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step
        self._last = step
        if not trainer.is_global_zero:
            return
        import matplotlib.pyplot as plt

        was_training = pl_module.training
        pl_module.eval()
        try:
            # render what validation and the checkpoints hold (the averaged weights when EMA is on)
            with averaged_weights(trainer, pl_module), seeded(0, pl_module.device):
                media = pl_module.media(_to_device(self._batch, pl_module.device), self.n_examples)
        finally:
            pl_module.train(was_training)
        sr = media.get("sample_rate", 16000)
        folder = self.output_dir / "media" / f"step_{step:07d}" if self.output_dir else None
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        for name, audio in media.get("audio", {}).items():
            if folder is not None:
                # peak-normalize only if the model clips, so files stay comparable but never wrap around
                peak = float(audio.abs().max()) if audio.numel() else 0.0
                save_audio(folder / f"{name}.wav", audio / peak if peak > 1.0 else audio, sr)
        for name, arrays in media.get("arrays", {}).items():
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(folder / f"{name}.npz", **arrays)
        for name, fig in media.get("figures", {}).items():
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                fig.savefig(folder / f"{name}.png", dpi=90)
        for lg in wandb_loggers:
            try:
                import wandb

                payload = {f"media/{k}": wandb.Audio(v.numpy(), sample_rate=sr) for k, v in media.get("audio", {}).items()}
                payload.update({f"media/{k}": wandb.Image(f) for k, f in media.get("figures", {}).items()})
                # no explicit W&B step: WandbLogger logs without one and W&B drops out-of-order steps
                lg.experiment.log({**payload, "trainer/global_step": step})
            except Exception as err:  # noqa: BLE001 - media must never kill a training run
                log.warning("could not log media to W&B: %s", err)
        for fig in media.get("figures", {}).values():
            plt.close(fig)
