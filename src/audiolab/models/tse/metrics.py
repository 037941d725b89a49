"""TSE metrics: SI-SDR(i) on target-present rows, SDR(i), PESQ-WB, STOI, target-absent suppression and the two controls.

Definitions (per row; ``y`` mixture, ``s`` target as heard (the reference), ``ŝ`` estimate; all in dB unless noted):

- ``si_sdr = SI-SDR(ŝ, s)`` with THE project SI-SDR (:func:`audiolab.losses.sdr.si_sdr`: zero-mean, fp32);
  ``si_sdri = si_sdr - SI-SDR(y, s)``. Target-present (TP) rows only, never averaged with TA rows.
- ``sdr``: BSS-eval SDR (512-tap distortion filter, ``torchmetrics.functional.signal_distortion_ratio``); ``sdri``.
- ``pesq``: ITU-T P.862 wide-band (``pesq`` package) after resampling both signals to 16 kHz (PESQ is defined
  only at 8/16 kHz); NaN when PESQ refuses a pair (e.g. no speech found), counted in ``pesq_failed``.
- ``stoi``: ``pystoi`` (it resamples to 10 kHz itself).
- ``ta_suppression = -10 log10(||ŝ||² / ||y||²)``: how far below the mixture the output of a target-absent row is
  (the mixture itself scores 0; higher is better).
- enrollment swap (rows 0 and 1 of a validation/test mixture: same mixture, the two talkers' enrollments):
  ``follows`` = SI-SDR(ŝ, s) > SI-SDR(ŝ, other talker); ``si_sdr_other`` = SI-SDR(ŝ, other talker) (low when the
  output follows the enrollment); ``swap_output_similarity`` = SI-SDR(ŝ_row1, ŝ_row0) (low: the two outputs differ).
- mixture swap (row 2: the enrollment of row 0 of the next mixture on a mixture without that speaker):
  its suppression; ``mixswap_vs_original`` = SI-SDR(ŝ_swap, ŝ_original) where ŝ_original is the output for the same
  enrollment on the mixture that contains the speaker (high = the output is made from the enrollment, not the
  mixture: over-conditioning); ``mixswap_enroll_xcorr`` = max normalised cross-correlation of ŝ_swap with the
  enrollment (near 1 = the enrollment is copied).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from audiolab.losses.sdr import si_sdr

__all__ = ["si_sdr_db", "sdr_db", "pesq_wb", "stoi_score", "energy_ratio_db", "max_xcorr", "summary_stats",
           "TSEScores"]

PESQ_RATE = 16000


@torch.no_grad()
def si_sdr_db(pred: Tensor, target: Tensor) -> Tensor:
    """``[B]`` SI-SDR in dB (the project's zero-mean fp32 SI-SDR, without gradients)."""
    return si_sdr(pred.detach(), target.detach()).float()


@torch.no_grad()
def sdr_db(pred: Tensor, target: Tensor) -> Tensor:
    """``[B]`` BSS-eval SDR in dB (torchmetrics, 512-tap filter), computed in float64 on CPU."""
    from torchmetrics.functional.audio import signal_distortion_ratio

    return signal_distortion_ratio(pred.detach().double().cpu(), target.detach().double().cpu()).float()


def _resample_np(x: np.ndarray, sr: int, new: int) -> np.ndarray:
    if sr == new:
        return x
    import torchaudio

    return torchaudio.functional.resample(torch.from_numpy(np.ascontiguousarray(x, np.float32)), sr, new).numpy()


def pesq_wb(pred: Tensor, target: Tensor, sample_rate: int) -> list[float]:
    """PESQ-WB per row after resampling to 16 kHz; NaN where PESQ cannot score the pair."""
    from pesq import pesq

    out = []
    for p, t in zip(pred.detach().float().cpu().numpy(), target.detach().float().cpu().numpy()):
        p16, t16 = _resample_np(p, sample_rate, PESQ_RATE), _resample_np(t, sample_rate, PESQ_RATE)
        try:
            out.append(float(pesq(PESQ_RATE, t16.astype(np.float64), p16.astype(np.float64), "wb")))
        except Exception:  # noqa: BLE001 - pesq raises on silence / no utterance detected: recorded as NaN
            out.append(float("nan"))
    return out


def stoi_score(pred: Tensor, target: Tensor, sample_rate: int) -> list[float]:
    """STOI per row (``pystoi``; resamples to 10 kHz internally)."""
    from pystoi import stoi

    out = []
    for p, t in zip(pred.detach().float().cpu().numpy(), target.detach().float().cpu().numpy()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(float(stoi(t.astype(np.float64), p.astype(np.float64), sample_rate, extended=False)))
    return out


@torch.no_grad()
def energy_ratio_db(x: Tensor, ref: Tensor, eps: float = 1e-12) -> Tensor:
    """``[B]`` ``10 log10(||x||² / ||ref||²)`` in float32."""
    return 10.0 * torch.log10((x.detach().float().square().sum(-1) + eps) / (ref.detach().float().square().sum(-1) + eps))


@torch.no_grad()
def max_xcorr(a: Tensor, b: Tensor) -> Tensor:
    """``[B]`` max over lags of |normalised cross-correlation| between rows of ``a [B, T]`` and ``b [B, Tb]``."""
    a, b = a.detach().double(), b.detach().double()
    n = a.shape[-1] + b.shape[-1] - 1
    nfft = 1 << (n - 1).bit_length()
    xc = torch.fft.irfft(torch.fft.rfft(a, nfft) * torch.fft.rfft(b.flip(-1), nfft), nfft)[..., :n]
    norm = a.norm(dim=-1) * b.norm(dim=-1) + 1e-12
    return (xc.abs().amax(-1) / norm).float()


def summary_stats(values: Sequence[float], prefix: str) -> dict[str, float]:
    """``{prefix: mean, prefix_median, prefix_pct_below_0}`` over finite values (NaN when none)."""
    v = np.array([x for x in values if math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {prefix: float("nan"), f"{prefix}_median": float("nan"), f"{prefix}_pct_below_0": float("nan")}
    return {prefix: float(v.mean()), f"{prefix}_median": float(np.median(v)),
            f"{prefix}_pct_below_0": float(100.0 * np.mean(v < 0))}


def _mean(values: Sequence[float]) -> float:
    v = [x for x in values if math.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


class TSEScores:
    """Accumulates per-row scores of a validation/test pass and summarises them (see the module docs).

    ``add(batch, estimate)`` takes a collated batch (:func:`audiolab.models.tse.data.collate_queries`) and the
    estimates ``[N, T]``; ``summary()`` returns the aggregate dict (names without the ``val/``/``test/`` prefix);
    ``rows`` holds one dict per row (for a CSV).
    """

    def __init__(self, sample_rate: int, full: bool = False):
        self.sr, self.full = int(sample_rate), bool(full)
        self.rows: list[dict[str, Any]] = []
        self._out0: dict[int, Tensor] = {}  # row-0 estimate per mixture (original of a mixture swap)
        self._swaps: list[tuple[int, Tensor]] = []  # (global row id of the original, swap estimate)
        self._q: int | None = None

    @torch.no_grad()
    def add(self, batch: dict[str, Any], est: Tensor) -> None:
        est = est.detach().float().cpu()
        mix, tgt, other = (batch[k].detach().float().cpu() for k in ("mixture", "target", "other"))
        enroll = batch["enrollment"].detach().float().cpu()
        present = batch["present"].cpu()
        q = batch["query"].cpu()
        mix_id, swap_of = batch["mix_id"].cpu(), batch["swap_of"].cpu()
        self._q = int(q.max()) + 1 if self._q is None else max(self._q, int(q.max()) + 1)
        rows = [dict(mix_id=int(m), query=int(k), present=bool(p), speaker=s, enroll_speaker=es, description=d)
                for m, k, p, s, es, d in zip(mix_id, q, present, batch["speaker"], batch["enroll_speaker"],
                                             batch["description"])]
        sup = (-energy_ratio_db(est, mix)).tolist()
        for r, v in zip(rows, sup):
            r["suppression_db"] = v
        tp = present.nonzero().flatten().tolist()
        if tp:
            i = torch.tensor(tp)
            s_est, s_mix = si_sdr_db(est[i], tgt[i]), si_sdr_db(mix[i], tgt[i])
            s_oth = si_sdr_db(est[i], other[i])
            extra: dict[str, list[float]] = {}
            if self.full:
                d_est, d_mix = sdr_db(est[i], tgt[i]), sdr_db(mix[i], tgt[i])
                extra = {"sdr": d_est.tolist(), "mixture_sdr": d_mix.tolist(),
                         "pesq": pesq_wb(est[i], tgt[i], self.sr), "mixture_pesq": pesq_wb(mix[i], tgt[i], self.sr),
                         "stoi": stoi_score(est[i], tgt[i], self.sr), "mixture_stoi": stoi_score(mix[i], tgt[i], self.sr)}
            for j, row in enumerate(tp):
                r = rows[row]
                r.update(si_sdr=float(s_est[j]), mixture_si_sdr=float(s_mix[j]), si_sdri=float(s_est[j] - s_mix[j]),
                         si_sdr_other=float(s_oth[j]), follows=bool(s_est[j] > s_oth[j]))
                for k, v in extra.items():
                    r[k] = float(v[j])
                if self.full:
                    r["sdri"] = r["sdr"] - r["mixture_sdr"]
        for row, (m, k) in enumerate(zip(mix_id.tolist(), q.tolist())):
            if k == 0 and bool(present[row]):
                self._out0[m] = est[row]
            if not bool(present[row]) and int(swap_of[row]) >= 0:
                self._swaps.append((int(swap_of[row]), est[row]))
                rows[row]["mixswap_enroll_xcorr"] = float(max_xcorr(est[row : row + 1], enroll[row : row + 1])[0])
        # enrollment swap: the two TP rows of one mixture
        by_mix: dict[int, dict[int, int]] = {}
        for row, (m, k) in enumerate(zip(mix_id.tolist(), q.tolist())):
            if bool(present[row]) and k in (0, 1):
                by_mix.setdefault(m, {})[k] = row
        for d in by_mix.values():
            if 0 in d and 1 in d:
                sim = float(si_sdr_db(est[d[1]][None], est[d[0]][None])[0])
                rows[d[1]]["swap_output_similarity"] = sim
        self.rows.extend(rows)

    def summary(self) -> dict[str, float]:
        tp = [r for r in self.rows if r["present"]]
        ta = [r for r in self.rows if not r["present"]]
        out: dict[str, float] = {}
        out.update(summary_stats([r["si_sdri"] for r in tp], "si_sdri"))
        out["si_sdr"] = _mean([r["si_sdr"] for r in tp])
        out["mixture_si_sdr"] = _mean([r["mixture_si_sdr"] for r in tp])
        if self.full and tp:
            for k in ("sdr", "mixture_sdr", "sdri", "pesq", "mixture_pesq", "stoi", "mixture_stoi"):
                out[k] = _mean([r[k] for r in tp])
            out["pesq_failed"] = float(sum(not math.isfinite(r["pesq"]) for r in tp))
        out["ta_suppression_db"] = _mean([r["suppression_db"] for r in ta])
        out["tp_suppression_db"] = _mean([r["suppression_db"] for r in tp])
        out["swap_follow_pct"] = 100.0 * float(np.mean([r["follows"] for r in tp])) if tp else float("nan")
        out["swap_si_sdr_other"] = _mean([r["si_sdr_other"] for r in tp])
        out["swap_output_similarity_db"] = _mean([r.get("swap_output_similarity", float("nan")) for r in tp])
        q = self._q or 1
        vs = [float(si_sdr_db(e[None], self._out0[orig // q][None])[0]) for orig, e in self._swaps if orig // q in self._out0]
        out["mixswap_vs_original_db"] = _mean(vs)
        out["mixswap_enroll_xcorr"] = _mean([r.get("mixswap_enroll_xcorr", float("nan")) for r in ta])
        out["n_tp"], out["n_ta"] = float(len(tp)), float(len(ta))
        return out
