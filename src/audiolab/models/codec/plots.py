"""Figures for codec runs: input/output waveform overlay and RMS-ratio / SNR curves over training steps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def waveform_figure(target: np.ndarray, output: np.ndarray, sample_rate: int, title: str = ""):
    """Overlay of input and decoded waveform (full clip, plus a 20 ms zoom at the loudest point)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(len(target)) / sample_rate
    fig, axes = plt.subplots(2, 1, figsize=(9, 4.5))
    for ax in axes:
        ax.plot(t, target, lw=0.6, label="input")
        ax.plot(t, output, lw=0.6, alpha=0.8, label="output")
        ax.set_xlabel("time (s)")
    centre = int(np.argmax(np.abs(target)))
    half = int(0.01 * sample_rate)
    lo, hi = max(0, centre - half), min(len(target), centre + half)
    axes[1].set_xlim(t[lo], t[max(lo, hi - 1)])
    axes[0].legend(loc="upper right")
    rms_in = float(np.sqrt(np.mean(target**2)) + 1e-12)
    rms_out = float(np.sqrt(np.mean(output**2)))
    axes[0].set_title(f"{title}  rms ratio {rms_out / rms_in:.3f}  peak {np.abs(output).max():.3f}")
    fig.tight_layout()
    return fig


def probe_curves_figure(history: Sequence[dict], runs: dict[str, Sequence[dict]] | None = None,
                        keys: Sequence[str] = ("snr_db", "si_snr_db", "rms_ratio", "output_peak")):
    """One panel per metric against training steps; ``runs`` overlays several named histories (A/B plots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = dict(runs) if runs else {"run": history}
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2))
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, keys):
        for name, hist in runs.items():
            steps = [h["step"] for h in hist if key in h]
            vals = [h[key] for h in hist if key in h]
            ax.plot(steps, vals, marker=".", label=name)
        if key == "rms_ratio":
            ax.axhline(1.0, color="k", lw=0.5, ls="--")
        if key == "snr_db":
            ax.axhline(15.0, color="r", lw=0.5, ls="--")
        ax.set_title(key)
        ax.set_xlabel("step")
    if len(runs) > 1:
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
