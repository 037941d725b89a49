"""Exponential moving average of the trained weights, over one named submodule, without Lightning privates.

Why not ``lightning.pytorch.callbacks.EMAWeightAveraging``: it deep-copies the whole LightningModule (a frozen codec
inside the token LM, a GAN's discriminator, a frozen VAE + vocoder inside the kick diffusion would be copied and
averaged too), and other callbacks can only use its averaged weights through its private ``_swap_models``.

* ``submodule``: attribute path of the net to average (``net``, ``codec``, ``unet``, ``lm``; null = whole module).
  Its floating-point parameters are averaged; buffers (running statistics, EMA codebooks) are the model's own.
* ``decay``; ``warmup=true`` uses ``min(decay, (1 + n) / (10 + n))`` at the n-th update (the schedule of diffusers'
  ``EMAModel``), so early averages are not dominated by the initial weights.
* ``update_every_n_steps`` / ``start_step`` count optimizer-step batches (a batch in which ``trainer.global_step``
  advanced): the trainer's steps for one optimizer; a GAN's D + G step is one. The first update copies the weights.
* Validation and test run on the averaged weights; :func:`averaged_weights` is the one context manager for
  everything else (probe, media, a notebook holding a trainer). Checkpoints' ``state_dict`` holds the averaged
  weights, so every loader (``load_trained``, ``evaluate``, ``init_from``) gets them; the raw weights travel in this
  callback's state and are restored on resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

__all__ = ["EMA", "averaged_weights", "find_ema"]


def _resolve(module: nn.Module, path: str | None) -> nn.Module:
    obj: Any = module
    for part in (path.split(".") if path else []):
        if not hasattr(obj, part):
            raise ValueError(f"callbacks.ema.submodule={path!r}: {type(module).__name__} has no attribute {part!r} "
                             f"(children: {sorted(n for n, _ in module.named_children())})")
        obj = getattr(obj, part)
    if not isinstance(obj, nn.Module):
        raise ValueError(f"callbacks.ema.submodule={path!r} is a {type(obj).__name__}, not an nn.Module")
    return obj


class EMA(Callback):
    """EMA of ``submodule``'s parameters (see the module docstring)."""

    def __init__(self, decay: float = 0.999, submodule: str | None = None, warmup: bool = False,
                 update_every_n_steps: int = 1, start_step: int = 0):
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"callbacks.ema.decay must be in [0, 1), got {decay}")
        if int(update_every_n_steps) < 1:
            raise ValueError(f"callbacks.ema.update_every_n_steps must be >= 1, got {update_every_n_steps}")
        if int(start_step) < 0:
            raise ValueError(f"callbacks.ema.start_step must be >= 0, got {start_step}")
        self.decay, self.submodule, self.warmup = float(decay), submodule or None, bool(warmup)
        self.update_every_n_steps, self.start_step = int(update_every_n_steps), int(start_step)
        self.num_updates = 0  # averaging updates done
        self.steps_seen = 0  # optimizer-step batches seen
        self._shadow: dict[str, torch.Tensor] = {}
        self._backup: dict[str, torch.Tensor] | None = None  # raw weights while the average is swapped in
        self._last_global_step: int | None = None

    # ------------------------------------------------------------------------------------------- helpers
    def _prefix(self) -> str:
        return f"{self.submodule}." if self.submodule else ""

    def _params(self, pl_module: nn.Module) -> dict[str, nn.Parameter]:
        target = _resolve(pl_module, self.submodule)
        return {n: p for n, p in target.named_parameters() if p.dtype.is_floating_point}

    def current_decay(self) -> float:
        """Decay of the next update (after ``num_updates`` updates)."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @property
    def has_average(self) -> bool:
        return bool(self._shadow)

    @torch.no_grad()
    def update(self, pl_module: nn.Module) -> None:
        params = self._params(pl_module)
        if not self._shadow:
            self._shadow = {n: p.detach().clone() for n, p in params.items()}
        else:
            weight = 1.0 - self.current_decay()
            for n, p in params.items():
                self._shadow[n].lerp_(p.detach(), weight)
        self.num_updates += 1

    @contextmanager
    def swapped(self, pl_module: nn.Module) -> Iterator[None]:
        """Inside the block ``pl_module`` holds the averaged weights (no-op before the first update; re-entrant)."""
        if not self._shadow or self._backup is not None:
            yield
            return
        params = self._params(pl_module)
        with torch.no_grad():
            self._backup = {n: p.detach().clone() for n, p in params.items()}
            for n, p in params.items():
                p.copy_(self._shadow[n])
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(self._backup[n])
            self._backup = None

    # ------------------------------------------------------------------------------------------- training
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        params = self._params(pl_module)  # fails early, naming the key, for a wrong submodule path
        if not params:
            raise ValueError(f"callbacks.ema.submodule={self.submodule!r} has no floating-point parameters to average")
        self._last_global_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step == self._last_global_step:
            return  # no optimizer step in this batch (gradient accumulation)
        self._last_global_step = trainer.global_step
        self.steps_seen += 1
        if self.steps_seen >= self.start_step and (self.steps_seen - self.start_step) % self.update_every_n_steps == 0:
            self.update(pl_module)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._enter(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._exit()

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._enter(pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._exit()

    def _enter(self, pl_module: nn.Module) -> None:
        self._ctx = self.swapped(pl_module)
        self._ctx.__enter__()

    def _exit(self) -> None:
        ctx, self._ctx = getattr(self, "_ctx", None), None
        if ctx is not None:
            ctx.__exit__(None, None, None)

    # ------------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates, "steps_seen": self.steps_seen, "submodule": self.submodule}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.num_updates = int(state_dict.get("num_updates", 0))
        self.steps_seen = int(state_dict.get("steps_seen", 0))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """``state_dict`` gets the averaged weights; the raw ones go into this callback's state (for resume)."""
        if not self._shadow:
            return
        prefix, state = self._prefix(), checkpoint["state_dict"]
        raw = self._backup if self._backup is not None else {n: p.detach() for n, p in self._params(pl_module).items()}
        checkpoint["callbacks"][self.state_key]["raw_weights"] = {n: t.clone() for n, t in raw.items()}
        for n, t in self._shadow.items():
            state[prefix + n] = t.clone()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """The model was just loaded with the checkpoint's (averaged) ``state_dict``: that is the average; put the
        raw weights back into the model."""
        state = (checkpoint.get("callbacks") or {}).get(self.state_key) or {}
        raw = state.get("raw_weights")
        params = self._params(pl_module)
        self._shadow, self._backup = {}, None
        if not raw:
            return  # saved before the first update (or without EMA): the model's weights are the raw ones
        missing = sorted(set(params) - set(raw))
        if missing:
            raise ValueError(f"EMA state of the checkpoint does not cover callbacks.ema.submodule={self.submodule!r} "
                             f"(missing {missing[:5]}); was it trained with another submodule?")
        with torch.no_grad():
            self._shadow = {n: p.detach().clone() for n, p in params.items()}
            for n, p in params.items():
                p.copy_(raw[n].to(p.device))


def find_ema(trainer: L.Trainer | None) -> EMA | None:
    """The trainer's :class:`EMA` callback (None without one). The documented accessor: no class-name lookups."""
    if trainer is None:
        return None
    return next((cb for cb in trainer.callbacks if isinstance(cb, EMA)), None)


@contextmanager
def averaged_weights(trainer: L.Trainer | None, pl_module: nn.Module) -> Iterator[None]:
    """Use the averaged weights inside the block when the trainer has an :class:`EMA` with an average; else a no-op.

    The one way to run probe / media / notebook code "on what validation and the checkpoints see".
    """
    ema = find_ema(trainer)
    if ema is None:
        yield
        return
    with ema.swapped(pl_module):
        yield
