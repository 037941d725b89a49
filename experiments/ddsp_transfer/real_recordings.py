"""Timbre transfer on real recordings, with and without ``--auto-adjust`` (magenta colab style).

    python experiments/ddsp_transfer/real_recordings.py --ckpt RUN_OR_CKPT [FILES ...] [--json OUT] [--out-dir DIR]

Default files: the real flute and violin recordings of Debian's ``lmms-common`` (installed by ``make data``). For
each file and mode (plain resynthesis, ``--auto-adjust``) it runs the same steps as ``python -m
audiolab.models.ddsp.infer`` and reports, over the note-on frames of the input (magenta's note detection):

* ``input_db`` / ``control_db`` / ``output_db``: mean A-weighted loudness of the input, of the loudness the model was
  given (after the adjustment), of the output; ``train_db``: the training set's note-on mean (stored statistics);
* ``output_vs_control_l1_db``: does the output follow the loudness it was asked for;
* ``f0_l1_cents``: CREPE on the output vs the f0 the model was given (frames with input confidence >= 0.85);
* ``octaves``: the shift auto-adjust chose.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from audiolab.audio.features import a_weighted_loudness
from audiolab.audio.io import load_audio, save_audio
from audiolab.audio.pitch import cents_between, estimate_f0
from audiolab.data.sources import source_files
from audiolab.models.ddsp.data import compute_features, pitch_sidecar_path, write_pitch_sidecar
from audiolab.models.ddsp.infer import load_ddsp
from audiolab.models.ddsp.render import render_whole, window_frames_from_config
from audiolab.models.ddsp.transfer import auto_adjust, detect_notes, read_dataset_statistics
from audiolab.utils.checkpoint import resolve_checkpoint


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True)
    p.add_argument("files", nargs="*", type=Path, help="default: the lmms-common flute and violin (data source "
                   "'lmms_instruments' of audiolab.data.sources)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--out-dir", type=Path, default=None, help="write the rendered audio here")
    p.add_argument("--f0-crepe", default=None, help="CREPE model for the output f0 (default: the checkpoint's)")
    p.add_argument("--pitch-cache", type=Path, default=None, help="keep the input's CREPE f0 here (a pitch sidecar "
                   "per file: CREPE full takes minutes per second of audio on a loaded 2-core CPU)")
    p.add_argument("--features-only", action="store_true", help="only fill --pitch-cache, render nothing")
    args = p.parse_args(argv)
    args.files = args.files or source_files("lmms_instruments")
    torch.set_num_threads(1)
    net, cfg = load_ddsp(args.ckpt)
    stats = read_dataset_statistics(resolve_checkpoint(args.ckpt))
    if stats is None:
        raise SystemExit(f"{args.ckpt}: no dataset statistics in the checkpoint")
    sr, fr, hop = net.config.sample_rate, net.config.frame_rate, net.config.hop_length
    crepe = str(cfg.data.crepe_model)
    f0_crepe = args.f0_crepe or crepe
    rows = []
    for path in args.files:
        torch.manual_seed(0)
        np.random.seed(0)
        audio = load_audio(path, sr)
        sidecar = None
        if args.pitch_cache is not None:
            sidecar = pitch_sidecar_path(args.pitch_cache, path.stem, crepe)
            if not sidecar.is_file():
                write_pitch_sidecar(sidecar, audio, sr, fr, crepe, device="cpu")
        if args.features_only:
            print(f"{path.name}: pitch sidecar {sidecar}", flush=True)
            continue
        feats = compute_features(audio, sr, fr, crepe_model=crepe, device="cpu", pitch_sidecar=sidecar)
        on, _ = detect_notes(feats["loudness_db"], feats["confidence"])
        confident = feats["confidence"] >= 0.85
        for mode in ("plain", "auto_adjust"):
            f0, ld, octaves = feats["f0_hz"], feats["loudness_db"], 0.0
            if mode == "auto_adjust":
                adj = auto_adjust(feats["f0_hz"], feats["loudness_db"], feats["confidence"], stats)
                f0, ld, octaves = adj["f0_hz"], adj["loudness_db"], adj["octaves"]
            torch.manual_seed(0)
            out = render_whole(net, torch.from_numpy(f0), torch.from_numpy(ld), torch.from_numpy(feats["confidence"]),
                               window_frames=window_frames_from_config(cfg))
            y = out["audio"]
            if args.out_dir:
                save_audio(args.out_dir / f"{path.stem}_{mode}.wav", y, sr)
            ld_out = a_weighted_loudness(y[None], sample_rate=sr, frame_rate=fr)[0, : len(ld)].numpy()
            f0_out, _ = estimate_f0(y, sr, hop, model=f0_crepe, viterbi=True, device="cpu")
            n = min(len(f0_out), len(f0))
            m = confident[:n] & (f0[:n] > 0) & (f0_out[:n].numpy() > 0)
            cents = cents_between(f0_out[:n][torch.from_numpy(m)].double(), torch.from_numpy(f0[:n][m]).double()).abs()
            row = {
                "file": path.name, "mode": mode, "seconds": round(len(ld) / fr, 2), "octaves": octaves,
                "input_db": round(float(feats["loudness_db"][on].mean()), 1),
                "control_db": round(float(ld[on].mean()), 1),
                "output_db": round(float(ld_out[on].mean()), 1),
                "train_db": round(float(stats["mean_loudness_db_note"]), 1),
                "output_vs_control_l1_db": round(float(np.abs(ld_out[on] - ld[on]).mean()), 2),
                "f0_l1_cents": round(float(cents[cents <= 1200].mean()), 1),
                "f0_crepe": f0_crepe, "note_frames": int(on.sum()),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": str(resolve_checkpoint(args.ckpt)), "rows": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
