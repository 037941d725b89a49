"""Spectral reconstruction losses: the multi-scale STFT loss (DDSP) and the multi-scale mel loss (EnCodec).

:class:`MultiScaleSpectralLoss` — DDSP's ``ddsp.losses.SpectralLoss`` with ae.gin's mag=1, logmag=1.
For each FFT size ``N`` (hop ``int(N * (1 - overlap))``, periodic Hann, centre reflect padding):

* ``mag_N    = mean |S - Ŝ|``
* ``logmag_N = mean |log(max(S, eps)) - log(max(Ŝ, eps))|``

with ``S = |STFT|`` un-normalised (one clamp floor ``eps`` shared by both signals), and the per-scale
terms are **summed** over scales as in DDSP (``reduction_over_scales="mean"`` divides by the number
of scales instead). Spectra come from :func:`audiolab.audio.features.stft_magnitude`, the project's
single STFT definition, and everything runs in fp32 with autocast disabled.

:class:`MultiScaleMelLoss` follows EnCodec's ``msspec`` as trained by audiocraft: windows ``2^6 .. 2^10``, hop
``w/4``, 64 mel bands from 64 Hz, STFT normalised by ``1/sqrt(n_fft)`` (``normalized=True``), per scale
``L1(mel) + MSE(log10(eps + mel))``, averaged over scales. The linear term is scale-sensitive: with an unbounded
decoder it is one of the terms that pins the output level. One deviation: the number of mel bands is capped at
``n_fft // 4`` so small windows do not get all-zero bands (64 bands on a 33-bin spectrum).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from audiolab.audio.features import mel_spectrogram, stft_magnitude

__all__ = ["MultiScaleSpectralLoss", "MultiScaleMelLoss", "auraloss_equivalent"]


class MultiScaleSpectralLoss(torch.nn.Module):
    """Multi-scale L1 magnitude + L1 log-magnitude STFT loss (DDSP).

    Args:
        fft_sizes: FFT (= window) sizes in samples.
        overlap: frame overlap in [0, 1); hop = ``int(n_fft * (1 - overlap))`` samples (must be >= 1).
        mag_weight: weight of the linear-magnitude term in ``"loss"``.
        logmag_weight: weight of the log-magnitude term in ``"loss"``.
        log_eps: magnitude floor before the log (natural log).
        reduction_over_scales: ``"sum"`` (DDSP) or ``"mean"`` over the scales.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128, 64),
        overlap: float = 0.75,
        mag_weight: float = 1.0,
        logmag_weight: float = 1.0,
        log_eps: float = 1e-5,
        reduction_over_scales: str = "sum",
    ) -> None:
        super().__init__()
        sizes = tuple(int(n) for n in fft_sizes)
        if len(sizes) == 0:
            raise ValueError("fft_sizes must contain at least one FFT size, got an empty sequence")
        if any(n <= 0 for n in sizes):
            raise ValueError(f"fft_sizes must be positive, got {sizes}")
        if not 0.0 <= float(overlap) < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        hops = tuple(int(n * (1.0 - overlap)) for n in sizes)
        if any(h < 1 for h in hops):
            raise ValueError(f"overlap={overlap} gives a hop of 0 samples for fft_sizes {sizes} (hops {hops})")
        if reduction_over_scales not in ("sum", "mean"):
            raise ValueError(f"reduction_over_scales must be 'sum' or 'mean', got {reduction_over_scales!r}")
        if log_eps <= 0:
            raise ValueError(f"log_eps must be > 0, got {log_eps}")
        self.fft_sizes = sizes
        self.hop_sizes = hops
        self.overlap = float(overlap)
        self.mag_weight = float(mag_weight)
        self.logmag_weight = float(logmag_weight)
        self.log_eps = float(log_eps)
        self.reduction_over_scales = reduction_over_scales

    @staticmethod
    def _as_bt(x: torch.Tensor, name: str) -> torch.Tensor:
        if x.dim() == 1:
            return x.unsqueeze(0)
        if x.dim() == 3 and x.shape[1] == 1:  # tolerate [B, 1, T] (mono with a channel axis)
            return x[:, 0]
        if x.dim() == 2:
            return x
        raise ValueError(f"{name} must be [B, T] (or [T] / [B, 1, T]), got shape {tuple(x.shape)}")

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Compute the loss.

        Args:
            pred: ``[B, T]`` generated audio.
            target: ``[B, T]`` reference audio (same shape).

        Returns:
            ``{"loss": mag_weight * mag + logmag_weight * logmag, "mag": ..., "logmag": ...}``, scalar
            float32 tensors; ``mag``/``logmag`` are unweighted and reduced over scales.
        """
        p = self._as_bt(pred, "pred")
        t = self._as_bt(target, "target")
        if p.shape != t.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
        n = p.shape[-1]
        if n < max(self.fft_sizes):
            raise ValueError(
                f"signal of {n} samples is shorter than the largest FFT size {max(self.fft_sizes)} "
                f"(fft_sizes={self.fft_sizes})"
            )
        with torch.autocast(device_type=p.device.type, enabled=False):
            p = p.float()
            t = t.float()
            # One STFT call per scale on the concatenated batch halves the kernel launches.
            mag_terms, log_terms = [], []
            for n_fft, hop in zip(self.fft_sizes, self.hop_sizes):
                s_pred = stft_magnitude(p, n_fft, hop, center=True, pad_mode="reflect", power=1.0)
                # the target rarely needs a gradient: keeping its STFT out of the graph halves the backward work
                with torch.set_grad_enabled(torch.is_grad_enabled() and t.requires_grad):
                    s_true = stft_magnitude(t, n_fft, hop, center=True, pad_mode="reflect", power=1.0)
                mag_terms.append((s_pred - s_true).abs().mean())
                log_pred = torch.log(torch.clamp(s_pred, min=self.log_eps))
                log_true = torch.log(torch.clamp(s_true, min=self.log_eps))
                log_terms.append((log_pred - log_true).abs().mean())
            mag = torch.stack(mag_terms)
            logmag = torch.stack(log_terms)
            if self.reduction_over_scales == "sum":
                mag, logmag = mag.sum(), logmag.sum()
            else:
                mag, logmag = mag.mean(), logmag.mean()
            loss = self.mag_weight * mag + self.logmag_weight * logmag
        return {"loss": loss, "mag": mag, "logmag": logmag}

    def extra_repr(self) -> str:
        return (
            f"fft_sizes={self.fft_sizes}, overlap={self.overlap}, mag_weight={self.mag_weight}, "
            f"logmag_weight={self.logmag_weight}, log_eps={self.log_eps}, "
            f"reduction_over_scales={self.reduction_over_scales!r}"
        )


def auraloss_equivalent(loss: MultiScaleSpectralLoss):
    """Build the auraloss ``MultiResolutionSTFTLoss`` computing the same terms as ``loss``.

    auraloss (0.4) specifics this relies on (see ``auraloss/freq.py``):

    * ``STFTLoss.stft`` uses ``torch.stft`` with its defaults (``center=True``, reflect padding) and
      ``torch.hann_window(win_length)`` (periodic), i.e. the same spectra as :func:`stft_magnitude`;
    * magnitudes are ``sqrt(clamp(re^2 + im^2, min=eps))`` = ``max(|X|, sqrt(eps))``, so
      ``eps = log_eps ** 2`` reproduces our log floor exactly. The same floor also hits auraloss's
      linear term, which therefore differs from ours by at most ``log_eps`` per bin, and only in bins
      with magnitude below ``log_eps`` (negligible for non-silent audio);
    * ``MultiResolutionSTFTLoss`` **averages** over resolutions, so
      ``ours["loss"] == factor * auraloss_value`` with ``factor = len(fft_sizes)`` for
      ``reduction_over_scales="sum"`` and ``1`` for ``"mean"``;
    * auraloss ``forward`` expects ``[B, C, T]``: call it as ``aura(pred[:, None], target[:, None])``.

    Returns:
        ``(auraloss.freq.MultiResolutionSTFTLoss, factor: float)``.
    """
    import auraloss  # optional at import time of this module; only the benchmark needs it

    sizes = list(loss.fft_sizes)
    aura = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=sizes,
        hop_sizes=list(loss.hop_sizes),
        win_lengths=sizes,
        window="hann_window",
        w_sc=0.0,
        w_log_mag=loss.logmag_weight,
        w_lin_mag=loss.mag_weight,
        w_phs=0.0,
        eps=loss.log_eps**2,
        reduction="mean",
        mag_distance="L1",
    )
    factor = float(len(sizes)) if loss.reduction_over_scales == "sum" else 1.0
    return aura, factor


class MultiScaleMelLoss(torch.nn.Module):
    """Multi-scale mel loss; returns ``{"loss", "mel_linear", "mel_log"}`` (scalars, averaged over scales).

    Args:
        sample_rate: Hz.
        window_sizes: FFT (= window) sizes in samples; hop is ``w // 4``.
        n_mels: mel bands (capped at ``w // 4`` per scale).
        f_min: lowest mel edge in Hz. f_max: highest (None = Nyquist).
        linear_weight / log_weight: weights of the L1 linear-mel and MSE log10-mel terms.
        log_eps: added inside the log10 (EnCodec 1e-5).
    """

    def __init__(self, sample_rate: int, window_sizes: Sequence[int] = (64, 128, 256, 512, 1024), n_mels: int = 64,
                 f_min: float = 64.0, f_max: float | None = None, linear_weight: float = 1.0, log_weight: float = 1.0,
                 log_eps: float = 1e-5):
        super().__init__()
        sizes = tuple(int(w) for w in window_sizes)
        if not sizes or any(w < 16 for w in sizes):
            raise ValueError(f"window_sizes must be a non-empty list of sizes >= 16 samples, got {sizes}")
        if f_min >= (f_max or sample_rate / 2):
            raise ValueError(f"f_min={f_min} Hz must be below f_max={f_max or sample_rate / 2} Hz")
        self.sample_rate, self.window_sizes, self.n_mels = int(sample_rate), sizes, int(n_mels)
        self.f_min, self.f_max = float(f_min), f_max
        self.linear_weight, self.log_weight, self.log_eps = float(linear_weight), float(log_weight), float(log_eps)

    def mel(self, x: Tensor, n_fft: int) -> Tensor:
        """Normalised magnitude mel spectrogram ``[B, n_mels, frames]`` of ``x [B, T]``."""
        n_mels = min(self.n_mels, n_fft // 4)
        m = mel_spectrogram(x, self.sample_rate, n_fft, n_fft // 4, n_mels, f_min=self.f_min, f_max=self.f_max,
                            power=1.0, pad_mode="reflect")
        return m / n_fft**0.5

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        pred, target = pred.reshape(-1, pred.shape[-1]), target.reshape(-1, target.shape[-1])
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, target = pred.float(), target.float()
            lin = pred.new_zeros(())
            log = pred.new_zeros(())
            for n_fft in self.window_sizes:
                mp = self.mel(pred, n_fft)
                with torch.no_grad():
                    mt = self.mel(target, n_fft)
                lin = lin + (mp - mt).abs().mean()
                log = log + (torch.log10(mp + self.log_eps) - torch.log10(mt + self.log_eps)).pow(2).mean()
            lin, log = lin / len(self.window_sizes), log / len(self.window_sizes)
            return {"loss": self.linear_weight * lin + self.log_weight * log, "mel_linear": lin, "mel_log": log}
