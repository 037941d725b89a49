"""Codec training recipe (LightningModule, manual optimization for the optional GAN).

Generator loss: ``l1 * |y - x| + mel * MultiScaleMel(y, x) + rms * |rms(y)/rms(x) - 1| + adv * hinge_G + feat * FM``,
plus the quantizer's commitment term (always outside the balancer, as in audiocraft). With ``loss.balancer.enabled``
the l1/mel/adv/feat terms are combined by their share of the output gradient instead of by value.

The optimization loop (discriminator step then generator step, per-optimizer clipping, scheduler stepping,
``loss.adversarial.start_step``, balancer, logging) is :class:`audiolab.adversarial.GANStep`. ``global_step``
counts optimizer steps of *both* optimizers once the discriminator runs (Lightning's rule for manual
optimization); ``generator_steps`` (a buffer, saved in checkpoints) counts batches and is what
``loss.adversarial.start_step`` and the logged ``train/generator_step`` refer to.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch import Tensor

from audiolab.adversarial import GANStep, LossBalancer, MultiScaleSTFTDiscriminator, gan_optimizers
from audiolab.audio.io import save_audio
from audiolab.callbacks.probe import probe_history
from audiolab.losses.level import rms_ratio_loss
from audiolab.losses.spectral import MultiScaleMelLoss
from audiolab.metrics.codebook import CodebookUsageAccumulator, bitrate_kbps, codebook_stats
from audiolab.metrics.waveform import waveform_metrics
from audiolab.models.codec.model import Codec
from audiolab.utils.config import plain

BALANCED_TERMS = ("l1", "mel", "adv", "feat")


def _finite(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if math.isfinite(float(v))}


class CodecModule(L.LightningModule):
    """Batches are dicts ``{"audio": [B, T] float, "source": list[str]}`` at ``sample_rate``."""

    def __init__(self, sample_rate: int, codec: dict, loss: dict, optim: dict, discriminator: dict | None = None,
                 diagnostics: dict | None = None, eval_bandwidths: list[float] | None = None):
        super().__init__()
        codec, loss, optim, discriminator, diagnostics = map(plain, (codec, loss, optim, discriminator or {}, diagnostics or {}))
        eval_bandwidths = [float(b) for b in (plain(eval_bandwidths) or [])]
        self.save_hyperparameters({"sample_rate": sample_rate, "codec": codec, "loss": loss, "optim": optim,
                                   "discriminator": discriminator, "diagnostics": diagnostics,
                                   "eval_bandwidths": eval_bandwidths})
        self.automatic_optimization = False
        self.sample_rate = int(sample_rate)
        self.codec = Codec(sample_rate=self.sample_rate, **codec)
        for bw in eval_bandwidths:
            self.codec.bandwidth_to_n_q(bw)  # fail at construction, naming the bandwidth, not at the first test
        self.eval_bandwidths = eval_bandwidths
        self.loss_cfg = loss
        self.weights = {"l1": float(loss.get("l1", {}).get("weight", 0.1)),
                        "mel": float(loss.get("mel", {}).get("weight", 1.0)),
                        "rms": float(loss.get("rms", {}).get("weight", 0.0))}
        mel_cfg = {k: v for k, v in loss.get("mel", {}).items() if k != "weight"}
        self.mel_loss = MultiScaleMelLoss(self.sample_rate, **mel_cfg)
        adv = {"enabled": False, "start_step": 0, "adv_weight": 4.0, "feat_weight": 4.0, "loss": "hinge",
               "reduction": "mean", **loss.get("adversarial", {})}
        self.discriminator = MultiScaleSTFTDiscriminator(**discriminator) if adv["enabled"] else None
        if adv["enabled"]:
            self.weights.update({"adv": float(adv["adv_weight"]), "feat": float(adv["feat_weight"])})
        bal = {"enabled": False, "total_norm": 1.0, "ema_decay": 0.999, **loss.get("balancer", {})}
        self.balancer = (LossBalancer({k: self.weights[k] for k in BALANCED_TERMS if k in self.weights},
                                      bal["total_norm"], bal["ema_decay"]) if bal["enabled"] else None)
        self.optim_cfg = {"gradient_clip_generator": 0.0, "gradient_clip_discriminator": 0.0,
                          "discriminator_lr_scale": 1.0, "scheduler_interval": "step", **optim}
        self.gan = GANStep({k: self.weights[k] for k in ("l1", "mel", "rms")}, enabled=adv["enabled"],
                           loss=adv["loss"], reduction=adv["reduction"], adv_weight=adv["adv_weight"],
                           feat_weight=adv["feat_weight"], start_step=adv["start_step"],
                           clip_generator=self.optim_cfg["gradient_clip_generator"],
                           clip_discriminator=self.optim_cfg["gradient_clip_discriminator"], balancer=self.balancer)
        self.diag_cfg = {"every_n_steps": 500, "n_examples": 2, **diagnostics}
        self.gan.attach(self)  # the generator_steps buffer
        self._usage = CodebookUsageAccumulator(self.codec.bins)
        # evaluate.py sets these to write decoded test audio
        self.audio_output_dir: Path | None = None
        self.max_audio_examples = 8
        self._written = 0

    # ----------------------------------------------------------------------------------------- forward / losses
    def forward(self, audio: Tensor, n_q: int | None = None) -> dict[str, Any]:
        return self.codec(audio, n_q=n_q)

    def reconstruction_terms(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        mel = self.mel_loss(pred, target)
        terms = {"l1": (pred.float() - target.float()).abs().mean(), "mel": mel["loss"],
                 "mel_linear": mel["mel_linear"], "mel_log": mel["mel_log"]}
        if self.weights["rms"] > 0:
            terms["rms"] = rms_ratio_loss(pred, target)
        return terms

    def adversarial_active(self) -> bool:
        return self.gan.adversarial_active(self)

    # ----------------------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        audio = batch["audio"]
        bs = audio.shape[0]
        out = self.codec(audio)
        pred = out["audio"]
        terms = self.reconstruction_terms(pred, audio)
        commitment = out["commitment"]
        self.gan.step(self, real=audio, fake=pred, losses=terms, discriminator=self.discriminator,
                      extra_loss=commitment, batch_size=bs)

        logs = {"train/commitment": commitment.detach(), "train/replaced_codes": float(out["replaced_codes"]),
                "train/n_q_mean": out["n_q_per_item"].float().mean()}
        if self.codec.output_scale is not None:
            logs["train/output_scale"] = self.codec.output_scale.detach()
        with torch.no_grad():
            wm = waveform_metrics(pred.detach(), audio, self.sample_rate, spectral=False)
        logs.update({f"train/{k}": wm[k] for k in ("snr_db", "rms_ratio", "output_peak") if k in wm})
        self.log_dict(logs, batch_size=bs)
        self.log("train/mel_pb", terms["mel"].detach(), prog_bar=True, batch_size=bs, logger=False)
        every = int(self.diag_cfg["every_n_steps"] or 0)
        if every and int(self.generator_steps) % every == 0:
            stats = codebook_stats(out["codes"].detach(), self.codec.bins)
            self.log_dict({"train/codebook_usage": float(torch.as_tensor(stats["usage"]).float().mean()),
                           "train/codebook_perplexity": float(torch.as_tensor(stats["perplexity"]).float().mean())},
                          batch_size=bs)

    # ----------------------------------------------------------------------------------------- evaluation
    def _eval(self, batch: dict[str, Tensor], prefix: str, n_q: int | None = None, suffix: str = "") -> dict[str, Any]:
        audio = batch["audio"]
        out = self.codec(audio, n_q=n_q)
        pred = out["audio"]
        terms = self.reconstruction_terms(pred, audio)
        metrics = waveform_metrics(pred, audio, self.sample_rate)
        logs = {f"{prefix}/{k}{suffix}": v for k, v in {**terms, **metrics, "commitment": out["commitment"]}.items()}
        logs = {k: v for k, v in logs.items() if torch.isfinite(torch.as_tensor(v)).all()}
        self.log_dict(logs, batch_size=audio.shape[0], sync_dist=True)
        return out

    def on_validation_epoch_start(self) -> None:
        self._usage.reset()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        out = self._eval(batch, "val")
        self._usage.update(out["codes"])

    def on_validation_epoch_end(self) -> None:
        self._log_usage("val")

    def on_test_epoch_start(self) -> None:
        self._usage.reset()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        out = self._eval(batch, "test")
        self._usage.update(out["codes"])
        for bw in self.eval_bandwidths:
            self._eval(batch, "test", n_q=self.codec.bandwidth_to_n_q(bw), suffix=f"@{bw:g}kbps")
        if self.audio_output_dir is not None:
            self._write_audio(batch, out["audio"])

    def on_test_epoch_end(self) -> None:
        self._log_usage("test")

    def _log_usage(self, prefix: str) -> None:
        stats = self._usage.compute()
        if not stats:
            return
        logs = {f"{prefix}/codebook_usage": stats["usage_mean"], f"{prefix}/codebook_perplexity": stats["perplexity_mean"],
                f"{prefix}/codebook_entropy_bits": stats["entropy_bits_mean"],
                f"{prefix}/codebook_effective_percentage": stats["effective_percentage"],
                f"{prefix}/bitrate_kbps": bitrate_kbps(self.codec.n_q, self.codec.bins, self.codec.frame_rate)}
        for k, u in enumerate(stats["usage"]):
            logs[f"{prefix}/codebook{k}_usage"] = u
            logs[f"{prefix}/codebook{k}_perplexity"] = stats["perplexity"][k]
        self.log_dict({k: float(v) for k, v in logs.items()}, sync_dist=False, rank_zero_only=True)

    def _write_audio(self, batch: dict[str, Tensor], pred: Tensor) -> None:
        for i in range(pred.shape[0]):
            if self._written >= self.max_audio_examples:
                return
            name = f"{self._written:03d}_{Path(str(batch.get('source', ['x'] * pred.shape[0])[i])).stem}"
            save_audio(self.audio_output_dir / f"{name}_output.wav", pred[i].float().clamp(-1, 1).cpu(), self.sample_rate)
            save_audio(self.audio_output_dir / f"{name}_input.wav", batch["audio"][i].float().cpu(), self.sample_rate)
            self._written += 1

    # ----------------------------------------------------------------------------------------- probe / media
    @torch.no_grad()
    def probe_metrics(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """Fixed-batch metrics at full n_q: mel loss, SNR, SI-SNR, RMS ratio, peak, clipping, mel/STFT distance."""
        audio = batch["audio"]
        out = self.codec(audio)
        pred = out["audio"]
        metrics = _finite({**waveform_metrics(pred, audio, self.sample_rate), "mel": self.mel_loss(pred, audio)["loss"]})
        if self.codec.output_scale is not None:
            metrics["output_scale"] = float(self.codec.output_scale)
        stats = codebook_stats(out["codes"], self.codec.bins)
        metrics["codebook_usage"] = float(torch.as_tensor(stats["usage"]).float().mean())
        return metrics

    @torch.no_grad()
    def media(self, batch: dict[str, Tensor], n_examples: int) -> dict[str, Any]:
        """Input vs output audio, a waveform overlay and the RMS-ratio / SNR curves so far."""
        from audiolab.models.codec.plots import probe_curves_figure, waveform_figure

        audio = batch["audio"]
        pred = self.codec(audio)["audio"]
        media: dict[str, Any] = {"audio": {}, "figures": {}, "arrays": {}, "sample_rate": self.sample_rate}
        for i in range(min(n_examples, audio.shape[0])):
            media["audio"][f"ex{i}_input"] = audio[i].float().cpu()
            media["audio"][f"ex{i}_output"] = pred[i].float().cpu()
            media["figures"][f"ex{i}_waveform"] = waveform_figure(audio[i].float().cpu().numpy(), pred[i].float().cpu().numpy(),
                                                                  self.sample_rate, title=f"example {i}")
        # the probe callback's history (restored with it on resume): SNR / RMS ratio / range over steps
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a trainer (e.g. called from a notebook)
            trainer = None
        history = probe_history(trainer)
        if history:
            media["figures"]["probe_curves"] = probe_curves_figure(history)
        return media

    # ----------------------------------------------------------------------------------------- optim
    def configure_optimizers(self):
        sched_cfg = self.optim_cfg.get("scheduler")
        return gan_optimizers(self.codec.parameters(),
                              self.discriminator.parameters() if self.discriminator is not None else None,
                              instantiate(self.optim_cfg["optimizer"]),
                              scheduler=instantiate(sched_cfg) if sched_cfg else None,
                              interval=self.optim_cfg["scheduler_interval"],
                              discriminator_lr_scale=self.optim_cfg["discriminator_lr_scale"])
