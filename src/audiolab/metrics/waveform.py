"""Waveform, spectral and codebook metrics for neural audio codecs (validation logging and ``evaluate``).

Conventions (every waveform function):

* ``pred`` (decoder output) and ``target`` (reference) are ``[B, T]`` or ``[B, 1, T]`` (a single channel
  is squeezed; a 1-D ``[T]`` is treated as ``B = 1``) and must have the same length: trim the decoder
  output before calling. Samples are nominally in ``[-1, 1]`` (full scale = 1.0).
* Computation is done in float64 (float32 on MPS) for the time-domain metrics and float32 with autocast
  off for the spectral ones, whatever the input dtype, so bf16/fp16 inputs are safe.
* Functions return per-item tensors ``[B]`` (float32, on the input device) and the caller averages; only
  :func:`waveform_metrics` reduces over the batch. All metrics run under ``torch.no_grad()``.

Definitions follow ``/work/shared/reference/codec.md`` section 5: SNR as the users track it (not scale
invariant), SI-SNR as ``torchmetrics.functional.audio.scale_invariant_signal_noise_ratio`` (zero-mean), DAC's
``MelSpectrogramLoss`` / ``MultiScaleSTFTLoss`` with their class defaults as "mel distance" / "STFT distance",
and DAC ``scripts/compute_entropy.py`` for the codebook entropy and "effective percentage".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "EPS",
    "snr_db",
    "si_snr_db",
    "mel_distance",
    "stft_distance",
    "rms",
    "rms_ratio",
    "peak_abs",
    "value_range",
    "clipped_fraction",
    "dc_offset",
    "silence_floor_db",
    "waveform_metrics",
    "codebook_histogram",
    "codebook_stats_from_histogram",
    "codebook_stats",
    "CodebookUsageAccumulator",
    "bitrate_kbps",
]

#: Additive epsilon of the SNR ratios; the same value torchmetrics uses for float32 inputs.
EPS: float = float(torch.finfo(torch.float32).eps)


# ----------------------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------------------
def _as_bt(x: Tensor, name: str = "audio") -> Tensor:
    """``[T]`` -> ``[1, T]``; ``[B, T]`` unchanged; ``[B, 1, T]`` -> ``[B, T]``; anything else raises."""
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x)
    if x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"{name} must be mono [B, 1, T], got shape {tuple(x.shape)}")
        return x[:, 0]
    if x.dim() == 2:
        return x
    if x.dim() == 1:
        return x.unsqueeze(0)
    raise ValueError(f"{name} must be [B, T] or [B, 1, T], got shape {tuple(x.shape)}")


def _acc_dtype(device: torch.device) -> torch.dtype:
    """float64 for accumulation except on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _wide(x: Tensor, name: str = "audio") -> Tensor:
    """``[B, T]`` view of ``x`` in the accumulation dtype."""
    x = _as_bt(x, name)
    return x.to(_acc_dtype(x.device))


def _pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Both as ``[B, T]`` in the accumulation dtype; shapes must match."""
    p, t = _wide(pred, "pred"), _wide(target, "target")
    if p.shape != t.shape:
        raise ValueError(
            f"pred {tuple(p.shape)} and target {tuple(t.shape)} must have the same [B, T] shape "
            "(trim the decoder output to the target length first)"
        )
    return p, t


def _out(x: Tensor) -> Tensor:
    return x.to(torch.float32)


# ----------------------------------------------------------------------------------------------------------
# SNR family
# ----------------------------------------------------------------------------------------------------------
@torch.no_grad()
def snr_db(pred: Tensor, target: Tensor, eps: float = EPS) -> Tensor:
    """Plain (not scale-invariant) SNR in dB: ``10 log10((sum t^2 + eps) / (sum (t - p)^2 + eps))``.

    This is the metric users track: a gain error counts as noise (``pred = 0.5 * target`` gives
    ``10 log10(1 / 0.25) = 6.02`` dB). No mean removal. Equals
    ``torchmetrics.functional.audio.signal_noise_ratio``.

    Args:
        pred, target: ``[B, T]`` or ``[B, 1, T]`` samples.
        eps: added to numerator and denominator (identical signals give a large finite value).

    Returns:
        float32 ``[B]`` in dB.
    """
    p, t = _pair(pred, target)
    num = t.square().sum(-1) + eps
    den = (t - p).square().sum(-1) + eps
    return _out(10.0 * torch.log10(num / den))


@torch.no_grad()
def si_snr_db(pred: Tensor, target: Tensor, eps: float = EPS) -> Tensor:
    """Scale-invariant SNR in dB with zero-mean signals (= SI-SDR with ``zero_mean=True``).

    ``p, t`` mean-removed; ``s = (<p, t> + eps) / (||t||^2 + eps) * t``; ``e = s - p``;
    ``10 log10((||s||^2 + eps) / (||e||^2 + eps))``. Same formula and eps as
    ``torchmetrics.functional.audio.scale_invariant_signal_noise_ratio`` (computed here in float64).
    A pure gain error gives a very large value (only ``eps`` in the denominator).

    Args:
        pred, target: ``[B, T]`` or ``[B, 1, T]`` samples.

    Returns:
        float32 ``[B]`` in dB.
    """
    p, t = _pair(pred, target)
    p = p - p.mean(-1, keepdim=True)
    t = t - t.mean(-1, keepdim=True)
    alpha = ((p * t).sum(-1, keepdim=True) + eps) / (t.square().sum(-1, keepdim=True) + eps)
    s = alpha * t
    e = s - p
    return _out(10.0 * torch.log10((s.square().sum(-1) + eps) / (e.square().sum(-1) + eps)))


# ----------------------------------------------------------------------------------------------------------
# DAC spectral distances
# ----------------------------------------------------------------------------------------------------------
def _stft_mag(x: Tensor, n_fft: int) -> Tensor:
    """DAC/audiotools STFT magnitude: periodic Hann, hop n_fft/4, centred with reflect padding.

    Signals too short for reflect padding (``T <= n_fft // 2``) fall back to zero padding instead of raising.
    Returns float32 ``[B, n_fft // 2 + 1, frames]``.
    """
    from audiolab.audio.features import stft_magnitude

    pad_mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
    return stft_magnitude(x.float(), n_fft, n_fft // 4, center=True, pad_mode=pad_mode, power=1.0)


def _mel_mag(x: Tensor, sample_rate: int, n_fft: int, n_mels: int) -> Tensor:
    """Mel of the STFT *magnitude* (librosa/slaney filters, 0 .. sr/2), as audiotools ``mel_spectrogram``."""
    from audiolab.audio.features import mel_spectrogram

    pad_mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
    return mel_spectrogram(
        x.float(), int(sample_rate), n_fft, n_fft // 4, int(n_mels), power=1.0, norm="slaney",
        mel_scale="slaney", center=True, pad_mode=pad_mode,
    )


def _dac_distance(
    px: Tensor, tx: Tensor, clamp_eps: float, pow_: float, log_weight: float, mag_weight: float
) -> Tensor:
    """Per-item ``log_weight * L1(log10(clamp(P)^pow), log10(clamp(T)^pow)) + mag_weight * L1(P, T)``."""
    dims = tuple(range(1, px.dim()))
    log_p = px.clamp(min=clamp_eps).pow(pow_).log10()
    log_t = tx.clamp(min=clamp_eps).pow(pow_).log10()
    return log_weight * (log_p - log_t).abs().mean(dims) + mag_weight * (px - tx).abs().mean(dims)


@torch.no_grad()
def mel_distance(
    pred: Tensor,
    target: Tensor,
    sample_rate: int,
    *,
    window_lengths: Sequence[int] = (2048, 512),
    n_mels: Sequence[int] = (150, 80),
    clamp_eps: float = 1e-5,
    log_weight: float = 1.0,
    mag_weight: float = 1.0,
    pow: float = 2.0,
) -> Tensor:
    """DAC "mel distance": the value of ``dac.nn.loss.MelSpectrogramLoss`` with its class defaults.

    For each scale ``(w, m)`` in ``zip(window_lengths, n_mels)``: STFT magnitude with a periodic Hann window of
    ``w`` samples, hop ``w // 4``, centred reflect padding; ``M = |X| @ mel`` with ``m`` slaney-normalised
    librosa/slaney mel filters from 0 Hz to ``sample_rate / 2`` (the filters follow ``sample_rate``; the
    window and band counts stay DAC's, defined at 44.1 kHz). Then::

        d = sum_scales  log_weight * mean|log10(clamp(M_p, 1e-5)^2) - log10(clamp(M_t, 1e-5)^2)|
                      + mag_weight * mean|M_p - M_t|

    with means over (mel bands, frames) of each item (DAC's ``L1Loss`` averages over the batch too, which
    equals the batch mean of these values for equal-length items). DAC's *training* config uses a 7-scale
    variant with ``mag_weight 0``; the evaluation number (and this default) is the 2-scale one above. Lower is
    better; 0 for identical inputs. Signals shorter than ``w // 2 + 1`` samples use zero instead of reflect
    padding.

    Args:
        pred, target: ``[B, T]`` or ``[B, 1, T]`` samples at ``sample_rate`` Hz.
        sample_rate: Hz.

    Returns:
        float32 ``[B]`` (dimensionless, sum over scales).
    """
    if len(window_lengths) != len(n_mels):
        raise ValueError(f"window_lengths {window_lengths} and n_mels {n_mels} must have the same length")
    p, t = _pair(pred, target)
    total = torch.zeros(p.shape[0], device=p.device, dtype=torch.float32)
    with torch.autocast(device_type=p.device.type, enabled=False):
        for w, m in zip(window_lengths, n_mels):
            mp = _mel_mag(p, sample_rate, int(w), int(m))
            mt = _mel_mag(t, sample_rate, int(w), int(m))
            total = total + _dac_distance(mp, mt, clamp_eps, pow, log_weight, mag_weight)
    return total


@torch.no_grad()
def stft_distance(
    pred: Tensor,
    target: Tensor,
    *,
    window_lengths: Sequence[int] = (2048, 512),
    clamp_eps: float = 1e-5,
    log_weight: float = 1.0,
    mag_weight: float = 1.0,
    pow: float = 2.0,
) -> Tensor:
    """DAC "STFT distance": ``dac.nn.loss.MultiScaleSTFTLoss`` with its class defaults.

    For each window ``w``: periodic Hann STFT magnitude ``|X|`` (hop ``w // 4``, centred reflect padding)::

        d = sum_scales  log_weight * mean|log10(clamp(|X_p|, 1e-5)^2) - log10(clamp(|X_t|, 1e-5)^2)|
                      + mag_weight * mean|(|X_p| - |X_t|)|

    means over (frequency bins, frames) per item. 0 for identical inputs.

    Args:
        pred, target: ``[B, T]`` or ``[B, 1, T]`` samples.

    Returns:
        float32 ``[B]`` (dimensionless, sum over scales).
    """
    p, t = _pair(pred, target)
    total = torch.zeros(p.shape[0], device=p.device, dtype=torch.float32)
    with torch.autocast(device_type=p.device.type, enabled=False):
        for w in window_lengths:
            total = total + _dac_distance(
                _stft_mag(p, int(w)), _stft_mag(t, int(w)), clamp_eps, pow, log_weight, mag_weight
            )
    return total


# ----------------------------------------------------------------------------------------------------------
# level / amplitude health
# ----------------------------------------------------------------------------------------------------------
@torch.no_grad()
def rms(x: Tensor) -> Tensor:
    """Root mean square per item, ``sqrt(mean(x^2))``. ``x`` ``[B, T]`` / ``[B, 1, T]`` -> float32 ``[B]``."""
    return _out(_wide(x).square().mean(-1).sqrt())


@torch.no_grad()
def rms_ratio(pred: Tensor, target: Tensor, min_target_rms: float = 1e-5) -> Tensor:
    """Amplitude drift ``rms(pred) / rms(target)`` per item; 1.0 is perfect, 0.5 means 6 dB too quiet.

    Items whose target RMS is below ``min_target_rms`` (default 1e-5 = -100 dBFS, i.e. silent clips) give
    NaN instead of a huge ratio; average with ``nanmean`` (as :func:`waveform_metrics` does).

    Returns:
        float32 ``[B]`` (linear ratio).
    """
    p, t = _pair(pred, target)
    rp, rt = p.square().mean(-1).sqrt(), t.square().mean(-1).sqrt()
    ratio = rp / rt.clamp(min=min_target_rms)
    return _out(torch.where(rt < min_target_rms, torch.full_like(ratio, float("nan")), ratio))


@torch.no_grad()
def peak_abs(x: Tensor) -> Tensor:
    """``max |x|`` per item (``output_peak`` / ``target_peak``). Returns float32 ``[B]``, full scale = 1."""
    return _out(_wide(x).abs().amax(-1))


@torch.no_grad()
def value_range(x: Tensor) -> Tensor:
    """``max(x) - min(x)`` per item (``output_range``). Returns float32 ``[B]``."""
    w = _wide(x)
    return _out(w.amax(-1) - w.amin(-1))


@torch.no_grad()
def clipped_fraction(x: Tensor, threshold: float = 1.0) -> Tensor:
    """Fraction of samples with ``|x| >= threshold`` per item (would clip when written as PCM).

    Returns:
        float32 ``[B]`` in [0, 1].
    """
    return _out((_wide(x).abs() >= threshold).to(_acc_dtype(x.device)).mean(-1))


@torch.no_grad()
def dc_offset(x: Tensor) -> Tensor:
    """Signed mean ``mean(x)`` per item (take ``.abs()`` for ``dc_offset_abs``). Returns float32 ``[B]``."""
    return _out(_wide(x).mean(-1))


def _frames(x: Tensor, frame_length: int, hop_length: int) -> Tensor:
    """``[B, T]`` -> ``[B, N, L]`` frames without padding (one whole-signal frame when ``T < frame_length``)."""
    if x.shape[-1] < frame_length:
        return x.unsqueeze(1)
    return x.unfold(-1, frame_length, hop_length)


@torch.no_grad()
def silence_floor_db(
    pred: Tensor,
    target: Tensor,
    *,
    frame_length: int = 1024,
    hop_length: int = 256,
    silence_threshold_db: float = -60.0,
    floor_db: float = -120.0,
) -> Tensor:
    """Level of ``pred`` where the **target** is silent: the codec's noise floor / hiss in pauses.

    Both signals are cut into frames of ``frame_length`` samples every ``hop_length`` (no padding; the tail
    that does not fill a frame is ignored; a signal shorter than one frame is one frame). A frame is silent
    when the target frame RMS is below ``silence_threshold_db`` dBFS (``20 log10(rms)``, full scale 1.0).
    The result is the energy-pooled level of ``pred`` over those frames::

        10 log10(max(mean_{silent frames} mean(pred_frame^2), 10^(floor_db / 10)))

    Returns NaN for items with no silent frame: skip them (``nanmean``; :func:`waveform_metrics` does).

    Returns:
        float32 ``[B]`` in dBFS (NaN where the target has no silent frame).
    """
    p, t = _pair(pred, target)
    fp, ft = _frames(p, frame_length, hop_length), _frames(t, frame_length, hop_length)
    ms_p, ms_t = fp.square().mean(-1), ft.square().mean(-1)  # [B, N]
    silent = ms_t < 10.0 ** (silence_threshold_db / 10.0)
    n_silent = silent.sum(-1)
    pooled = (ms_p * silent).sum(-1) / n_silent.clamp(min=1)
    db = 10.0 * torch.log10(pooled.clamp(min=10.0 ** (floor_db / 10.0)))
    return _out(torch.where(n_silent > 0, db, torch.full_like(db, float("nan"))))


@torch.no_grad()
def waveform_metrics(
    pred: Tensor, target: Tensor, sample_rate: int, *, spectral: bool = True
) -> dict[str, Tensor]:
    """All waveform metrics of this module, averaged over the batch (0-dim float32 tensors, input device).

    Keys: ``snr_db``, ``si_snr_db``, ``mel_distance``, ``stft_distance`` (only with ``spectral=True``),
    ``rms_ratio``, ``output_peak``, ``output_range``, ``clipped_fraction``, ``dc_offset`` (signed mean of the
    per-item offsets), ``dc_offset_abs`` (mean of ``|offset|``), ``silence_floor_db``, ``target_peak``.
    ``rms_ratio`` and ``silence_floor_db`` are NaN-skipping means (NaN when every item is NaN: the caller
    should skip logging a NaN).

    Args:
        pred, target: ``[B, T]`` or ``[B, 1, T]``, same shape, at ``sample_rate`` Hz.
        sample_rate: Hz (used by the mel filters).
        spectral: compute the (slower) mel and STFT distances.
    """
    p, t = _pair(pred, target)
    dc = dc_offset(p)
    out = {
        "snr_db": snr_db(p, t).mean(),
        "si_snr_db": si_snr_db(p, t).mean(),
        "rms_ratio": rms_ratio(p, t).nanmean(),
        "output_peak": peak_abs(p).mean(),
        "output_range": value_range(p).mean(),
        "clipped_fraction": clipped_fraction(p).mean(),
        "dc_offset": dc.mean(),
        "dc_offset_abs": dc.abs().mean(),
        "silence_floor_db": silence_floor_db(p, t).nanmean(),
        "target_peak": peak_abs(t).mean(),
    }
    if spectral:
        out["mel_distance"] = mel_distance(p, t, sample_rate).mean()
        out["stft_distance"] = stft_distance(p, t).mean()
    return out


# ----------------------------------------------------------------------------------------------------------
# codebooks
# ----------------------------------------------------------------------------------------------------------
@torch.no_grad()
def codebook_histogram(codes: Tensor, bins: int) -> Tensor:
    """Code counts per codebook.

    Args:
        codes: integer ``[B, K, T]`` code indices in ``[0, bins)`` (K codebooks / RVQ levels).
        bins: codebook size.

    Returns:
        int64 ``[K, bins]`` counts on the codes' device.
    """
    if codes.dim() != 3:
        raise ValueError(f"codes must be [B, K, T], got shape {tuple(codes.shape)}")
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise TypeError(f"codes must be an integer tensor, got {codes.dtype}")
    k = codes.shape[1]
    flat = codes.transpose(0, 1).reshape(k, -1).long()
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= bins):
        raise ValueError(f"codes must lie in [0, {bins}), got range [{int(flat.min())}, {int(flat.max())}]")
    offset = torch.arange(k, device=flat.device).unsqueeze(1) * bins
    return torch.bincount((flat + offset).reshape(-1), minlength=k * bins).view(k, bins)


@torch.no_grad()
def codebook_stats_from_histogram(counts: Tensor) -> dict[str, Tensor]:
    """Usage / perplexity / entropy per codebook from a ``[K, bins]`` count histogram.

    Per codebook ``k`` with ``p = counts[k] / counts[k].sum()``:

    * ``usage``: fraction of the ``bins`` codes used at least once, in [0, 1];
    * ``entropy_bits``: ``-sum p log2 p`` (0 log 0 = 0), at most ``log2(bins)``;
    * ``perplexity``: ``exp(entropy in nats)`` = ``2**entropy_bits``, in [1, bins];
    * ``tokens``: number of codes counted.

    Summaries: ``usage_mean``, ``entropy_bits_mean``, ``perplexity_mean`` and ``effective_percentage`` =
    ``sum_k entropy_bits / (log2(bins) * K)`` as in DAC ``scripts/compute_entropy.py`` -- a **fraction** in
    [0, 1] (multiply by 100 for percent). Codebooks with no tokens get NaN entropy/perplexity, usage 0, and
    are left out of the entropy/perplexity means and of ``effective_percentage`` (NaN if all are empty).

    Returns:
        dict of float64 tensors: ``[K]`` for per-codebook entries, 0-dim for the summaries.
    """
    counts = counts.to(torch.float64)
    k, bins = counts.shape
    tokens = counts.sum(-1)
    prob = counts / tokens.clamp(min=1).unsqueeze(-1)
    plogp = torch.where(prob > 0, prob * torch.log(prob.clamp(min=1e-300)), torch.zeros_like(prob))
    entropy_nats = -plogp.sum(-1)
    nan = torch.full_like(entropy_nats, float("nan"))
    entropy_nats = torch.where(tokens > 0, entropy_nats, nan)
    entropy_bits = entropy_nats / math.log(2.0)
    perplexity = torch.exp(entropy_nats)
    usage = (counts > 0).to(torch.float64).sum(-1) / bins
    seen = tokens > 0
    n_seen = int(seen.sum())
    if n_seen == 0:
        eff = torch.tensor(float("nan"), dtype=torch.float64, device=counts.device)
    elif bins == 1:  # a single code carries no information but is "fully used"
        eff = torch.ones((), dtype=torch.float64, device=counts.device)
    else:
        eff = entropy_bits[seen].sum() / (math.log2(bins) * n_seen)
    return {
        "usage": usage,
        "perplexity": perplexity,
        "entropy_bits": entropy_bits,
        "tokens": tokens,
        "usage_mean": usage.mean(),
        "perplexity_mean": perplexity.nanmean(),
        "entropy_bits_mean": entropy_bits.nanmean(),
        "effective_percentage": eff,
    }


@torch.no_grad()
def codebook_stats(codes: Tensor, bins: int) -> dict[str, Tensor]:
    """Codebook statistics of one batch: :func:`codebook_stats_from_histogram` of :func:`codebook_histogram`.

    Args:
        codes: integer ``[B, K, T]`` in ``[0, bins)``.
        bins: codebook size.
    """
    return codebook_stats_from_histogram(codebook_histogram(codes, bins))


class CodebookUsageAccumulator:
    """Accumulates per-codebook code histograms over many batches (e.g. a validation epoch).

    ``update(codes)`` adds a ``[B, K, T]`` batch; ``compute()`` returns the statistics of everything seen
    (as Python lists per codebook plus float summaries); ``reset()`` clears. A batch with fewer codebooks
    than seen before (quantizer dropout) adds to the first ``K`` rows; more codebooks grow the histogram.

    Under DDP (``torch.distributed`` initialised), ``compute()`` is a **collective**: every rank must call it.
    It all-reduces (sums) a copy of the histogram -- after agreeing on the largest ``K`` -- so all ranks
    return the global statistics; the local histogram is left untouched, so repeated ``compute()`` calls do
    not double count. With the NCCL backend the reduction runs on the current CUDA device.

    Args:
        bins: codebook size.
        num_codebooks: optional ``K`` to allocate up front.
        sync_dist: all-reduce in ``compute()`` when a process group is initialised.
    """

    def __init__(self, bins: int, num_codebooks: int | None = None, *, sync_dist: bool = True) -> None:
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        self.bins = int(bins)
        self.num_codebooks = num_codebooks
        self.sync_dist = sync_dist
        self.counts: Tensor | None = None
        self.reset()

    def reset(self) -> None:
        """Forget all counts (keeps ``bins`` / ``num_codebooks``)."""
        self.counts = (
            torch.zeros(self.num_codebooks, self.bins, dtype=torch.int64) if self.num_codebooks else None
        )

    def _grow(self, counts: Tensor, k: int) -> Tensor:
        if counts.shape[0] >= k:
            return counts
        pad = torch.zeros(k - counts.shape[0], self.bins, dtype=counts.dtype, device=counts.device)
        return torch.cat([counts, pad])

    @torch.no_grad()
    def update(self, codes: Tensor) -> None:
        """Add the codes of one batch, integer ``[B, K, T]`` in ``[0, bins)``."""
        hist = codebook_histogram(codes, self.bins)
        k = hist.shape[0]
        if self.counts is None:
            self.counts = hist.clone()
            return
        counts = self._grow(self.counts.to(hist.device), k)
        counts[:k] += hist
        self.counts = counts

    @staticmethod
    def _ddp_active() -> bool:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def histogram(self) -> Tensor:
        """The (globally all-reduced under DDP) int64 ``[K, bins]`` histogram; collective under DDP."""
        local = self.counts if self.counts is not None else torch.zeros(0, self.bins, dtype=torch.int64)
        if not (self.sync_dist and self._ddp_active()):
            return local.clone()
        backend = str(dist.get_backend()).lower()
        device = torch.device("cuda", torch.cuda.current_device()) if "nccl" in backend else torch.device("cpu")
        k = torch.tensor([local.shape[0]], dtype=torch.int64, device=device)
        dist.all_reduce(k, op=dist.ReduceOp.MAX)
        merged = self._grow(local.to(device), int(k.item())).clone()
        dist.all_reduce(merged, op=dist.ReduceOp.SUM)
        return merged

    def compute(self) -> dict[str, list[float] | float]:
        """Statistics of all accumulated codes (see :func:`codebook_stats_from_histogram`).

        Returns:
            ``usage``, ``perplexity``, ``entropy_bits``, ``tokens``: lists with one float per codebook;
            ``usage_mean``, ``perplexity_mean``, ``entropy_bits_mean``, ``effective_percentage``: floats
            (NaN when nothing was accumulated).
        """
        stats = codebook_stats_from_histogram(self.histogram())
        return {key: (val.tolist() if val.dim() else float(val)) for key, val in stats.items()}


def bitrate_kbps(n_q: int, bins: int, frame_rate: float) -> float:
    """Nominal bitrate ``n_q * log2(bins) * frame_rate / 1000`` in kbit/s (8 x 1024 codes x 75 Hz = 6.0)."""
    return n_q * math.log2(bins) * frame_rate / 1000.0
