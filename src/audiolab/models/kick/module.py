"""Kick training recipes: :class:`KickVAEModule` (mel VAE), :class:`KickDiffusionModule` (latent U-Net on a
frozen VAE) and :class:`KickVocoderModule` (HiFi-GAN, in ``vocoder.py``).

The diffusion module keeps the frozen VAE (and the vocoder, when ``vocoder_ckpt`` is given) as submodules, so its
checkpoint alone generates kicks; the keyword vocabulary (UTF-8 JSON in a uint8 buffer) and the latent scale are
buffers, so any loader restoring the state_dict restores them; the noise schedule and mel settings are config
(``checkpoint["kick"]`` repeats all of it in plain types for reading).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from audiolab.models.kick.audio import CLIP_SAMPLES, MelConfig
from audiolab.models.kick.diffusion import NoiseSchedule
from audiolab.models.kick.hifigan import HiFiGANGenerator
from audiolab.models.kick.keywords import KeywordVocabulary
from audiolab.models.kick.unet import LatentUNet
from audiolab.models.kick.vae import KickVAE
from audiolab.utils.config import plain

log = logging.getLogger("audiolab")

__all__ = ["KickVAEModule", "KickDiffusionModule", "build_vae", "build_vocoder", "CHECKPOINT_KEY"]

#: Checkpoint entry holding the non-weight data of a kick model (plain types only).
CHECKPOINT_KEY = "kick"


def build_vae(mel: MelConfig, cfg: dict) -> KickVAE:
    return KickVAE(n_mels=mel.n_mels, n_frames=mel.frames(CLIP_SAMPLES), log_floor=mel.log_floor, **cfg)


def build_vocoder(mel: MelConfig, cfg: dict) -> HiFiGANGenerator:
    gen = HiFiGANGenerator(n_mels=mel.n_mels, **cfg)
    if gen.hop != mel.hop_length:
        raise ValueError(f"vocoder upsampling {gen.hop} != mel hop {mel.hop_length}: the vocoder must produce one "
                         f"hop of samples per mel frame (model.vocoder.upsample_rates)")
    return gen


def _adamw(params, cfg: dict) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=float(cfg.get("lr", 1e-4)), betas=tuple(cfg.get("betas", (0.9, 0.999))),
                             weight_decay=float(cfg.get("weight_decay", 0.01)))


def _freeze(m: torch.nn.Module) -> None:
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)


# ================================================================================================== VAE
class KickVAEModule(L.LightningModule):
    """Mel VAE recipe: ``mse * MSE + l1 * L1`` on the log-mel + ``kl_weight(epoch) * KL``, KL weight linear from
    ``kl.start`` to ``kl.end`` over ``kl.anneal_epochs`` epochs. Validation/test reconstruct with the mean.

    Batches: ``{"mel": [B, 1, 128, 173], ...}``. Logged: ``<split>/mel_l1`` (the held-out metric), ``mse``,
    ``kl``, ``latent_std`` (std of the means), ``loss``.
    """

    def __init__(self, vae: dict, loss: dict, optim: dict, mel: dict | None = None,
                 diagnostics: dict | None = None) -> None:
        super().__init__()
        vae, loss, optim, mel, diagnostics = map(plain, (vae, loss, optim, mel or {}, diagnostics or {}))
        self.save_hyperparameters({"vae": vae, "loss": loss, "optim": optim, "mel": mel, "diagnostics": diagnostics})
        self.mel_cfg = MelConfig.from_dict(mel)
        self.vae = build_vae(self.mel_cfg, vae)
        self.loss_cfg = {"mse": 1.0, "l1": 1.0, **loss}
        self.kl_cfg = {"start": 1e-4, "end": 1e-3, "anneal_epochs": 20, **self.loss_cfg.get("kl", {})}
        self.optim_cfg = optim

    def kl_weight(self, epoch: int | None = None) -> float:
        e = self.current_epoch if epoch is None else epoch
        n = float(self.kl_cfg["anneal_epochs"])
        frac = 1.0 if n <= 0 else min(1.0, e / n)
        return float(self.kl_cfg["start"]) + frac * (float(self.kl_cfg["end"]) - float(self.kl_cfg["start"]))

    def terms(self, mel: Tensor, sample_latent: bool) -> dict[str, Tensor]:
        out = self.vae(mel, sample=sample_latent)
        err = out["recon"] - mel
        return {"mse": err.square().mean(), "mel_l1": err.abs().mean(), "kl": self.vae.kl(out["mu"], out["logvar"]),
                "latent_std": out["mu"].std(), "recon": out["recon"]}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        t = self.terms(batch["mel"], sample_latent=True)
        w = self.kl_weight()
        loss = float(self.loss_cfg["mse"]) * t["mse"] + float(self.loss_cfg["l1"]) * t["mel_l1"] + w * t["kl"]
        self.log_dict({"train/loss": loss, "train/mse": t["mse"], "train/mel_l1": t["mel_l1"], "train/kl": t["kl"],
                       "train/kl_weight": w}, prog_bar=False, batch_size=batch["mel"].shape[0])
        return loss

    def _eval(self, batch: dict[str, Tensor], prefix: str) -> None:
        t = self.terms(batch["mel"], sample_latent=False)
        loss = float(self.loss_cfg["mse"]) * t["mse"] + float(self.loss_cfg["l1"]) * t["mel_l1"]
        self.log_dict({f"{prefix}/mel_l1": t["mel_l1"], f"{prefix}/mse": t["mse"], f"{prefix}/kl": t["kl"],
                       f"{prefix}/latent_std": t["latent_std"], f"{prefix}/loss": loss},
                      batch_size=batch["mel"].shape[0], sync_dist=True)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval(batch, "test")

    @torch.no_grad()
    def probe_metrics(self, batch: dict[str, Tensor]) -> dict[str, float]:
        t = self.terms(batch["mel"], sample_latent=False)
        return {"mel_l1": float(t["mel_l1"]), "mse": float(t["mse"]), "kl": float(t["kl"])}

    @torch.no_grad()
    def media(self, batch: dict[str, Tensor], n: int) -> dict[str, Any]:
        from audiolab.models.kick.plots import mel_grid

        mel = batch["mel"][:n]
        recon = self.vae(mel, sample=False)["recon"]
        return {"figures": {"mel_recon": mel_grid({"real": list(mel), "vae": list(recon)})},
                "sample_rate": self.mel_cfg.sample_rate}

    def configure_optimizers(self):
        return _adamw(self.vae.parameters(), self.optim_cfg)


# ================================================================================================== diffusion
class KickDiffusionModule(L.LightningModule):
    """Keyword-conditioned latent diffusion on a frozen VAE.

    Args:
        unet: :class:`~audiolab.models.kick.unet.LatentUNet` arguments (``in_channels`` comes from the VAE).
        diffusion: ``num_train_timesteps``, ``schedule`` (linear | cosine | scaled_linear), ``beta_start``,
            ``beta_end``, ``prediction`` (epsilon | v), ``min_snr_gamma`` (null = off), ``keyword_dropout``.
        vae / vae_ckpt: VAE architecture (must match the checkpoint) and the ``kick_vae`` run folder or ``.ckpt``
            whose weights are loaded (frozen) when a fit starts.
        vocoder / vocoder_ckpt: optional HiFi-GAN architecture and ``kick_hifigan`` run (frozen; stored so the
            checkpoint can render audio; media and the web page use it).
        allow_untrained: train on an untrained VAE when ``vae_ckpt`` is null (``debug=fast`` plumbing only).
        sampling: ``sampler`` / ``steps`` / ``cfg_scale`` for media and test-time generation.
        evaluation: ``n_generate`` / ``keyword_n`` (0 = no generation metrics at test), ``batch_size``.

    Latents are the VAE means of every clip, encoded once per process (the VAE is frozen); the diffusion runs on
    ``z * latent_scale`` with ``latent_scale = 1 / std`` of the training split's latents (a buffer, computed
    once, kept on resume). Logged: ``<split>/denoise_mse`` (fixed noise and timesteps per batch) and
    ``<split>/x0_mse`` (x_0 error in VAE-latent units).
    """

    def __init__(self, unet: dict, diffusion: dict, vae: dict, optim: dict, vae_ckpt: str | None = None,
                 vocoder: dict | None = None, vocoder_ckpt: str | None = None, allow_untrained: bool = False,
                 sampling: dict | None = None, evaluation: dict | None = None, mel: dict | None = None,
                 diagnostics: dict | None = None) -> None:
        super().__init__()
        unet, diffusion, vae, optim, vocoder, sampling, evaluation, mel, diagnostics = map(
            plain, (unet, diffusion, vae, optim, vocoder, sampling or {}, evaluation or {}, mel or {}, diagnostics or {}))
        self.save_hyperparameters({"unet": unet, "diffusion": diffusion, "vae": vae, "optim": optim,
                                   "vae_ckpt": vae_ckpt, "vocoder": vocoder, "vocoder_ckpt": vocoder_ckpt,
                                   "allow_untrained": allow_untrained, "sampling": sampling,
                                   "evaluation": evaluation, "mel": mel, "diagnostics": diagnostics})
        self.mel_cfg = MelConfig.from_dict(mel)
        self.vae = build_vae(self.mel_cfg, vae)
        _freeze(self.vae)
        unet = dict(unet)
        c = self.vae.latent_shape[0]
        if unet.setdefault("in_channels", c) != c:
            raise ValueError(f"model.unet.in_channels={unet['in_channels']} but the VAE latent is "
                             f"{'x'.join(map(str, self.vae.latent_shape))}; they must match")
        self.unet = LatentUNet(**unet)
        self.vocoder = build_vocoder(self.mel_cfg, vocoder) if vocoder is not None else None
        if self.vocoder is not None:
            _freeze(self.vocoder)
        diffusion = dict(diffusion)
        self.keyword_dropout = float(diffusion.pop("keyword_dropout", 0.15))
        self.schedule = NoiseSchedule(**diffusion)
        self.vae_ckpt, self.vocoder_ckpt, self.allow_untrained = vae_ckpt, vocoder_ckpt, bool(allow_untrained)
        self.sampling = {"sampler": "ddim", "steps": 50, "cfg_scale": 3.0, **sampling}
        self.evaluation = {"n_generate": 0, "keyword_n": 0, "batch_size": 16, **evaluation}
        self.optim_cfg = optim
        self.register_buffer("latent_scale", torch.zeros(()))  # 0 = not computed yet
        self.register_buffer("vocabulary_utf8", torch.zeros(64 * self.unet.keywords.max_keywords, dtype=torch.uint8))
        self.vocabulary: KeywordVocabulary | None = None
        self._latents: Tensor | None = None
        self.generation_results: dict[str, Any] | None = None

    # --------------------------------------------------------------------------------------- frozen parts
    def setup(self, stage: str) -> None:
        if stage == "fit":
            self._load_frozen()
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a Trainer (setup called by hand)
            trainer = None
        dm = getattr(trainer, "datamodule", None)
        vocab = getattr(dm, "vocabulary", None)
        if dm is not None and vocab is None and hasattr(dm, "setup"):
            dm.setup(stage)
            vocab = dm.vocabulary
        if self.vocabulary is None and vocab is not None:
            self._set_vocabulary(vocab)

    def _set_vocabulary(self, vocab: KeywordVocabulary) -> None:
        if len(vocab) > self.unet.keywords.max_keywords:
            raise ValueError(f"the keyword vocabulary has {len(vocab)} words but model.unet.max_keywords="
                             f"{self.unet.keywords.max_keywords}; raise it or data.min_count")
        self.vocabulary = vocab
        # a fixed-size buffer (UTF-8 JSON of words + counts, zero-padded): every loader that restores the weights
        # restores it, and its shape does not depend on the data
        data = json.dumps(vocab.to_dict()).encode()
        if len(data) > self.vocabulary_utf8.numel():
            raise ValueError(f"the keyword vocabulary takes {len(data)} bytes, more than the {self.vocabulary_utf8.numel()} "
                             f"reserved (64 per model.unet.max_keywords); raise max_keywords or data.min_count")
        self.vocabulary_utf8.zero_()
        self.vocabulary_utf8[: len(data)] = torch.tensor(list(data), dtype=torch.uint8)

    def _load_frozen(self) -> None:
        from audiolab.models.kick.pipeline import load_kick_module

        if self.vae_ckpt:
            vmod, _ = load_kick_module(self.vae_ckpt, ("KickVAEModule",))
            if tuple(vmod.vae.latent_shape) != tuple(self.vae.latent_shape):
                raise ValueError(
                    f"the VAE in {self.vae_ckpt} has latent {'x'.join(map(str, vmod.vae.latent_shape))} but this "
                    f"U-Net expects {'x'.join(map(str, self.vae.latent_shape))}: set model.vae to that VAE's "
                    f"architecture ({vmod.hparams.get('vae')})")
            try:
                self.vae.load_state_dict(vmod.vae.state_dict())
            except RuntimeError as err:
                raise ValueError(f"model.vae does not match the architecture of the VAE in {self.vae_ckpt} "
                                 f"(stored: {vmod.hparams.get('vae')}, configured: {self.hparams['vae']}): {err}") from err
            log.info("loaded the frozen VAE from %s", self.vae_ckpt)
        elif not self.allow_untrained:
            raise FileNotFoundError(
                "kick diffusion needs a trained VAE: set model.vae_ckpt=<kick_vae run folder or .ckpt> "
                "(model.allow_untrained=true trains on an untrained VAE, for plumbing tests only)")
        else:
            log.warning("model.vae_ckpt is null: training the U-Net on latents of an UNTRAINED VAE (debug only)")
        if self.vocoder_ckpt:
            vmod, _ = load_kick_module(self.vocoder_ckpt, ("KickVocoderModule",))
            if self.vocoder is None:
                raise ValueError("model.vocoder_ckpt is set but model.vocoder (its architecture) is null")
            try:
                self.vocoder.load_state_dict(vmod.generator.state_dict())
            except RuntimeError as err:
                raise ValueError(f"model.vocoder does not match the generator in {self.vocoder_ckpt}: {err}") from err
            log.info("loaded the frozen vocoder from %s", self.vocoder_ckpt)
        elif self.vocoder is not None and not self.allow_untrained:
            raise FileNotFoundError("model.vocoder is set but model.vocoder_ckpt is null: give the kick_hifigan run "
                                    "folder / .ckpt (or model.vocoder=null to train without a vocoder)")
        _freeze(self.vae)
        if self.vocoder is not None:
            _freeze(self.vocoder)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vae.eval()  # frozen parts never switch to training behaviour
        if self.vocoder is not None:
            self.vocoder.eval()
        return self

    # --------------------------------------------------------------------------------------- latents
    def _datamodule(self):
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a Trainer (setup called by hand)
            trainer = None
        dm = getattr(trainer, "datamodule", None)
        if dm is None:
            raise RuntimeError("KickDiffusionModule needs its KickDataModule (trainer.datamodule)")
        if self.vocabulary is None:
            self._set_vocabulary(dm.vocabulary)
        elif dm.vocabulary is not None and dm.vocabulary.words != self.vocabulary.words:
            raise ValueError(f"the data's keyword vocabulary ({len(dm.vocabulary)} words) differs from the model's "
                             f"({len(self.vocabulary)}): same data.root / min_count / split as in training?")
        return dm

    @torch.no_grad()
    def latents(self) -> Tensor:
        """VAE means of every clip of the data (``[N, C, h, w]``, CPU), encoded once; sets the latent scale."""
        if self._latents is None:
            dm = self._datamodule()
            mel = torch.from_numpy(dm.store.mel)
            out = []
            for i in range(0, len(mel), 64):
                out.append(self.vae.encode(mel[i:i + 64, None].to(self.device))[0].cpu())
            self._latents = torch.cat(out)
            if float(self.latent_scale) == 0.0:
                std = float(self._latents[dm.split_indices("train")].std())
                self.latent_scale.fill_(1.0 / max(std, 1e-8))
                log.info("latent std over the training split: %.4f -> latent_scale %.4f", std, 1.0 / std)
        return self._latents

    def _x0(self, batch: dict[str, Tensor]) -> Tensor:
        idx = batch["index"].long().cpu()
        return self.latents()[idx].to(self.device) * self.latent_scale

    # --------------------------------------------------------------------------------------- steps
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x0 = self._x0(batch)
        b = x0.shape[0]
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.schedule.num_train_timesteps, (b,), device=self.device)
        drop = torch.rand(b, device=self.device) < self.keyword_dropout
        pred = self.unet(self.schedule.add_noise(x0, noise, t), t, batch["keywords"], drop)
        per = (pred.float() - self.schedule.target(x0, noise, t).float()).square().flatten(1).mean(1)
        loss = (per * self.schedule.loss_weights(t).to(per.device)).mean()
        opt = self.optimizers()
        # the LR here, not Lightning's LearningRateMonitor: that one logs every accumulated batch (a duplicate
        # row per optimizer step); self.log is flushed once per optimizer step
        self.log_dict({"train/loss": loss, "train/latent_scale": self.latent_scale,
                       "train/lr": opt.param_groups[0]["lr"]}, batch_size=b)
        return loss

    @torch.no_grad()
    def denoise_metrics(self, batch: dict[str, Tensor], seed: int) -> dict[str, Tensor]:
        """Fixed-noise denoising error: timesteps spread evenly over [0, T) across the batch, noise from ``seed``."""
        x0 = self._x0(batch)
        b = x0.shape[0]
        g = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(x0.shape, generator=g).to(self.device)
        t = ((torch.arange(b) + 0.5) * self.schedule.num_train_timesteps / b).long().clamp(
            max=self.schedule.num_train_timesteps - 1).to(self.device)
        x_t = self.schedule.add_noise(x0, noise, t)
        pred = self.unet(x_t, t, batch["keywords"])
        mse = (pred - self.schedule.target(x0, noise, t)).square().mean()
        x0_hat = self.schedule.predict_x0(x_t, pred, t) / self.latent_scale
        return {"denoise_mse": mse, "x0_mse": (x0_hat - x0 / self.latent_scale).square().mean()}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        m = self.denoise_metrics(batch, seed=batch_idx)
        self.log_dict({f"val/{k}": v for k, v in m.items()}, batch_size=batch["index"].shape[0], sync_dist=True)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        m = self.denoise_metrics(batch, seed=batch_idx)
        self.log_dict({f"test/{k}": v for k, v in m.items()}, batch_size=batch["index"].shape[0], sync_dist=True)

    def on_test_epoch_end(self) -> None:
        ev = self.evaluation
        if int(ev["n_generate"]) <= 0 and int(ev["keyword_n"]) <= 0:
            return
        from audiolab.models.kick.evaluation import evaluate_generation, flat_metrics

        dm = self._datamodule()
        with torch.random.fork_rng():
            res = evaluate_generation(self.pipeline(), dm, n_generate=int(ev["n_generate"]),
                                      keyword_n=int(ev["keyword_n"]), batch_size=int(ev["batch_size"]),
                                      **{k: self.sampling[k] for k in ("sampler", "steps", "cfg_scale")})
        self.generation_results = res
        for k, v in flat_metrics(res).items():
            if math.isfinite(v):
                self.log(f"test/gen_{k}", v)
        out_dir = getattr(self.trainer, "default_root_dir", None)
        for cb in self.trainer.callbacks:
            if getattr(cb, "output_dir", None):
                out_dir = cb.output_dir
                break
        if out_dir is not None:
            from audiolab.data.cache import atomic_write_json

            atomic_write_json(Path(out_dir) / "generation_metrics.json", res)

    @torch.no_grad()
    def probe_metrics(self, batch: dict[str, Tensor]) -> dict[str, float]:
        return {k: float(v) for k, v in self.denoise_metrics(batch, seed=0).items()}

    # --------------------------------------------------------------------------------------- generation
    def pipeline(self, vocoder: torch.nn.Module | None = None):
        """A :class:`~audiolab.models.kick.pipeline.KickPipeline` sharing this module's nets."""
        from audiolab.models.kick.pipeline import KickPipeline

        if self.vocabulary is None:
            raise ValueError("this kick diffusion model has no keyword vocabulary (never set up with data, and the "
                             "checkpoint holds none)")
        if float(self.latent_scale) <= 0:
            self.latents()
        return KickPipeline(self.vae, self.unet, vocoder if vocoder is not None else self.vocoder, self.vocabulary,
                            float(self.latent_scale), self.schedule.config, self.mel_cfg)

    @torch.no_grad()
    def media(self, batch: dict[str, Tensor], n: int) -> dict[str, Any]:
        from audiolab.models.kick.plots import mel_grid

        pipe = self.pipeline()
        words = pipe.vocabulary.words
        prompts = [[words[j] for j in torch.nonzero(row).flatten().tolist()] for row in batch["keywords"][:n]]
        gen = pipe.generate(prompts, list(range(len(prompts))), sampler=self.sampling["sampler"],
                            steps=int(self.sampling.get("media_steps", self.sampling["steps"])),
                            cfg_scale=float(self.sampling["cfg_scale"]), batch_size=len(prompts))
        titles = [" ".join(p) or "(none)" for p in prompts]
        out: dict[str, Any] = {"figures": {"generated": mel_grid({"real": list(batch["mel"][:n]),
                                                                  "generated": list(gen.mels)}, titles)},
                               "sample_rate": self.mel_cfg.sample_rate}
        if gen.audio is not None:
            out["audio"] = {f"gen_{i}": a for i, a in enumerate(gen.audio)}
        return out

    # --------------------------------------------------------------------------------------- checkpoint
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        data = bytes(self.vocabulary_utf8.tolist()).rstrip(b"\0")
        if data:
            self.vocabulary = KeywordVocabulary.from_dict(json.loads(data.decode()))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # a readable summary next to the weights (loading uses the buffers)
        checkpoint[CHECKPOINT_KEY] = {
            "vocabulary": self.vocabulary.to_dict() if self.vocabulary is not None else None,
            "latent_scale": float(self.latent_scale), "latent_shape": list(self.vae.latent_shape),
            "schedule": dict(self.schedule.config), "mel": self.mel_cfg.to_dict(),
            "keyword_dropout": self.keyword_dropout}

    def configure_optimizers(self):
        opt = _adamw(self.unet.parameters(), self.optim_cfg)
        warmup = int(self.optim_cfg.get("warmup_steps", 0))
        if warmup <= 0:
            return opt
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

