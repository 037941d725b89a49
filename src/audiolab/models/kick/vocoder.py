"""HiFi-GAN vocoder recipe for kicks: generator (``hifigan.py``) + MPD (periods 2, 3, 5, 7, 11) + 3-scale MSD from
the shared :mod:`audiolab.adversarial` package, trained with its :class:`~audiolab.adversarial.GANStep`.

Loss (jik876/hifi-gan): LSGAN, ``2 x`` feature matching, ``45 x`` L1 between log-mels of generated and real audio —
the kick mel (:class:`~audiolab.models.kick.audio.MelConfig`), the same function as the dataset and the input.
AdamW(2e-4, betas 0.8/0.99) for G and for D (one optimizer over MPD + MSD), ``ExponentialLR(0.999)`` stepped once
per **epoch** (GANStep steps it after the epoch's last batch; per optimizer step it would halve the LR every 693
steps). fp32 (the seed's choice "for GAN stability"; the experiments pin ``trainer.precision=32-true``).

Training items are hop-aligned crops (``data.crop_samples``, 8192 = 16 frames) or whole 2-s clips
(``data.crop_samples=null``). Optional fine-tuning on VAE-reconstructed mels (``finetune_vae_ckpt``): the
generator input is the frozen VAE's reconstruction of the clip's mel (cropped like the audio), the target the real
audio (HiFi-GAN's teacher-forced fine-tuning).

Validation / test on whole clips: ``mel_l1`` (log-mel L1 of the resynthesis, 88,200 samples) and ``mrstft``
(auraloss ``MultiResolutionSTFTLoss`` with its defaults, BigVGAN's "M-STFT").
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from audiolab.adversarial import GANStep, gan_optimizers, hifigan_discriminator
from audiolab.models.kick.audio import CLIP_SAMPLES, MelConfig
from audiolab.models.kick.module import CHECKPOINT_KEY, _freeze, build_vocoder
from audiolab.utils.config import plain

log = logging.getLogger("audiolab")

__all__ = ["KickVocoderModule"]


class KickVocoderModule(L.LightningModule):
    """Batches (``data.mode=crop``): ``{"audio": [B, T], "mel": [B, 128, T / 512], "index": [B],
    "start_frame": [B]}``."""

    def __init__(self, generator: dict, discriminator: dict, loss: dict, optim: dict, mel: dict | None = None,
                 adversarial: dict | None = None, finetune_vae_ckpt: str | None = None, vae: dict | None = None,
                 diagnostics: dict | None = None) -> None:
        super().__init__()
        generator, discriminator, loss, optim, mel, adversarial, vae, diagnostics = map(
            plain, (generator, discriminator, loss, optim, mel or {}, adversarial or {}, vae, diagnostics or {}))
        self.save_hyperparameters({"generator": generator, "discriminator": discriminator, "loss": loss,
                                   "optim": optim, "mel": mel, "adversarial": adversarial,
                                   "finetune_vae_ckpt": finetune_vae_ckpt, "vae": vae, "diagnostics": diagnostics})
        self.automatic_optimization = False
        self.mel_cfg = MelConfig.from_dict(mel)
        self.generator = build_vocoder(self.mel_cfg, generator)
        self.discriminator = hifigan_discriminator(**discriminator)
        loss = {"mel": 45.0, "adv": 1.0, "feat": 2.0, "kind": "lsgan", "reduction": "sum", **loss}
        adversarial = {"enabled": True, "start_step": 0, **adversarial}
        self.optim_cfg = {"lr": 2e-4, "betas": (0.8, 0.99), "weight_decay": 0.01, "lr_decay": 0.999,
                          "gradient_clip_generator": 0.0, "gradient_clip_discriminator": 0.0, **optim}
        self.gan = GANStep({"mel": float(loss["mel"])}, enabled=bool(adversarial["enabled"]), loss=loss["kind"],
                           reduction=loss["reduction"], adv_weight=float(loss["adv"]), feat_weight=float(loss["feat"]),
                           start_step=int(adversarial["start_step"]),
                           clip_generator=float(self.optim_cfg["gradient_clip_generator"] or 0),
                           clip_discriminator=float(self.optim_cfg["gradient_clip_discriminator"] or 0))
        self.gan.attach(self)
        self.finetune_vae_ckpt = finetune_vae_ckpt
        self.vae = None
        if finetune_vae_ckpt:
            from audiolab.models.kick.module import build_vae

            if vae is None:
                raise ValueError("model.finetune_vae_ckpt needs model.vae (the VAE architecture)")
            self.vae = build_vae(self.mel_cfg, vae)
            _freeze(self.vae)
        self._recon: Tensor | None = None
        self._mrstft = None

    # --------------------------------------------------------------------------------------- helpers
    def setup(self, stage: str) -> None:
        if stage == "fit" and self.vae is not None:
            from audiolab.models.kick.pipeline import load_kick_module

            vmod, _ = load_kick_module(self.finetune_vae_ckpt, ("KickVAEModule",))
            self.vae.load_state_dict(vmod.vae.state_dict())
            _freeze(self.vae)
            log.info("fine-tuning on mels reconstructed by the VAE of %s", self.finetune_vae_ckpt)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.vae is not None:
            self.vae.eval()
        return self

    @torch.no_grad()
    def _vae_mels(self) -> Tensor:
        """VAE reconstructions (through the mean) of every clip's mel, ``[N, n_mels, frames]``, once."""
        if self._recon is None:
            dm = self.trainer.datamodule
            mel = torch.from_numpy(dm.store.mel)
            self._recon = torch.cat([self.vae(mel[i:i + 32, None].to(self.device), sample=False)["recon"][:, 0].cpu()
                                     for i in range(0, len(mel), 32)])
        return self._recon

    def _input_mel(self, batch: dict[str, Tensor]) -> Tensor:
        if self.vae is None:
            return batch["mel"]
        frames = batch["mel"].shape[-1]
        recon = self._vae_mels()
        return torch.stack([recon[int(i)][:, int(s):int(s) + frames] for i, s in
                            zip(batch["index"], batch["start_frame"])]).to(self.device)

    def log_mel(self, audio: Tensor) -> Tensor:
        return self.mel_cfg(audio)

    def mrstft(self, pred: Tensor, target: Tensor) -> Tensor:
        if self._mrstft is None:
            import auraloss

            self._mrstft = auraloss.freq.MultiResolutionSTFTLoss()
        return self._mrstft(pred[:, None].float(), target[:, None].float())

    # --------------------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        audio = batch["audio"]
        fake = self.generator(self._input_mel(batch))[:, : audio.shape[-1]]
        mel_l1 = F.l1_loss(self.log_mel(fake), self.log_mel(audio))
        self.gan.step(self, real=audio, fake=fake, losses={"mel": mel_l1}, discriminator=self.discriminator)
        opt_g = self.optimizers()[0] if isinstance(self.optimizers(), list) else self.optimizers()
        self.log("train/lr", opt_g.param_groups[0]["lr"], batch_size=audio.shape[0])

    @torch.no_grad()
    def resynthesis_metrics(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Whole clips: log-mel L1 and MR-STFT of ``generator(mel)`` (first 88,200 samples) vs the clip."""
        n = min(batch["audio"].shape[-1], CLIP_SAMPLES)
        fake = self.generator(self._input_mel(batch))[:, :n]
        real = batch["audio"][:, :n]
        return {"mel_l1": F.l1_loss(self.log_mel(fake), self.log_mel(real)), "mrstft": self.mrstft(fake, real)}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        m = self.resynthesis_metrics(batch)
        self.log_dict({f"val/{k}": v for k, v in m.items()}, batch_size=batch["audio"].shape[0], sync_dist=True)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        m = self.resynthesis_metrics(batch)
        self.log_dict({f"test/{k}": v for k, v in m.items()}, batch_size=batch["audio"].shape[0], sync_dist=True)

    @torch.no_grad()
    def probe_metrics(self, batch: dict[str, Tensor]) -> dict[str, float]:
        return {k: float(v) for k, v in self.resynthesis_metrics(batch).items()}

    @torch.no_grad()
    def media(self, batch: dict[str, Tensor], n: int) -> dict[str, Any]:
        from audiolab.models.kick.plots import mel_grid

        n = min(n, batch["audio"].shape[0])
        fake = self.generator(self._input_mel(batch)[:n])[:, :CLIP_SAMPLES].cpu()
        real = batch["audio"][:n, :CLIP_SAMPLES].cpu()
        audio = {}
        for i in range(n):
            audio[f"ex{i}_vocoder"] = fake[i]
            audio[f"ex{i}_real"] = real[i]
        fig = mel_grid({"real": list(self.log_mel(real)), "vocoder": list(self.log_mel(fake))})
        return {"audio": audio, "figures": {"mel_resynthesis": fig}, "sample_rate": self.mel_cfg.sample_rate}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {"mel": self.mel_cfg.to_dict(), "hop": int(self.generator.hop)}

    def configure_optimizers(self):
        o = self.optim_cfg
        opt = functools.partial(torch.optim.AdamW, lr=float(o["lr"]), betas=tuple(o["betas"]),
                                weight_decay=float(o["weight_decay"]))
        sched = functools.partial(torch.optim.lr_scheduler.ExponentialLR, gamma=float(o["lr_decay"]))
        optimizers, schedulers = gan_optimizers(self.generator.parameters(), self.discriminator.parameters(), opt,
                                                scheduler=sched, interval="epoch")
        return optimizers, schedulers
