"""Whole-file resynthesis check: per-500-frame-block loudness L1 and loudness in silent frames of a checkpoint's
output for whole audio files, through the inference path (``render_whole``) or, with ``--one-pass``, decoded in one
pass over the file as ``infer`` did before issue 13.

    python experiments/ddsp_whole_file/whole_file.py --ckpt RUN_OR_CKPT FILE [FILE ...] [--one-pass] [--json OUT]

``FILE`` may be ``embedded:violin_00`` (the embedded demo phrase, with its precomputed CREPE-full f0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from audiolab.audio.io import load_audio
from audiolab.models.ddsp.data import compute_features, embedded_pitch_dir, embedded_root, pitch_sidecar_path
from audiolab.models.ddsp.infer import load_ddsp
from audiolab.models.ddsp.metrics import whole_file_loudness
from audiolab.models.ddsp.render import render_whole, window_frames_from_config
from audiolab.utils.checkpoint import resolve_checkpoint


def features(spec: str, sr: int, fr: int, crepe: str) -> tuple[str, dict]:
    if spec.startswith("embedded:"):
        name = spec.split(":", 1)[1]
        path = embedded_root() / f"{name}.flac"
        sidecar = pitch_sidecar_path(embedded_pitch_dir(), name, crepe)
    else:
        path, sidecar = Path(spec), None
    audio = load_audio(path, sr)
    return str(path), compute_features(audio, sr, fr, crepe_model=crepe, device="cpu", pitch_sidecar=sidecar)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True)
    p.add_argument("files", nargs="+")
    p.add_argument("--one-pass", action="store_true", help="decode the whole file in one pass (pre-issue-13 infer)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    net, cfg = load_ddsp(args.ckpt)
    sr, fr = net.config.sample_rate, net.config.frame_rate
    crepe = str(cfg.data.crepe_model)
    window = None if args.one_pass else window_frames_from_config(cfg)
    results = {"checkpoint": str(resolve_checkpoint(args.ckpt)), "one_pass": args.one_pass, "files": []}
    for spec in args.files:
        path, f = features(spec, sr, fr, crepe)
        torch.manual_seed(args.seed)
        out = render_whole(net, torch.from_numpy(f["f0_hz"]), torch.from_numpy(f["loudness_db"]),
                           torch.from_numpy(f["confidence"]), window_frames=window)
        m = whole_file_loudness(out["audio"], torch.from_numpy(f["loudness_db"]), sr, fr)
        row = {"file": path, "seconds": round(len(f["f0_hz"]) / fr, 2), "loudness_l1_db": round(m["loudness_l1_db"], 2),
               "block_l1_db": [round(b, 1) for b in m["block_l1_db"]], "silent_frames": m["silent_frames"],
               "silent_loudness_db": round(m["silent_loudness_db"], 1) if m["silent_frames"] else None}
        results["files"].append(row)
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
