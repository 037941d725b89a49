"""Schedules and samplers (diffusers): step counts, DDIM determinism at eta 0, per-sample seeds, CFG scale 1 =
conditional, min-SNR weights, training targets against the closed form."""

from __future__ import annotations

import pytest
import torch

from audiolab.models.kick.diffusion import NoiseSchedule, make_sampler, sample


class CountingNet(torch.nn.Module):
    """A fixed random linear denoiser that also depends on the keywords and records its batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(4, 4, generator=g) * 0.3
        self.k = torch.randn(3, 4, generator=g)
        self.null = torch.randn(4, generator=g)
        self.calls: list[int] = []

    def forward(self, x, t, kw, drop=None):
        self.calls.append(x.shape[0])
        c = kw.float() @ self.k
        if drop is not None:
            c = torch.where(drop[:, None], self.null.expand_as(c), c)
        return torch.einsum("ij,bjhw->bihw", self.w, x) + c[:, :, None, None] + 1e-3 * t.float()[:, None, None, None]


SCHED = NoiseSchedule().config
SHAPE = (4, 8, 11)
KW = torch.tensor([[1.0, 0, 0], [0, 1, 1], [0, 0, 0]])


@pytest.mark.parametrize("name,steps", [("ddim", 50), ("dpmsolver++", 20), ("ddpm", 10)])
def test_step_counts_and_trailing_spacing(name, steps):
    s = make_sampler(name, SCHED)
    s.set_timesteps(steps)
    assert len(s.timesteps) == steps
    assert int(s.timesteps[0]) == 999  # trailing: the first step starts from pure noise
    net = CountingNet()
    sample(net, SHAPE, KW, [1, 2, 3], SCHED, sampler=name, steps=steps, cfg_scale=3.0)
    assert net.calls == [6] * steps  # one batched cond+uncond forward per step


def test_ddim_eta0_is_deterministic_and_per_sample_seeds():
    net = CountingNet()
    a = sample(net, SHAPE, KW, [5, 6, 7], SCHED, sampler="ddim", steps=8)
    b = sample(net, SHAPE, KW, [5, 6, 7], SCHED, sampler="ddim", steps=8)
    assert torch.equal(a, b)
    alone = sample(net, SHAPE, KW[1:2], [6], SCHED, sampler="ddim", steps=8)
    assert torch.allclose(alone[0], a[1], atol=1e-5)
    other = sample(net, SHAPE, KW, [5, 6, 8], SCHED, sampler="ddim", steps=8)
    assert torch.equal(other[:2], a[:2]) and not torch.allclose(other[2], a[2])
    # DDPM is stochastic per step, but every sample draws from its own generator
    d = sample(net, SHAPE, KW, [5, 6, 7], SCHED, sampler="ddpm", steps=6)
    d1 = sample(net, SHAPE, KW[2:], [7], SCHED, sampler="ddpm", steps=6)
    assert torch.allclose(d[2], d1[0], atol=1e-5)


def test_cfg_scale_one_is_the_conditional_model():
    net = CountingNet()
    guided = sample(net, SHAPE, KW, [1, 2, 3], SCHED, sampler="ddim", steps=5, cfg_scale=1.0)
    assert net.calls == [3] * 5  # no unconditional pass

    def cond_only(x, t, kw, drop=None):
        assert drop is None
        return net(x, t, kw)

    plain = sample(cond_only, SHAPE, KW, [1, 2, 3], SCHED, sampler="ddim", steps=5, cfg_scale=1.0)
    assert torch.equal(guided, plain)
    # scale 0 = the unconditional model: every keyword row gives the same sample for the same seed
    unc = sample(net, SHAPE, KW, [1, 1, 1], SCHED, sampler="ddim", steps=5, cfg_scale=0.0)
    assert torch.allclose(unc[0], unc[1], atol=1e-5) and torch.allclose(unc[0], unc[2], atol=1e-5)


def test_training_targets_and_min_snr_closed_form():
    sch = NoiseSchedule(prediction="v", min_snr_gamma=5.0)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    x0, eps = torch.randn(3, 4, 8, 11, dtype=torch.float64), torch.randn(3, 4, 8, 11, dtype=torch.float64)
    t = torch.tensor([0, 300, 999])
    a = abar[t].view(-1, 1, 1, 1)
    assert torch.allclose(sch.add_noise(x0.float(), eps.float(), t).double(), a.sqrt() * x0 + (1 - a).sqrt() * eps,
                          atol=1e-5)
    assert torch.allclose(sch.target(x0.float(), eps.float(), t).double(), a.sqrt() * eps - (1 - a).sqrt() * x0,
                          atol=1e-5)
    snr = abar[t] / (1 - abar[t])
    assert torch.allclose(sch.loss_weights(t).double(), snr.clamp(max=5.0) / (snr + 1), rtol=2e-3)
    eps_sch = NoiseSchedule(min_snr_gamma=5.0)
    assert torch.allclose(eps_sch.loss_weights(t).double(), snr.clamp(max=5.0) / snr, rtol=2e-3)  # float32 1 - abar near t=0
    assert torch.equal(NoiseSchedule().loss_weights(t), torch.ones(3))
    # x0 from the model output inverts the noising exactly for the true target
    x_t = sch.add_noise(x0.float(), eps.float(), t)
    assert torch.allclose(sch.predict_x0(x_t, sch.target(x0.float(), eps.float(), t), t).double(), x0, atol=1e-3)
    cos = NoiseSchedule(schedule="cosine")
    assert float(cos.alphas_cumprod[-1]) < 1e-6 < float(NoiseSchedule().alphas_cumprod[-1])
    with pytest.raises(ValueError, match="schedule"):
        NoiseSchedule(schedule="quadratic")
