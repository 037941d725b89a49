"""Figures for token-LM runs: token images (reference vs generated), train vs held-out CE over steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tokens_figure(reference: torch.Tensor, runs: Mapping[str, torch.Tensor], item: int, prompt_frames: int):
    """Rows: the reference ``[K, T]`` then each generated run's item ``item``; a line marks the end of the prompt.
    Cells where a generation equals the reference are drawn light (agreement is visible at a glance)."""
    plt = _plt()
    ref = reference.numpy()
    rows = [("reference", ref, None)] + [(name, codes[item].numpy(), codes[item].numpy() == ref) for name, codes in runs.items()]
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 1.2 + 1.0 * len(rows)), squeeze=False)
    for ax, (name, codes, same) in zip(axes[:, 0], rows):
        ax.imshow(codes, aspect="auto", interpolation="nearest", cmap="viridis")
        if same is not None:
            ax.imshow(np.where(same, 1.0, np.nan), aspect="auto", interpolation="nearest", cmap="gray", alpha=0.6,
                      vmin=0, vmax=1)
            gen = same[:, prompt_frames:]
            name = f"{name}  token acc after prompt {gen.mean() if gen.size else float('nan'):.2f}"
        ax.axvline(prompt_frames - 0.5, color="red", lw=1)
        ax.set_ylabel("cb")
        ax.set_title(name, fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("frame")
    fig.tight_layout()
    return fig


def ce_curves_figure(history: Sequence[Mapping[str, float]], unigram_ce: float | None = None):
    """Train CE (fixed training crops) and held-out CE (probe batch) on one plot, with the continuation accuracy
    at each probe temperature on a second axis."""
    plt = _plt()
    steps = [h["step"] for h in history]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
    for key, label in (("train_ce", "train CE (fixed train crops)"), ("ce", "held-out CE")):
        vals = [h.get(key, np.nan) for h in history]
        if not all(np.isnan(vals)):
            ax.plot(steps, vals, marker=".", label=label)
    if unigram_ce is not None:
        ax.axhline(unigram_ce, color="gray", ls="--", label="unigram baseline")
    ax.set_xlabel("step")
    ax.set_ylabel("CE (nats)")
    ax.legend(fontsize=8)
    for key in sorted({k for h in history for k in h if k.startswith("cont_acc_")}):
        ax2.plot(steps, [h.get(key, np.nan) for h in history], marker=".", label=key)
    ax2.set_xlabel("step")
    ax2.set_ylabel("continuation token accuracy")
    ax2.set_ylim(-0.02, 1.02)
    if ax2.lines:
        ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig
