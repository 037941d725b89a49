"""Extract a target speaker from a recording:

    python -m audiolab.models.tse.extract mixture.wav enrollment.wav out.wav --ckpt RUN_FOLDER_OR_CKPT

- Both files are read with :func:`audiolab.audio.io.load_audio` (any rate / channels) and resampled to the model
  rate; the output is written at the **mixture's** rate (resampled back) and its length.
- The enrollment is encoded once (:meth:`TSENet.encode_enrollment`: the cross-attention keys/values and the FiLM
  embedding) and reused for every chunk of the mixture.
- Long mixtures are processed in windows of ``chunk + 2 * context`` seconds that overlap by ``2 * context``: each
  window's output is gain-matched to the previous one on their overlap (a scale-invariant model may change level
  between windows) and cross-faded linearly over the middle ``context`` of the overlap, so no sample is taken from
  within ``context / 2`` of a window edge (where TF-GridNet's outputs are worst). A mixture shorter than one
  window is processed whole.
- Clear errors: an enrollment shorter than ``--min-enroll-seconds`` (default 1 s), a silent mixture or enrollment,
  unreadable files, a checkpoint of another family.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torchaudio

from audiolab.audio.io import AudioLoadError, load_audio, save_audio
from audiolab.models.tse.nets import TSENet
from audiolab.utils.checkpoint import CheckpointError

__all__ = ["Extractor", "load_extractor", "extract_file", "main"]

log = logging.getLogger("audiolab")


def load_extractor(source: str | Path, device: str = "cpu") -> tuple[TSENet, int]:
    """The extraction net (EMA weights when EMA was on) and its sample rate from a run folder or ``.ckpt``
    (the shared loader :func:`audiolab.utils.checkpoint.load_trained`, ``weights_only=True``, family ``tse``)."""
    from audiolab.utils.checkpoint import load_trained

    net = load_trained(source, family="tse", submodule="net", device=device).module
    return net, int(net.sample_rate)


class Extractor:
    """Chunked, enrollment-cached inference with a :class:`TSENet` at ``sample_rate``."""

    def __init__(self, net: TSENet, sample_rate: int, chunk_seconds: float = 8.0, context_seconds: float = 1.0,
                 min_enroll_seconds: float = 1.0):
        if chunk_seconds <= 0 or context_seconds < 0:
            raise ValueError(f"chunk_seconds must be > 0 and context_seconds >= 0, got {chunk_seconds}, {context_seconds}")
        self.net, self.sr = net.eval(), int(sample_rate)
        self.chunk = int(round(chunk_seconds * self.sr))
        self.ctx = int(round(context_seconds * self.sr))
        self.min_enroll = float(min_enroll_seconds)
        self._cache: dict[str, Any] | None = None

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def set_enrollment(self, enrollment: torch.Tensor, name: str = "enrollment") -> None:
        """Encode ``enrollment [Se]`` (model rate) once; every later :meth:`extract` reuses it."""
        seconds = enrollment.shape[-1] / self.sr
        if seconds < self.min_enroll:
            raise ValueError(f"{name} is {seconds:.2f} s long; at least {self.min_enroll:.2f} s of the target speaker "
                             "is needed (--min-enroll-seconds)")
        if float(enrollment.abs().max()) < 1e-6:
            raise ValueError(f"{name} is silent; it must contain the target speaker's voice")
        self._cache = self.net.encode_enrollment(enrollment.to(self.device).float()[None])

    @torch.no_grad()
    def extract(self, mixture: torch.Tensor) -> torch.Tensor:
        """Target speech ``[S]`` from ``mixture [S]`` (model rate), whole or chunked (see the module docs)."""
        if self._cache is None:
            raise RuntimeError("call set_enrollment() before extract()")
        if float(mixture.abs().max()) < 1e-6:
            raise ValueError("the mixture is silent; there is nothing to extract")
        x = mixture.to(self.device).float()
        n = x.shape[-1]
        win = self.chunk + 2 * self.ctx
        if n <= win:
            return self.net(x[None], enrollment_cache=self._cache)[0]
        out = torch.zeros(n, device=self.device)
        prev_tail: torch.Tensor | None = None  # previous window's output over the current overlap
        starts = list(range(0, n - 2 * self.ctx, self.chunk))
        for s in starts:
            seg = x[s : s + win]
            y = self.net(seg[None], enrollment_cache=self._cache)[0]
            ov = min(2 * self.ctx, y.shape[-1])
            if prev_tail is not None and ov > 0:
                head = y[:ov]
                gain = float((prev_tail * head).sum() / (head.square().sum() + 1e-12))
                if gain > 0:  # keep the level of the first window throughout
                    y = y * gain
                # linear cross-fade over the middle `ctx` samples of the overlap; outside it, the window whose edge
                # is farther away wins
                fade = torch.zeros(ov, device=self.device)
                a, b = (ov - self.ctx) // 2, (ov - self.ctx) // 2 + self.ctx
                fade[a:b] = torch.linspace(0, 1, max(1, b - a), device=self.device)[: b - a]
                fade[b:] = 1.0
                out[s : s + ov] = prev_tail * (1 - fade) + y[:ov] * fade
                out[s + ov : s + y.shape[-1]] = y[ov:]
            else:
                out[s : s + y.shape[-1]] = y
            prev_tail = y[self.chunk : self.chunk + 2 * self.ctx] if y.shape[-1] >= self.chunk + 2 * self.ctx else None
            if s + win >= n:
                break
        return out


def extract_file(ckpt: str | Path, mixture: str | Path, enrollment: str | Path, out: str | Path, *,
                 chunk_seconds: float = 8.0, context_seconds: float = 1.0, min_enroll_seconds: float = 1.0,
                 device: str = "cpu") -> dict[str, Any]:
    """Load, extract, write ``out`` at the mixture's rate; returns a summary dict."""
    import soundfile as sf

    net, sr = load_extractor(ckpt, device)
    ex = Extractor(net, sr, chunk_seconds, context_seconds, min_enroll_seconds)
    t0 = time.perf_counter()
    x = load_audio(mixture, sr)  # names a missing / unreadable / silent file
    mix_sr = int(sf.info(str(mixture)).samplerate)
    ex.set_enrollment(load_audio(enrollment, sr), name=str(enrollment))
    y = ex.extract(x).cpu()
    if mix_sr != sr:
        y = torchaudio.functional.resample(y, sr, mix_sr)
    n_out = int(round(x.shape[-1] * mix_sr / sr))
    y = y[:n_out] if y.shape[-1] >= n_out else torch.nn.functional.pad(y, (0, n_out - y.shape[-1]))
    peak = float(y.abs().max())
    if peak > 0.99:  # a scale-invariant model may overshoot: never write clipped audio
        y = y * (0.99 / peak)
    save_audio(out, y, mix_sr)
    dt = time.perf_counter() - t0
    seconds = x.shape[-1] / sr
    return {"out": str(out), "seconds": round(seconds, 3), "model_rate": sr, "output_rate": mix_sr,
            "wall_s": round(dt, 3), "real_time_factor": round(dt / max(seconds, 1e-9), 4),
            "chunked": x.shape[-1] > ex.chunk + 2 * ex.ctx}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m audiolab.models.tse.extract",
                                description="Extract the enrolled speaker's voice from a mixture.")
    p.add_argument("mixture")
    p.add_argument("enrollment", help="a recording of the target speaker alone (>= --min-enroll-seconds)")
    p.add_argument("out")
    p.add_argument("--ckpt", required=True, help="run folder (probe_best.ckpt, else last.ckpt) or a .ckpt file")
    p.add_argument("--chunk-seconds", type=float, default=8.0)
    p.add_argument("--context-seconds", type=float, default=1.0)
    p.add_argument("--min-enroll-seconds", type=float, default=1.0)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    try:
        info = extract_file(a.ckpt, a.mixture, a.enrollment, a.out, chunk_seconds=a.chunk_seconds,
                            context_seconds=a.context_seconds, min_enroll_seconds=a.min_enroll_seconds, device=a.device)
    except (AudioLoadError, ValueError, FileNotFoundError, CheckpointError) as err:
        sys.exit(f"extract: {err}")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
