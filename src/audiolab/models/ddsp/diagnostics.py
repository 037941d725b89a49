"""Collapse and drift indicators for DDSP controls, and a picture of them over time."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

EPS = 1e-8


@torch.no_grad()
def control_stats(controls: dict[str, Tensor]) -> dict[str, float]:
    """Scalar diagnostics over a batch.

    - ``harmonic_entropy``: mean entropy (nats) of the normalized harmonic distribution; ln K = uniform,
      0 = all energy in one harmonic (collapse to a sine).
    - ``top_harmonic_concentration``: mean share of the largest harmonic (1.0 = collapsed).
    - ``amplitude_min/max/mean``: global amplitude range; ``noise_gain_min/max/mean``: per-frame mean noise magnitude.
    """
    hd = controls["harmonic_distribution"].float()
    total = hd.sum(-1, keepdim=True)
    voiced = total.squeeze(-1) > EPS
    p = hd / total.clamp_min(EPS)
    entropy = -(p * (p + EPS).log()).sum(-1)
    top = p.max(-1).values
    stats = {
        "harmonic_entropy": float(entropy[voiced].mean()) if voiced.any() else float("nan"),
        "harmonic_entropy_uniform": math.log(hd.shape[-1]),
        "top_harmonic_concentration": float(top[voiced].mean()) if voiced.any() else float("nan"),
        "amplitude_min": float(controls["amplitude"].min()),
        "amplitude_max": float(controls["amplitude"].max()),
        "amplitude_mean": float(controls["amplitude"].mean()),
    }
    if "noise_magnitudes" in controls:
        gain = controls["noise_magnitudes"].float().mean(-1)
        stats.update(noise_gain_min=float(gain.min()), noise_gain_max=float(gain.max()), noise_gain_mean=float(gain.mean()))
    return stats


def control_arrays(controls: dict[str, Tensor], index: int = 0) -> dict[str, np.ndarray]:
    """One example's controls as numpy arrays ([F], [F, K], [F, bands]) for npz dumps."""
    return {k: v[index].detach().float().cpu().numpy() for k, v in controls.items() if v.dim() >= 2}


def control_figure(arrays: dict[str, np.ndarray], frame_rate: int, title: str = ""):
    """Harmonic distribution, amplitude (+ f0) and noise bands over time for one example."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 3 if "noise_magnitudes" in arrays else 2
    fig, axes = plt.subplots(rows, 1, figsize=(9, 2.4 * rows), sharex=True, constrained_layout=True)
    hd = arrays["harmonic_distribution"]
    t_end = hd.shape[0] / frame_rate
    extent = (0.0, t_end, 0.5, hd.shape[1] + 0.5)
    im = axes[0].imshow(hd.T, origin="lower", aspect="auto", extent=extent, cmap="magma")
    axes[0].set_ylabel("harmonic")
    axes[0].set_title(f"{title} harmonic distribution".strip())
    fig.colorbar(im, ax=axes[0])
    t = np.arange(hd.shape[0]) / frame_rate
    axes[1].plot(t, 20 * np.log10(np.maximum(arrays["amplitude"], 1e-7)), label="amplitude (dB)")
    axes[1].set_ylabel("amplitude dB")
    if "f0_hz" in arrays:
        ax2 = axes[1].twinx()
        ax2.plot(t, arrays["f0_hz"], color="tab:orange", alpha=0.6, label="f0 Hz")
        ax2.set_ylabel("f0 Hz")
    if rows == 3:
        nm = 20 * np.log10(np.maximum(arrays["noise_magnitudes"], 1e-7))
        im2 = axes[2].imshow(nm.T, origin="lower", aspect="auto", extent=(0.0, t_end, 0, nm.shape[1]), cmap="viridis")
        axes[2].set_ylabel("noise band")
        axes[2].set_title("noise magnitudes (dB)")
        fig.colorbar(im2, ax=axes[2])
    axes[-1].set_xlabel("time (s)")
    return fig
