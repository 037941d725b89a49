"""Generation metrics of a kick pipeline against held-out kicks (what ``kick_unet``'s test and the study run).

Features: the VAE encoder's mean (``[352]`` for a 4x8x11 latent) of a log-mel — the same function for real clips
and generated mels. For real and synthetic test clips separately:

* KID and Fréchet distance of generated kicks (prompted with the held-out clips' keywords) vs the held-out clips
  (val + test splits: the real kicks of one split are only a few drums), and the floor: the same number of
  *training* clips vs the held-out clips (real-vs-real, different drums);
* memorization: nearest-training-neighbour distance of generated kicks vs that of the held-out clips, and the
  share of generated kicks closer to a training clip than 95 % of held-out clips are ("near copies").

Keyword control (synthetic set): kicks generated with ``["synth", kw]`` for each property keyword vs the
opposite keyword (long/short, sub/high, distorted/clean) or the baseline ``["synth"]``; see
:func:`~audiolab.models.kick.metrics.keyword_control`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from audiolab.models.kick.metrics import (
    frechet,
    keyword_control,
    kick_descriptors,
    kid,
    nearest_neighbour,
)
from audiolab.models.kick.synth import KEYWORD_RULES, OPPOSITES

log = logging.getLogger("audiolab")

__all__ = ["latent_features", "evaluate_generation", "SOURCE_GROUPS"]

SOURCE_GROUPS: dict[str, Callable[[dict], bool]] = {
    "real": lambda r: r["source"] != "synthetic",
    "synthetic": lambda r: r["source"] == "synthetic",
}


@torch.no_grad()
def latent_features(vae: torch.nn.Module, mels: Tensor, batch_size: int = 64) -> Tensor:
    """VAE-encoder means of log-mels ``[N, 1, n_mels, frames]`` -> ``[N, C * h * w]`` (CPU float32)."""
    device = next(vae.parameters()).device
    out = [vae.encode(mels[i:i + batch_size].to(device))[0].flatten(1).float().cpu()
           for i in range(0, len(mels), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def _distances(gen: Tensor, test: Tensor, floor_set: Tensor, train: Tensor) -> dict[str, float]:
    k_gen, k_floor = kid(gen, test), kid(floor_set, test)
    nn_gen = nearest_neighbour(gen, train)
    nn_test = nearest_neighbour(test, train)
    thr = float(np.percentile(nn_test, 5))
    return {"kid": k_gen["kid"], "kid_std": k_gen["kid_std"], "kid_floor": k_floor["kid"],
            "kid_floor_std": k_floor["kid_std"], "fd": frechet(gen, test, reference=train),
            "fd_floor": frechet(floor_set, test, reference=train), "nn_gen_median": float(np.median(nn_gen)),
            "nn_heldout_median": float(np.median(nn_test)), "near_copies": float(np.mean(nn_gen < thr)),
            "n_generated": int(len(gen)), "n_test": int(len(test))}


def _labelled(desc: dict[str, np.ndarray], rows: Sequence[dict], keywords: Sequence[str],
              opposites: dict[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """``{"with:kw": descriptors, "without:kw": descriptors}`` (without = the opposite keyword when it has one)."""
    out = {}
    has = {kw: np.array([kw in r["keywords"] for r in rows]) for kw in KEYWORD_RULES}
    for kw in keywords:
        neg = has[opposites[kw]] if kw in opposites else ~has[kw]
        out[f"with:{kw}"] = {k: v[has[kw]] for k, v in desc.items()}
        out[f"without:{kw}"] = {k: v[neg] for k, v in desc.items()}
    return out


def evaluate_generation(pipe: Any, dm: Any, n_generate: int = 200, keyword_n: int = 32, sampler: str = "ddim",
                        steps: int = 50, cfg_scale: float = 3.0, batch_size: int = 16, seed: int = 1234,
                        progress: bool = False) -> dict[str, Any]:
    """All generation metrics (see module docstring) as a nested dict of floats / tables.

    Args:
        pipe: a :class:`~audiolab.models.kick.pipeline.KickPipeline`.
        dm: the :class:`~audiolab.models.kick.data.KickDataModule` the U-Net was trained on (set up).
        n_generate: generated kicks per source group (capped by the group's training-clip count, which
            the floor needs as well).
        keyword_n: generated kicks per keyword prompt (0 = skip keyword control).
    """
    settings = {"sampler": sampler, "steps": int(steps), "cfg_scale": float(cfg_scale)}
    out: dict[str, Any] = {"settings": {**settings, "n_generate": int(n_generate), "keyword_n": int(keyword_n)}}
    # held-out = val + test: the real kicks of one split are only a few drums
    rows = {"train": dm.rows("train"), "test": dm.rows("val") + dm.rows("test")}
    mels = {"train": dm.mels("train"), "test": torch.cat([dm.mels("val"), dm.mels("test")])}
    feats = {s: latent_features(pipe.vae, mels[s]) for s in ("train", "test")}
    rng = np.random.default_rng(seed)
    next_seed = [int(seed) * 100_000]

    def gen(prompts: list[list[str]]):
        seeds = list(range(next_seed[0], next_seed[0] + len(prompts)))
        next_seed[0] += len(prompts)
        return pipe.generate(prompts, seeds, batch_size=batch_size, vocode=False, **settings)

    for group, pred in SOURCE_GROUPS.items():
        tr = [i for i, r in enumerate(rows["train"]) if pred(r)]
        te = [i for i, r in enumerate(rows["test"]) if pred(r)]
        m = min(int(n_generate), len(tr))
        if len(te) < 2 or m < 2:
            log.info("generation metrics: skipping %s (%d train / %d test clips)", group, len(tr), len(te))
            continue
        prompts = [list(rows["test"][te[k % len(te)]]["keywords"]) for k in range(m)]
        g = gen(prompts)
        f_gen = latent_features(pipe.vae, g.mels)
        floor = feats["train"][sorted(rng.choice(tr, size=m, replace=False).tolist())]
        out[group] = _distances(f_gen, feats["test"][te], floor, feats["train"][tr])
        out[group]["unknown_prompt_keywords"] = g.unknown

    if keyword_n > 0:
        vocab = set(pipe.vocabulary.words)
        kws = [k for k in KEYWORD_RULES if k in vocab]
        syn = {s: [i for i, r in enumerate(rows[s]) if r["source"] == "synthetic"] for s in ("train", "test")}
        if kws and all(len(v) >= 4 for v in syn.values()) and "synth" in vocab:
            opp = {a: b for a, b in OPPOSITES if a in kws and b in kws}
            opp.update({b: a for a, b in list(opp.items())})
            real = {}
            for s in ("train", "test"):
                d = kick_descriptors(mels[s][syn[s]], pipe.mel.sample_rate, pipe.mel.hop_length)
                real[s] = _labelled(d, [rows[s][i] for i in syn[s]], kws, opp)
            # a keyword needs >= 2 labelled clips with and without it in both splits
            kws = [k for k in kws if all(len(next(iter(real[s][f"{w}:{k}"].values()))) >= 2
                                         for s in real for w in ("with", "without"))]
            gen_desc = {}
            for kw in ["none", *kws]:
                prompt = ["synth"] if kw == "none" else ["synth", kw]
                g = gen([prompt] * int(keyword_n))
                gen_desc[kw] = kick_descriptors(g.mels, pipe.mel.sample_rate, pipe.mel.hop_length)
            table = keyword_control(gen_desc, real["train"], real["test"], kws, opp)
            out["keyword_control"] = table
            out["keyword_summary"] = {
                "acc_gen_mean": float(np.nanmean([r["acc_gen"] for r in table])),
                "acc_real_mean": float(np.nanmean([r["acc_real"] for r in table])),
                "d_gen_mean": float(np.nanmean([r["d_gen"] for r in table])),
                "d_real_mean": float(np.nanmean([r["d_real"] for r in table]))}
        else:
            log.info("keyword control skipped (needs the synthetic set and its keywords in the vocabulary)")
    return out


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """Scalar metrics of :func:`evaluate_generation` as ``{"<group>_<name>": value}`` for logging."""
    flat = {}
    for group in SOURCE_GROUPS:
        for k, v in (result.get(group) or {}).items():
            if isinstance(v, (int, float)):
                flat[f"{group}_{k}"] = float(v)
    for k, v in (result.get("keyword_summary") or {}).items():
        flat[f"keyword_{k}"] = float(v)
    return flat
