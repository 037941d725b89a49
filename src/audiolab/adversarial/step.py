"""One manual-optimization GAN training step for a LightningModule: discriminator step, then generator step.

Used from ``training_step`` of a module with ``automatic_optimization = False`` whose ``configure_optimizers``
returns ``[generator_optimizer, discriminator_optimizer]`` (in that order; :func:`gan_optimizers` builds them).
Per batch, :meth:`GANStep.step`:

1. **Discriminator step** (only once ``generator_steps >= start_step``): ``D(real)`` and ``D(fake.detach())``,
   hinge or LSGAN loss, backward, pre-clip gradient norm logged, clipped to ``clip_discriminator``
   (``LightningModule.clip_gradients``), optimizer step, the discriminator's per-step schedulers stepped.
2. **Generator step**: with the *updated* discriminator (as HiFi-GAN), adversarial + feature-matching terms on
   ``D(fake)`` (real feature maps under ``no_grad``) are added to the module's reconstruction terms; weighted sum
   (or the optional :class:`~audiolab.adversarial.balancer.LossBalancer` over the terms it has weights for, the
   rest plus ``extra_loss`` back-propagated plainly), backward, pre-clip norm logged, clipped to
   ``clip_generator``, step, per-step schedulers stepped. Before ``start_step`` this is the whole step: a
   generator-only reconstruction step; the discriminator is not run, not stepped, its schedulers not stepped.
3. The module's ``generator_steps`` buffer (registered by :meth:`GANStep.attach`, saved in checkpoints) counts
   batches; ``start_step`` and the logged ``train/generator_step`` refer to it. After the last batch of an epoch
   the per-epoch schedulers are stepped (the discriminator's only once it has stepped).

**Schedulers.** Each scheduler's interval comes from Lightning's scheduler dict in ``configure_optimizers``
(``{"scheduler": s, "interval": "step" | "epoch"}``; Lightning's default for a bare scheduler is "epoch").
With manual optimization Lightning steps no scheduler itself; this class does: "step" after every step of the
scheduler's optimizer, "epoch" after the last batch of each epoch (``trainer.is_last_batch``; an epoch cut short by
``max_steps`` does not count, as in HiFi-GAN, which steps after each full pass). HiFi-GAN's ``ExponentialLR(gamma=0.999)`` is per *epoch*: stepped
per optimizer step it halves the LR every 693 steps.

**global_step.** Lightning counts every ``optimizer.step()`` under manual optimization: one per batch before
``start_step``, two per batch after it. ``trainer.max_steps`` counts those, so ``N`` batches with the GAN on from
the start is ``max_steps = 2 N``; with ``start_step = S``, ``max_steps = S + 2 (N - S)``.

**Mixed precision.** Under ``16-mixed`` the gradients are still loss-scaled when clipped (Lightning unscales inside
``optimizer.step``), so norms are divided and clip values multiplied by the scaler's scale (the same clip);
``bf16-mixed`` and fp32 have no scaler.

Logged (``log_prefix`` default ``train/``): ``loss`` (generator total incl. ``extra_loss``), every term in
``losses`` (unweighted), ``adv``, ``feat``, ``d_loss`` and per sub-discriminator ``adv/<name>``, ``feat/<name>``,
``d_loss/<name>``, ``grad_norm_generator``, ``grad_norm_discriminator`` (before clipping),
``balancer_ratio_<term>``, ``generator_step``.

Example: a HiFi-GAN vocoder (generator + MPD + MSD, LSGAN + 2 x feature matching + 45 x mel L1, AdamW 2e-4
(0.8, 0.99), ExponentialLR 0.999 per epoch), using this class unchanged::

    class VocoderModule(L.LightningModule):
        def __init__(self, generator_cfg, lr=2e-4):
            super().__init__()
            self.automatic_optimization = False
            self.generator = HiFiGANGenerator(**generator_cfg)
            self.discriminator = hifigan_discriminator()  # MPD(2,3,5,7,11) + MSD(3 scales), one optimizer
            self.gan = GANStep({"mel": 45.0}, loss="lsgan", reduction="sum", adv_weight=1.0, feat_weight=2.0)
            self.gan.attach(self)

        def training_step(self, batch, batch_idx):
            mel, audio = batch["mel"], batch["audio"]              # [B, 128, frames], [B, T]
            fake = self.generator(mel).squeeze(1)                   # [B, T]
            mel_l1 = F.l1_loss(log_mel_spectrogram(fake), mel)      # the one shared mel front end
            self.gan.step(self, real=audio, fake=fake, losses={"mel": mel_l1}, discriminator=self.discriminator)

        def configure_optimizers(self):
            return gan_optimizers(self.generator.parameters(), self.discriminator.parameters(),
                                  partial(torch.optim.AdamW, lr=2e-4, betas=(0.8, 0.99)),
                                  scheduler=partial(torch.optim.lr_scheduler.ExponentialLR, gamma=0.999),
                                  interval="epoch")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn

from audiolab.adversarial.balancer import LossBalancer
from audiolab.adversarial.losses import adversarial_losses, feature_matching_loss


@dataclass
class GANStepOutput:
    """What one :meth:`GANStep.step` did. Tensors are detached."""

    loss: Tensor
    terms: dict[str, Tensor]
    adversarial: bool
    d_loss: Tensor | None = None
    logs: dict[str, Any] = field(default_factory=dict)


def _raw(opt: Any) -> torch.optim.Optimizer:
    return opt.optimizer if isinstance(opt, LightningOptimizer) else opt


def _grads(opt: Any) -> list[Tensor]:
    return [p.grad for group in _raw(opt).param_groups for p in group["params"] if p.grad is not None]


class GANStep:
    """The GAN step helper (see the module docstring). Holds no parameters; the module owns nets and optimizers.

    Args:
        weights: weight per generator loss term name (reconstruction terms the module computes, e.g.
            ``{"l1": 0.1, "mel": 1.0}``); terms without a (non-zero) weight are logged only.
        enabled: adversarial training on (``loss.adversarial.enabled``); off = reconstruction steps only.
        loss: ``"hinge"`` (EnCodec / audiocraft) or ``"lsgan"`` (HiFi-GAN, DAC).
        reduction: ``"mean"`` (audiocraft: averaged over sub-discriminators / layers) or ``"sum"`` (HiFi-GAN).
        adv_weight, feat_weight: weights of the generator's adversarial and feature-matching terms.
        start_step: generator steps (batches) of reconstruction-only training before the discriminator starts.
        clip_generator, clip_discriminator: max gradient norm per optimizer (0 = no clipping).
        balancer: optional loss balancer; the terms it has weights for (may include ``adv`` / ``feat``) are
            balanced, all other weighted terms and ``extra_loss`` are back-propagated as a plain sum.
        counter: name of the module buffer counting generator steps.
        log_prefix: prefix of every logged key.
    """

    def __init__(self, weights: Mapping[str, float], *, enabled: bool = True, loss: str = "hinge",
                 reduction: str = "mean", adv_weight: float = 1.0, feat_weight: float = 1.0, start_step: int = 0,
                 clip_generator: float = 0.0, clip_discriminator: float = 0.0, balancer: LossBalancer | None = None,
                 counter: str = "generator_steps", log_prefix: str = "train/"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"adversarial.reduction must be 'mean' or 'sum', got {reduction!r}")
        if int(start_step) < 0:
            raise ValueError(f"adversarial.start_step must be >= 0, got {start_step}")
        for name, v in (("gradient_clip_generator", clip_generator), ("gradient_clip_discriminator", clip_discriminator)):
            if float(v or 0) < 0:
                raise ValueError(f"optim.{name} must be >= 0 (0 = off), got {v}")
        self.enabled = bool(enabled)
        self.d_loss_fn, self.g_loss_fn = adversarial_losses(loss)
        self.loss_name, self.reduction = loss, reduction
        self.weights = {k: float(v) for k, v in weights.items()}
        if self.enabled:
            self.weights.update({"adv": float(adv_weight), "feat": float(feat_weight)})
        self.start_step = int(start_step)
        self.clip = {"generator": float(clip_generator or 0), "discriminator": float(clip_discriminator or 0)}
        self.balancer = balancer
        self.counter, self.log_prefix = counter, log_prefix
        self._schedulers_checked = False

    # ------------------------------------------------------------------------------------------ state
    def attach(self, module: nn.Module) -> None:
        """Registers the generator-step counter buffer on ``module`` (call once in its ``__init__``)."""
        if not hasattr(module, self.counter):
            module.register_buffer(self.counter, torch.zeros((), dtype=torch.long))

    def generator_steps(self, module: nn.Module) -> int:
        if not isinstance(getattr(module, self.counter, None), Tensor):
            raise AttributeError(f"{type(module).__name__} has no '{self.counter}' buffer: call GANStep.attach(self) "
                                 "in its __init__ so the generator-step count is saved with checkpoints")
        return int(getattr(module, self.counter))

    def adversarial_active(self, module: nn.Module) -> bool:
        """True once the discriminator trains: enabled and ``generator_steps >= start_step``."""
        return self.enabled and self.generator_steps(module) >= self.start_step

    # ------------------------------------------------------------------------------------------ helpers
    @staticmethod
    def _optimizers(module: L.LightningModule, need_d: bool) -> tuple[Any, Any]:
        opts = module.optimizers()
        opt_g, opt_d = (opts[0], opts[1] if len(opts) > 1 else None) if isinstance(opts, list) else (opts, None)
        if need_d and opt_d is None:
            raise RuntimeError(f"{type(module).__name__}.configure_optimizers must return [generator_optimizer, "
                               "discriminator_optimizer] when the adversarial loss is enabled")
        return opt_g, opt_d

    def _scheduler_configs(self, module: L.LightningModule, opt: Any, interval: str) -> list[Any]:
        configs = module.trainer.lr_scheduler_configs
        if not self._schedulers_checked:
            opts = {id(_raw(o)) for o in module.trainer.optimizers}
            for c in configs:
                if c.reduce_on_plateau or int(c.frequency) != 1:
                    raise ValueError("GANStep steps schedulers every step or epoch: ReduceLROnPlateau and "
                                     f"'frequency' != 1 are not supported (got {type(c.scheduler).__name__}, "
                                     f"frequency={c.frequency})")
                if id(c.scheduler.optimizer) not in opts:
                    raise ValueError(f"scheduler {type(c.scheduler).__name__} is attached to no optimizer of the module")
            self._schedulers_checked = True
        raw = _raw(opt)
        return [c for c in configs if c.scheduler.optimizer is raw and c.interval == interval]

    def _step_schedulers(self, module: L.LightningModule, opt: Any, interval: str) -> None:
        for c in self._scheduler_configs(module, opt, interval):
            c.scheduler.step()

    @staticmethod
    def _loss_scale(module: L.LightningModule) -> float:
        scaler = getattr(module.trainer.precision_plugin, "scaler", None)
        return float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else 1.0

    def _clip(self, module: L.LightningModule, opt: Any, which: str) -> Tensor:
        """Pre-clip gradient norm of ``opt``'s parameters (unscaled), then ``clip_gradients`` by norm."""
        scale = self._loss_scale(module)
        grads = _grads(opt)
        norm = torch.nn.utils.get_total_norm(grads).detach() / scale if grads else torch.zeros(())
        if self.clip[which] > 0:
            module.clip_gradients(opt, gradient_clip_val=self.clip[which] * scale, gradient_clip_algorithm="norm")
        return norm

    def _named(self, discriminator: nn.Module, key: str, terms: list[Tensor]) -> dict[str, Tensor]:
        names = list(getattr(discriminator, "names", None) or range(len(terms)))
        return {f"{key}/{n}": t.detach() for n, t in zip(names, terms)}

    # ------------------------------------------------------------------------------------------ the step
    def step(self, module: L.LightningModule, *, real: Tensor, fake: Tensor, losses: Mapping[str, Tensor],
             discriminator: nn.Module | None = None, extra_loss: Tensor | None = None,
             batch_size: int | None = None) -> GANStepOutput:
        """One training batch: D step (once active), then G step; logs; counts the generator step.

        Args:
            real: target audio ``[B, T]`` or ``[B, C, T]``.
            fake: generator output, same shape, with its graph (the discriminator input and the tensor the
                balancer differentiates with respect to).
            losses: unweighted generator terms computed from ``fake`` (e.g. ``{"l1": ..., "mel": ...}``).
            discriminator: ``x -> (logits, feature_maps)`` per sub-discriminator (this package's discriminators);
                required when adversarial training is enabled.
            extra_loss: added to the generator loss with weight 1 outside weights and balancer (VQ commitment).
            batch_size: for logging (default ``real.shape[0]``).
        """
        adv_on = self.adversarial_active(module)
        if adv_on and discriminator is None:
            raise ValueError("GANStep.step: adversarial training is enabled but no discriminator was given")
        opt_g, opt_d = self._optimizers(module, need_d=adv_on)
        p = self.log_prefix
        logs: dict[str, Any] = {f"{p}generator_step": float(self.generator_steps(module))}
        d_loss = None

        if adv_on:  # ---- discriminator step, on the generator output of this batch (detached)
            with module.toggled_optimizer(opt_d):
                real_logits, _ = discriminator(real)
                fake_logits, _ = discriminator(fake.detach())
                d_loss, d_terms = self.d_loss_fn(real_logits, fake_logits, reduction=self.reduction)
                opt_d.zero_grad()
                module.manual_backward(d_loss)
                logs[f"{p}grad_norm_discriminator"] = self._clip(module, opt_d, "discriminator")
                opt_d.step()
                self._step_schedulers(module, opt_d, "step")
            logs[f"{p}d_loss"] = d_loss.detach()
            logs.update({p + k: v for k, v in self._named(discriminator, "d_loss", d_terms).items()})

        # ---- generator step (against the updated discriminator)
        terms = dict(losses)
        with module.toggled_optimizer(opt_g) if adv_on else nullcontext():
            if adv_on:
                fake_logits, fake_feats = discriminator(fake)
                with torch.no_grad():
                    _, real_feats = discriminator(real)
                terms["adv"], adv_terms = self.g_loss_fn(fake_logits, reduction=self.reduction)
                terms["feat"], feat_terms = feature_matching_loss(real_feats, fake_feats, reduction=self.reduction)
                logs.update({p + k: v for k, v in self._named(discriminator, "adv", adv_terms).items()})
                logs.update({p + k: v for k, v in self._named(discriminator, "feat", feat_terms).items()})
            weighted = {k: self.weights[k] * v for k, v in terms.items() if self.weights.get(k, 0.0) != 0.0}
            if not weighted and extra_loss is None:
                raise ValueError(f"GANStep.step: no weighted loss among {sorted(terms)} (weights {self.weights})")
            total = sum(weighted.values())
            if extra_loss is not None:
                total = total + extra_loss
            opt_g.zero_grad()
            if self.balancer is not None:
                balanced = {k: terms[k] for k in self.balancer.weights if k in terms}
                ratios = self.balancer.backward(balanced, fake, backward=module.manual_backward)
                logs.update({f"{p}balancer_{k}": v for k, v in ratios.items()})
                rest = [v for k, v in weighted.items() if k not in self.balancer.weights]
                rest = ([extra_loss] if extra_loss is not None else []) + rest
                if rest:
                    module.manual_backward(sum(rest[1:], rest[0]))
            else:
                module.manual_backward(total)
            logs[f"{p}grad_norm_generator"] = self._clip(module, opt_g, "generator")
            opt_g.step()
            self._step_schedulers(module, opt_g, "step")

        getattr(module, self.counter).add_(1)
        if module.trainer.is_last_batch:  # also the last of limit_train_batches (tested)
            self._step_schedulers(module, opt_g, "epoch")
            if opt_d is not None and self.enabled and self.generator_steps(module) > self.start_step:
                self._step_schedulers(module, opt_d, "epoch")

        total = total.detach() if isinstance(total, Tensor) else torch.as_tensor(float(total))
        detached = {k: v.detach() for k, v in terms.items()}
        logs[f"{p}loss"] = total
        logs.update({p + k: v for k, v in detached.items()})
        module.log_dict(logs, batch_size=batch_size if batch_size is not None else real.shape[0])
        return GANStepOutput(loss=total, terms=detached, adversarial=adv_on,
                             d_loss=d_loss.detach() if d_loss is not None else None, logs=logs)


def gan_optimizers(generator_params: Iterable[nn.Parameter], discriminator_params: Iterable[nn.Parameter] | None,
                   optimizer: Callable[..., torch.optim.Optimizer],
                   scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
                   interval: str = "step", discriminator_lr_scale: float = 1.0,
                   discriminator_optimizer: Callable[..., torch.optim.Optimizer] | None = None) -> Any:
    """``configure_optimizers`` return value for :class:`GANStep`: ``[opt_g, opt_d]`` (+ one scheduler each).

    ``optimizer(params=...)`` builds each optimizer (``discriminator_optimizer`` overrides it for D); D's learning
    rates are multiplied by ``discriminator_lr_scale`` before its scheduler is built. ``scheduler(optimizer=...)``
    builds one scheduler per optimizer, stepped every ``interval`` ("step" or "epoch"). ``discriminator_params``
    None = generator only (adversarial disabled).
    """
    if interval not in ("step", "epoch"):
        raise ValueError(f"optim.scheduler_interval must be 'step' or 'epoch', got {interval!r}")
    optimizers = [optimizer(params=list(generator_params))]
    if discriminator_params is not None:
        opt_d = (discriminator_optimizer or optimizer)(params=list(discriminator_params))
        for group in opt_d.param_groups:
            group["lr"] *= float(discriminator_lr_scale)
            group["initial_lr"] = group["lr"]
        optimizers.append(opt_d)
    if scheduler is None:
        return optimizers
    return optimizers, [{"scheduler": scheduler(optimizer=o), "interval": interval} for o in optimizers]
