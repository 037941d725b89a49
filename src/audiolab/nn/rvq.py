"""Residual vector quantizer (RVQ) for neural audio codecs.

Two codebook flavours share one residual stack (:class:`ResidualVectorQuantizer`):

* ``codebook_dim=None`` (default): EnCodec / audiocraft style :class:`EuclideanCodebook`. Codebooks are buffers
  updated by exponential moving averages (decay 0.99, Laplace-smoothed cluster sizes, epsilon 1e-5), with
  Euclidean nearest-neighbour search, k-means initialisation on the first training batch and replacement of
  dead codes (EMA cluster size below ``threshold_ema_dead_code``) by random vectors of the current batch.
  The only loss is the commitment ``MSE(sg(q), r)`` per layer.
* ``codebook_dim=int``: DAC style :class:`FactorizedCodebook`. A weight-normed 1x1 projection to a low-dim
  space, an ``nn.Embedding`` codebook learned by gradient, cosine-similarity search, loss
  ``MSE(z_q, sg(z_e)) + 0.25 * MSE(z_e, sg(z_q))``. No k-means init / dead-code replacement for this variant.

Straight-through estimator (EMA variant): each layer's quantized vector is detached before it is subtracted from
the residual, so every layer's input -- and hence every layer's commitment term -- depends on ``x`` with an
identity Jacobian (the fix audiocraft applied for encodec issue #25). The output is
``x + (sum_k q_k - x).detach()``, i.e. gradient identity to ``x``.

Quantizer dropout (training only): the first ``round(B * dropout_prob)`` items draw ``n_q ~ U{1..n_q}``
(inclusive, so the last codebook is trained too), the others use all layers. Layer ``k`` only contributes to the
output / loss of items with ``n_q_item > k`` and its EMA, k-means and dead-code statistics only use those
items' frames.

Distributed data parallel: when ``torch.distributed`` is initialised, k-means results and dead-code
replacements are broadcast from one rank (rank 0 unless it has no active frame for that layer) and the EMA
statistics (counts and vector sums) are all-reduced, so replicas keep identical codebooks. In that case every
layer runs on every rank in training, even when no local item uses it, so that the collectives match.

All quantizer math runs in float32, also under bf16/fp16 autocast.

Shapes: ``B`` batch, ``D`` feature dim, ``T`` frames, ``K`` number of quantizer layers used, ``N`` flattened
vectors (``B * T``), ``C`` codebook size (``bins``).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

FACTORIZED_COMMITMENT = 0.25  # DAC weight of MSE(z_e, sg(z_q)) relative to the codebook loss
log = logging.getLogger("audiolab")


# ----------------------------------------------------------------------------------------------------------------
# distributed helpers (all no-ops without an initialised process group)
# ----------------------------------------------------------------------------------------------------------------


def _dist_on() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_sum_(t: Tensor) -> Tensor:
    if _dist_on():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _source_rank(n_local: int, device: torch.device) -> int | None:
    """Lowest rank holding at least one vector (``None`` if no rank has any); 0 when not distributed."""
    if not _dist_on():
        return 0 if n_local > 0 else None
    counts = torch.zeros(dist.get_world_size(), dtype=torch.long, device=device)
    counts[dist.get_rank()] = n_local
    dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    nonzero = torch.nonzero(counts > 0).flatten()
    return int(nonzero[0]) if nonzero.numel() else None


def _broadcast_(t: Tensor, src: int) -> Tensor:
    if _dist_on():
        dist.broadcast(t, src=src)
    return t


def _is_rank(src: int) -> bool:
    return not _dist_on() or dist.get_rank() == src


# ----------------------------------------------------------------------------------------------------------------
# vector helpers
# ----------------------------------------------------------------------------------------------------------------


def sample_vectors(data: Tensor, n: int) -> Tensor:
    """``n`` random rows of ``data [N, D]`` (without replacement when ``N >= n``) -> ``[n, D]``."""
    num = data.shape[0]
    if num >= n:
        idx = torch.randperm(num, device=data.device)[:n]
    else:
        idx = torch.randint(0, num, (n,), device=data.device)
    return data[idx]


def nearest_code(data: Tensor, embed: Tensor) -> Tensor:
    """Euclidean nearest neighbour: ``data [N, D]``, ``embed [C, D]`` -> LongTensor ``[N]``.

    ``argmin ||x - e||^2 = argmax (2 x.e - ||e||^2)`` (the ``||x||^2`` term does not change the argmin).
    """
    score = 2.0 * data @ embed.t() - embed.pow(2).sum(1)[None]  # [N, C]
    return score.argmax(dim=1)


def _cluster_stats(data: Tensor, idx: Tensor, bins: int) -> tuple[Tensor, Tensor]:
    """Per-code counts ``[C]`` and vector sums ``[C, D]`` of ``data [N, D]`` assigned to ``idx [N]``."""
    onehot = F.one_hot(idx, bins).to(data.dtype)  # [N, C]
    return onehot.sum(0), onehot.t() @ data


def kmeans(data: Tensor, bins: int, iters: int) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on ``data [N, D]`` (Euclidean), initialised from data samples.

    Empty clusters keep their previous centre.

    Returns:
        ``means [C, D]`` and ``counts [C]`` (float, cluster sizes of the last assignment).
    """
    means = sample_vectors(data, bins)
    counts = torch.zeros(bins, dtype=data.dtype, device=data.device)
    for _ in range(iters):
        idx = nearest_code(data, means)
        counts, sums = _cluster_stats(data, idx, bins)
        new_means = sums / counts.clamp(min=1.0)[:, None]
        means = torch.where((counts == 0)[:, None], means, new_means)
    return means, counts


def _flatten(x: Tensor) -> Tensor:
    """``[B, D, T]`` -> ``[B*T, D]`` (item-major, frame-minor)."""
    return x.transpose(1, 2).reshape(-1, x.shape[1])


def _masked_item_mean(loss_items: Tensor, active: Tensor) -> Tensor:
    """Mean of ``loss_items [B]`` over ``active [B]`` items (0 if none)."""
    w = active.to(loss_items.dtype)
    return (loss_items * w).sum() / w.sum().clamp(min=1.0)


# ----------------------------------------------------------------------------------------------------------------
# codebooks (one per RVQ layer)
# ----------------------------------------------------------------------------------------------------------------


class EuclideanCodebook(nn.Module):
    """EMA codebook with Euclidean search, k-means init and dead-code replacement (EnCodec style).

    Buffers: ``embed [C, D]`` (the codes), ``embed_avg [C, D]`` (EMA of per-code vector sums),
    ``cluster_size [C]`` (EMA of per-code counts), ``inited`` (bool scalar, k-means done).
    """

    def __init__(
        self,
        dim: int,
        bins: int,
        *,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        kmeans_init: bool = True,
        kmeans_iters: int = 50,
        threshold_ema_dead_code: float = 2.0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.bins = bins
        self.decay = decay
        self.epsilon = epsilon
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.threshold_ema_dead_code = threshold_ema_dead_code
        embed = nn.init.kaiming_uniform_(torch.empty(bins, dim))
        self.register_buffer("inited", torch.tensor(not kmeans_init))
        # cluster_size = 1 and embed_avg = embed keep embed == embed_avg / cluster_size consistent from the start.
        self.register_buffer("cluster_size", torch.ones(bins))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    # -- inference ------------------------------------------------------------------------------------------

    def encode(self, residual: Tensor) -> Tensor:
        """``[B, D, T]`` -> codes LongTensor ``[B, T]``."""
        b, _, t = residual.shape
        return nearest_code(_flatten(residual.float()), self.embed.float()).view(b, t)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, T]`` -> code vectors ``[B, D, T]``."""
        return F.embedding(codes, self.embed.float()).transpose(1, 2)

    # -- training statistics --------------------------------------------------------------------------------

    @torch.no_grad()
    def init_from_data_(self, data: Tensor) -> None:
        """k-means initialisation on ``data [N, D]`` (local active vectors), broadcast from one rank."""
        src = _source_rank(int(data.shape[0]), self.embed.device)
        if src is None:  # no active vector anywhere yet: try again on a later batch
            return
        if _is_rank(src):
            means, counts = kmeans(data, self.bins, self.kmeans_iters)
        else:
            means = torch.empty_like(self.embed)
            counts = torch.empty_like(self.cluster_size)
        _broadcast_(means, src)
        _broadcast_(counts, src)
        # Keep embed == embed_avg / cluster_size; an empty k-means cluster counts as 1 (still "dead" for
        # threshold 2) instead of 0, which would send its code to zero on the next EMA update.
        counts = counts.clamp(min=1.0)
        self.embed.copy_(means)
        self.embed_avg.copy_(means * counts[:, None])
        self.cluster_size.copy_(counts)
        self.inited.fill_(True)

    @torch.no_grad()
    def ema_update_(self, data: Tensor, idx: Tensor) -> None:
        """EMA update from active vectors ``data [N, D]`` assigned to ``idx [N]`` (statistics all-reduced).

        ``cluster_size <- d * cluster_size + (1 - d) * counts``, ``embed_avg <- d * embed_avg + (1 - d) * sums``,
        ``embed <- embed_avg / smoothed`` with Laplace smoothing
        ``smoothed = (cluster_size + eps) / (n + C * eps) * n``, ``n = sum(cluster_size)``.
        Skipped entirely (no decay) when no rank has an active vector for this layer.
        """
        counts, sums = _cluster_stats(data, idx, self.bins)
        _all_reduce_sum_(counts)
        _all_reduce_sum_(sums)
        if float(counts.sum()) == 0.0:
            return
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (n + self.bins * self.epsilon) * n
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    @torch.no_grad()
    def expire_codes_(self, data: Tensor) -> int:
        """Replace codes whose EMA cluster size is below the threshold by random rows of ``data [N, D]``.

        Replaced codes get ``cluster_size = threshold`` and ``embed_avg = vector * threshold`` so that the next
        EMA update keeps them where they were put. The decision is identical on all ranks (``cluster_size`` is
        synchronised) and the new vectors are broadcast from one rank.

        Returns:
            Number of replaced codes.
        """
        if self.threshold_ema_dead_code <= 0:
            return 0
        dead = self.cluster_size < self.threshold_ema_dead_code  # [C]
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        src = _source_rank(int(data.shape[0]), self.embed.device)
        if src is None:
            return 0
        new = (
            sample_vectors(data, n_dead)
            if _is_rank(src)
            else torch.empty(n_dead, self.dim, device=data.device)
        )
        _broadcast_(new, src)
        self.embed[dead] = new
        self.embed_avg[dead] = new * self.threshold_ema_dead_code
        self.cluster_size[dead] = self.threshold_ema_dead_code
        return n_dead

    # -- forward --------------------------------------------------------------------------------------------

    def forward(self, residual: Tensor, active: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
        """Quantize one residual.

        Args:
            residual: ``[B, D, T]`` float32 layer input.
            active: ``[B]`` bool, items that use this layer (only they feed the training statistics).

        Returns:
            ``q [B, D, T]`` code vectors (no gradient), ``codes [B, T]``, per-item commitment
            ``MSE(sg(q), residual)`` ``[B]`` (unweighted), number of replaced dead codes.
        """
        b, _, t = residual.shape
        replaced = 0
        if self.training:
            with torch.no_grad():
                data_all = _flatten(residual.detach())  # [B*T, D]
                frame_active = active.repeat_interleave(t)  # [B*T]
                data = data_all[frame_active]
                if not bool(self.inited):
                    self.init_from_data_(data)
        codes = self.encode(residual.detach())  # [B, T]
        q = self.decode(codes)  # [B, D, T], computed with the pre-update codebook
        if self.training:
            self.ema_update_(data, codes.reshape(-1)[frame_active])
            replaced = self.expire_codes_(data)
        loss_items = (q.detach() - residual).pow(2).mean(dim=(1, 2))  # [B]
        return q, codes, loss_items, replaced


class FactorizedCodebook(nn.Module):
    """DAC style codebook: weight-normed 1x1 projections ``D -> codebook_dim -> D``, cosine-similarity search.

    The codebook (``nn.Embedding(bins, codebook_dim)``) is learned by gradient via the codebook loss; no k-means
    init and no dead-code replacement (the low-dim L2-normalised search is DAC's remedy for code collapse).
    """

    def __init__(self, dim: int, bins: int, codebook_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.bins = bins
        self.codebook_dim = codebook_dim
        self.in_proj = weight_norm(nn.Conv1d(dim, codebook_dim, kernel_size=1))
        self.out_proj = weight_norm(nn.Conv1d(codebook_dim, dim, kernel_size=1))
        self.codebook = nn.Embedding(bins, codebook_dim)

    def _search(self, z_e: Tensor) -> Tensor:
        """``z_e [B, c, T]`` -> codes ``[B, T]`` by maximum cosine similarity (normalised for the search only)."""
        b, _, t = z_e.shape
        enc = F.normalize(_flatten(z_e), dim=1)  # [N, c]
        cb = F.normalize(self.codebook.weight.float(), dim=1)  # [C, c]
        return (enc @ cb.t()).argmax(dim=1).view(b, t)

    def encode(self, residual: Tensor) -> Tensor:
        """``[B, D, T]`` -> codes LongTensor ``[B, T]``."""
        return self._search(self.in_proj(residual.float()))

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, T]`` -> ``[B, D, T]`` (``out_proj`` of the code vectors)."""
        return self.out_proj(self.codebook(codes).float().transpose(1, 2))

    def forward(self, residual: Tensor, active: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
        """Quantize one residual (``active`` unused: the loss is masked by the caller).

        Returns:
            ``q [B, D, T]`` (``out_proj`` of the straight-through ``z_q``; differentiable), ``codes [B, T]``,
            per-item loss ``MSE(z_q, sg(z_e)) + 0.25 * MSE(z_e, sg(z_q))`` ``[B]``, 0 replaced codes.
        """
        z_e = self.in_proj(residual)  # [B, c, T]
        codes = self._search(z_e.detach())
        z_q = self.codebook(codes).float().transpose(1, 2)  # [B, c, T]
        codebook_loss = (z_q - z_e.detach()).pow(2).mean(dim=(1, 2))
        commit_loss = (z_e - z_q.detach()).pow(2).mean(dim=(1, 2))
        z_q = z_e + (z_q - z_e).detach()  # straight-through in the low-dim space
        return self.out_proj(z_q), codes, codebook_loss + FACTORIZED_COMMITMENT * commit_loss, 0


# ----------------------------------------------------------------------------------------------------------------
# residual stack
# ----------------------------------------------------------------------------------------------------------------


class ResidualVectorQuantizer(nn.Module):
    """Residual vector quantizer with quantizer dropout (bitrate scalability).

    Args:
        dim: feature dim ``D`` of the input ``[B, D, T]``.
        n_q: number of layers (codebooks).
        bins: codebook size ``C`` (``log2(bins)`` bits per code).
        decay, epsilon: EMA decay and Laplace smoothing (EMA variant).
        kmeans_init, kmeans_iters: k-means init on the first training batch (EMA variant).
        threshold_ema_dead_code: EMA cluster size below which a code is replaced (EMA variant; <= 0 disables).
        commitment_weight: multiplies the returned ``commitment`` loss.
        codebook_dim: ``None`` for EMA Euclidean codebooks (EnCodec), an int for the factorized DAC variant.
        quantizer_dropout: draw a random ``n_q`` per item in training.
        dropout_prob: fraction of items of a batch (the first ``round(B * p)``) that get a random ``n_q``.
    """

    def __init__(
        self,
        dim: int,
        n_q: int = 8,
        bins: int = 1024,
        *,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        kmeans_init: bool = True,
        kmeans_iters: int = 50,
        threshold_ema_dead_code: float = 2.0,
        commitment_weight: float = 1.0,
        codebook_dim: int | None = None,
        quantizer_dropout: bool = True,
        dropout_prob: float = 1.0,
    ) -> None:
        super().__init__()
        if n_q < 1 or bins < 2:
            raise ValueError(f"need n_q >= 1 and bins >= 2, got n_q={n_q}, bins={bins}")
        if not 0.0 <= dropout_prob <= 1.0:
            raise ValueError(f"dropout_prob must be in [0, 1], got {dropout_prob}")
        self.dim = dim
        self.n_q = n_q
        self.bins = bins
        self.commitment_weight = commitment_weight
        self.codebook_dim = codebook_dim
        self.quantizer_dropout = quantizer_dropout
        self.dropout_prob = dropout_prob
        self.factorized = codebook_dim is not None
        layers: list[nn.Module] = []
        for _ in range(n_q):
            if codebook_dim is None:
                layers.append(
                    EuclideanCodebook(
                        dim,
                        bins,
                        decay=decay,
                        epsilon=epsilon,
                        kmeans_init=kmeans_init,
                        kmeans_iters=kmeans_iters,
                        threshold_ema_dead_code=threshold_ema_dead_code,
                    )
                )
            else:
                layers.append(FactorizedCodebook(dim, bins, codebook_dim))
        self.layers = nn.ModuleList(layers)

    # -- bitrate ----------------------------------------------------------------------------------------------

    @property
    def bits_per_code(self) -> float:
        return math.log2(self.bins)

    def supported_bandwidths(self, frame_rate: float) -> list[float]:
        """Bitrates in kbps for ``n_q = 1..self.n_q`` at ``frame_rate`` frames/s."""
        return [round(k * self.bits_per_code * frame_rate / 1000.0, 6) for k in range(1, self.n_q + 1)]

    def n_q_for_bandwidth(self, bandwidth_kbps: float, frame_rate: float) -> int:
        """EnCodec rule ``floor(bw * 1000 / (log2(bins) * frame_rate))``.

        Raises:
            ValueError: if that gives fewer than 1 or more than ``self.n_q`` layers.
        """
        n = math.floor(bandwidth_kbps * 1000.0 / (self.bits_per_code * frame_rate) + 1e-6)
        if n < 1 or n > self.n_q:
            raise ValueError(
                f"bandwidth {bandwidth_kbps} kbps is not supported at frame rate {frame_rate} Hz with "
                f"n_q={self.n_q}, bins={self.bins} (gives {n} codebooks); supported kbps: "
                f"{self.supported_bandwidths(frame_rate)}"
            )
        return n

    # -- helpers ----------------------------------------------------------------------------------------------

    def _check_n_q(self, n_q: int | None) -> int:
        if n_q is None:
            return self.n_q
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in [1, {self.n_q}], got {n_q}")
        return int(n_q)

    def _n_q_per_item(self, batch: int, n_q: int | None, device: torch.device) -> Tensor:
        """LongTensor ``[B]``: fixed ``n_q`` (eval / given), else DAC-style dropout in training."""
        if n_q is not None or not self.training or not self.quantizer_dropout:
            return torch.full((batch,), self._check_n_q(n_q), dtype=torch.long, device=device)
        out = torch.full((batch,), self.n_q, dtype=torch.long, device=device)
        n_drop = int(round(batch * self.dropout_prob))
        if n_drop > 0:
            out[:n_drop] = torch.randint(1, self.n_q + 1, (n_drop,), device=device)  # U{1..n_q} inclusive
        return out

    # -- API --------------------------------------------------------------------------------------------------

    def forward(self, x: Tensor, n_q: int | None = None) -> dict:
        """Quantize ``x [B, D, T]``.

        Returns:
            dict with ``quantized [B, D, T]`` float32 (EMA variant: straight-through, gradient identity to ``x``;
            factorized variant: sum of the layers' ``out_proj`` outputs, differentiable as in DAC),
            ``codes`` LongTensor ``[B, K, T]`` (``K`` = max layers used over the batch; an item's unused layers
            still hold the code they would get but are masked out of ``quantized`` and the loss),
            ``commitment`` scalar (mean over used layers, times ``commitment_weight``),
            ``commitment_per_layer [K]`` (unweighted, mean over the items using each layer),
            ``n_q_per_item`` LongTensor ``[B]``, ``replaced_codes`` int (0 in eval).
        """
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._forward(x.float(), n_q)

    def check_dead_code_threshold(self, vectors_per_step: int) -> bool:
        """Warn (once, at the first training batch) when the dead-code threshold is at or above the EMA cluster size
        of a uniformly used code, ``vectors_per_step / bins``. EnCodec's threshold of 2 assumes ~4.7 (64 x 75
        frames over 1024 codes); with small batches nearly every code is then replaced at every step and the
        codebooks never settle (measured: 7,400 of 8,192 codes per step at 8 x 50 frames). Returns True if it warned.
        """
        threshold = float(self.layers[0].threshold_ema_dead_code)
        per_code = vectors_per_step / self.bins
        if threshold <= 0 or threshold < per_code:
            return False
        log.warning("threshold_ema_dead_code=%g is at or above the expected EMA cluster size of a uniformly used code "
                    "(%d vectors per step / %d codes = %.2f): nearly every code will be replaced every step. Lower the "
                    "threshold (e.g. %.2g) or use larger batches / longer crops.",
                    threshold, vectors_per_step, self.bins, per_code, per_code / 8)
        return True

    def _forward(self, x: Tensor, n_q: int | None) -> dict:
        b, d, t = x.shape
        if d != self.dim:
            raise ValueError(f"expected input [B, {self.dim}, T], got {tuple(x.shape)}")
        n_q_items = self._n_q_per_item(b, n_q, x.device)  # [B]
        if self.training and not self.factorized and not bool(self.layers[0].inited):
            self.check_dead_code_threshold(b * t)
        k_used = int(n_q_items.max())
        # Under DDP every layer must run on every rank in training so that the collectives line up.
        n_run = self.n_q if (self.training and _dist_on() and not self.factorized) else k_used
        residual = x
        quantized_sum = torch.zeros_like(x)
        codes: list[Tensor] = []
        per_layer: list[Tensor] = []
        replaced = 0
        for k in range(n_run):
            active = n_q_items > k  # [B]
            q, layer_codes, loss_items, n_rep = self.layers[k](residual, active)
            replaced += n_rep
            # EMA: detach so every layer's input keeps an identity path to x (per-layer commitment gradients).
            residual = residual - (q if self.factorized else q.detach())
            if k < k_used:
                quantized_sum = quantized_sum + q * active.to(q.dtype)[:, None, None]
                codes.append(layer_codes)
                per_layer.append(_masked_item_mean(loss_items, active))
        commitment_per_layer = torch.stack(per_layer)  # [K]; each layer has >= 1 active item
        quantized = quantized_sum if self.factorized else x + (quantized_sum - x).detach()
        return {
            "quantized": quantized,
            "codes": torch.stack(codes, dim=1),
            "commitment": commitment_per_layer.mean() * self.commitment_weight,
            "commitment_per_layer": commitment_per_layer,
            "n_q_per_item": n_q_items,
            "replaced_codes": int(replaced),
        }

    @torch.no_grad()
    def encode(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """``[B, D, T]`` -> codes LongTensor ``[B, n_q, T]`` (no statistics update, whatever the mode)."""
        n = self._check_n_q(n_q)
        with torch.autocast(device_type=x.device.type, enabled=False):
            residual = x.float()
            codes: list[Tensor] = []
            for layer in self.layers[:n]:
                c = layer.encode(residual)
                residual = residual - layer.decode(c)
                codes.append(c)
        return torch.stack(codes, dim=1)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, K, T]`` (``K <= n_q``) -> ``[B, D, T]`` float32, sum of the first ``K`` layers' vectors."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.n_q:
            raise ValueError(f"expected codes [B, K<={self.n_q}, T], got {tuple(codes.shape)}")
        with torch.autocast(device_type=codes.device.type, enabled=False):
            out = self.layers[0].decode(codes[:, 0])
            for k in range(1, codes.shape[1]):
                out = out + self.layers[k].decode(codes[:, k])
        return out
