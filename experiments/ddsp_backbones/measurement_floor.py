"""Measurement floor of the resynthesis metrics: score the *target* audio itself as if it were the output.

f0 L1 compares CREPE (tiny by default) on the output against the CREPE-full targets, so even perfect audio scores
> 0 cents. Scored twice, as `test` / `evaluate` score: on the 2 s windows and on the whole files.
usage: python experiments/ddsp_backbones/measurement_floor.py [--split test] [--crepe full] [--root data/ddsp_instruments/cello]
"""

from __future__ import annotations

import argparse
import json

import torch

from audiolab.models.ddsp.data import DDSPDataModule
from audiolab.models.ddsp.metrics import f0_l1_cents, loudness_l1_db


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="test", choices=["val", "test"])
    ap.add_argument("--crepe", default="tiny")
    ap.add_argument("--example-seconds", type=float, default=2.0)
    ap.add_argument("--root", default="embedded", help="data.root of the run (default: the embedded violin)")
    args = ap.parse_args()
    dm = DDSPDataModule(root=args.root, cache_dir=".cache/audiolab/ddsp", example_seconds=args.example_seconds, batch_size=8)
    dm.prepare_data()
    dm.setup("test")
    loader = dm.test_dataloader() if args.split == "test" else dm.val_dataloader()
    sums = torch.zeros(4, dtype=torch.float64)
    ld = []
    for batch in loader:
        f0 = f0_l1_cents(batch["audio"], batch["f0_hz"], batch["f0_confidence"], 16000, 64, model=args.crepe)
        sums += torch.tensor([f0["f0_cents_sum"], f0["f0_inliers"], f0["f0_outliers"], f0["f0_frames"]], dtype=torch.float64)
        ld.append(float(loudness_l1_db(batch["audio"], batch["loudness_db"], 16000, 250)))
    whole = torch.zeros(4, dtype=torch.float64)
    for src in dm.whole_sources(args.split):
        f0 = f0_l1_cents(src["audio"][None], src["f0_hz"][None], src["confidence"][None], 16000, 64, model=args.crepe)
        whole += torch.tensor([f0["f0_cents_sum"], f0["f0_inliers"], f0["f0_outliers"], f0["f0_frames"]], dtype=torch.float64)
    out = {"root": args.root, "split": args.split, "crepe_on_output": args.crepe,
           "f0_l1_cents_target_vs_itself": float(sums[0] / sums[1]), "f0_outlier_ratio": float(sums[2] / sums[3]),
           "whole_f0_l1_cents_target_vs_itself": float(whole[0] / whole[1]),
           "whole_f0_outlier_ratio": float(whole[2] / whole[3]),
           "loudness_l1_db_target_vs_itself": sum(ld) / len(ld)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
