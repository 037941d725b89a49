"""Gradient loss balancer (EnCodec / audiocraft ``Balancer``), for losses that all depend on one model output.

For each loss ``l_i`` the gradient ``g_i = d l_i / d y_hat`` is taken with respect to the model output, rescaled to
``total_norm * w_i / sum(w)`` by an EMA of its norm, and the sum is back-propagated through ``y_hat`` once. The
weights then mean "share of the output gradient", independent of each loss's scale. ``ratio_<name>`` reports each
loss's raw gradient-norm share, the diagnostic audiocraft logs with ``monitor=True``.

The EMA state is not checkpointed: after a resume it restarts from the first batch's norms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class LossBalancer:
    def __init__(self, weights: dict[str, float], total_norm: float = 1.0, ema_decay: float = 0.999, epsilon: float = 1e-12):
        if not weights or any(w < 0 for w in weights.values()):
            raise ValueError(f"balancer weights must be a non-empty dict of non-negative floats, got {weights}")
        self.weights = {k: float(v) for k, v in weights.items()}
        self.total_norm, self.ema_decay, self.epsilon = float(total_norm), float(ema_decay), float(epsilon)
        self._ema: dict[str, float] = {}
        self._ema_weight: dict[str, float] = {}

    def _smoothed(self, name: str, value: float) -> float:
        self._ema[name] = self.ema_decay * self._ema.get(name, 0.0) + value
        self._ema_weight[name] = self.ema_decay * self._ema_weight.get(name, 0.0) + 1.0
        return self._ema[name] / self._ema_weight[name]

    def backward(self, losses: dict[str, Tensor], output: Tensor,
                 backward: Callable[..., None] | None = None) -> dict[str, float]:
        """Back-propagates the balanced sum through ``output``; returns ``ratio_<name>`` diagnostics.

        ``backward(tensor, gradient, retain_graph=True)`` does the final backward (default ``Tensor.backward``);
        pass a LightningModule's ``manual_backward`` so mixed-precision loss scaling applies.
        """
        active = {k: v for k, v in losses.items() if self.weights.get(k, 0.0) > 0 and v.requires_grad}
        if not active:
            return {}
        grads, norms = {}, {}
        for name, loss in active.items():
            (g,) = torch.autograd.grad(loss, [output], retain_graph=True)
            grads[name] = g
            norms[name] = float(g.flatten(1).norm(dim=1).mean()) if g.dim() > 1 else float(g.norm())
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            t = torch.tensor(list(norms.values()), device=output.device)
            torch.distributed.all_reduce(t)
            norms = dict(zip(norms, (t / torch.distributed.get_world_size()).tolist()))
        total_weight = sum(self.weights[k] for k in active)
        combined = torch.zeros_like(output)
        for name, g in grads.items():
            scale = self.total_norm * self.weights[name] / total_weight / (self.epsilon + self._smoothed(name, norms[name]))
            combined = combined + scale * g
        # retain_graph: terms outside the balancer (e.g. VQ commitment) are back-propagated after this
        (backward or Tensor.backward)(output, combined, retain_graph=True)
        raw_total = sum(norms.values()) + self.epsilon
        return {f"ratio_{k}": v / raw_total for k, v in norms.items()}
