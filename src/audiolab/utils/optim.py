"""Learning-rate schedules shared by the model families."""

from __future__ import annotations

import torch


class ExponentialDecayLR(torch.optim.lr_scheduler.LRScheduler):
    """``lr(step) = max(floor, base_lr * 0.5 ** (step / half_life_steps))``, stepped every optimizer step.

    DDSP's ``ExponentialDecay(lr, 10000, 0.98)`` is ``half_life_steps = 10000 * ln 2 / -ln 0.98 ≈ 343,000``.
    A half-life reads better than a (decay_steps, decay_rate) pair when stages use short schedules.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, half_life_steps: float, floor: float = 0.0, last_epoch: int = -1):
        if half_life_steps <= 0:
            raise ValueError(f"model.optim.scheduler.half_life_steps must be > 0, got {half_life_steps}")
        if floor < 0:
            raise ValueError(f"model.optim.scheduler.floor must be >= 0, got {floor}")
        self.half_life_steps = float(half_life_steps)
        self.floor = float(floor)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = 0.5 ** (self.last_epoch / self.half_life_steps)
        return [max(self.floor, base_lr * factor) for base_lr in self.base_lrs]


def ramp_weight(step: int, weight: float, warmup_steps: int, ramp_steps: int) -> float:
    """Loss-weight schedule: 0 for ``warmup_steps``, then linear to ``weight`` over ``ramp_steps``, then constant."""
    if step < warmup_steps:
        return 0.0
    if ramp_steps <= 0:
        return float(weight)
    return float(weight) * min(1.0, (step - warmup_steps) / ramp_steps)
