"""Summarize DDSP runs into a markdown table and plots.

usage: python experiments/ddsp_backbones/summarize.py RUN_DIR [RUN_DIR ...] --out experiments/ddsp_backbones [--sweep]
Each RUN_DIR is a training run folder (probe_summary.json, csv/metrics.csv, resolved_config.yaml, test metrics).
``--sweep``: one row per trial with the swept transformer settings instead of the backbone table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import yaml


def _csv_rows(run: Path) -> list[dict[str, str]]:
    path = run / "csv" / "metrics.csv"
    return list(csv.DictReader(path.open())) if path.exists() else []


def _last(rows: list[dict[str, str]], key: str) -> float:
    vals = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    return vals[-1] if vals else math.nan


def summarize(run: Path) -> dict:
    probe = json.loads((run / "probe_summary.json").read_text())
    cfg = yaml.safe_load((run / "resolved_config.yaml").read_text())
    rows = _csv_rows(run)
    hist = probe["history"]
    best = next((h for h in hist if h["step"] == probe["best_step"]), hist[-1])
    dec, loss = cfg["model"]["decoder"], cfg["model"]["loss"]
    steps = hist[-1]["step"] - hist[0]["step"]
    seconds = hist[-1].get("time_s", math.nan) - hist[0].get("time_s", 0.0)
    test = json.loads((run / "test_metrics.json").read_text()) if (run / "test_metrics.json").exists() else {}
    return {
        "run": run.name,
        "backbone": cfg["model"]["decoder"]["backbone"],
        "steps": hist[-1]["step"],
        "probe_start": hist[0]["spectral"],
        "probe_best": probe["best_value"],
        "probe_best_step": probe["best_step"],
        "probe_final": hist[-1]["spectral"],
        "probe_loudness_l1_db_final": hist[-1].get("loudness_l1_db", math.nan),
        "harmonic_entropy_final": hist[-1].get("harmonic_entropy", math.nan),
        "top_harmonic_concentration_final": hist[-1].get("top_harmonic_concentration", math.nan),
        "probe_whole_loudness_l1_db_best": best.get("whole_loudness_l1_db", math.nan),
        "probe_whole_worst_block_l1_db_best": best.get("whole_worst_block_l1_db", math.nan),
        "probe_silent_loudness_db_best": best.get("silent_loudness_db", math.nan),
        "d_model": dec.get("d_model"), "layers": dec.get("layers"), "positional": dec.get("positional"),
        "attention_window": dec.get("attention_window"), "lr": cfg["model"]["optim"]["optimizer"]["lr"],
        "loudness_loss": "none" if loss["loudness"]["type"] == "none" else f"{loss['loudness']['type']} {loss['loudness']['weight']:g}",
        "s_per_step": seconds / steps if steps else math.nan,
        "wall_minutes": seconds / 60,
        "test_spectral": test.get("test/spectral", _last(rows, "test/spectral")),
        "test_loudness_l1_db": test.get("test/loudness_l1_db", _last(rows, "test/loudness_l1_db")),
        "test_f0_l1_cents": test.get("test/f0_l1_cents", _last(rows, "test/f0_l1_cents")),
        "test_whole_loudness_l1_db": test.get("test/whole_loudness_l1_db", math.nan),
        "test_whole_worst_block_l1_db": test.get("test/whole_worst_block_l1_db", math.nan),
        "test_silent_loudness_db": test.get("test/silent_loudness_db", math.nan),
        "test_whole_f0_l1_cents": test.get("test/whole_f0_l1_cents", math.nan),
        "history": hist,
    }


def plot(summaries: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    backbones = [s["backbone"] for s in summaries]
    key = "backbone" if len(set(backbones)) == len(backbones) else "run"  # runs of one backbone: label by run name
    for s in summaries:
        s = dict(s, backbone=s[key])
        h = s["history"]
        steps = [x["step"] for x in h]
        axes[0].plot(steps, [x["spectral"] for x in h], label=s["backbone"])
        axes[1].plot(steps, [x.get("top_harmonic_concentration", math.nan) for x in h], label=s["backbone"])
        axes[2].plot(steps, [x.get("loudness_l1_db", math.nan) for x in h], label=s["backbone"])
    axes[0].set_title("probe/spectral (fixed val batch)")
    axes[1].set_title("probe/top_harmonic_concentration (1 = collapse)")
    axes[2].set_title("probe/loudness_l1_db")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend()
    fig.savefig(out / "probe_curves.png", dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--sweep", action="store_true", help="a table of sweep trials (results_sweep.md/json)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summaries = [summarize(r) for r in args.runs]
    if args.sweep:
        cols = ["run", "d_model", "layers", "positional", "attention_window", "lr", "loudness_loss", "steps", "probe_best",
                "probe_best_step", "probe_whole_loudness_l1_db_best", "probe_whole_worst_block_l1_db_best",
                "probe_loudness_l1_db_final", "s_per_step"]
        summaries.sort(key=lambda s: s["probe_best"])
        suffix = "_sweep"
    else:
        plot(summaries, args.out)
        cols = ["run", "backbone", "steps", "probe_start", "probe_best", "probe_best_step", "probe_final",
                "probe_whole_loudness_l1_db_best", "probe_whole_worst_block_l1_db_best", "harmonic_entropy_final",
                "top_harmonic_concentration_final", "s_per_step", "wall_minutes", "test_spectral", "test_loudness_l1_db",
                "test_whole_loudness_l1_db", "test_whole_worst_block_l1_db", "test_silent_loudness_db", "test_f0_l1_cents",
                "test_whole_f0_l1_cents"]
        suffix = ""
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s in summaries:
        lines.append("| " + " | ".join(f"{s[c]:.4g}" if isinstance(s[c], float) else str(s[c]) for c in cols) + " |")
    table = "\n".join(lines)
    (args.out / f"results{suffix}.md").write_text(table + "\n")
    (args.out / f"results{suffix}.json").write_text(
        json.dumps([{k: v for k, v in s.items() if k != "history"} for s in summaries], indent=2))
    print(table)


if __name__ == "__main__":
    main()
