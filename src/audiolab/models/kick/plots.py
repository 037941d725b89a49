"""Figures: rows of log-mel images (real vs reconstructed / generated) and a PNG helper for the web page."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from torch import Tensor

__all__ = ["mel_grid", "mel_png"]


def _img(m: Tensor | np.ndarray) -> np.ndarray:
    a = m.detach().cpu().float().numpy() if isinstance(m, Tensor) else np.asarray(m, dtype=np.float32)
    return a.reshape(a.shape[-2], a.shape[-1])


def mel_grid(columns: Mapping[str, Sequence[Tensor | np.ndarray]], titles: Sequence[str] | None = None,
             hop_seconds: float = 512 / 44100, vmin: float = -11.5, vmax: float = 4.0):
    """A figure with one column per entry of ``columns`` (e.g. ``{"real": [...], "recon": [...]}``) and one row
    per example; each image a log-mel ``[n_mels, frames]`` (low bands at the bottom, time in seconds)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(columns)
    rows = max(len(v) for v in columns.values())
    fig, axes = plt.subplots(rows, len(names), figsize=(3.2 * len(names), 2.0 * rows), squeeze=False)
    for j, name in enumerate(names):
        for i in range(rows):
            ax = axes[i][j]
            if i < len(columns[name]):
                img = _img(columns[name][i])
                ax.imshow(img, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma",
                          extent=(0, img.shape[1] * hop_seconds, 0, img.shape[0]))
            ax.set_title(f"{name} {titles[i] if titles and i < len(titles) else i}", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig


def mel_png(mel: Tensor | np.ndarray, vmin: float = -11.5, vmax: float = 4.0) -> bytes:
    """A small PNG (no axes) of one log-mel, for the web page."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(3.2, 1.6), dpi=80)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(_img(mel), origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
