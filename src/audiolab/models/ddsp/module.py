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
from audiolab.models.ddsp.metrics import f0_l1_cents, loudness_l1_db, whole_file_loudness
from audiolab.models.ddsp.render import render_whole
from audiolab.models.ddsp.synth import build_ddsp
from audiolab.models.ddsp.transfer import STATS_KEY
from audiolab.utils.config import plain
from audiolab.utils.optim import ramp_weight
from audiolab.utils.rng import seeded

LOUDNESS_LOSSES = ("none", "linear_l2", "db_l1")
ENTROPY_EPS = 1e-8


def harmonic_entropy(harmonic_distribution: Tensor, temperature: float = 1.0) -> Tensor:
    """Entropy (nats) of the harmonic distribution sharpened or flattened by a temperature, per frame.

    ``p_k ∝ h_k ** (1 / temperature)`` (a softmax of ``log h / temperature``): temperature 1 is the distribution
    itself, > 1 flattens it (the regularizer then rewards spreading energy even among weak harmonics), < 1 sharpens
    it. harmonic_distribution ``[B, F, K]`` (>= 0) -> ``[B, F]``; frames with all harmonics 0 give ln K.
    """
    logits = harmonic_distribution.float().clamp_min(ENTROPY_EPS).log() / temperature
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def schedule_weight(step: int, weight: float, warmup_steps: int, ramp_steps: int, decay_steps: int) -> float:
    """0 for ``warmup_steps``, linear up to ``weight`` over ``ramp_steps``, then linear down to 0 over ``decay_steps``
    (0 = hold ``weight`` for ever)."""
    w = ramp_weight(step, weight, warmup_steps, ramp_steps)
    if decay_steps > 0:
        w *= max(0.0, 1.0 - max(0, step - warmup_steps - max(ramp_steps, 0)) / decay_steps)
    return w


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
        self.entropy_cfg = {"weight": 0.0, "temperature": 1.0, "warmup_steps": 0, "ramp_steps": 0, "decay_steps": 0,
                            **loss.get("entropy", {})}
        if self.entropy_cfg["weight"] < 0 or self.entropy_cfg["temperature"] <= 0:
            raise ValueError("model.loss.entropy: weight must be >= 0 and temperature > 0, got "
                             f"{self.entropy_cfg['weight']} and {self.entropy_cfg['temperature']}")
        self.optim_cfg = optim
        self.diag_cfg = {"every_n_steps": 500, "n_examples": 2, "f0_metric_crepe": "tiny", **diagnostics}
        # training-set statistics (transfer.dataset_statistics), computed at fit start, saved in every checkpoint
        self.dataset_statistics: dict | None = None
        # evaluate.py sets these to write resynthesized test audio
        self.audio_output_dir: Path | None = None
        self.max_audio_examples = 8
        self._written = 0

    # ----------------------------------------------------------------------------------------- forward / losses
    def forward(self, f0_hz: Tensor, loudness_db: Tensor, n_samples: int | None = None,
                confidence: Tensor | None = None) -> dict[str, Tensor]:
        return self.net(f0_hz, loudness_db, n_samples, confidence)

    def _run(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return self(batch["f0_hz"], batch["loudness_db"], batch["audio"].shape[-1], batch.get("f0_confidence"))

    def entropy_weight(self, step: int) -> float:
        c = self.entropy_cfg
        if c["weight"] <= 0:
            return 0.0
        return schedule_weight(step, c["weight"], c["warmup_steps"], c["ramp_steps"], c["decay_steps"])

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
        out = self._run(batch)
        terms = self.spectral_loss(out["audio"], batch["audio"])
        w = self.loudness_weight(step) if step is not None else float(self.loudness_cfg["weight"])
        total = terms["loss"]
        result = {"spectral": terms["loss"], "mag": terms["mag"], "logmag": terms["logmag"]}
        if self.loudness_cfg["type"] != "none":
            ld = self.loudness_loss(out["audio"], batch["loudness_db"])
            result["loudness"] = ld
            result["loudness_weight"] = ld.new_tensor(w)  # on the model's device: DDP syncs it
            total = total + w * ld
        if self.entropy_cfg["weight"] > 0:
            # anti-collapse: reward a spread harmonic distribution (minus the entropy), scheduled
            ent = harmonic_entropy(out["harmonic_distribution"], self.entropy_cfg["temperature"]).mean()
            we = self.entropy_weight(step) if step is not None else 0.0
            result["entropy"] = ent
            result["entropy_weight"] = ent.new_tensor(we)
            total = total - we * ent
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
        dm = getattr(self.trainer, "datamodule", None)
        if self.trainer.is_global_zero and dm is not None and hasattr(dm, "whole_sources"):
            whole = self.whole_file_metrics(dm.whole_sources("test"), f0=True)
            # rank 0 only: whole files are not sharded (rank_zero_only keeps the logger and DDP quiet)
            for k, v in whole.items():
                self.log(f"test/{k}", v, rank_zero_only=True)

    def window_frames(self) -> int | None:
        """The training window in frames (from the datamodule), used by non-streamable decoders on whole files."""
        dm = getattr(getattr(self, "_trainer", None), "datamodule", None)
        return int(dm.n_frames) if dm is not None and hasattr(dm, "n_frames") else None

    @torch.no_grad()
    def whole_file_metrics(self, sources: list[dict[str, Tensor]], f0: bool = False) -> dict[str, float]:
        """Render each source whole (:func:`audiolab.models.ddsp.render.render_whole`) and score it against its
        input features: ``whole_loudness_l1_db`` (frame-weighted over files), ``whole_worst_block_l1_db`` (the
        worst 500-frame block of any file), ``silent_loudness_db`` (output loudness where the input is silent;
        -80 dB is perfect) and, with ``f0=True``, ``whole_f0_l1_cents`` / ``whole_f0_outlier_ratio`` (CREPE
        ``diagnostics.f0_metric_crepe`` on the whole output). Noise is seeded per file."""
        err_sum = frames = silent_sum = silent_frames = 0.0
        worst = 0.0
        f0_sums = [0.0, 0, 0, 0]
        was_training = self.net.training
        self.net.eval()
        try:
            for i, src in enumerate(sources):
                with seeded(20_000 + i, self.device):
                    out = render_whole(self.net, src["f0_hz"], src["loudness_db"], src.get("confidence"),
                                       window_frames=self.window_frames())
                m = whole_file_loudness(out["audio"], src["loudness_db"].cpu(), self.sample_rate, self.frame_rate)
                err_sum += m["abs_error_sum"]
                frames += m["frames"]
                silent_sum += m["silent_loudness_sum"]
                silent_frames += m["silent_frames"]
                worst = max(worst, m["worst_block_l1_db"])
                if f0 and "confidence" in src:
                    r = f0_l1_cents(out["audio"][None], src["f0_hz"][None].cpu(), src["confidence"][None].cpu(),
                                    self.sample_rate, self.hop_length, model=self.diag_cfg["f0_metric_crepe"])
                    for j, key in enumerate(("f0_cents_sum", "f0_inliers", "f0_outliers", "f0_frames")):
                        f0_sums[j] += r[key]
        finally:
            self.net.train(was_training)
        result = {"whole_loudness_l1_db": err_sum / frames if frames else float("nan"),
                  "whole_worst_block_l1_db": worst if frames else float("nan")}
        if silent_frames:
            result["silent_loudness_db"] = silent_sum / silent_frames
        if f0 and f0_sums[1]:
            result["whole_f0_l1_cents"] = f0_sums[0] / f0_sums[1]
        if f0 and f0_sums[3]:
            result["whole_f0_outlier_ratio"] = f0_sums[2] / f0_sums[3]
        return result

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
        out = self._run(batch)
        terms = self.spectral_loss(out["audio"], batch["audio"])
        metrics = {"spectral": float(terms["loss"]), "mag": float(terms["mag"]), "logmag": float(terms["logmag"]),
                   "loudness_l1_db": float(loudness_l1_db(out["audio"], batch["loudness_db"], self.sample_rate, self.frame_rate))}
        stats = control_stats(out)
        metrics.update({k: stats[k] for k in ("harmonic_entropy", "top_harmonic_concentration")})
        if batch.get("whole"):  # whole validation files (DDSPDataModule.probe_batch): what the windows cannot see
            metrics.update(self.whole_file_metrics(batch["whole"]))
        return metrics

    @torch.no_grad()
    def media(self, batch: dict[str, Tensor], n_examples: int) -> dict[str, dict]:
        """Audio (target / output / harmonic / noise), control arrays and control figures for the media logger."""
        out = self._run(batch)
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

    # ----------------------------------------------------------------------------------------- dataset statistics
    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if self.dataset_statistics is None and dm is not None and hasattr(dm, "dataset_statistics"):
            self.dataset_statistics = dm.dataset_statistics()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.dataset_statistics is not None:
            checkpoint[STATS_KEY] = self.dataset_statistics  # plain types: torch.load(weights_only=True) reads it

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if isinstance(checkpoint.get(STATS_KEY), dict):
            self.dataset_statistics = dict(checkpoint[STATS_KEY])

    # ----------------------------------------------------------------------------------------- optim
    def configure_optimizers(self):
        optimizer = instantiate(self.optim_cfg["optimizer"])(params=self.parameters())
        sched_cfg = self.optim_cfg.get("scheduler")
        if not sched_cfg:
            return optimizer
        scheduler = instantiate(sched_cfg)(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
