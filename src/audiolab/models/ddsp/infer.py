"""DDSP inference from a trained checkpoint: resynthesis and timbre transfer.

Usage::

    python -m audiolab.models.ddsp.infer INPUT OUTPUT --ckpt PATH [--auto-adjust] [--pitch-shift SEMITONES]
        [--loudness-offset DB] [--crepe full|tiny] [--confidence-threshold 0.0] [--device cpu|cuda]
        [--save-controls] [--seed 0]

``INPUT`` is any monophonic recording (any sample rate; stereo is downmixed): it is loaded at the model's rate,
its f0 (CREPE, Viterbi; by default the CREPE model the checkpoint was trained with, ``cfg.data.crepe_model``)
and A-weighted loudness are computed with the same code as training (:func:`audiolab.models.ddsp.data.compute_features`),
then the DDSP network of the checkpoint turns them back into audio:

* resynthesis: no ``--pitch-shift`` / ``--loudness-offset``;
* timbre transfer: ``--auto-adjust`` moves the input's pitch by whole octaves towards the training set's mean
  pitch and maps its note-on loudness onto the training set's loudness distribution (quantiles), turning note-off
  parts down, as magenta's timbre-transfer colab does (:func:`audiolab.models.ddsp.transfer.auto_adjust`, with the
  statistics every checkpoint stores); then ``f0 * 2 ** (semitones / 12)``, ``loudness + offset`` dB (floored at
  -80 dB, the training range's floor); ``--confidence-threshold T`` sets loudness to -80 dB wherever CREPE's
  confidence is below ``T`` (silences unvoiced/noisy parts; default 0 = off).

``OUTPUT`` is written at the model's sample rate (``.wav``/``.flac``/``.ogg``), ``F * hop`` samples long
(``F = n_input_samples // hop``, so within one hop of the input duration). ``--save-controls`` also writes
``OUTPUT`` with suffix ``.npz`` (amplitude, harmonic_distribution, noise_magnitudes, f0_hz, loudness_db).
``--seed`` (default 0) seeds torch and CREPE's f0 dither (torchcrepe dithers its f0 by up to +-20 cents, triangular)
and the noise synth is random, so a fixed seed makes runs reproducible (and e.g. a ``--pitch-shift 12`` run sees exactly 2x the f0 of
the resynthesis run).

Files of any length are rendered as the training windows were (:func:`audiolab.models.ddsp.render.render_whole`):
streamable decoders carry their state over the file (GRU state, a fixed-span KV cache for a windowed transformer
with relative positions), the others run on half-overlapping windows of the training length, cross-faded.

The network comes from the shared loader :func:`audiolab.utils.checkpoint.load_trained` (``weights_only=True``;
the module of the stored config with its EMA weights when EMA was on), of which only ``net`` is used
(:func:`load_ddsp`); no training step runs.

Exit status: 0 on success, 2 on a missing/invalid checkpoint or an unreadable input (message on stderr, no
traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from audiolab.audio.features import a_weighted_loudness
from audiolab.audio.io import AudioLoadError, load_audio, save_audio
from audiolab.models.ddsp.data import compute_features
from audiolab.models.ddsp.render import render_whole, window_frames_from_config
from audiolab.models.ddsp.synth import DDSP
from audiolab.models.ddsp.transfer import auto_adjust, read_dataset_statistics
from audiolab.utils.checkpoint import load_trained, resolve_checkpoint

__all__ = ["load_ddsp", "transform_features", "main", "MIN_LOUDNESS_DB"]

#: Loudness floor (dB) of the training features (A-weighted loudness, 80 dB range).
MIN_LOUDNESS_DB = -80.0


def load_ddsp(ckpt_path: str | Path, device: str | torch.device = "cpu") -> tuple[DDSP, DictConfig]:
    """Rebuild the DDSP network of a training checkpoint (no training code paths involved).

    Args:
        ckpt_path: ``.ckpt`` file or run folder (probe_best.ckpt, else last.ckpt), loaded by
            :func:`audiolab.utils.checkpoint.load_trained` (``weights_only=True``, EMA weights when EMA was on).
        device: where the network is put.

    Returns:
        ``(net, cfg)``: the :class:`DDSP` module (``DDSPModule.net``) in eval mode and the stored (resolved)
        training config.

    Raises:
        FileNotFoundError: the checkpoint does not exist (message names the path).
        ValueError: unreadable checkpoint, no stored config, not a DDSP checkpoint, or weights that do not fit.
    """
    trained = load_trained(ckpt_path, family="ddsp", submodule="net", device=device)
    return trained.module, trained.config


def transform_features(
    f0_hz: Tensor,
    loudness_db: Tensor,
    confidence: Tensor | None = None,
    *,
    pitch_shift: float = 0.0,
    loudness_offset: float = 0.0,
    confidence_threshold: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Timbre-transfer edits of the conditioning: f0 * 2^(semitones/12); loudness + offset (floored at -80 dB);
    loudness -80 dB where ``confidence < confidence_threshold`` (threshold 0 = off)."""
    f0 = f0_hz * (2.0 ** (float(pitch_shift) / 12.0))
    ld = (loudness_db + float(loudness_offset)).clamp(min=MIN_LOUDNESS_DB)
    if confidence is not None and confidence_threshold > 0:
        ld = torch.where(confidence < confidence_threshold, torch.full_like(ld, MIN_LOUDNESS_DB), ld)
    return f0, ld


def _voiced_median(f0: np.ndarray, conf: np.ndarray) -> float:
    voiced = f0[conf >= 0.5]
    return float(np.median(voiced if voiced.size else f0)) if f0.size else float("nan")


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m audiolab.models.ddsp.infer",
        description="DDSP resynthesis / timbre transfer of a monophonic recording with a trained checkpoint.",
    )
    p.add_argument("input", help="input audio (any rate, mono or stereo)")
    p.add_argument("output", help="output audio (.wav/.flac/.ogg), written at the model's sample rate")
    p.add_argument("--ckpt", required=True, help="DDSP training checkpoint (.ckpt) or run folder")
    p.add_argument("--auto-adjust", action="store_true",
                   help="octave and loudness of the input matched to the training set's statistics (magenta colab)")
    p.add_argument("--pitch-shift", type=float, default=0.0, metavar="SEMITONES", help="f0 x 2^(s/12) (default 0)")
    p.add_argument("--loudness-offset", type=float, default=0.0, metavar="DB", help="added to loudness, floor -80 dB")
    p.add_argument("--crepe", choices=("full", "tiny"), default=None,
                   help="CREPE model for f0 (default: the one the checkpoint was trained with)")
    p.add_argument("--confidence-threshold", type=float, default=0.0,
                   help="frames with CREPE confidence below this get loudness -80 dB (default 0 = off)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    p.add_argument("--save-controls", action="store_true", help="also write OUTPUT.npz with the synth controls")
    p.add_argument("--seed", type=int, default=0,
                   help="torch/numpy seed (CREPE's dither and the filtered noise are random): same seed, same output")
    return p


def _run(args: argparse.Namespace) -> None:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    if args.confidence_threshold < 0 or args.confidence_threshold > 1:
        raise ValueError(f"--confidence-threshold must be in [0, 1], got {args.confidence_threshold}")
    output = Path(args.output)
    if output.suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise ValueError(f"output {str(output)!r}: extension must be .wav, .flac or .ogg")
    net, cfg = load_ddsp(args.ckpt, device=device)
    stats = None
    if args.auto_adjust:
        stats = read_dataset_statistics(resolve_checkpoint(args.ckpt))
        if stats is None:
            raise ValueError(f"--auto-adjust: checkpoint {args.ckpt!r} has no dataset statistics (written before they "
                             "were stored); retrain, or use --pitch-shift / --loudness-offset")
    torch.manual_seed(args.seed)
    sr, fr = net.config.sample_rate, net.config.frame_rate
    crepe = args.crepe or str(OmegaConf.select(cfg, "data.crepe_model", default="full") or "full")

    audio = load_audio(args.input, sr)
    if audio.shape[-1] < net.config.hop_length:
        raise AudioLoadError(f"audio file {str(args.input)!r} is shorter than one frame ({net.config.hop_length} samples)")
    feats = compute_features(audio, sr, fr, crepe_model=crepe, device=device, crepe_seed=args.seed)
    f0_in = torch.from_numpy(feats["f0_hz"])
    ld_in = torch.from_numpy(feats["loudness_db"])
    conf = torch.from_numpy(feats["confidence"])
    f0_adj, ld_adj, octaves = f0_in, ld_in, 0.0
    if stats is not None:
        adj = auto_adjust(feats["f0_hz"], feats["loudness_db"], feats["confidence"], stats)
        f0_adj, ld_adj, octaves = torch.from_numpy(adj["f0_hz"]), torch.from_numpy(adj["loudness_db"]), adj["octaves"]
        if not adj["notes"]:
            print("  auto-adjust: no notes detected, input left as is")
    f0, ld = transform_features(f0_adj, ld_adj, conf, pitch_shift=args.pitch_shift,
                                loudness_offset=args.loudness_offset, confidence_threshold=args.confidence_threshold)
    out = render_whole(net, f0, ld, conf, window_frames=window_frames_from_config(cfg))
    y = out["audio"].float()
    save_audio(output, y, sr)

    ld_out = a_weighted_loudness(y[None], sample_rate=sr, frame_rate=fr)[0, : ld.shape[-1]]
    conf_np = conf.numpy()
    edited = args.pitch_shift != 0 or args.loudness_offset != 0 or args.auto_adjust
    mode = "timbre transfer" if edited else "resynthesis"
    print(f"{mode}: {args.input} -> {output} ({y.shape[-1] / sr:.2f} s at {sr} Hz, CREPE {crepe}, {device})")
    print(f"  median f0     in {_voiced_median(f0_in.numpy(), conf_np):8.1f} Hz   out {_voiced_median(f0.numpy(), conf_np):8.1f} Hz"
          f"   (shift {args.pitch_shift + 12 * octaves:+g} st{', auto-adjusted' if args.auto_adjust else ''})")
    print(f"  mean loudness in {float(ld_in.mean()):8.1f} dB   control {float(ld.mean()):8.1f} dB"
          f"   output {float(ld_out.mean()):8.1f} dB")
    print(f"  output peak   {float(y.abs().max()):.3f}")
    if args.save_controls:
        npz = output.with_suffix(".npz")
        arrays = {k: out[k].numpy().astype(np.float32) for k in ("amplitude", "harmonic_distribution", "noise_magnitudes")
                  if k in out}
        arrays["f0_hz"] = f0.numpy().astype(np.float32)
        arrays["loudness_db"] = ld.numpy().astype(np.float32)
        np.savez(npz, **arrays)
        print(f"  controls      {npz}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 ok, 2 on a bad checkpoint / input, message on stderr)."""
    args = _build_parser().parse_args(argv)
    try:
        _run(args)
    except (FileNotFoundError, AudioLoadError, ValueError) as err:
        print(f"ddsp infer: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
