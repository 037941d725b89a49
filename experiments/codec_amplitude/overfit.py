"""Controlled single-batch A/B of the decoder output modes (a budget at which SNR can rise on 2 CPU cores).

4 fixed 0.5 s speech crops (flite rms voice, data/codec_corpus), a small causal SEANet (n_filters 8, 8-5-4-2,
dimension 32) + 8 x 64 RVQ (no quantizer dropout), waveform L1 + multi-scale mel + commitment, Adam 1e-3
(betas 0.5, 0.9), same seed and data for every variant; only the output mode (and the RMS loss) differ.

usage: python experiments/codec_amplitude/overfit.py [--steps 500] [--out experiments/codec_amplitude]
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import soundfile as sf
import torch

from audiolab.metrics.waveform import waveform_metrics
from audiolab.models.codec.module import CodecModule
from audiolab.models.codec.plots import probe_curves_figure

VARIANTS = {"unbounded": ("unbounded", 0.0), "tanh_scale": ("tanh_scale", 0.0), "tanh_scale_rms15": ("tanh_scale", 15.0),
            "tanh": ("tanh", 0.0)}


def batch() -> torch.Tensor:
    files = sorted(glob.glob("data/codec_corpus/speech/flite_rms/*.wav"))[:4]
    if len(files) < 4:
        raise SystemExit("needs data/codec_corpus (run `make data`)")
    return torch.stack([torch.from_numpy(sf.read(f, dtype="float32")[0][8000:16000]) for f in files])


def run(output: str, rms_weight: float, x: torch.Tensor, steps: int) -> list[dict]:
    torch.manual_seed(0)
    m = CodecModule(sample_rate=16000, codec={"output": output, "seanet": {"dimension": 32, "n_filters": 8,
                    "ratios": [8, 5, 4, 2], "lstm": 0, "causal": True},
                    "quantizer": {"n_q": 8, "bins": 64, "threshold_ema_dead_code": 0.05, "quantizer_dropout": False}},
                    loss={"mel": {"window_sizes": [64, 128, 256, 512, 1024]}, "rms": {"weight": rms_weight}},
                    optim={"optimizer": {"_target_": "torch.optim.Adam", "_partial_": True}})
    opt = torch.optim.Adam(m.codec.parameters(), 1e-3, betas=(0.5, 0.9))
    hist = []
    for step in range(steps + 1):
        out = m.codec(x)
        terms = m.reconstruction_terms(out["audio"], x)
        loss = terms["l1"] + terms["mel"] + rms_weight * terms.get("rms", 0.0) + out["commitment"]
        if step % 25 == 0:
            w = waveform_metrics(out["audio"].detach(), x, 16000, spectral=False)
            row = {"step": step, **{k: float(w[k]) for k in ("snr_db", "si_snr_db", "rms_ratio", "output_range", "output_peak")}}
            if m.codec.output_scale is not None:
                row["output_scale"] = float(m.codec.output_scale)
            hist.append(row)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return hist


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = batch()
    runs = {}
    for name, (output, rms_weight) in VARIANTS.items():
        runs[name] = run(output, rms_weight, x, args.steps)
        last = runs[name][-1]
        print(name, {k: round(v, 3) for k, v in last.items()})
    (args.out / "overfit.json").write_text(json.dumps(runs, indent=1))
    fig = probe_curves_figure([], runs=runs, keys=("snr_db", "si_snr_db", "rms_ratio", "output_range"))
    fig.savefig(args.out / "overfit_curves.png", dpi=90)


if __name__ == "__main__":
    main()
