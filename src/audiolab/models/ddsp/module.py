"""DDSP training recipe (LightningModule): multi-scale spectral loss (+ loudness loss), Adam, logging."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from torch import Tensor

from audiolab.audio.features import a_weighted_loudness
from audiolab.audio.io import save_audio
from audiolab.losses.spectral import MultiScaleSpectralLoss
from audiolab.models.ddsp.diagnostics import control_arrays, control_figure, control_stats
from audiolab.models.ddsp.metrics import f0_l1_cents, loudness_l1_db
from audiolab.models.ddsp.synth import build_ddsp
from audiolab.utils.config import plain
from audiolab.utils.optim import ramp_weight
from audiolab.utils.rng import seeded

LOUDNESS_LOSSES = ("none", "linear_l2", "db_l1")


class DDSPModule(L.LightningModule):
    """Batches are dicts: audio [B, T], f0_hz [B, F], f0_confidence [B, F], loudness_db [B, F] (T = F * hop)."""

    def __init__(self, sample_rate: int, frame_rate: int, net: dict, decoder: dict, loss: dict, optim: dict, diagnostics: dict | None = None):
        super().__init__()
        net, decoder, loss, optim, diagnostics = map(plain, (net, decoder, loss, optim, diagnostics or {}))
        self.save_hyperparameters({"sample_rate": sample_rate, "frame_rate": frame_rate, "net": net, "decoder": decoder,
                                   "loss": loss, "optim": optim, "diagnostics": diagnostics})
        self.sample_rate, self.frame_rate = sample_rate, frame_rate
        self.hop_length = sample_rate // frame_rate
        self.net = build_ddsp(sample_rate, frame_rate, net, decoder)
        self.spectral_loss = MultiScaleSpectralLoss(**loss["spectral"])
        self.loudness_cfg = {"type": "none", "weight": 0.0, "warmup_steps": 0, "ramp_steps": 0, **loss.get("loudness", {})}
        if self.loudness_cfg["type"] not in LOUDNESS_LOSSES:
            raise ValueError(f"model.loss.loudness.type must be one of {LOUDNESS_LOSSES}, got {self.loudness_cfg['type']!r}")
        if self.loudness_cfg["type"] != "none" and self.loudness_cfg["weight"] <= 0:
            raise ValueError("model.loss.loudness.weight must be > 0 when model.loss.loudness.type is set")
        self.optim_cfg = optim
        self.diag_cfg = {"every_n_steps": 500, "n_examples": 2, "f0_metric_crepe": "tiny", **diagnostics}
        # evaluate.py sets these to write resynthesized test audio
        self.audio_output_dir: Path | None = None
        self.max_audio_examples = 8
        self._written = 0

    # ----------------------------------------------------------------------------------------- forward / losses
    def forward(self, f0_hz: Tensor, loudness_db: Tensor, n_samples: int | None = None) -> dict[str, Tensor]:
        return self.net(f0_hz, loudness_db, n_samples)

    def loudness_loss(self, pred_audio: Tensor, target_db: Tensor) -> Tensor:
        kind = self.loudness_cfg["type"]
        pred_db = a_weighted_loudness(pred_audio, sample_rate=self.sample_rate, frame_rate=self.frame_rate)[..., : target_db.shape[-1]]
        if kind == "db_l1":
            return (pred_db - target_db).abs().mean()
        return ((10 ** (pred_db / 20) - 10 ** (target_db / 20)) ** 2).mean()  # linear_l2

    def loudness_weight(self, step: int) -> float:
        c = self.loudness_cfg
        if c["type"] == "none":
            return 0.0
        return ramp_weight(step, c["weight"], c["warmup_steps"], c["ramp_steps"])

    def _losses(self, batch: dict[str, Tensor], step: int | None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """step=None (validation/test): the loudness term at its full weight, so numbers do not depend on when
        (or from which restored step) they were computed."""
        out = self(batch["f0_hz"], batch["loudness_db"], batch["audio"].shape[-1])
        terms = self.spectral_loss(out["audio"], batch["audio"])
        w = self.loudness_weight(step) if step is not None else float(self.loudness_cfg["weight"])
        total = terms["loss"]
        result = {"spectral": terms["loss"], "mag": terms["mag"], "logmag": terms["logmag"]}
        if self.loudness_cfg["type"] != "none":
            ld = self.loudness_loss(out["audio"], batch["loudness_db"])
            result["loudness"] = ld
            result["loudness_weight"] = ld.new_tensor(w)  # on the model's device: DDP syncs it
            total = total + w * ld
        result["loss"] = total
        return result, out

    # ----------------------------------------------------------------------------------------- steps
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        terms, out = self._losses(batch, self.global_step)
        bs = batch["audio"].shape[0]
        self.log_dict({f"train/{k}": v for k, v in terms.items() if k != "loss"}, batch_size=bs)
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=bs)
        every = int(self.diag_cfg["every_n_steps"] or 0)
        if every and self.global_step % every == 0:
            self.log_dict({f"train/{k}": v for k, v in control_stats(out).items()}, batch_size=bs)
        return terms["loss"]

    def _eval_losses(self, batch: dict[str, Tensor], batch_idx: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Validation/test losses with a noise realisation fixed per batch: the numbers do not depend on what
        consumed the global RNG before (probes, CREPE, other batches), so evaluate.py reproduces them exactly."""
        with seeded(10_000 + batch_idx, self.device):
            return self._losses(batch, None)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        terms, out = self._eval_losses(batch, batch_idx)
        bs = batch["audio"].shape[0]
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, batch_size=bs, sync_dist=True)
        self.log("val/loudness_l1_db", loudness_l1_db(out["audio"], batch["loudness_db"], self.sample_rate, self.frame_rate),
                 batch_size=bs, sync_dist=True)
        if batch_idx == 0:
            self.log_dict({f"val/{k}": v for k, v in control_stats(out).items()}, batch_size=bs, sync_dist=True)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        terms, out = self._eval_losses(batch, batch_idx)
        bs = batch["audio"].shape[0]
        self.log_dict({f"test/{k}": v for k, v in terms.items()}, batch_size=bs, sync_dist=True)
        self.log("test/loudness_l1_db", loudness_l1_db(out["audio"], batch["loudness_db"], self.sample_rate, self.frame_rate),
                 batch_size=bs, sync_dist=True)
        f0 = f0_l1_cents(out["audio"], batch["f0_hz"], batch["f0_confidence"], self.sample_rate, self.hop_length,
                         model=self.diag_cfg["f0_metric_crepe"])
        # accumulate sums and counts; averaged over the whole split in on_test_epoch_end (NaN-free, DDP-safe)
        self._f0_sums += torch.tensor([f0["f0_cents_sum"], f0["f0_inliers"], f0["f0_outliers"], f0["f0_frames"]], dtype=torch.float64)
        if self.audio_output_dir is not None:
            self._write_audio(batch, out["audio"])

    def on_test_epoch_start(self) -> None:
        self._f0_sums = torch.zeros(4, dtype=torch.float64)

    def on_test_epoch_end(self) -> None:
        sums = self.all_gather(self._f0_sums.to(self.device))
        sums = sums.reshape(-1, 4).sum(0) if sums.dim() > 1 else sums
        cents, inliers, outliers, frames = (float(x) for x in sums)
        if inliers > 0:
            self.log("test/f0_l1_cents", cents / inliers)
        if frames > 0:
            self.log("test/f0_outlier_ratio", outliers / frames)

    def _write_audio(self, batch: dict[str, Tensor], pred: Tensor) -> None:
        for i in range(pred.shape[0]):
            if self._written >= self.max_audio_examples:
                return
            name = f"{self._written:03d}_{batch.get('source', ['x'] * pred.shape[0])[i]}"
            save_audio(self.audio_output_dir / f"{name}_output.wav", pred[i].float().cpu(), self.sample_rate)
            save_audio(self.audio_output_dir / f"{name}_target.wav", batch["audio"][i].float().cpu(), self.sample_rate)
            self._written += 1

    # ----------------------------------------------------------------------------------------- probe / media hooks
    @torch.no_grad()
    def probe_metrics(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """Fixed metrics for the probe callback: spectral loss terms and loudness L1 — no scheduled weights."""
        out = self(batch["f0_hz"], batch["loudness_db"], batch["audio"].shape[-1])
        terms = self.spectral_loss(out["audio"], batch["audio"])
        metrics = {"spectral": float(terms["loss"]), "mag": float(terms["mag"]), "logmag": float(terms["logmag"]),
                   "loudness_l1_db": float(loudness_l1_db(out["audio"], batch["loudness_db"], self.sample_rate, self.frame_rate))}
        stats = control_stats(out)
        metrics.update({k: stats[k] for k in ("harmonic_entropy", "top_harmonic_concentration")})
        return metrics

    @torch.no_grad()
    def media(self, batch: dict[str, Tensor], n_examples: int) -> dict[str, dict]:
        """Audio (target / output / harmonic / noise), control arrays and control figures for the media logger."""
        out = self(batch["f0_hz"], batch["loudness_db"], batch["audio"].shape[-1])
        audio, figures, arrays = {}, {}, {}
        for i in range(min(n_examples, batch["audio"].shape[0])):
            audio[f"ex{i}_target"] = batch["audio"][i].float().cpu()
            audio[f"ex{i}_output"] = out["audio"][i].float().cpu()
            audio[f"ex{i}_harmonic"] = out["harmonic"][i].float().cpu()
            audio[f"ex{i}_noise"] = out["noise"][i].float().cpu()
            arr = control_arrays({k: out[k] for k in ("amplitude", "harmonic_distribution", "noise_magnitudes") if k in out}, i)
            arr["f0_hz"] = batch["f0_hz"][i].float().cpu().numpy()
            arr["loudness_db"] = batch["loudness_db"][i].float().cpu().numpy()
            arrays[f"ex{i}_controls"] = arr
            figures[f"ex{i}_controls"] = control_figure(arr, self.frame_rate, title=f"example {i}")
        return {"audio": audio, "figures": figures, "arrays": arrays, "sample_rate": self.sample_rate}

    # ----------------------------------------------------------------------------------------- optim
    def configure_optimizers(self):
        optimizer = instantiate(self.optim_cfg["optimizer"])(params=self.parameters())
        sched_cfg = self.optim_cfg.get("scheduler")
        if not sched_cfg:
            return optimizer
        scheduler = instantiate(sched_cfg)(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
