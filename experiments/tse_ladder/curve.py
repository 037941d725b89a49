"""SI-SDR training curve of one TSE run (from its csv/metrics.csv) as a PNG, plus the budget it had.

usage: python experiments/tse_ladder/curve.py RUN_DIR --out experiments/tse_ladder/rung1_curve.png

Panels: (1) SI-SDRi in dB against optimizer steps: the probe (6 fixed validation rows, every 100 steps) and the
full validation set (every ``val_check_interval``), with 0 dB (= returning the mixture) marked; (2) the training
SI-SDR of the estimates (``train/si_sdr``, logged every 10 steps) averaged over 10 logged points (100 steps).
The budget (last step, wall time from the probe history, which continues across resumes) goes to stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path


def _series(rows: list[dict[str, str]], key: str) -> tuple[list[int], list[float]]:
    pts: dict[int, float] = {}
    for r in rows:
        v = r.get(key, "")
        if v not in ("", None) and r.get("step", "") not in ("", None):
            pts[int(float(r["step"]))] = float(v)  # a resumed run rewrites rows after its checkpoint: last wins
    steps = sorted(pts)
    return steps, [pts[s] for s in steps]


def _smooth(steps: list[int], vals: list[float], width: int) -> tuple[list[int], list[float]]:
    out_s, out_v = [], []
    for i in range(0, len(vals) - width + 1, max(1, width // 2)):
        out_s.append(steps[i + width - 1])
        out_v.append(sum(vals[i : i + width]) / width)
    return out_s, out_v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    rows = list(csv.DictReader((a.run / "csv" / "metrics.csv").open()))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, style in (("probe/si_sdri", ".-"), ("val/si_sdri", "o-")):
        s, v = _series(rows, key)
        axes[0].plot(s, v, style, label=key)
    axes[0].axhline(0.0, color="k", lw=0.6, ls="--")
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel("SI-SDRi (dB)")
    axes[0].set_title("held-out speakers (val split)")
    axes[0].legend(fontsize=8)
    s, v = _series(rows, "train/si_sdr")
    if len(v) >= 10:
        s, v = _smooth(s, v, 10)
    axes[1].plot(s, v, label="train/si_sdr (mean of 10 logged points = 100 steps)")
    axes[1].set_xlabel("optimizer step")
    axes[1].set_ylabel("SI-SDR (dB)")
    axes[1].set_title("training crops (target-present rows)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    probe = json.loads((a.run / "probe_summary.json").read_text())
    hist = probe["history"]
    last = max((int(float(r["step"])) for r in rows if r.get("step")), default=0)
    wall = hist[-1].get("time_s", math.nan) / 3600 if hist else math.nan
    print(json.dumps({"last_step": last, "probe_wall_hours": round(wall, 2), "probe_best": probe["best_value"],
                      "probe_best_step": probe["best_step"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
