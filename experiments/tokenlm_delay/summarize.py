"""Summarize the token-LM study runs (logs/tokenlm_study/runs/*) into results.json, results.md and plots.

usage: python experiments/tokenlm_delay/summarize.py [--runs logs/tokenlm_study/runs] [--no-eval]

Per-material numbers (MusicGen vs Dia delays on melodic vs percussive held-out files) come from
``audiolab.evaluate`` on each run's probe-best checkpoint with ``data.include_tags=[melodic]`` / ``[percussive]``
on the validation split (the filter is applied after the split, so both are subsets of the same held-out files).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _csv_rows(run: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(run.rglob("metrics.csv")):
        with open(path) as f:
            rows.extend(csv.DictReader(f))
    return rows


def _series(rows: list[dict[str, str]], key: str) -> list[tuple[int, float]]:
    out = []
    for r in rows:
        v = r.get(key, "")
        if v not in ("", None):
            out.append((int(float(r.get("step", 0) or 0)), float(v)))
    return out


def _first_step(hist: list[dict], key: str, threshold: float) -> int | None:
    return next((h["step"] for h in hist if h.get(key, -1) >= threshold), None)


def summarize_run(run: Path) -> dict:
    probe = json.loads((run / "probe_summary.json").read_text())
    hist = probe["history"]
    rows = _csv_rows(run)
    test = json.loads((run / "test_metrics.json").read_text()) if (run / "test_metrics.json").exists() else {}
    first = {k: v for k, v in _series_first(rows).items()}
    clip = [v for _, v in _series(rows, "train/clipped")]
    grad = [v for _, v in _series(rows, "train/grad_norm")]
    train_loss = _series(rows, "train/ce")
    val = _series(rows, "val/ce")
    ce = [(h["step"], h["ce"]) for h in hist]
    best_ce = min(ce, key=lambda x: x[1])
    rose = len(ce) > 2 and ce[1][1] > ce[0][1] - 1e-3 and best_ce[0] <= ce[1][0]
    return {
        "name": run.name, "steps": hist[-1]["step"], "fit_seconds": hist[-1]["time_s"],
        "train_files": first.get("data/train_files"), "train_frames": first.get("data/train_frames"),
        "unigram_ce": first.get("data/unigram_ce"),
        "coverage": [first.get(f"data/coverage_cb{k}") for k in range(4)],
        "heldout_ce_first": ce[0][1], "heldout_ce_final": ce[-1][1], "heldout_ce_best": best_ce[1],
        "heldout_ce_best_step": best_ce[0], "heldout_ce_rises_from_start": bool(rose),
        "train_ce_final": hist[-1].get("train_ce"), "train_loss_final": train_loss[-1][1] if train_loss else None,
        "val_ce_final": val[-1][1] if val else None,
        "cont_acc_t0_final": hist[-1].get("cont_acc_t0"), "cont_acc_t0_best": max(h.get("cont_acc_t0", 0) for h in hist),
        "cont_acc_t05_final": hist[-1].get("cont_acc_t05"), "cont_acc_t1_final": hist[-1].get("cont_acc_t1"),
        "entropy_first": hist[0].get("entropy"), "entropy_final": hist[-1].get("entropy"),
        "gen_coverage_t1_final": hist[-1].get("gen_coverage_t1"),
        "clip_fraction": sum(clip) / len(clip) if clip else None,
        "grad_norm_median": sorted(grad)[len(grad) // 2] if grad else None,
        "test": {k: v for k, v in test.items() if k.startswith("test/ce") or k in ("test/acc", "checkpoint")},
        "history": hist,
    }


def _series_first(rows: list[dict[str, str]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        for k, v in r.items():
            if k.startswith("data/") and v not in ("", None) and k not in out:
                out[k] = float(v)
    return out


def overfit_row(run: Path) -> dict:
    hist = json.loads((run / "probe_summary.json").read_text())["history"]
    return {"name": run.name, "probe_every": hist[1]["step"] - hist[0]["step"] if len(hist) > 1 else None,
            "steps_run": hist[-1]["step"], "fit_seconds": hist[-1]["time_s"],
            "t0_exact_step": _first_step(hist, "cont_acc_t0", 1.0),
            "t05_exact_step": _first_step(hist, "cont_acc_t05", 1.0),
            "t1_exact_step": _first_step(hist, "cont_acc_t1", 1.0),
            "t05_99_step": _first_step(hist, "cont_acc_t05", 0.99), "t1_99_step": _first_step(hist, "cont_acc_t1", 0.99),
            "t1_90_step": _first_step(hist, "cont_acc_t1", 0.90),
            "history": [{k: h.get(k) for k in ("step", "ce", "cont_acc_t0", "cont_acc_t05", "cont_acc_t1", "entropy")}
                        for h in hist]}


def per_material(run: Path, out_root: Path) -> dict:
    from audiolab.evaluate import evaluate

    ckpt = run / "checkpoints" / "probe_best.ckpt"
    res = {}
    for tag in ("melodic", "percussive"):
        r = evaluate(str(ckpt), out_root / f"{run.name}_{tag}", split="val", write_audio=False,
                     overrides=[f"data.include_tags=[{tag}]"], accelerator="cpu")
        res[tag] = {k.replace("test/", ""): v for k, v in r["metrics"].items() if k.startswith("test/ce")}
    return res


def plots(runs: dict[str, dict], over: dict | None, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, names, title in ((axes[0], ["l1", "l10", "l40"], "data-size ladder"),
                             (axes[1], ["l40", "l40_first"], "crop bug: random vs first window"),
                             (axes[2], ["l40", "l40_dia"], "MusicGen vs Dia delays")):
        for i, name in enumerate(n for n in names if n in runs):
            hist = runs[name]["history"]
            color = f"C{i}"
            ax.plot([h["step"] for h in hist], [h["ce"] for h in hist], color=color, label=f"{name} held-out")
            ax.plot([h["step"] for h in hist], [h.get("train_ce", math.nan) for h in hist], color=color, ls="--",
                    label=f"{name} train")
            if runs[name].get("unigram_ce"):
                ax.axhline(runs[name]["unigram_ce"], color=color, ls=":", lw=1)
        ax.set_title(title + " (dotted: unigram)")
        ax.set_xlabel("step")
        ax.set_ylabel("CE (nats)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "ce_curves.png", dpi=90)
    plt.close(fig)
    if over:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        hist = over["history"]
        for key in ("cont_acc_t0", "cont_acc_t05", "cont_acc_t1"):
            ax.plot([h["step"] for h in hist], [h[key] for h in hist], marker=".", label=key)
        ax.set_xlabel("step")
        ax.set_ylabel("continuation token accuracy")
        ax.set_title("one-clip overfit (7 s, batch 1)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "overfit_accuracy.png", dpi=90)
        plt.close(fig)


def markdown(res: dict) -> str:
    lines = []
    if res.get("overfit"):
        o = res["overfit"]
        lines += ["| overfit | t0 exact | t0.5 exact | t1 ≥ 0.90 | t1 ≥ 0.99 | t1 exact | steps run | fit s |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {o['name']} | {o['t0_exact_step']} | {o['t05_exact_step']} | {o['t1_90_step']} | "
                  f"{o['t1_99_step']} | {o['t1_exact_step']} | {o['steps_run']} | {o['fit_seconds']:.0f} |", ""]
    lines += ["| run | train files | unigram CE | held-out CE first / best (step) / final | rises from start | "
              "train CE (fixed crops) | train loss | test CE | t0 acc | t1 acc | entropy first / final | clip frac | fit s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in res["runs"].items():
        t = r["test"].get("test/ce")
        lines.append(
            f"| {name} | {r['train_files']:.0f} | {r['unigram_ce']:.3f} | {r['heldout_ce_first']:.3f} / "
            f"{r['heldout_ce_best']:.3f} ({r['heldout_ce_best_step']}) / {r['heldout_ce_final']:.3f} | "
            f"{'yes' if r['heldout_ce_rises_from_start'] else 'no'} | {r['train_ce_final']:.3f} | "
            f"{r['train_loss_final']:.3f} | {'' if t is None else f'{t:.3f}'} | {r['cont_acc_t0_final']:.3f} | "
            f"{r['cont_acc_t1_final']:.3f} | {r['entropy_first']:.2f} / {r['entropy_final']:.2f} | "
            f"{r['clip_fraction']:.2f} | {r['fit_seconds']:.0f} |")
    if res.get("materials"):
        lines += ["", "| run | material | CE | CE cb0 | cb1 | cb2 | cb3 |", "|---|---|---|---|---|---|---|"]
        for name, mats in res["materials"].items():
            for tag, m in mats.items():
                lines.append(f"| {name} | {tag} | {m['ce']:.3f} | " + " | ".join(f"{m[f'ce_cb{k}']:.3f}" for k in range(4)) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", default="logs/tokenlm_study/runs")
    p.add_argument("--no-eval", action="store_true")
    a = p.parse_args()
    root = Path(a.runs)
    res: dict = {"runs": {}, "overfit": None, "materials": {}}
    if (root / "overfit" / "probe_summary.json").exists():
        res["overfit"] = overfit_row(root / "overfit")
    for name in ("l1", "l10", "l40", "l40_first", "l40_dia"):
        if (root / name / "probe_summary.json").exists():
            res["runs"][name] = summarize_run(root / name)
    cached = root.parent / "materials.json"
    if not a.no_eval:
        for name in ("l40", "l40_dia"):
            if (root / name / "checkpoints" / "probe_best.ckpt").exists():
                res["materials"][name] = per_material(root / name, root.parent / "eval")
        cached.write_text(json.dumps(res["materials"], indent=2))
    elif cached.exists():  # the last evaluation's numbers
        res["materials"] = json.loads(cached.read_text())
    plots(res["runs"], res["overfit"], HERE)
    slim = {**res, "runs": {k: {kk: vv for kk, vv in v.items() if kk != "history"} for k, v in res["runs"].items()}}
    (HERE / "results.json").write_text(json.dumps(slim, indent=2) + "\n")
    md = markdown(res)
    (HERE / "results.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
