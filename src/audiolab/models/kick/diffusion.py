"""Noise schedules, training targets and guided sampling — schedulers and samplers from ``diffusers``.

Training: ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` (``DDPMScheduler.add_noise``), target ``eps`` or
``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0`` (``get_velocity``); optional min-SNR-gamma weights
``min(SNR, gamma) / SNR`` (eps) or ``min(SNR, gamma) / (SNR + 1)`` (v), SNR = abar / (1 - abar).

Sampling: DDPM (ancestral), DDIM (eta = 0: deterministic) or DPM-Solver++ (2M, order 2) — diffusers'
``DDPMScheduler``, ``DDIMScheduler``, ``DPMSolverMultistepScheduler``, configured for unit-variance latents:
``clip_sample=False`` (diffusers clips x_0 to +-1 by default), ``timestep_spacing="trailing"`` so the first step
starts at t = T - 1 (the default "leading" starts at 980 of 1000 for 50 steps; diffusers#2585). Classifier-free
guidance ``eps_u + s (eps_c - eps_u)`` in one batched forward; ``s = 1`` runs the conditional branch only.
Each sample has its own ``torch.Generator`` (initial noise and DDPM noise), so sample k of a batch equals the
same seed generated alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["SCHEDULES", "PREDICTIONS", "SAMPLERS", "NoiseSchedule", "make_sampler", "sample", "randn_per_sample"]

SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2", "scaled_linear": "scaled_linear"}
PREDICTIONS = {"epsilon": "epsilon", "eps": "epsilon", "v": "v_prediction", "v_prediction": "v_prediction"}
SAMPLERS = ("ddpm", "ddim", "dpmsolver++")


def _import_diffusers():
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here downloads; make sure nothing tries
    import diffusers

    return diffusers


class NoiseSchedule:
    """The training-side schedule: a diffusers ``DDPMScheduler`` plus the targets and loss weights."""

    def __init__(self, num_train_timesteps: int = 1000, schedule: str = "linear", beta_start: float = 1e-4,
                 beta_end: float = 0.02, prediction: str = "epsilon", min_snr_gamma: float | None = None) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"model.diffusion.schedule must be one of {sorted(SCHEDULES)}, got {schedule!r}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"model.diffusion.prediction must be one of {sorted(PREDICTIONS)}, got {prediction!r}")
        self.config = {"num_train_timesteps": int(num_train_timesteps), "beta_schedule": SCHEDULES[schedule],
                       "beta_start": float(beta_start), "beta_end": float(beta_end),
                       "prediction_type": PREDICTIONS[prediction], "clip_sample": False}
        self.scheduler = _import_diffusers().DDPMScheduler(**self.config)
        self.num_train_timesteps = int(num_train_timesteps)
        self.prediction = PREDICTIONS[prediction]
        self.min_snr_gamma = None if min_snr_gamma is None else float(min_snr_gamma)
        self.alphas_cumprod = self.scheduler.alphas_cumprod.float()

    def snr(self, t: Tensor) -> Tensor:
        a = self.alphas_cumprod.to(t.device)[t]
        return a / (1.0 - a)

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        self.scheduler.alphas_cumprod = self.scheduler.alphas_cumprod.to(x0.device)
        return self.scheduler.add_noise(x0, noise, t)

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        if self.prediction == "epsilon":
            return noise
        self.scheduler.alphas_cumprod = self.scheduler.alphas_cumprod.to(x0.device)
        return self.scheduler.get_velocity(x0, noise, t)

    def loss_weights(self, t: Tensor) -> Tensor:
        """Per-sample weights ``[B]`` (ones without min-SNR)."""
        if self.min_snr_gamma is None:
            return torch.ones_like(t, dtype=torch.float32)
        snr = self.snr(t)
        clipped = snr.clamp(max=self.min_snr_gamma)
        return clipped / snr if self.prediction == "epsilon" else clipped / (snr + 1.0)

    def predict_x0(self, x_t: Tensor, model_out: Tensor, t: Tensor) -> Tensor:
        a = self.alphas_cumprod.to(x_t.device)[t].view(-1, *([1] * (x_t.dim() - 1)))
        if self.prediction == "epsilon":
            return (x_t - (1 - a).sqrt() * model_out) / a.sqrt()
        return a.sqrt() * x_t - (1 - a).sqrt() * model_out


def make_sampler(name: str, schedule_config: dict, spacing: str = "trailing"):
    """A fresh diffusers scheduler for ``name`` (ddpm | ddim | dpmsolver++) sharing the training schedule.

    ``schedule_config`` is :attr:`NoiseSchedule.config`. DDIM keeps ``set_alpha_to_one=True`` (the last step
    returns x_0); DPM-Solver++ is the 2M variant (order 2, midpoint, lower-order final steps).
    """
    d = _import_diffusers()
    cfg = dict(schedule_config)
    if name == "ddpm":
        return d.DDPMScheduler(**cfg, timestep_spacing=spacing)
    if name == "ddim":
        return d.DDIMScheduler(**cfg, timestep_spacing=spacing, set_alpha_to_one=True)
    if name == "dpmsolver++":
        cfg.pop("clip_sample")
        return d.DPMSolverMultistepScheduler(**cfg, algorithm_type="dpmsolver++", solver_order=2,
                                             timestep_spacing=spacing, lower_order_final=True)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {name!r}")


def randn_per_sample(shape: Sequence[int], seeds: Sequence[int], device: torch.device | str = "cpu") -> Tensor:
    """``[len(seeds), *shape]`` standard normal noise, row k drawn from ``torch.Generator().manual_seed(seeds[k])``."""
    return torch.stack([torch.randn(tuple(shape), generator=torch.Generator().manual_seed(int(s)))
                        for s in seeds]).to(device)


@torch.no_grad()
def sample(denoiser: Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor], shape: Sequence[int],
           keywords: Tensor, seeds: Sequence[int], schedule_config: dict, sampler: str = "ddim", steps: int = 50,
           cfg_scale: float = 3.0, eta: float = 0.0, spacing: str = "trailing",
           on_step: Callable[[int, int], None] | None = None) -> Tensor:
    """Generate ``[B, *shape]`` latents (in the diffusion's unit-variance space).

    Args:
        denoiser: ``f(x_t, t, keywords, drop_keywords) -> prediction`` (the U-Net).
        shape: latent shape without batch, e.g. ``(4, 8, 11)``.
        keywords: multi-hot ``[B, V]``; an all-zero row is unconditional.
        seeds: one per sample (initial noise and DDPM noise per sample).
        sampler / steps: scheduler and its number of denoiser evaluations.
        cfg_scale: guidance scale ``s``; ``1`` = conditional only (one forward per step, not two).
        eta: DDIM stochasticity (0 = deterministic).
    """
    b = len(seeds)
    if keywords.shape[0] != b:
        raise ValueError(f"{keywords.shape[0]} keyword rows for {b} seeds")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device = keywords.device
    sched = make_sampler(sampler, schedule_config, spacing)
    sched.set_timesteps(int(steps), device=device)
    gens = [torch.Generator().manual_seed(int(s) + 1) for s in seeds]  # ancestral noise, separate from x_T
    x = randn_per_sample(shape, seeds, device) * float(getattr(sched, "init_noise_sigma", 1.0))
    guided = float(cfg_scale) != 1.0
    kw_in = torch.cat([keywords, keywords]) if guided else keywords
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(device) if guided else None
    for i, t in enumerate(sched.timesteps):
        x_in = sched.scale_model_input(x, t)
        x_in = torch.cat([x_in, x_in]) if guided else x_in
        tt = torch.full((x_in.shape[0],), int(t), device=device, dtype=torch.long)
        out = denoiser(x_in, tt, kw_in, drop)
        if guided:
            cond, uncond = out.chunk(2)
            out = uncond + float(cfg_scale) * (cond - uncond)
        kwargs = {}
        if sampler == "ddim":
            kwargs["eta"] = float(eta)
            if eta > 0:
                kwargs["variance_noise"] = torch.stack([torch.randn(tuple(shape), generator=g) for g in gens]).to(device)
        elif sampler == "ddpm":
            kwargs["generator"] = gens
        x = sched.step(out, t, x, **kwargs).prev_sample
        if on_step is not None:
            on_step(i + 1, len(sched.timesteps))
    return x
