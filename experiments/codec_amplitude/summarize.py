"""Summarize the codec amplitude A/B runs into results.md / results.json and probe-curve plots.

usage: python experiments/codec_amplitude/summarize.py logs/codec_amplitude/runs/{unbounded,tanh_scale,...}
       [--out experiments/codec_amplitude]
Each run folder holds probe_summary.json (probe history every 50 steps on 8 fixed validation crops),
test_metrics.json and resolved_config.yaml (written by audiolab.train).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import yaml

from audiolab.models.codec.plots import probe_curves_figure

CURVE_KEYS = ("snr_db", "si_snr_db", "rms_ratio", "output_range", "mel_distance")


def summarize(run: Path, crops_per_epoch: int) -> dict:
    probe = json.loads((run / "probe_summary.json").read_text())
    test = json.loads((run / "test_metrics.json").read_text()) if (run / "test_metrics.json").exists() else {}
    cfg = yaml.safe_load((run / "resolved_config.yaml").read_text())
    hist = probe["history"]
    first_15 = next((h["step"] for h in hist if h.get("snr_db", -math.inf) > 15.0), None)
    steps = hist[-1]["step"]
    bs = cfg["data"]["batch_size"]
    return {
        "run": run.name, "output": cfg["model"]["codec"]["output"], "rms_weight": cfg["model"]["loss"]["rms"]["weight"],
        "steps": steps, "batch_size": bs, "audio_seconds_seen": steps * bs * cfg["data"]["crop_seconds"],
        "epochs": steps * bs / crops_per_epoch if crops_per_epoch else None,
        "final": {k: hist[-1].get(k) for k in (*CURVE_KEYS, "output_peak", "output_scale", "codebook_usage")},
        "best_snr_db": max(h["snr_db"] for h in hist), "first_step_snr_above_15db": first_15,
        "test": {k: v for k, v in test.items() if k != "checkpoint"}, "tested_checkpoint": test.get("checkpoint"),
        "history": hist,
    }


def _fmt(x, nd=2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    # data/codec_corpus: 463 training files, 1,848 s usable at crop_seconds=1 (the progress bar's 231 steps x 8)
    parser.add_argument("--crops-per-epoch", type=int, default=1848)
    args = parser.parse_args()
    rows = [summarize(r, args.crops_per_epoch) for r in args.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "history"} for r in rows], indent=2))
    lines = ["| variant | steps | epochs | probe SNR dB (final / best) | probe SI-SNR dB | probe RMS ratio | output range | "
             "probe mel dist. | SNR > 15 dB at step | test SNR dB | test SI-SNR dB | test RMS ratio | test mel dist. | "
             "test peak | test codebook usage |",
             "|" + "---|" * 15]
    for r in rows:
        f, t = r["final"], r["test"]
        lines.append(
            f"| {r['run']} | {r['steps']} | {_fmt(r['epochs'], 1)} | {_fmt(f['snr_db'])} / {_fmt(r['best_snr_db'])} | "
            f"{_fmt(f['si_snr_db'])} | {_fmt(f['rms_ratio'], 3)} | {_fmt(f['output_range'], 3)} | {_fmt(f['mel_distance'])} | "
            f"{r['first_step_snr_above_15db'] or 'never'} | {_fmt(t.get('test/snr_db'))} | {_fmt(t.get('test/si_snr_db'))} | "
            f"{_fmt(t.get('test/rms_ratio'), 3)} | {_fmt(t.get('test/mel_distance'))} | {_fmt(t.get('test/output_peak'), 3)} | "
            f"{_fmt(t.get('test/codebook_usage'), 3)} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    fig = probe_curves_figure([], runs={r["run"]: r["history"] for r in rows}, keys=CURVE_KEYS)
    fig.savefig(args.out / "probe_curves.png", dpi=90)


if __name__ == "__main__":
    main()
