"""Inference pipeline: keywords + seeds -> latents (U-Net + sampler) -> log-mel (VAE decoder) -> audio (vocoder).

:class:`KickPipeline` holds the three nets and what generation needs besides weights (keyword vocabulary, latent
scale, noise schedule, mel settings). :meth:`KickPipeline.from_checkpoint` builds it from a ``kick_unet`` /
``kick_pipeline`` checkpoint (which stores the frozen VAE, and the vocoder when one was given) plus, optionally,
a separate ``kick_hifigan`` checkpoint. No training code runs: the nets are rebuilt from the stored config.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from audiolab.models.kick.audio import CLIP_SAMPLES, MelConfig
from audiolab.models.kick.diffusion import SAMPLERS, sample
from audiolab.models.kick.keywords import KeywordVocabulary

log = logging.getLogger("audiolab")

__all__ = ["KickPipeline", "Generation", "finalize_audio", "load_kick_module"]


def finalize_audio(audio: Tensor, n_samples: int = CLIP_SAMPLES, peak: float = 10 ** (-1 / 20),
                   fade_samples: int = round(0.2 * 44100)) -> Tensor:
    """Vocoder output ``[B, T]`` -> ``[B, n_samples]``: trim, the training clips' 0.2-s linear fade-out, and the
    peak scaled down to -1 dBFS when it is above it (quiet outputs stay quiet: level is part of the sound)."""
    x = audio[:, :n_samples].float()
    if x.shape[1] < n_samples:
        x = torch.nn.functional.pad(x, (0, n_samples - x.shape[1]))
    k = min(int(fade_samples), n_samples)
    if k > 0:
        x = x.clone()
        x[:, n_samples - k:] *= torch.linspace(1.0, 0.0, k, device=x.device)
    p = x.abs().amax(dim=1, keepdim=True).clamp(min=1e-9)
    return x * torch.clamp(peak / p, max=1.0)


@dataclass
class Generation:
    """Outputs of :meth:`KickPipeline.generate` (row k = seed k)."""

    latents: Tensor                   # [N, C, h, w] in VAE units (scale removed)
    mels: Tensor                      # [N, 1, n_mels, frames] log-mel
    audio: Tensor | None              # [N, 88200] or None without a vocoder
    seeds: list[int]
    keywords: list[list[str]]         # the known keywords actually used per sample
    unknown: list[str]                # requested keywords not in the vocabulary (ignored)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage for the whole batch


def load_kick_module(source: str | Path, expected: Sequence[str] | None = None):
    """A trained kick LightningModule (eval mode, CPU) from a run folder or ``.ckpt`` through the shared loader
    (:func:`audiolab.utils.checkpoint.load_trained`, ``family="kick"``: ``weights_only``, EMA weights, the
    vocabulary and latent scale as buffers), checking its class (``expected``: e.g. ``("KickDiffusionModule",)``).

    Returns ``(module, trained)`` (``trained.config``, ``trained.path``, ``trained.global_step``).
    """
    from audiolab.utils.checkpoint import load_trained

    trained = load_trained(source, family="kick")
    name = type(trained.module).__name__
    if expected and name not in expected:
        raise ValueError(f"{trained.path}: holds {name}, expected one of {list(expected)}")
    return trained.module, trained


class KickPipeline(nn.Module):
    """VAE + U-Net (+ vocoder) with the data that generation needs.

    Args:
        vae / unet / vocoder: the nets (``vocoder`` may be None: mels only).
        vocabulary: keyword vocabulary of the U-Net's training split.
        latent_scale: ``1 / std`` of the training latents (the diffusion runs on ``z * scale``).
        schedule_config: :attr:`~audiolab.models.kick.diffusion.NoiseSchedule.config`.
        mel: mel settings (frames, hop).
    """

    def __init__(self, vae: nn.Module, unet: nn.Module, vocoder: nn.Module | None, vocabulary: KeywordVocabulary,
                 latent_scale: float, schedule_config: dict, mel: MelConfig | None = None) -> None:
        super().__init__()
        self.vae, self.unet, self.vocoder = vae, unet, vocoder
        self.vocabulary = vocabulary
        self.latent_scale = float(latent_scale)
        if not self.latent_scale > 0:
            raise ValueError(f"latent scale must be > 0, got {latent_scale} (was the U-Net trained?)")
        self.schedule_config = dict(schedule_config)
        self.mel = mel or MelConfig()

    @classmethod
    def from_checkpoint(cls, source: str | Path, vocoder: str | Path | None = None,
                        require_vocoder: bool = True) -> KickPipeline:
        """From a ``kick_unet`` / ``kick_pipeline`` run folder or checkpoint; ``vocoder`` (a ``kick_hifigan`` run
        or checkpoint) replaces / supplies the vocoder. CPU, eval mode, weight norm removed."""
        module, _ = load_kick_module(source, ("KickDiffusionModule",))
        voc = module.vocoder
        if vocoder is not None:
            vmod, _ = load_kick_module(vocoder, ("KickVocoderModule",))
            voc = vmod.generator
        if voc is None and require_vocoder:
            raise FileNotFoundError(
                f"{source} holds no vocoder: pass vocoder=<a kick_hifigan run folder or .ckpt> (or train "
                "kick_pipeline, which stores one)")
        if voc is not None and hasattr(voc, "remove_weight_norm"):
            import copy

            voc = copy.deepcopy(voc).remove_weight_norm()
        return module.pipeline(vocoder=voc)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return tuple(self.vae.latent_shape)

    def encode_prompts(self, prompts: Sequence[Sequence[str]]) -> tuple[Tensor, list[list[str]], list[str]]:
        """Multi-hot ``[B, V]``, the known keywords per prompt and the unknown ones (for a warning)."""
        known_all, unknown_all = [], []
        for p in prompts:
            known, unknown = self.vocabulary.split_known(p)
            known_all.append(known)
            unknown_all += [u for u in unknown if u not in unknown_all]
        return torch.from_numpy(self.vocabulary.encode(known_all)), known_all, unknown_all

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Sequence[str]], seeds: Sequence[int], sampler: str = "ddim",
                 steps: int = 50, cfg_scale: float = 3.0, batch_size: int = 16, vocode: bool = True,
                 on_progress: Callable[[int, int], None] | None = None) -> Generation:
        """One kick per ``(prompt, seed)`` pair, in batches of ``batch_size`` (CFG doubles the U-Net batch).

        Unknown keywords are ignored and reported in :attr:`Generation.unknown` (callers warn).
        """
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts for {len(seeds)} seeds")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        kw, known, unknown = self.encode_prompts(prompts)
        device = next(self.unet.parameters()).device
        timings = {"unet_s": 0.0, "vae_s": 0.0, "vocoder_s": 0.0}
        lat, mels, audio = [], [], []
        n = len(seeds)
        done = 0
        for s in range(0, n, max(1, int(batch_size))):
            sl = slice(s, min(n, s + int(batch_size)))
            t0 = time.perf_counter()
            z = sample(self.unet, self.latent_shape, kw[sl].to(device), list(seeds[sl]), self.schedule_config,
                       sampler=sampler, steps=steps, cfg_scale=cfg_scale) / self.latent_scale
            t1 = time.perf_counter()
            mel = self.vae.decode(z)
            t2 = time.perf_counter()
            timings["unet_s"] += t1 - t0
            timings["vae_s"] += t2 - t1
            lat.append(z.cpu())
            mels.append(mel.cpu())
            if vocode and self.vocoder is not None:
                wav = finalize_audio(self.vocoder(mel[:, 0]))
                timings["vocoder_s"] += time.perf_counter() - t2
                audio.append(wav.cpu())
            done += z.shape[0]
            if on_progress is not None:
                on_progress(done, n)
        timings["total_s"] = sum(timings.values())
        return Generation(latents=torch.cat(lat), mels=torch.cat(mels), audio=torch.cat(audio) if audio else None,
                          seeds=[int(x) for x in seeds], keywords=known, unknown=unknown, timings=timings)

    def settings(self) -> dict[str, Any]:
        """What a JSON sidecar records about the model."""
        return {"latent_scale": self.latent_scale, "latent_shape": list(self.latent_shape),
                "schedule": self.schedule_config, "vocabulary_size": len(self.vocabulary),
                "vocoder": None if self.vocoder is None else type(self.vocoder).__name__,
                "mel": self.mel.to_dict(), "sample_rate": self.mel.sample_rate}


def spawn_seeds(seed: int, n: int) -> list[int]:
    """``n`` per-sample seeds from one base seed: ``seed, seed + 1, ...`` (sample k alone with seed ``seed + k``
    reproduces row k)."""
    return [int(seed) + k for k in range(int(n))]


def as_numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().float().numpy()
