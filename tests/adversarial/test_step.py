"""GANStep under a real Lightning Trainer with a toy generator / discriminator: step order, start_step, clipping,
scheduler intervals, global_step, errors."""

from __future__ import annotations

import math
from functools import partial

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from audiolab.adversarial import GANStep, LossBalancer, gan_optimizers

BASE_LR = 0.1


class ToyDiscriminator(nn.Module):
    """Two sub-discriminators on [B, 32] 'audio', each Linear -> leaky -> Linear; feature map = hidden layer."""

    names = ["a", "b"]

    def __init__(self):
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(32, 8) for _ in range(2))
        self.out = nn.ModuleList(nn.Linear(8, 1) for _ in range(2))

    def forward(self, x):
        feats = [F.leaky_relu(h(x), 0.1) for h in self.hidden]
        return [o(f) for o, f in zip(self.out, feats)], [[f] for f in feats]


class ToyGAN(L.LightningModule):
    def __init__(self, gan: GANStep, interval: str = "step", gamma: float = 0.5, scheduler=True,
                 n_optimizers: int = 2, attach: bool = True):
        super().__init__()
        self.automatic_optimization = False
        self.generator = nn.Linear(4, 32)
        self.discriminator = ToyDiscriminator()
        self.gan = gan
        if attach:
            gan.attach(self)
        self.interval, self.gamma, self.scheduler, self.n_optimizers = interval, gamma, scheduler, n_optimizers
        self.events: list[dict] = []  # one per optimizer step, in order
        self.batches: list[dict] = []  # one per batch
        self.d_forwards = 0

    def on_train_start(self):
        self.discriminator.register_forward_hook(lambda *a: setattr(self, "d_forwards", self.d_forwards + 1))
        for name, opt in zip(("g", "d"), self.trainer.optimizers):
            params = [p for g in opt.param_groups for p in g["params"]]

            def hook(o, args, kwargs, name=name, params=params):
                grads = [p.grad for p in params if p.grad is not None]
                d_grads = [p.grad.clone() if p.grad is not None else None for p in self.discriminator.parameters()]
                self.events.append({"opt": name, "norm": float(torch.nn.utils.get_total_norm(grads)),
                                    "d_grads": d_grads, "epoch": self.current_epoch})
            opt.register_step_pre_hook(hook)

    def training_step(self, batch, batch_idx):
        z, real = batch
        self.batches.append({"lr_g": self.trainer.optimizers[0].param_groups[0]["lr"],
                             "lr_d": self.trainer.optimizers[-1].param_groups[0]["lr"], "epoch": self.current_epoch,
                             "d_state": {k: v.clone() for k, v in self.discriminator.state_dict().items()}})
        fake = self.generator(z) * 50.0  # large gradients, so clipping has something to do
        out = self.gan.step(self, real=real, fake=fake, losses={"l1": (fake - real).abs().mean()},
                            discriminator=self.discriminator)
        self.batches[-1].update({"logs": out.logs, "adversarial": out.adversarial})

    def configure_optimizers(self):
        sched = partial(torch.optim.lr_scheduler.ExponentialLR, gamma=self.gamma) if self.scheduler else None
        return gan_optimizers(self.generator.parameters(),
                              self.discriminator.parameters() if self.n_optimizers == 2 else None,
                              partial(torch.optim.SGD, lr=BASE_LR), scheduler=sched, interval=self.interval)


def fit(module: L.LightningModule, *, max_steps: int = -1, max_epochs: int = 1, n_items: int = 8,
        limit_train_batches: int | float = 1.0) -> L.Trainer:
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(n_items, 4, generator=g), torch.randn(n_items, 32, generator=g))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, max_epochs=max_epochs, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_train_batches=limit_train_batches, num_sanity_val_steps=0)
    torch.manual_seed(0)
    trainer.fit(module, DataLoader(data, batch_size=2))
    return trainer


def test_order_start_step_clipping_and_per_step_schedulers():
    """8 batches, start_step 3: 3 G-only steps (D never run), then D before G every batch; each optimizer clipped
    to its own value; per-step schedulers follow their optimizer's steps; global_step = 3 + 2 * 5."""
    clip_g, clip_d = 0.05, 0.5
    gan = GANStep({"l1": 1.0}, loss="lsgan", reduction="sum", adv_weight=1.0, feat_weight=2.0, start_step=3,
                  clip_generator=clip_g, clip_discriminator=clip_d)
    m = ToyGAN(gan, interval="step", gamma=0.5)
    trainer = fit(m, max_steps=3 + 2 * 5, max_epochs=-1, n_items=16)

    assert trainer.global_step == 13 and int(m.generator_steps) == 8
    assert [e["opt"] for e in m.events] == ["g"] * 3 + ["d", "g"] * 5
    # before start_step the discriminator is not run and not changed; it changes from the first D step on
    first = m.batches[0]["d_state"]
    for b in m.batches[:4]:
        assert all(torch.equal(first[k], v) for k, v in b["d_state"].items())
    assert not all(torch.equal(first[k], v) for k, v in m.batches[4]["d_state"].items())
    assert [b["adversarial"] for b in m.batches] == [False] * 3 + [True] * 5
    # D: 2 forwards per D step + 2 per G step (fake with grad, real without)
    assert m.d_forwards == 5 * 4
    # clipping: the norm at step time is min(pre-clip norm, own clip value); clipping did happen
    g_events, d_events = [e for e in m.events if e["opt"] == "g"], [e for e in m.events if e["opt"] == "d"]
    pre_g = [float(b["logs"]["train/grad_norm_generator"]) for b in m.batches]
    pre_d = [float(b["logs"]["train/grad_norm_discriminator"]) for b in m.batches[3:]]
    assert [e["norm"] for e in g_events] == pytest.approx([min(n, clip_g) for n in pre_g], rel=1e-4)
    assert [e["norm"] for e in d_events] == pytest.approx([min(n, clip_d) for n in pre_d], rel=1e-4)
    assert max(pre_g) > clip_g and max(pre_d) > clip_d
    # the generator step adds no gradient to the discriminator (toggled optimizers): D's grads at the G step are
    # the ones its own step left
    for i, e in enumerate(m.events):
        if e["opt"] == "d":
            assert m.events[i + 1]["opt"] == "g"
            assert all(torch.equal(a, b) for a, b in zip(e["d_grads"], m.events[i + 1]["d_grads"]))
    # per-step schedulers: lr at batch i = base * 0.5^(steps of that optimizer so far)
    assert [b["lr_g"] for b in m.batches] == pytest.approx([BASE_LR * 0.5**i for i in range(8)])
    assert [b["lr_d"] for b in m.batches] == pytest.approx([BASE_LR] * 4 + [BASE_LR * 0.5**i for i in range(1, 5)])
    logs = m.batches[-1]["logs"]
    for key in ("train/d_loss", "train/d_loss/a", "train/d_loss/b", "train/adv", "train/adv/a", "train/feat/b",
                "train/l1", "train/loss", "train/generator_step"):
        assert key in logs and math.isfinite(float(logs[key])), key
    assert float(logs["train/d_loss"]) == pytest.approx(float(logs["train/d_loss/a"]) + float(logs["train/d_loss/b"]))
    # generator total = l1 + adv + 2 * feat (weights above)
    expected = float(logs["train/l1"]) + float(logs["train/adv"]) + 2 * float(logs["train/feat"])
    assert float(logs["train/loss"]) == pytest.approx(expected, rel=1e-5)


def test_per_epoch_schedulers_decay_once_per_epoch():
    """ExponentialLR per epoch (HiFi-GAN): the lr is constant within an epoch and decays at each epoch end; the
    discriminator's scheduler waits until D has stepped (start_step 6 = inside epoch 1 of 4-batch epochs)."""
    gan = GANStep({"l1": 1.0}, start_step=6)
    m = ToyGAN(gan, interval="epoch", gamma=0.5)
    fit(m, max_epochs=3, n_items=8)
    assert [b["epoch"] for b in m.batches] == [0] * 4 + [1] * 4 + [2] * 4
    assert [b["lr_g"] for b in m.batches] == pytest.approx([BASE_LR * 0.5**b["epoch"] for b in m.batches])
    # D starts at batch 6 (epoch 1): its lr is the base lr through epoch 1, decayed once at the end of epoch 1
    assert [b["lr_d"] for b in m.batches] == pytest.approx([BASE_LR] * 8 + [BASE_LR * 0.5] * 4)


def test_epoch_end_detected_with_limit_train_batches():
    gan = GANStep({"l1": 1.0}, enabled=False)
    m = ToyGAN(gan, interval="epoch", gamma=0.5, n_optimizers=1)
    fit(m, max_epochs=2, n_items=16, limit_train_batches=3)
    assert [b["lr_g"] for b in m.batches] == pytest.approx([BASE_LR] * 3 + [BASE_LR * 0.5] * 3)
    assert all(e["opt"] == "g" for e in m.events) and len(m.events) == 6


def test_clipping_under_fp16_loss_scaling():
    """With a GradScaler (16-mixed) the gradients are still scaled when GANStep clips; the clip must act on the
    unscaled norm: at step time (after Lightning's unscale) the norms equal the configured clip values."""
    from lightning.pytorch.plugins import MixedPrecision

    gan = GANStep({"l1": 1.0}, start_step=1, clip_generator=0.05, clip_discriminator=0.5)
    m = ToyGAN(gan, scheduler=False)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(8, 4, generator=g), torch.randn(8, 32, generator=g))
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    trainer = L.Trainer(accelerator="cpu", max_steps=7, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    trainer.fit(m, DataLoader(data, batch_size=2))
    assert [e["opt"] for e in m.events] == ["g", "d", "g", "d", "g", "d", "g"]
    pre = [float(b["logs"]["train/grad_norm_generator"]) for b in m.batches]
    assert min(pre) > 0.05 and max(pre) < 1e3  # logged unscaled
    assert [e["norm"] for e in m.events] == pytest.approx([0.05, 0.5, 0.05, 0.5, 0.05, 0.5, 0.05], rel=1e-3)


def test_balancer_path_trains_and_reports_ratios():
    bal = LossBalancer({"l1": 1.0, "adv": 1.0, "feat": 1.0})
    gan = GANStep({"l1": 1.0}, start_step=1, balancer=bal)
    m = ToyGAN(gan, scheduler=False)
    fit(m, max_steps=1 + 2 * 2, max_epochs=-1)
    logs = m.batches[-1]["logs"]
    ratios = [logs[f"train/balancer_ratio_{k}"] for k in ("l1", "adv", "feat")]
    assert sum(ratios) == pytest.approx(1.0) and all(0 <= r <= 1 for r in ratios)
    assert "train/balancer_ratio_adv" not in m.batches[0]["logs"]  # before start_step only l1 is balanced


def test_clear_errors():
    with pytest.raises(RuntimeError, match="discriminator_optimizer"):
        fit(ToyGAN(GANStep({"l1": 1.0}), n_optimizers=1), max_steps=1)
    with pytest.raises(AttributeError, match="attach"):
        fit(ToyGAN(GANStep({"l1": 1.0}), attach=False), max_steps=1)
    with pytest.raises(ValueError, match="adversarial.loss"):
        GANStep({"l1": 1.0}, loss="wgan")
    with pytest.raises(ValueError, match="gradient_clip_generator"):
        GANStep({"l1": 1.0}, clip_generator=-1)
    with pytest.raises(ValueError, match="scheduler_interval"):
        gan_optimizers([nn.Parameter(torch.zeros(1))], None, partial(torch.optim.SGD, lr=0.1),
                       scheduler=partial(torch.optim.lr_scheduler.ExponentialLR, gamma=0.5), interval="batch")


class TinyVocoder(L.LightningModule):
    """The GANStep docstring's HiFi-GAN recipe with a one-layer generator: MPD + MSD, LSGAN (sum) + 2 x feature
    matching (sum) + 45 x mel L1, AdamW 2e-4 (0.8, 0.99), ExponentialLR 0.999 per epoch."""

    def __init__(self):
        super().__init__()
        from audiolab.adversarial import hifigan_discriminator

        self.automatic_optimization = False
        self.generator = nn.ConvTranspose1d(16, 1, 128, stride=64, padding=32)
        self.discriminator = hifigan_discriminator()
        self.gan = GANStep({"mel": 45.0}, loss="lsgan", reduction="sum", adv_weight=1.0, feat_weight=2.0)
        self.gan.attach(self)
        self.outs = []

    def mel(self, audio):
        from audiolab.audio.features import log_mel_spectrogram

        return log_mel_spectrogram(audio, 16000, n_fft=256, hop_length=64, n_mels=16)

    def training_step(self, batch, batch_idx):
        (audio,) = batch
        mel = self.mel(audio)[..., :-1]  # [B, 16, T/64]
        fake = torch.tanh(self.generator(mel)).squeeze(1)
        mel_l1 = F.l1_loss(self.mel(fake), self.mel(audio))
        self.outs.append(self.gan.step(self, real=audio, fake=fake, losses={"mel": mel_l1},
                                       discriminator=self.discriminator))

    def configure_optimizers(self):
        return gan_optimizers(self.generator.parameters(), self.discriminator.parameters(),
                              partial(torch.optim.AdamW, lr=2e-4, betas=(0.8, 0.99)),
                              scheduler=partial(torch.optim.lr_scheduler.ExponentialLR, gamma=0.999), interval="epoch")


def test_hifigan_recipe_runs_unchanged():
    t = torch.arange(1024) / 16000
    audio = (0.5 * torch.sin(2 * math.pi * 220 * t)).unsqueeze(0)
    m = TinyVocoder()
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(m, DataLoader(TensorDataset(audio), batch_size=1))
    assert trainer.global_step == 2  # 1 batch x (D + G)
    assert [o.adversarial for o in m.outs] == [True]
    logs = m.outs[-1].logs
    names = ["mpd_p2", "mpd_p3", "mpd_p5", "mpd_p7", "mpd_p11", "msd_s1", "msd_s2", "msd_s4"]
    assert all(f"train/adv/{n}" in logs and f"train/d_loss/{n}" in logs for n in names)
    total = float(logs["train/adv"]) + 2 * float(logs["train/feat"]) + 45 * float(logs["train/mel"])
    assert float(logs["train/loss"]) == pytest.approx(total, rel=1e-5)
    assert [o.param_groups[0]["lr"] for o in trainer.optimizers] == pytest.approx([2e-4 * 0.999] * 2)  # 1 epoch
