"""Token LM training recipe (LightningModule).

Loss: mean over codebooks of the masked cross-entropy (targets = real codes, plus exactly one EOS per codebook
when ``pattern.eos``; BOS / PAD / padded frames never). Logged per codebook: CE, perplexity, accuracy.

The users' missing dashboard, all under ``probe/`` (one fixed held-out batch, every ``callbacks.probe.every_n_steps``):
held-out CE and train CE on fixed training crops (one plot), teacher-forced output entropy, token accuracy of
the temperature-0 / 0.5 / 1.0 continuation of the held-out prompt against the real continuation, predictive entropy
and vocabulary coverage of what is generated. ``train/grad_norm`` is the norm *before* clipping and
``train/clip_fraction`` the share of the last 100 steps that were clipped. Demos (``media``): continuations at
temperatures 0 / 0.5 / 1.0 with fixed seeds, decoded through ``model.codec`` when one is given.

Optimizer: AdamW (betas 0.9 / 0.95, weight decay 0.1 on matrices only), linear warmup then cosine; gradient
clipping is the trainer's (``objective.gradient_clip_val``, default 1.0). EMA (``callbacks.ema.submodule=lm``)
averages the LM only; the codec is not a submodule and is never saved with it.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from audiolab.callbacks.probe import probe_history
from audiolab.models.tokenlm.data import TokenDataError
from audiolab.models.tokenlm.model import TokenLM
from audiolab.models.tokenlm.sampling import generate
from audiolab.utils.config import plain

log = logging.getLogger("audiolab")


def _temp_name(t: float) -> str:
    """0 -> 't0', 0.5 -> 't05', 1.0 -> 't1' (metric-name friendly)."""
    return "t" + (f"{t:g}".replace(".", ""))


class TokenLMModule(L.LightningModule):
    """Batches: ``{"codes": [B, K, T] long, "lengths": [B], "ended": [B] bool, "tags": list[list[str]], ...}``.

    Args:
        n_q, card: codebooks and codebook size of the tokens (checked against the data at fit start).
        pattern: ``{kind: delay|parallel, delays: list|null, eos: bool}``.
        net: :class:`TokenLM` sizes (``d_model, layers, heads, ff_multiplier, dropout, positional, max_len``).
        conditioning: ``{vocabulary: [tags], max_tags, unconditional_frac, fixed_order}``; ``max_tags: 0`` or an
            empty vocabulary = unconditional model.
        optim: ``{lr, betas, weight_decay, eps, warmup_steps, min_lr_ratio, schedule: cosine|constant}``.
        probe: ``{continuation: bool, temperatures, prompt_fraction, max_gen_frames, seed}``.
        demos: ``{temperatures, seeds, prompt_fraction, max_gen_frames, top_k, top_p, cfg_scale}``.
        diagnostics: ``{every_n_steps, n_examples}`` (the media callback's cadence).
        codec: optional codec checkpoint used to decode demos to audio.
        sample_rate: audio rate of the demos when no codec is loaded (informational).
    """

    def __init__(self, n_q: int, card: int, pattern: dict | None = None, net: dict | None = None,
                 conditioning: dict | None = None, optim: dict | None = None, probe: dict | None = None,
                 demos: dict | None = None, diagnostics: dict | None = None, codec: str | None = None,
                 sample_rate: int = 16000) -> None:
        super().__init__()
        pattern, net, conditioning, optim, probe, demos, diagnostics = map(
            lambda d: plain(d) or {}, (pattern, net, conditioning, optim, probe, demos, diagnostics))
        self.save_hyperparameters({"n_q": n_q, "card": card, "pattern": pattern, "net": net,
                                   "conditioning": conditioning, "optim": optim, "probe": probe, "demos": demos,
                                   "diagnostics": diagnostics, "codec": codec, "sample_rate": sample_rate})
        self.cond_cfg = {"vocabulary": [], "max_tags": 0, "unconditional_frac": 0.0, "fixed_order": True,
                         **conditioning}
        vocab = [str(t) for t in (self.cond_cfg["vocabulary"] or [])]
        if len(set(vocab)) != len(vocab):
            raise ValueError(f"model.conditioning.vocabulary has duplicates: {vocab}")
        self.vocabulary = vocab
        self.tag_ids = {t: i + 1 for i, t in enumerate(vocab)}
        max_tags = int(self.cond_cfg["max_tags"]) if vocab else 0
        self.lm = TokenLM(int(n_q), int(card), pattern=pattern.get("kind", "delay"), delays=pattern.get("delays"),
                          eos=bool(pattern.get("eos", False)), n_tags=len(vocab), max_tags=max_tags, **net)
        self.optim_cfg = {"lr": 3e-4, "betas": [0.9, 0.95], "weight_decay": 0.1, "eps": 1e-8, "warmup_steps": 100,
                          "min_lr_ratio": 0.0, "schedule": "cosine", **optim}
        self.probe_cfg = {"continuation": True, "temperatures": [0.0, 0.5, 1.0], "prompt_fraction": 0.5,
                          "max_gen_frames": 200, "seed": 0, **probe}
        self.demo_cfg = {"temperatures": [0.0, 0.5, 1.0], "seeds": [0], "prompt_fraction": 0.5,
                         "max_gen_frames": 500, "top_k": 0, "top_p": 0.0, "cfg_scale": 1.0, **demos}
        self.diag_cfg = {"every_n_steps": 500, "n_examples": 2, **diagnostics}
        self.codec_path = codec
        self.sample_rate = int(sample_rate)
        self._codec: Any = None  # plain attribute: not a submodule, never in state_dict / EMA / optimizer
        self._clipped: deque[float] = deque(maxlen=100)
        self._train_ce_sum, self._train_ce_n = 0.0, 0
        self._train_probe_batch: dict[str, Any] | None = None
        self._warned_tags: set[str] = set()
        self._codec_missing_logged = False

    # ----------------------------------------------------------------------------------------- conditioning
    @property
    def unconditional_frac(self) -> float:
        return float(self.cond_cfg["unconditional_frac"])

    def encode_tags(self, tags: list[list[str]] | None, batch: int, train: bool = False) -> Tensor | None:
        """Tag names per item -> ``[B, max_tags]`` ids (0 = empty). Sorted by vocabulary order unless
        ``fixed_order: false`` (then shuffled per item in training); conditioning dropout in training."""
        if not self.lm.conditional:
            return None
        out = torch.zeros(batch, self.lm.max_tags, dtype=torch.long, device=self.device)
        for b in range(batch):
            names = list(tags[b]) if tags is not None else []
            unknown = [t for t in names if t not in self.tag_ids]
            for t in unknown:
                if t not in self._warned_tags:
                    self._warned_tags.add(t)
                    log.warning("tag %r is not in model.conditioning.vocabulary %s: ignored", t, self.vocabulary)
            ids = sorted({self.tag_ids[t] for t in names if t in self.tag_ids})
            if train and not self.cond_cfg["fixed_order"] and len(ids) > 1:
                ids = [ids[i] for i in torch.randperm(len(ids)).tolist()]
            ids = ids[: self.lm.max_tags]
            if train and self.unconditional_frac > 0 and float(torch.rand(())) < self.unconditional_frac:
                ids = []  # the null condition: same function (all slots empty) as TokenLM.null_tags at inference
            if ids:
                out[b, : len(ids)] = torch.tensor(ids, device=self.device)
        return out

    # ----------------------------------------------------------------------------------------- loss
    def compute(self, batch: dict[str, Any], train: bool = False) -> dict[str, Tensor]:
        """Teacher-forced pass. Returns ``loss`` (mean over codebooks), per-codebook ``ce`` / ``acc`` ``[K]``,
        ``entropy`` (mean predictive entropy at target positions, nats), ``n_targets``."""
        codes = batch["codes"]
        if codes.shape[1] != self.lm.n_q:
            raise TokenDataError(f"batch has K={codes.shape[1]} codebooks, the model n_q={self.lm.n_q}")
        pattern = self.lm.pattern
        seq = pattern.build(codes, batch.get("lengths"), batch.get("ended", True))
        tags = self.encode_tags(batch.get("tags"), codes.shape[0], train=train)
        logits = self.lm(seq[..., :-1], tags).float()  # [B, K, S-1, V]
        target = pattern.target_ids(seq[..., 1:])
        mask = target != -100
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100,
                             reduction="none").view_as(target)
        count = mask.sum(dim=(0, 2)).clamp_min(1)
        ce_k = (ce * mask).sum(dim=(0, 2)) / count
        with torch.no_grad():
            correct = (logits.argmax(-1) == target) & mask
            acc_k = correct.sum(dim=(0, 2)) / count
            logp = logits.log_softmax(-1)
            ent = -(logp.exp() * logp).sum(-1)
            entropy = (ent * mask).sum() / mask.sum().clamp_min(1)
        return {"loss": ce_k.mean(), "ce": ce_k, "acc": acc_k, "entropy": entropy, "n_targets": mask.sum()}

    def _log_terms(self, out: dict[str, Tensor], prefix: str, bs: int, **kw) -> None:
        logs = {f"{prefix}/ce": out["loss"], f"{prefix}/ppl": torch.exp(out["loss"].detach()),
                f"{prefix}/acc": out["acc"].mean(), f"{prefix}/entropy": out["entropy"]}
        for k in range(self.lm.n_q):
            logs[f"{prefix}/ce_cb{k}"] = out["ce"][k]
            logs[f"{prefix}/ppl_cb{k}"] = torch.exp(out["ce"][k].detach())
            logs[f"{prefix}/acc_cb{k}"] = out["acc"][k]
        self.log_dict({k: v.detach() if isinstance(v, Tensor) else v for k, v in logs.items()}, batch_size=bs, **kw)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        out = self.compute(batch, train=True)
        bs = batch["codes"].shape[0]
        self._log_terms(out, "train", bs)
        self.log("train/loss", out["loss"].detach(), batch_size=bs, prog_bar=True)
        self._train_ce_sum += float(out["loss"].detach())
        self._train_ce_n += 1
        return out["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._log_terms(self.compute(batch), "val", batch["codes"].shape[0], sync_dist=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._log_terms(self.compute(batch), "test", batch["codes"].shape[0], sync_dist=True)

    # ----------------------------------------------------------------------------------------- gradients
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this hook before it clips: this is the pre-clip norm the users saw pinned at 5
        grads = [p.grad.detach() for p in self.parameters() if p.grad is not None]
        if not grads:
            return
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))
        trainer = self._attached_trainer()
        clip = trainer.gradient_clip_val if trainer is not None else None
        clipped = float(clip is not None and clip > 0 and norm > float(clip))
        self._clipped.append(clipped)
        self.log_dict({"train/grad_norm": norm, "train/clipped": clipped,
                       "train/clip_fraction": sum(self._clipped) / len(self._clipped)})

    # ----------------------------------------------------------------------------------------- fit start
    def _attached_trainer(self):
        """The trainer, or None when the module is used on its own (notebook, CLI, tests)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def on_fit_start(self) -> None:
        dm = self.trainer.datamodule
        tokens = getattr(dm, "tokens", None)
        if tokens is None:
            return
        if tokens.n_q != self.lm.n_q:
            raise TokenDataError(f"{tokens.path}: tokens have K={tokens.n_q} codebooks but model.n_q={self.lm.n_q}")
        if tokens.card != self.lm.card:
            raise TokenDataError(f"{tokens.path}: tokens have cardinality {tokens.card} but model.card={self.lm.card}")
        if self.lm.conditional:
            missing = sorted(set(tokens.tag_vocabulary) - set(self.vocabulary))
            if missing:
                log.warning("data tags %s are not in model.conditioning.vocabulary (ignored in training)", missing)

    def on_train_start(self) -> None:
        # facts about the data, logged once when a run starts (here, after a resume has restored global_step: a
        # resumed run already has them in its CSV)
        dm = self.trainer.datamodule
        stats = getattr(dm, "stats", {})
        if stats and self.trainer.is_global_zero and self.trainer.global_step == 0:
            metrics = {f"data/coverage_cb{k}": c for k, c in enumerate(stats["coverage"])}
            metrics.update({f"data/unigram_ce_cb{k}": c for k, c in enumerate(stats["unigram_ce"])})
            metrics["data/unigram_ce"] = sum(stats["unigram_ce"]) / len(stats["unigram_ce"])
            metrics["data/train_files"] = stats["n_files"]["train"]
            metrics["data/train_frames"] = stats["train_frames"]
            for lg in self.trainer.loggers:
                lg.log_metrics(metrics, step=self.trainer.global_step)

    # ----------------------------------------------------------------------------------------- probe
    def _continuation(self, batch: dict[str, Any], temperature: float, seed: int, max_frames: int,
                      prompt_fraction: float, top_k: int = 0, top_p: float = 0.0, cfg_scale: float = 1.0
                      ) -> dict[str, Any]:
        """Continue the first ``prompt_fraction`` of each crop; compare with the real continuation."""
        codes, lengths = batch["codes"], batch["lengths"]
        n = min(int(lengths.min()), codes.shape[2])
        p = max(1, int(round(prompt_fraction * n)))
        total = min(n, p + int(max_frames))
        tags = self.encode_tags(batch.get("tags"), codes.shape[0]) if self.lm.conditional else None
        out = generate(self.lm, total, prompt=codes[:, :, :p], tags=tags, temperature=temperature, top_k=top_k,
                       top_p=top_p, cfg_scale=cfg_scale, seed=seed, trained_unconditional_frac=self.unconditional_frac)
        gen, ref = out["codes"][:, :, p:total], codes[:, :, p:total]
        acc = (gen == ref).float().mean().item() if gen.numel() else float("nan")
        return {**out, "prompt_frames": p, "total_frames": total, "accuracy": acc, "generated": gen, "reference": ref}

    @torch.no_grad()
    def probe_metrics(self, batch: dict[str, Any]) -> dict[str, float]:
        """Held-out CE / accuracy / entropy, train CE on fixed training crops, continuation token accuracy at each
        probe temperature, predictive entropy and vocabulary coverage of the temperature-1 generation."""
        out = self.compute(batch)
        metrics = {"ce": float(out["loss"]), "acc": float(out["acc"].mean()), "entropy": float(out["entropy"])}
        metrics.update({f"ce_cb{k}": float(v) for k, v in enumerate(out["ce"])})
        trainer = self._attached_trainer()
        dm = trainer.datamodule if trainer is not None else None
        if dm is not None and hasattr(dm, "train_probe_batch"):
            if self._train_probe_batch is None:
                from audiolab.callbacks.probe import _to_device

                self._train_probe_batch = _to_device(dm.train_probe_batch(batch["codes"].shape[0]), self.device)
            metrics["train_ce"] = float(self.compute(self._train_probe_batch)["loss"])
        if self._train_ce_n:
            metrics["train_ce_running"] = self._train_ce_sum / self._train_ce_n  # mean since the last probe
            self._train_ce_sum, self._train_ce_n = 0.0, 0
        if self.probe_cfg["continuation"]:
            for t in self.probe_cfg["temperatures"]:
                res = self._continuation(batch, float(t), int(self.probe_cfg["seed"]),
                                         int(self.probe_cfg["max_gen_frames"]), float(self.probe_cfg["prompt_fraction"]))
                metrics[f"cont_acc_{_temp_name(float(t))}"] = res["accuracy"]
                metrics[f"gen_entropy_{_temp_name(float(t))}"] = res["entropy"]
                gen = res["generated"]
                if gen.numel():
                    cov = [len(torch.unique(gen[:, k])) / self.lm.card for k in range(self.lm.n_q)]
                    metrics[f"gen_coverage_{_temp_name(float(t))}"] = sum(cov) / len(cov)
        return {k: v for k, v in metrics.items() if math.isfinite(v)}

    # ----------------------------------------------------------------------------------------- media
    def demo_codec(self):
        """The frozen codec for decoding demos (``model.codec``: a path, ``auto`` = the token manifest's
        checkpoint, or null), loaded once; ``None`` without one."""
        if self._codec is None and self.codec_path:
            from pathlib import Path

            from audiolab.models.tokenlm.codec_io import load_codec_for_tokens

            trainer = self._attached_trainer()
            dm = trainer.datamodule if trainer is not None else None
            tokens = getattr(dm, "tokens", None)
            path = self.codec_path
            if path == "auto":  # the checkpoint that made the tokens, if it is still there
                path = (tokens.manifest.get("checkpoint") if tokens is not None else None) or ""
                if not path or not Path(path).exists():
                    if not self._codec_missing_logged:
                        log.info("model.codec=auto: the token manifest names no existing codec checkpoint (%r); "
                                 "demos are token plots only", path or None)
                        self._codec_missing_logged = True
                    return None
            rate = getattr(tokens, "frame_rate", None)
            # through __dict__: nn.Module.__setattr__ would register it as a submodule (state_dict, EMA, .to())
            self.__dict__["_codec"] = load_codec_for_tokens(path, self.lm.n_q, self.lm.card, rate, self.device)
        return self._codec

    @torch.no_grad()
    def media(self, batch: dict[str, Any], n_examples: int) -> dict[str, Any]:
        """Demos: held-out prompt continued at each demo temperature and seed (+ the reference and, with a codec,
        its resynthesis = the ceiling), token images, train vs held-out CE curve, per-codebook CE."""
        from audiolab.models.tokenlm.plots import ce_curves_figure, tokens_figure

        n = min(n_examples, batch["codes"].shape[0])
        sub = {k: (v[:n] if isinstance(v, (Tensor, list)) else v) for k, v in batch.items()}
        codec = self.demo_codec()
        sr = int(codec.sample_rate) if codec is not None else self.sample_rate
        media: dict[str, Any] = {"audio": {}, "figures": {}, "arrays": {}, "sample_rate": sr}
        runs: dict[str, Tensor] = {}
        first = None
        for t in self.demo_cfg["temperatures"]:
            for seed in self.demo_cfg["seeds"]:
                res = self._continuation(sub, float(t), int(seed), int(self.demo_cfg["max_gen_frames"]),
                                         float(self.demo_cfg["prompt_fraction"]), int(self.demo_cfg["top_k"]),
                                         float(self.demo_cfg["top_p"]), float(self.demo_cfg["cfg_scale"]))
                name = f"{_temp_name(float(t))}_seed{seed}"
                runs[name] = res["codes"][:, :, : res["total_frames"]].cpu()
                first = first or res
        ref = sub["codes"][:, :, : first["total_frames"]].cpu()
        media["arrays"]["demo_codes"] = {"reference": ref.numpy(), "prompt_frames": first["prompt_frames"],
                                         **{k: v.numpy() for k, v in runs.items()}}
        for i in range(n):
            media["figures"][f"ex{i}_tokens"] = tokens_figure(ref[i], runs, i, first["prompt_frames"])
        if codec is not None:
            from audiolab.models.tokenlm.codec_io import decode_tokens

            ref_audio = decode_tokens(codec, ref)
            for i in range(n):
                media["audio"][f"ex{i}_reference"] = ref_audio[i]
                for name, codes in runs.items():
                    media["audio"][f"ex{i}_{name}"] = decode_tokens(codec, codes[i : i + 1])[0]
        history = probe_history(self._attached_trainer())
        if history:
            media["figures"]["ce_curves"] = ce_curves_figure(history)
        return media

    # ----------------------------------------------------------------------------------------- optim
    def configure_optimizers(self):
        cfg = self.optim_cfg
        decay, no_decay = [], []
        for name, p in self.lm.named_parameters():
            if not p.requires_grad:
                continue
            # weight decay on matrices only: not on biases, norms or embedding tables (GPT / audiocraft practice)
            (decay if p.dim() >= 2 and "embedding" not in name else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": float(cfg["weight_decay"])},
                  {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=float(cfg["lr"]), betas=tuple(float(b) for b in cfg["betas"]),
                                eps=float(cfg["eps"]))
        trainer = self._attached_trainer()
        total = int(trainer.max_steps) if trainer is not None and trainer.max_steps > 0 else 10_000
        warmup, floor, kind = int(cfg["warmup_steps"]), float(cfg["min_lr_ratio"]), str(cfg["schedule"])
        if kind not in ("cosine", "constant"):
            raise ValueError(f"model.optim.schedule must be 'cosine' or 'constant', got {kind!r}")

        def factor(step: int) -> float:
            if warmup > 0 and step < warmup:
                return (step + 1) / warmup
            if kind == "constant":
                return 1.0
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
