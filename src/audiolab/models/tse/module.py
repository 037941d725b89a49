"""TSE training recipe (LightningModule) around :class:`~audiolab.models.tse.nets.TSENet`.

Loss per row (``ŝ`` estimate, ``s`` target, ``y`` mixture; target-present (TP) and target-absent (TA) rows)::

    TP:  si_sdr.weight * (-SI-SDR(ŝ, s))                      THE shared zero-mean fp32 SI-SDR
       + phase.weight * PSA(ŝ, s) + complex_l1.weight * CL1(ŝ, s) + mrstft.weight * MRSTFT(ŝ, s)
    TA:  target_absent.weight * TA(ŝ, y)
         relative (default): 10 log10(||ŝ||² / ||y||² + 10^(-max_suppression_db/10))   (bounded below)
         absolute (the users' variant): relu(10 log10(mean(ŝ²)) - threshold_db)          (depends on the input gain)

Spectral terms run in fp32 on spectra of ``ŝ / std(y)`` and ``s / std(y)`` (the mixture's std, as TF-GridNet
normalises, so they do not depend on the input gain): ``PSA`` = mean |(|Ŝ| - |S| cos(∠S - ∠Ŝ))| (the phase-sensitive
spectrum approximation, Erdogan et al. 2015, with the estimate's phase in place of the mixture's);
``CL1`` = mean(|ΔRe| + |ΔIm| + |Δ|·||) (ESPnet FrequencyDomainL1); ``MRSTFT`` = the shared multi-scale L1
magnitude + log-magnitude loss. The TP terms are averaged over the TP rows and the TA term over the TA rows of a
batch, then added (so ``target_absent.weight`` does not depend on the TA fraction). Optional ``speaker_ce``:
cross-entropy of the enrollment speaker (index among the corpus speakers) from the FiLM speaker embedding through a
linear head (SpEx+'s multi-task speaker loss), training rows only. A TP row whose target is quieter than ``loss.silent_target_db`` dBFS is treated as
TA (SI-SDR of a silent target is undefined).

Optional GAN fine-tuning (``adversarial.enabled``): the shared :class:`audiolab.adversarial.GANStep` (manual
optimisation: discriminator step on the target-present rows, then the extractor step with the loss above as the
one reconstruction term plus adversarial + feature-matching terms); discriminator ``msstft`` (EnCodec MS-STFT) or
``hifigan`` (MPD + MSD). Start it from a trained extractor: ``init_from=<run> init_strict=false
model.adversarial.enabled=true objective.gradient_clip_val=null`` (the GAN step clips each optimizer itself;
gradient accumulation is not available with manual optimisation).

Optimisation: AdamW, linear warm-up then cosine to ``optim.min_lr`` (per optimizer step; ``optim.total_steps`` or
``trainer.max_steps``), gradient clipping and accumulation by the trainer (``objective.gradient_clip_val``,
``trainer.accumulate_grad_batches``); ``train/micro_step`` (batches) is logged next to ``trainer/global_step``
(optimizer updates).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from audiolab.losses.sdr import si_sdr
from audiolab.models.tse.metrics import TSEScores
from audiolab.models.tse.nets import TSENet, count_parameters
from audiolab.utils.config import plain

LOSS_DEFAULTS: dict[str, Any] = {
    "si_sdr": {"weight": 1.0},
    "phase": {"weight": 0.0, "n_fft": 512, "hop": 128},
    "complex_l1": {"weight": 0.0, "n_fft": 512, "hop": 128},
    "mrstft": {"weight": 0.0, "fft_sizes": [2048, 1024, 512, 256], "overlap": 0.75},
    "target_absent": {"weight": 0.1, "mode": "relative", "max_suppression_db": 30.0, "threshold_db": -30.0},
    "speaker_ce": {"weight": 0.0, "n_classes": 256},
    "silent_target_db": -70.0,
}
ADVERSARIAL_DEFAULTS: dict[str, Any] = {
    "enabled": False, "discriminator": "msstft", "n_ffts": [1024, 2048, 512, 256, 128], "filters": 32,
    "loss": "hinge", "reduction": "mean", "adv_weight": 1.0, "feat_weight": 1.0, "start_step": 0,
    "clip_generator": 5.0, "clip_discriminator": 5.0, "discriminator_lr_scale": 1.0,
}
OPTIM_DEFAULTS: dict[str, Any] = {"lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0, "eps": 1e-8,
                                  "warmup_steps": 0, "min_lr": 0.0, "total_steps": None}


def _merge(defaults: dict[str, Any], cfg: dict[str, Any] | None, name: str) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}
    for k, v in (cfg or {}).items():
        if k not in defaults:
            raise ValueError(f"model.{name}: unknown key {k!r} (known: {', '.join(sorted(defaults))})")
        if isinstance(defaults[k], dict):
            bad = set(v or {}) - set(defaults[k])
            if bad:
                raise ValueError(f"model.{name}.{k}: unknown keys {sorted(bad)} (known: {', '.join(sorted(defaults[k]))})")
            out[k].update(v or {})
        else:
            out[k] = v
    return out


def _spec(x: Tensor, n_fft: int, hop: int) -> Tensor:
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.stft(x.float(), n_fft, hop, window=torch.hann_window(n_fft, device=x.device), return_complex=True)


def phase_sensitive_loss(est: Tensor, target: Tensor, n_fft: int, hop: int) -> Tensor:
    """``[B]`` mean |(|Ŝ| - |S| cos(∠S - ∠Ŝ))| over T-F bins (phase-sensitive spectrum approximation)."""
    e, s = _spec(est, n_fft, hop), _spec(target, n_fft, hop)
    cos = torch.cos(torch.angle(s) - torch.angle(e))
    return (e.abs() - s.abs() * cos).abs().mean(dim=(-2, -1))


def complex_l1_loss(est: Tensor, target: Tensor, n_fft: int, hop: int) -> Tensor:
    """``[B]`` mean(|ΔRe| + |ΔIm| + |Δ|·||) over T-F bins (ESPnet FrequencyDomainL1)."""
    e, s = _spec(est, n_fft, hop), _spec(target, n_fft, hop)
    d = (e.real - s.real).abs() + (e.imag - s.imag).abs() + (e.abs() - s.abs()).abs()
    return d.mean(dim=(-2, -1))


def target_absent_loss(est: Tensor, mixture: Tensor, mode: str = "relative", max_suppression_db: float = 30.0,
                       threshold_db: float = -30.0) -> Tensor:
    """``[B]`` target-absent loss (see the module docs), fp32."""
    with torch.autocast(device_type=est.device.type, enabled=False):
        e = est.float().square().mean(-1)
        if mode == "relative":
            y = mixture.float().square().mean(-1).clamp_min(1e-12)
            return 10.0 * torch.log10(e / y + 10.0 ** (-max_suppression_db / 10.0))
        if mode == "absolute":
            return torch.relu(10.0 * torch.log10(e + 1e-12) - threshold_db)
    raise ValueError(f"model.loss.target_absent.mode must be relative|absolute, got {mode!r}")


class TSEModule(L.LightningModule):
    """Batches from :class:`audiolab.models.tse.data.TSEDataModule` (rows: mixture, enrollment, target, present...)."""

    def __init__(self, sample_rate: int, net: dict, loss: dict | None = None, optim: dict | None = None,
                 metrics: dict | None = None, diagnostics: dict | None = None, adversarial: dict | None = None):
        super().__init__()
        net, loss, optim, metrics, diagnostics, adversarial = map(
            plain, (net, loss or {}, optim or {}, metrics or {}, diagnostics or {}, adversarial or {}))
        self.save_hyperparameters({"sample_rate": sample_rate, "net": net, "loss": loss, "optim": optim,
                                   "metrics": metrics, "diagnostics": diagnostics, "adversarial": adversarial})
        self.sample_rate = int(sample_rate)
        self.net = TSENet(sample_rate=self.sample_rate, **net)
        self.loss_cfg = _merge(LOSS_DEFAULTS, loss, "loss")
        self.optim_cfg = _merge(OPTIM_DEFAULTS, optim, "optim")
        self.metrics_cfg = {"full_test": True, **metrics}
        self.diag_cfg = {"every_n_steps": 500, "n_examples": 2, **diagnostics}
        if self.loss_cfg["mrstft"]["weight"] > 0:
            from audiolab.losses.spectral import MultiScaleSpectralLoss

            self.mrstft = MultiScaleSpectralLoss(self.loss_cfg["mrstft"]["fft_sizes"], self.loss_cfg["mrstft"]["overlap"],
                                                 reduction_over_scales="mean")
        self.speaker_head = None
        if float(self.loss_cfg["speaker_ce"]["weight"]) > 0:
            if not self.net.use_film:
                raise ValueError("model.loss.speaker_ce needs model.net.film=true (it classifies the FiLM speaker embedding)")
            self.speaker_head = torch.nn.Linear(int(net.get("emb_dim", 48)), int(self.loss_cfg["speaker_ce"]["n_classes"]))
            self.net.keep_speaker_embedding = True
        self.register_buffer("micro_steps", torch.zeros((), dtype=torch.long))
        adv = {**ADVERSARIAL_DEFAULTS, **adversarial}
        unknown = set(adversarial) - set(ADVERSARIAL_DEFAULTS)
        if unknown:
            raise ValueError(f"model.adversarial: unknown keys {sorted(unknown)} (known: {', '.join(sorted(ADVERSARIAL_DEFAULTS))})")
        self.adv_cfg = adv
        self.gan = None
        self.discriminator = None
        if adv["enabled"]:
            from audiolab.adversarial import GANStep, MultiScaleSTFTDiscriminator, hifigan_discriminator

            if adv["discriminator"] == "msstft":
                self.discriminator = MultiScaleSTFTDiscriminator(adv["n_ffts"], adv["filters"])
            elif adv["discriminator"] == "hifigan":
                self.discriminator = hifigan_discriminator()
            else:
                raise ValueError(f"model.adversarial.discriminator must be msstft|hifigan, got {adv['discriminator']!r}")
            self.automatic_optimization = False
            self.gan = GANStep({"tse": 1.0}, loss=adv["loss"], reduction=adv["reduction"], adv_weight=adv["adv_weight"],
                               feat_weight=adv["feat_weight"], start_step=adv["start_step"],
                               clip_generator=adv["clip_generator"], clip_discriminator=adv["clip_discriminator"])
            self.gan.attach(self)
        self._scores: dict[str, TSEScores] = {}
        self.report_dir: Path | None = None  # evaluate.py / train set this to write test_rows.csv
        self.audio_output_dir: Path | None = None
        self.max_audio_examples = 8

    # ------------------------------------------------------------------------------------------- forward / loss
    def forward(self, mixture: Tensor, enrollment: Tensor) -> Tensor:
        return self.net(mixture, enrollment)

    def loss_terms(self, est: Tensor, batch: dict[str, Any]) -> dict[str, Tensor]:
        cfg = self.loss_cfg
        mix, tgt = batch["mixture"], batch["target"]
        with torch.autocast(device_type=est.device.type, enabled=False):
            est32, tgt32, mix32 = est.float(), tgt.float(), mix.float()
            tgt_db = 10 * torch.log10(tgt32.square().mean(-1) + 1e-20)
            tp = batch["present"] & (tgt_db > cfg["silent_target_db"])
            ta = ~tp
            zero = est32.sum() * 0.0
            terms: dict[str, Tensor] = {}
            total = zero
            if tp.any():
                e, t = est32[tp], tgt32[tp]
                terms["si_sdr"] = si_sdr(e, t).mean()
                total = total - cfg["si_sdr"]["weight"] * terms["si_sdr"]
                std = mix32[tp].std(dim=-1, keepdim=True).clamp_min(1e-8)
                en, tn = e / std, t / std
                if cfg["phase"]["weight"] > 0:
                    terms["phase"] = phase_sensitive_loss(en, tn, cfg["phase"]["n_fft"], cfg["phase"]["hop"]).mean()
                    total = total + cfg["phase"]["weight"] * terms["phase"]
                if cfg["complex_l1"]["weight"] > 0:
                    terms["complex_l1"] = complex_l1_loss(en, tn, cfg["complex_l1"]["n_fft"], cfg["complex_l1"]["hop"]).mean()
                    total = total + cfg["complex_l1"]["weight"] * terms["complex_l1"]
                if cfg["mrstft"]["weight"] > 0:
                    terms["mrstft"] = self.mrstft(en, tn)["loss"]
                    total = total + cfg["mrstft"]["weight"] * terms["mrstft"]
            if ta.any():
                c = cfg["target_absent"]
                terms["target_absent"] = target_absent_loss(est32[ta], mix32[ta], c["mode"], c["max_suppression_db"],
                                                            c["threshold_db"]).mean()
                total = total + c["weight"] * terms["target_absent"]
            terms["loss"] = total
            terms["ta_fraction"] = ta.float().mean()
        return terms

    # ------------------------------------------------------------------------------------------- training
    def speaker_ce(self, labels: Tensor) -> Tensor:
        """Cross-entropy of the enrollment speaker from the FiLM embedding of the last forward (SpEx+-style
        auxiliary loss: makes the speaker embedding discriminative early, when the extractor is still on the
        'return the mixture' plateau)."""
        n = int(self.loss_cfg["speaker_ce"]["n_classes"])
        if int(labels.max()) >= n:
            raise ValueError(f"model.loss.speaker_ce.n_classes={n} but the corpus has speaker index {int(labels.max())}")
        z, self.net.last_speaker_embedding = self.net.last_speaker_embedding, None
        if z is None:
            raise RuntimeError("speaker_ce: no speaker embedding from the last forward (net.keep_speaker_embedding)")
        with torch.autocast(device_type=labels.device.type, enabled=False):
            return torch.nn.functional.cross_entropy(self.speaker_head(z.float()), labels)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        est = self.net(batch["mixture"], batch["enrollment"])
        terms = self.loss_terms(est, batch)
        if self.speaker_head is not None:
            terms["speaker_ce"] = self.speaker_ce(batch["enroll_speaker_id"])
            terms["loss"] = terms["loss"] + float(self.loss_cfg["speaker_ce"]["weight"]) * terms["speaker_ce"]
        self.micro_steps += 1
        n = batch["mixture"].shape[0]
        if self.gan is not None:
            tp = batch["present"]
            if not bool(tp.any()):  # the discriminator sees target-present rows only
                tp = torch.ones_like(tp)
            self.gan.step(self, real=batch["target"][tp], fake=est[tp], losses={"tse": terms["loss"]},
                          discriminator=self.discriminator, batch_size=n)
            self.log_dict({f"train/{k}": v.detach() for k, v in terms.items() if k != "loss"}, batch_size=n)
            self.log("train/micro_step", float(self.micro_steps), batch_size=n)
            return None
        logs = {f"train/{k}": v.detach() for k, v in terms.items()}
        logs["train/micro_step"] = float(self.micro_steps)
        self.log_dict(logs, batch_size=n, prog_bar=False)
        self.log("train/si_sdr_prog", terms.get("si_sdr", torch.tensor(float("nan"))).detach(), prog_bar=True, batch_size=n)
        return terms["loss"]

    # ------------------------------------------------------------------------------------------- evaluation
    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        est = self.net(batch["mixture"], batch["enrollment"])
        terms = self.loss_terms(est, batch)
        self.log(f"{stage}/loss", terms["loss"].detach(), batch_size=batch["mixture"].shape[0], sync_dist=True)
        self._scores[stage].add(batch, est)
        if stage == "test":
            self._write_audio(batch, est)

    def on_validation_epoch_start(self) -> None:
        self._scores["val"] = TSEScores(self.sample_rate, full=False)

    def on_test_epoch_start(self) -> None:
        self._scores["test"] = TSEScores(self.sample_rate, full=bool(self.metrics_cfg["full_test"]))
        self._written = 0

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _finish(self, stage: str) -> dict[str, float]:
        scores = self._scores.pop(stage, None)
        if scores is None or not scores.rows:
            return {}
        summary = scores.summary()
        self.log_dict({f"{stage}/{k}": float(v) for k, v in summary.items() if math.isfinite(float(v))}, sync_dist=True)
        if stage == "test":
            out = self.report_dir or (Path(self.trainer.default_root_dir) if self.trainer is not None else None)
            if out is not None:
                self._write_rows(Path(out) / "test_rows.csv", scores.rows)
        return summary

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    @staticmethod
    def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
        from audiolab.data.cache import atomic_write_bytes

        keys: list[str] = []
        for r in rows:
            keys.extend(k for k in r if k not in keys)
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
        atomic_write_bytes(path, buf.getvalue().encode())

    def _write_audio(self, batch: dict[str, Any], est: Tensor) -> None:
        if self.audio_output_dir is None or self._written >= self.max_audio_examples:
            return
        from audiolab.audio.io import save_audio

        for i in range(est.shape[0]):
            if self._written >= self.max_audio_examples:
                break
            m, q = int(batch["mix_id"][i]), int(batch["query"][i])
            stem = Path(self.audio_output_dir) / f"mix{m:04d}_q{q}"
            save_audio(f"{stem}_estimate.wav", est[i].float().cpu(), self.sample_rate)
            if q == 0:
                save_audio(f"{stem}_mixture.wav", batch["mixture"][i].float().cpu(), self.sample_rate)
            save_audio(f"{stem}_enrollment.wav", batch["enrollment"][i].float().cpu(), self.sample_rate)
            if bool(batch["present"][i]):
                save_audio(f"{stem}_target.wav", batch["target"][i].float().cpu(), self.sample_rate)
            self._written += 1

    # ------------------------------------------------------------------------------------------- probe / media
    @torch.no_grad()
    def probe_metrics(self, batch: dict[str, Any]) -> dict[str, float]:
        est = self.net(batch["mixture"], batch["enrollment"])
        scores = TSEScores(self.sample_rate, full=False)
        scores.add(batch, est)
        s = scores.summary()
        keys = ("si_sdri", "si_sdri_median", "si_sdr", "ta_suppression_db", "swap_follow_pct", "swap_si_sdr_other")
        out = {k: float(s[k]) for k in keys if math.isfinite(float(s[k]))}
        out["loss"] = float(self.loss_terms(est, batch)["loss"])
        return out

    @torch.no_grad()
    def media(self, batch: dict[str, Any], n: int) -> dict[str, Any]:
        from audiolab.models.tse.plots import extraction_figure

        est = self.net(batch["mixture"], batch["enrollment"]).float().cpu()
        audio: dict[str, Tensor] = {}
        figures = {}
        q = batch["query"].tolist()
        mix_ids = sorted(set(batch["mix_id"].tolist()))[: max(1, int(n))]
        for m in mix_ids:
            rows = [i for i, mm in enumerate(batch["mix_id"].tolist()) if mm == m]
            for i in rows:
                tag = {0: "target", 1: "swap", 2: "absent"}.get(q[i], f"q{q[i]}")
                audio[f"mix{m}_{tag}_estimate"] = est[i]
                audio[f"mix{m}_{tag}_enrollment"] = batch["enrollment"][i].float().cpu()
                if bool(batch["present"][i]):
                    audio[f"mix{m}_{tag}_reference"] = batch["target"][i].float().cpu()
            audio[f"mix{m}_mixture"] = batch["mixture"][rows[0]].float().cpu()
            figures[f"mix{m}_spectrograms"] = extraction_figure(batch, est, rows, self.sample_rate)
        return {"audio": audio, "figures": figures, "sample_rate": self.sample_rate}

    # ------------------------------------------------------------------------------------------- optim
    def configure_optimizers(self):
        c = self.optim_cfg
        total = c["total_steps"]
        if total is None and self.trainer is not None and self.trainer.max_steps and self.trainer.max_steps > 0:
            total = int(self.trainer.max_steps)
        warm, base, floor = int(c["warmup_steps"]), float(c["lr"]), float(c["min_lr"])

        def factor(step: int) -> float:
            if warm > 0 and step < warm:
                return (step + 1) / warm
            if not total or total <= warm:
                return 1.0
            p = min(1.0, (step - warm) / max(1, total - warm))
            return (floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * p))) / base

        if self.gan is not None:
            from functools import partial

            from audiolab.adversarial import gan_optimizers

            gen = list(self.net.parameters()) + (list(self.speaker_head.parameters()) if self.speaker_head is not None else [])
            return gan_optimizers(gen, self.discriminator.parameters(),
                                  partial(torch.optim.AdamW, lr=float(c["lr"]), betas=tuple(float(b) for b in c["betas"]),
                                          eps=float(c["eps"]), weight_decay=float(c["weight_decay"])),
                                  scheduler=partial(torch.optim.lr_scheduler.LambdaLR, lr_lambda=factor), interval="step",
                                  discriminator_lr_scale=float(self.adv_cfg["discriminator_lr_scale"]))
        params = list(self.net.parameters()) + (list(self.speaker_head.parameters()) if self.speaker_head is not None else [])
        opt = torch.optim.AdamW(params, lr=float(c["lr"]), betas=tuple(float(b) for b in c["betas"]),
                                eps=float(c["eps"]), weight_decay=float(c["weight_decay"]))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def on_fit_start(self) -> None:
        self.print(f"TSENet: {count_parameters(self.net) / 1e6:.3f} M parameters, {self.net.n_units} frequency units")
