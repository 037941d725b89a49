"""``python -m audiolab.prepare codec_tokens ckpt_path=… input_dir=… [output_dir=…] [bandwidth=6] [chunk_seconds=30]``

Tokenizes an audio folder for the token LM: one int16 ``tokens.npy`` of shape ``[K, T_total]`` (files concatenated
along time, memory-mappable) and a ``manifest.json`` with the frame rate, cardinality, n_q, sample rate, model id
and, per source file, ``offset`` and ``n_frames`` into that array. Written atomically; re-running with the same
checkpoint, files and parameters is a no-op.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audiolab.audio.io import AudioLoadError, audio_files, load_audio
from audiolab.data.cache import atomic_write_bytes, atomic_write_json, content_hash
from audiolab.data.cli import optional, parse_key_values

log = logging.getLogger("audiolab")


def export_tokens(ckpt_path: str, input_dir: str, output_dir: str | None = None, bandwidth: float | None = None,
                  chunk_seconds: float = 30.0, device: str = "cpu", on_bad_file: str = "error") -> Path:
    from audiolab.models.codec.infer import encode_long, load_codec, model_id

    if on_bad_file not in ("error", "skip"):
        raise ValueError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input_dir={input_dir!r} is not a folder of audio files")
    files = sorted(audio_files(root))
    if not files:
        raise FileNotFoundError(f"input_dir={input_dir!r} contains no audio files")
    codec = load_codec(ckpt_path, device)
    n_q = codec.bandwidth_to_n_q(bandwidth)
    if codec.bins > 32767:
        raise ValueError(f"codebooks of {codec.bins} entries do not fit int16 tokens")
    mid = model_id(codec)
    out = Path(output_dir) if output_dir else Path("data") / "codec_tokens" / f"{root.name}_{mid}_q{n_q}"
    key = content_hash(files, {"model_id": mid, "n_q": n_q, "chunk_seconds": chunk_seconds}, root=root)
    manifest_path = out / "manifest.json"
    if ((out / "tokens.npy").exists() and manifest_path.exists()
            and json.loads(manifest_path.read_text()).get("cache_key") == key):
        log.info("tokens up to date: %s", out)
        return out
    arrays, entries, skipped, offset = [], [], [], 0
    for path in tqdm(files, desc="tokenizing", unit="file"):
        try:
            audio = load_audio(path, codec.sample_rate).to(device)
        except AudioLoadError as err:
            if on_bad_file == "error":
                raise
            skipped.append({"source": str(Path(path).relative_to(root)), "error": str(err)})
            continue
        codes, _ = encode_long(codec, audio, n_q=n_q, chunk_seconds=chunk_seconds)
        codes = codes[0].cpu().numpy().astype(np.int16)
        arrays.append(codes)
        entries.append({"source": str(Path(path).relative_to(root)), "offset": offset, "n_frames": int(codes.shape[1]),
                        "seconds": audio.shape[-1] / codec.sample_rate})
        offset += codes.shape[1]
    if not arrays:
        raise ValueError(f"no readable audio in input_dir={input_dir!r} (skipped: {len(skipped)})")
    tokens = np.concatenate(arrays, axis=1)
    buf = io.BytesIO()
    np.save(buf, tokens)
    atomic_write_bytes(out / "tokens.npy", buf.getvalue())
    atomic_write_json(manifest_path, {
        "cache_key": key, "checkpoint": str(ckpt_path), "model_id": mid, "sample_rate": codec.sample_rate,
        "frame_rate": codec.frame_rate, "cardinality": codec.bins, "n_q": n_q, "shape": list(tokens.shape),
        "dtype": "int16", "layout": "[K, T] codebooks x frames, files concatenated in time", "files": entries,
        "skipped": skipped})
    log.info("wrote %s (%d files, %d frames, %d codebooks)", out, len(entries), tokens.shape[1], n_q)
    return out


_CLI_KEYS = {"ckpt_path": str, "input_dir": str, "output_dir": str, "bandwidth": optional(float), "chunk_seconds": float,
             "device": str, "on_bad_file": str}


def prepare_main(argv: list[str]) -> None:
    """CLI: ``python -m audiolab.prepare codec_tokens ckpt_path=CKPT input_dir=DIR [output_dir=DIR] [bandwidth=KBPS]
    [chunk_seconds=30] [device=cpu] [on_bad_file=error|skip]``."""
    opts = parse_key_values(argv, _CLI_KEYS, recipe="codec_tokens", required=("ckpt_path", "input_dir"))
    export_tokens(opts["ckpt_path"], opts["input_dir"], opts.get("output_dir"), opts.get("bandwidth"),
                  opts.get("chunk_seconds", 30.0), opts.get("device", "cpu"), opts.get("on_bad_file", "error"))
