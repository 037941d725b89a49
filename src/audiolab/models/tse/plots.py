"""Figures for TSE media: mixture / reference / estimates of one mixture's rows as log spectrograms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from audiolab.audio.features import stft_magnitude

__all__ = ["extraction_figure"]


def _db(x: torch.Tensor, n_fft: int, hop: int) -> np.ndarray:
    mag = stft_magnitude(x.float().cpu().reshape(1, -1), n_fft, hop)[0]
    return (20 * torch.log10(mag + 1e-5)).numpy()


def extraction_figure(batch: dict[str, Any], est: torch.Tensor, rows: Sequence[int], sample_rate: int):
    """One column per panel: mixture, then for every row its reference (if present) and estimate, in dB.

    The titles carry the row's SI-SDR improvement (TP) or suppression (TA) so a collapsed or swapped output is visible
    at a glance. ``rows`` index the batch (one mixture's queries).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audiolab.models.tse.metrics import energy_ratio_db, si_sdr_db

    n_fft = 1 << int(np.ceil(np.log2(0.032 * sample_rate)))
    hop = n_fft // 4
    panels = [("mixture", batch["mixture"][rows[0]])]
    names = {0: "target", 1: "swap", 2: "absent"}
    for i in rows:
        q = int(batch["query"][i])
        tag = names.get(q, f"q{q}")
        if bool(batch["present"][i]):
            sdri = float(si_sdr_db(est[i][None], batch["target"][i][None].float().cpu())
                         - si_sdr_db(batch["mixture"][i][None].float().cpu(), batch["target"][i][None].float().cpu()))
            panels.append((f"{tag}: reference ({batch['speaker'][i]})", batch["target"][i]))
            panels.append((f"{tag}: estimate, SI-SDRi {sdri:+.1f} dB", est[i]))
        else:
            sup = float(-energy_ratio_db(est[i][None], batch["mixture"][i][None].float().cpu()))
            panels.append((f"{tag}: estimate (enroll {batch['enroll_speaker'][i]}), {sup:.1f} dB below mix", est[i]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.6 * len(panels)), sharex=True)
    axes = np.atleast_1d(axes)
    vmax = float(_db(panels[0][1], n_fft, hop).max())
    for ax, (title, x) in zip(axes, panels):
        s = _db(x, n_fft, hop)
        ax.imshow(s, origin="lower", aspect="auto", vmin=vmax - 80, vmax=vmax, cmap="magma",
                  extent=(0, x.shape[-1] / sample_rate, 0, sample_rate / 2000))
        ax.set_title(title, fontsize=8)
        ax.set_ylabel("kHz", fontsize=7)
    axes[-1].set_xlabel("s")
    fig.tight_layout()
    return fig
