"""Compression CLI.

    python -m audiolab.models.codec.cli encode in.wav out.alc --ckpt RUN/checkpoints/probe_best.ckpt --bandwidth 6
    python -m audiolab.models.codec.cli decode out.alc decoded.wav --ckpt RUN/checkpoints/probe_best.ckpt
    python -m audiolab.models.codec.cli info out.alc

``--ckpt`` may also be a run folder (probe_best.ckpt, else last.ckpt). Long files are processed in chunks of
``--chunk-seconds`` (>= 0; 0 = whole file; bit-identical codes to whole-file encoding; causal models stream with
carried state). A file whose sample rate differs from the codec's is refused unless ``--resample`` is given.

The codec is mono. A multichannel file is mixed to mono (mean of the channels) with a warning, or one channel is
encoded with ``--channel N``. A file whose channels cancel in the mix (the mono mix more than
:data:`CANCEL_DB` dB below its loudest channel, e.g. anti-phase stereo) is refused instead of being encoded as
near-silence; ``--channel N`` encodes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiolab.audio.io import AudioLoadError, load_audio, save_audio
from audiolab.models.codec.container import AlcHeader, ContainerError, read_alc, write_alc
from audiolab.models.codec.infer import decode_long, encode_long, load_codec, model_id

log = logging.getLogger("audiolab")

#: A mono mix this many dB below the loudest channel means the channels cancel (anti-phase): refused.
CANCEL_DB = 20.0


def _check_chunk_seconds(chunk_seconds: float) -> None:
    if not chunk_seconds >= 0:  # also NaN
        raise ValueError(f"--chunk-seconds {chunk_seconds}: must be >= 0 (seconds per chunk; 0 = whole file)")


def _mono_mix_check(src: str | Path, channels: int) -> None:
    """Warn that a multichannel file is mixed to mono; refuse one whose channels cancel in the mix."""
    data, _ = sf.read(str(src), always_2d=True, dtype="float32")
    rms = np.sqrt(np.mean(np.square(data, dtype=np.float64), axis=0))
    mix = float(np.sqrt(np.mean(np.square(data.mean(axis=1, dtype=np.float64)))))
    loudest = float(rms.max()) if rms.size else 0.0
    if loudest > 1e-6 and mix < loudest * 10 ** (-CANCEL_DB / 20):
        drop = 20 * np.log10(loudest / max(mix, 1e-12))
        raise AudioLoadError(
            f"{src}: its {channels} channels cancel when mixed to mono (the mix is {drop:.1f} dB below the loudest "
            "channel: anti-phase?); this codec is mono: encode one channel with --channel 0 (or 1, ...)"
        )
    log.warning("%s: %d channels mixed to mono (the codec is mono); --channel N encodes one channel instead",
                src, channels)


def encode_file(ckpt: str, src: str | Path, dst: str | Path, bandwidth: float | None = None, chunk_seconds: float = 30.0,
                resample: bool = False, device: str = "cpu", channel: int | None = None) -> dict:
    _check_chunk_seconds(chunk_seconds)
    codec = load_codec(ckpt, device)
    try:  # before reading any audio: a bad --bandwidth fails at once
        n_q = codec.bandwidth_to_n_q(bandwidth)
    except ValueError as err:
        raise ValueError(f"--bandwidth {bandwidth}: {err}") from err
    try:
        info = sf.info(str(src))
    except Exception as err:  # noqa: BLE001 - soundfile raises several types for bad files
        raise AudioLoadError(f"{src}: cannot read audio ({err})") from err
    if info.samplerate != codec.sample_rate and not resample:
        raise AudioLoadError(f"{src}: sample rate {info.samplerate} Hz, but this codec runs at {codec.sample_rate} Hz; "
                             "pass --resample to convert, or resample the file")
    if info.channels > 1 and channel is None:
        _mono_mix_check(src, info.channels)
    audio = load_audio(src, codec.sample_rate, allow_silent=True, channel=channel).to(device)
    codes, scales = encode_long(codec, audio, n_q=n_q, chunk_seconds=chunk_seconds)
    header = AlcHeader(model_id=model_id(codec), sample_rate=codec.sample_rate, channels=codec.channels,
                       hop_length=codec.hop_length, n_q=n_q, bins=codec.bins, n_frames=codes.shape[-1],
                       length=int(audio.shape[-1]), normalization=codec.normalization,
                       segment_samples=codec.segment_samples)
    size = write_alc(dst, header, codes[0].cpu().numpy(), None if scales is None else scales[0].cpu().numpy())
    seconds = audio.shape[-1] / codec.sample_rate
    return {"file": str(dst), "bytes": size, "seconds": seconds, "n_q": n_q, "n_frames": int(codes.shape[-1]),
            "nominal_kbps": n_q * header.bits * codec.frame_rate / 1000, "actual_kbps": size * 8 / seconds / 1000}


def decode_file(ckpt: str, src: str | Path, dst: str | Path, chunk_seconds: float = 30.0, device: str = "cpu") -> dict:
    _check_chunk_seconds(chunk_seconds)
    header, codes, scales = read_alc(src)
    codec = load_codec(ckpt, device)
    mid = model_id(codec)
    if header.model_id != mid:
        raise ContainerError(f"{src} was encoded by model {header.model_id}, but --ckpt {ckpt} is model {mid}")
    if (header.sample_rate != codec.sample_rate or header.bins != codec.bins or header.n_q > codec.n_q
            or header.hop_length != codec.hop_length or header.channels != codec.channels
            or header.segment_samples != codec.segment_samples):
        raise ContainerError(f"{src}: header (sr {header.sample_rate}, bins {header.bins}, n_q {header.n_q}, hop "
                             f"{header.hop_length}, channels {header.channels}, segment {header.segment_samples}) "
                             f"does not fit this codec (sr {codec.sample_rate}, bins {codec.bins}, n_q {codec.n_q}, "
                             f"hop {codec.hop_length}, channels {codec.channels}, segment {codec.segment_samples})")
    codes_t = torch.from_numpy(codes)[None].to(device)
    scales_t = None if scales is None else torch.from_numpy(scales)[None].to(device)
    audio = decode_long(codec, codes_t, scales_t, header.length, chunk_seconds)[0]
    peak = float(audio.abs().max()) if audio.numel() else 0.0
    if peak > 1.0:
        log.warning("decoded peak %.3f > 1: PCM output clips %s; write .flac/.wav float with a different tool if needed",
                    peak, dst)
    save_audio(dst, audio.mean(0).cpu(), codec.sample_rate)
    return {"file": str(dst), "seconds": header.length / header.sample_rate, "n_q": header.n_q, "peak": peak}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    parser = argparse.ArgumentParser(prog="python -m audiolab.models.codec.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode", help="audio file -> .alc")
    enc.add_argument("input")
    enc.add_argument("output")
    enc.add_argument("--ckpt", required=True, help="codec checkpoint or run folder")
    enc.add_argument("--bandwidth", type=float, default=None, help="kbps (default: all codebooks)")
    enc.add_argument("--chunk-seconds", type=float, default=30.0, help="0 = whole file in one pass")
    enc.add_argument("--resample", action="store_true", help="resample inputs whose rate differs from the codec's")
    enc.add_argument("--channel", type=int, default=None,
                     help="encode only this channel of a multichannel file (0-based; default: mix to mono)")
    enc.add_argument("--device", default="cpu")
    dec = sub.add_parser("decode", help=".alc -> audio file")
    dec.add_argument("input")
    dec.add_argument("output")
    dec.add_argument("--ckpt", required=True)
    dec.add_argument("--chunk-seconds", type=float, default=30.0)
    dec.add_argument("--device", default="cpu")
    info = sub.add_parser("info", help="print an .alc header")
    info.add_argument("input")
    args = parser.parse_args(argv)
    try:
        if args.command == "encode":
            result = encode_file(args.ckpt, args.input, args.output, args.bandwidth, args.chunk_seconds, args.resample,
                                 args.device, args.channel)
        elif args.command == "decode":
            result = decode_file(args.ckpt, args.input, args.output, args.chunk_seconds, args.device)
        else:
            header, _, _ = read_alc(args.input)
            result = header.__dict__
    except (AudioLoadError, ContainerError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
