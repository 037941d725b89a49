"""Whole-file DDSP rendering: a file of any length decoded and synthesized as the training windows were.

Training sees windows of ``W`` frames (``data.example_seconds * frame_rate``, 500 frames for 2 s at 250 Hz). A
whole file is longer, and the decoder must not see anything at frame ``t`` that it never saw in training:

* streamable decoders (:attr:`~audiolab.models.ddsp.decoder.StreamingDecoder.streamable`: the frame-wise MLP, the
  GRUs, a causal transformer with bounded attention and relative or no positions) are run over the whole file in
  chunks, their state carried (GRU hidden state, a fixed-span KV cache): the same output as one pass, in bounded
  memory;
* the others (a transformer with absolute positions or attention over the whole sequence) are run on windows of
  ``W`` frames, half-overlapping, and the raw controls of neighbouring windows are cross-faded (linear ramps over
  the overlap, weights summing to 1), so every frame is decoded at a position and context length seen in training.

The control heads (activations, autoregressive residual, smoothing, silence gate) then run once over the whole
file, so filters do not restart at chunk boundaries. Synthesis is one pass up to :data:`ONE_PASS_SECONDS`; longer
files are synthesized in chunks of :data:`SYNTH_CHUNK_FRAMES` (the oscillator phase restarts at each boundary);
reverb, if any, runs once over the whole dry signal.

No Lightning here: the inference CLI, the module's whole-file probe/test metrics and the benchmark share it.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from audiolab.dsp import normalize_harmonics
from audiolab.models.ddsp.synth import DDSP

__all__ = ["decode_whole", "render_whole", "window_frames_from_config", "ONE_PASS_SECONDS", "SYNTH_CHUNK_FRAMES",
           "DECODE_CHUNK_FRAMES"]

#: Files up to this duration are synthesized in one pass.
ONE_PASS_SECONDS = 60.0
#: Chunk length (frames) when synthesizing longer files.
SYNTH_CHUNK_FRAMES = 8000
#: Chunk length (frames) of streamed decoding (bounds attention memory; the output does not depend on it).
DECODE_CHUNK_FRAMES = 1000


def window_frames_from_config(cfg: DictConfig | dict) -> int | None:
    """Training window in frames (``data.example_seconds * model.frame_rate``) of a stored training config."""
    seconds = OmegaConf.select(cfg, "data.example_seconds") if isinstance(cfg, DictConfig) else None
    rate = OmegaConf.select(cfg, "model.frame_rate") if isinstance(cfg, DictConfig) else None
    if seconds is None or rate is None:
        return None
    return int(round(float(seconds) * int(rate)))


def _crossfade_weights(n_windows: int, width: int, ramp: int) -> Tensor:
    """``[n_windows, width]`` weights: linear ramp up over the first ``ramp`` frames (not for the first window) and
    down over the last ``ramp`` frames (not for the last window)."""
    t = torch.arange(width, dtype=torch.float32)
    up = ((t + 1) / (ramp + 1)).clamp(max=1.0)
    down = ((width - t) / (ramp + 1)).clamp(max=1.0)
    w = torch.ones(n_windows, width)
    if n_windows > 1:
        w[1:] *= up
        w[:-1] *= down
    return w


def windowed_decode(decoder: torch.nn.Module, x: Tensor, window: int) -> Tensor:
    """Decoder over half-overlapping windows of ``window`` frames, cross-faded. ``x [B, F, in]`` -> ``[B, F, out]``.

    Windows start every ``window // 2`` frames; the last one is aligned to the end. The weights are normalized
    per frame, so they sum to 1 even where the end-aligned window overlaps more.
    """
    b, f, _ = x.shape
    if f <= window:
        return decoder(x)
    hop = max(window // 2, 1)
    starts = list(range(0, f - window + 1, hop))
    if starts[-1] + window < f:
        starts.append(f - window)
    windows = torch.stack([x[:, s : s + window] for s in starts], dim=1)  # [B, N, W, in]
    y = decoder(windows.reshape(b * len(starts), window, -1)).reshape(b, len(starts), window, -1)
    w = _crossfade_weights(len(starts), window, window - hop).to(y)  # [N, W]
    out = y.new_zeros(b, f, y.shape[-1])
    norm = y.new_zeros(1, f, 1)
    for i, s in enumerate(starts):
        out[:, s : s + window] += y[:, i] * w[i, :, None]
        norm[:, s : s + window] += w[i, :, None]
    return out / norm


def decode_whole(net: DDSP, f0_hz: Tensor, loudness_db: Tensor, confidence: Tensor | None = None, *,
                 window_frames: int | None = None, chunk_frames: int = DECODE_CHUNK_FRAMES) -> Tensor:
    """Raw decoder output for whole sequences: ``[B, F]`` inputs -> ``[B, F, out_features]``.

    ``window_frames``: the training window (frames), used for decoders that are not streamable; None runs those
    in one pass (as before this module existed: wrong past the training window for absolute positions).
    """
    x = net.conditioning(f0_hz, loudness_db, confidence)
    decoder = net.decoder
    if getattr(decoder, "streamable", False):
        state, outs = None, []
        for s in range(0, x.shape[1], chunk_frames):
            y, state = decoder.stream(x[:, s : s + chunk_frames], state)
            outs.append(y)
        return torch.cat(outs, dim=1)
    if window_frames is None:
        return decoder(x)
    return windowed_decode(decoder, x, window_frames)


@torch.no_grad()
def render_whole(net: DDSP, f0_hz: Tensor, loudness_db: Tensor, confidence: Tensor | None = None, *,
                 window_frames: int | None = None) -> dict[str, Tensor]:
    """f0 / loudness / confidence ``[F]`` (one file) -> ``audio [F*hop]`` plus the controls (``amplitude [F]``,
    ``harmonic_distribution [F, K]`` normalized below Nyquist as the synth used it, ``noise_magnitudes [F, N]``
    when the model has noise). Inputs go to the network's device; outputs come back on the CPU."""
    device = next(net.parameters()).device
    f0 = f0_hz.to(device=device, dtype=torch.float32)[None]
    ld = loudness_db.to(device=device, dtype=torch.float32)[None]
    conf = None if confidence is None else confidence.to(device=device, dtype=torch.float32)[None]
    raw = decode_whole(net, f0, ld, conf, window_frames=window_frames)
    controls = net.heads(raw, ld)
    n_frames, hop = f0.shape[-1], net.config.hop_length
    step = n_frames if n_frames * hop <= ONE_PASS_SECONDS * net.config.sample_rate else SYNTH_CHUNK_FRAMES
    dry = []
    for s in range(0, n_frames, step):
        part = {k: v[:, s : s + step] for k, v in controls.items()}
        syn = net.synthesize(f0[:, s : s + step], part, part["amplitude"].shape[-1] * hop)
        dry.append(syn["harmonic"] + syn["noise"])
    audio = torch.cat(dry, dim=-1)
    if net.reverb is not None:
        audio = net.reverb(audio)
    controls["harmonic_distribution"] = normalize_harmonics(controls["harmonic_distribution"], f0, net.config.sample_rate)
    out = {k: v[0].cpu() for k, v in controls.items()}
    out["audio"] = audio[0].cpu()
    return out
