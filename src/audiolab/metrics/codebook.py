"""Codebook usage of vector quantizers (RVQ levels): histogram, entropy, perplexity, effective use, and the
bitrate of ``n_q`` codebooks. Definitions follow DAC ``scripts/compute_entropy.py`` (entropy and "effective
percentage"); :class:`CodebookUsageAccumulator` accumulates over a validation epoch (all-reduced under DDP).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "codebook_histogram",
    "codebook_stats_from_histogram",
    "codebook_stats",
    "CodebookUsageAccumulator",
    "bitrate_kbps",
]


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
