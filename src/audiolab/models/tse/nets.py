"""TF-GridNet (V2 blocks) target speaker extractor with USEF-style cross-attention conditioning.

Signal path (shapes: ``B`` rows, ``T`` frames, ``F`` frequency units = STFT bins or bands, ``D`` channels)::

    mixture [B, S] ── / std ── STFT ── encoder ──► x [B, D, T, F]
    enrollment [B, Se] ─ / own std ─ STFT ─ the same encoder ─► e [B, D, Te, F]
    fusion (USEF): a = CrossAttention(query=x, key/value=e)  [B, D, T, F]   (frame-level, T x Te)
        concat          -> x = [x; a]                      blocks run at 2D (official USEF-TFGridNet)
        concat_project  -> x = Conv1x1([x; a]) -> D        blocks run at D
        add             -> x = x + a
    FiLM (optional): z = MLP([mean; std]_{T,F} PReLU(Conv1x1(e)));  x = (1 + gamma(z)) * x + beta(z)
                     (statistics pooling; gamma, beta zero-initialised)
    for block i: [re-injection: x = x + g_i * CrossAttention_i(x, e)] [FiLM_i] x = GridNetV2Block_i(x)
    decoder ──► real/imag [B, 2, T, F] ── iSTFT ── * mixture std ──► estimate [B, S]

Output (``output``): ``mapping`` (TF-GridNet: the decoder's real/imag *are* the target spectrum) or ``mask`` (a
complex ratio mask multiplied with the normalised mixture spectrum, initialised at 1 + 0j so the untrained net
returns the mixture: a departure from TF-GridNet that converges much faster with small nets and short budgets).

Encoders: ``conv`` (TF-GridNet: Conv2d 3x3 over stacked real/imag + GroupNorm; decoder ConvTranspose2d 3x3) or
``bandsplit`` (BSRNN-style: per band LayerNorm + Linear of its real/imag bins; decoder per band LayerNorm + Linear
back to its bins) which cuts the frequency axis to a few dozen units (the users' 48 kHz model: 53 bands).

GridNetV2Block (ESPnet ``tfgridnetv2_separator``, Wang et al. TASLP 2023): intra-frame BLSTM along F over
unfolded groups of ``I`` units with hop ``J`` (when ``I == J``: reshape + Linear instead of unfold + deconv),
sub-band BLSTM along T likewise, then full-band frame-level multi-head self-attention with Q/K of ``E`` channels per
unit (``E = ceil(approx_qk_dim / F)`` unless ``attn_qk_dim`` is set) and V of ``D / heads``; every sub-module is
residual. Norms whose parameters are shaped by ``F`` tie a model to one STFT (or band) layout.

Precision: under bf16/fp16 autocast the LSTMs run in float32 (autocast disabled around them: some CUDA LSTM paths
lack bf16 kernels and the recurrences lose precision), as do the normalisation statistics, the STFT/iSTFT and (in
the recipe) the losses. ``grad_checkpointing`` recomputes each block in the backward pass.

Conditioning dropout (``cond_dropout``, training only, per row): ``zero_reference`` zeroes the enrollment
waveform (the users' ``ref_dropout``: every conditioning path then sees the embedding of silence, so the extractor
receives a constant instead of a speaker and the target is undefined when several talkers are present);
``skip`` switches the conditioning off (attended features 0, FiLM identity, no re-injection) so the row is a
plain mixture-only pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = ["TSENet", "GridNetV2Block", "CrossAttention", "FiLM", "band_edges", "count_parameters"]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _fp32_ctx(x: Tensor):
    return torch.autocast(device_type=x.device.type, enabled=False)


# -- norms ----------------------------------------------------------------------------------------------------------
class LayerNorm4DCF(nn.Module):
    """Normalise ``[B, C, T, F]`` over (C, F) per frame; affine parameters ``[1, C, 1, F]`` (statistics in fp32)."""

    def __init__(self, channels: int, n_freqs: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, n_freqs))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, n_freqs))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        with _fp32_ctx(x):  # F.layer_norm over the trailing (C, F) of [B, T, C, F]: one fused kernel
            y = F.layer_norm(x.float().transpose(1, 2), x.shape[1::2], self.gamma[0, :, 0], self.beta[0, :, 0], self.eps)
            return y.transpose(1, 2).to(dtype)


class AllHeadPReLULayerNorm4DCF(nn.Module):
    """Per-head PReLU then LayerNorm over (E, F) of ``[B, H*E, T, F]`` -> ``[B, H, E, T, F]`` (ESPnet V2 attention)."""

    def __init__(self, heads: int, dim: int, n_freqs: int, eps: float = 1e-5):
        super().__init__()
        self.h, self.e, self.f = heads, dim, n_freqs
        self.gamma = nn.Parameter(torch.ones(1, heads, dim, 1, n_freqs))
        self.beta = nn.Parameter(torch.zeros(1, heads, dim, 1, n_freqs))
        self.act = nn.PReLU(num_parameters=heads, init=0.25)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        b, _, t, _ = x.shape
        x = self.act(x.reshape(b, self.h, self.e, t, self.f))
        dtype = x.dtype
        with _fp32_ctx(x):  # statistics over (E, F) of every head and frame
            y = F.layer_norm(x.float().transpose(2, 3), (self.e, self.f), eps=self.eps).transpose(2, 3)
            return (y * self.gamma + self.beta).to(dtype)


# -- attention ------------------------------------------------------------------------------------------------------
class FrameAttention(nn.Module):
    """Frame-level multi-head attention on ``[B, C, T, F]`` maps (TF-GridNet V2; USEF cross-attention).

    Q from ``x`` (``[B, C, T, F]``), K and V from ``kv`` (``[B, C, Tk, F]``; ``kv = x`` for self-attention). Each head
    compares whole frames: Q/K vectors of ``E * F``, V of ``C / heads * F``; scores ``[T, Tk]``.
    """

    def __init__(self, channels: int, n_freqs: int, heads: int, qk_dim: int, eps: float = 1e-5):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by attention heads ({heads})")
        self.heads, self.e, self.vd = heads, qk_dim, channels // heads
        self.conv_q = nn.Conv2d(channels, heads * qk_dim, 1)
        self.norm_q = AllHeadPReLULayerNorm4DCF(heads, qk_dim, n_freqs, eps)
        self.conv_k = nn.Conv2d(channels, heads * qk_dim, 1)
        self.norm_k = AllHeadPReLULayerNorm4DCF(heads, qk_dim, n_freqs, eps)
        self.conv_v = nn.Conv2d(channels, channels, 1)
        self.norm_v = AllHeadPReLULayerNorm4DCF(heads, self.vd, n_freqs, eps)
        self.proj = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.PReLU(), LayerNorm4DCF(channels, n_freqs, eps))

    def keys_values(self, kv: Tensor) -> tuple[Tensor, Tensor]:
        """``K [B*H, E*F, Tk]`` and ``V [B*H, Tk, Vd*F]`` (cacheable for a fixed enrollment)."""
        b, _, tk, f = kv.shape
        k = self.norm_k(self.conv_k(kv))  # [B, H, E, Tk, F]
        v = self.norm_v(self.conv_v(kv))  # [B, H, Vd, Tk, F]
        k = k.permute(0, 1, 2, 4, 3).reshape(b * self.heads, self.e * f, tk)
        v = v.permute(0, 1, 3, 2, 4).reshape(b * self.heads, tk, self.vd * f)
        return k, v

    def forward(self, x: Tensor, kv: Tensor | None = None, cache: tuple[Tensor, Tensor] | None = None) -> Tensor:
        b, c, t, f = x.shape
        q = self.norm_q(self.conv_q(x))  # [B, H, E, T, F]
        q = q.permute(0, 1, 3, 2, 4).reshape(b * self.heads, t, self.e * f)
        k, v = cache if cache is not None else self.keys_values(x if kv is None else kv)
        if k.shape[0] != q.shape[0]:  # one cached enrollment for a batch of mixture chunks
            rep = q.shape[0] // k.shape[0]
            k, v = k.repeat(rep, 1, 1), v.repeat(rep, 1, 1)
        attn = torch.softmax(torch.bmm(q, k) / math.sqrt(self.e * f), dim=-1)  # [B*H, T, Tk]
        out = torch.bmm(attn, v.to(attn.dtype))  # [B*H, T, Vd*F]
        out = out.reshape(b, self.heads, t, self.vd, f).permute(0, 1, 3, 2, 4).reshape(b, c, t, f)
        return self.proj(out)


CrossAttention = FrameAttention


# -- grid block ------------------------------------------------------------------------------------------------------
class _AxisRNN(nn.Module):
    """LayerNorm -> unfold (I, hop J) -> BLSTM (fp32) -> deconv / Linear back -> + residual, along the last-but-one axis
    of a channels-last ``[N, L, C]`` sequence batch."""

    def __init__(self, channels: int, kernel: int, hop: int, hidden: int, eps: float):
        super().__init__()
        self.c, self.i, self.j = channels, kernel, hop
        self.norm = nn.LayerNorm(channels, eps=eps)
        self.rnn = nn.LSTM(channels * kernel, hidden, 1, batch_first=True, bidirectional=True)
        if kernel == hop:
            self.out = nn.Linear(2 * hidden, channels * kernel)
        else:
            self.out = nn.ConvTranspose1d(2 * hidden, channels, kernel, stride=hop)

    def forward(self, x: Tensor) -> Tensor:  # x: [N, L, C], L already padded for the unfold
        n, length, c = x.shape
        y = self.norm(x)
        if self.i == self.j:
            y = y.reshape(n, length // self.i, self.i * c)
        else:
            y = F.unfold(y.transpose(1, 2)[..., None], (self.i, 1), stride=(self.j, 1)).transpose(1, 2)
        with _fp32_ctx(y):
            y, _ = self.rnn(y.float())
        if self.i == self.j:
            y = self.out(y).reshape(n, length, c)
        else:
            y = self.out(y.transpose(1, 2)).transpose(1, 2)
        return x + y.to(x.dtype)


class GridNetV2Block(nn.Module):
    """One TF-GridNet V2 block on ``[B, D, T, F]``: intra-frame (along F) BLSTM, sub-band (along T) BLSTM, frame
    self-attention; each residual. ``I = kernel``, ``J = hop`` (unfold), ``H = hidden`` per direction."""

    def __init__(self, channels: int, n_freqs: int, kernel: int = 1, hop: int = 1, hidden: int = 192, heads: int = 4,
                 qk_dim: int | None = None, approx_qk_dim: int = 512, eps: float = 1e-5):
        super().__init__()
        if kernel < hop or hop < 1:
            raise ValueError(f"TF-GridNet needs emb_ks (I) >= emb_hs (J) >= 1, got I={kernel}, J={hop}")
        self.i, self.j = kernel, hop
        self.intra = _AxisRNN(channels, kernel, hop, hidden, eps)
        self.inter = _AxisRNN(channels, kernel, hop, hidden, eps)
        e = int(qk_dim) if qk_dim else int(math.ceil(approx_qk_dim / n_freqs))
        self.attn = FrameAttention(channels, n_freqs, heads, e, eps)

    def _padded(self, n: int) -> int:
        olp = self.i - self.j
        return int(math.ceil((n + 2 * olp - self.i) / self.j)) * self.j + self.i

    def forward(self, x: Tensor) -> Tensor:
        b, c, t0, f0 = x.shape
        olp = self.i - self.j
        t, f = self._padded(t0), self._padded(f0)
        y = x.permute(0, 2, 3, 1)  # [B, T, F, C]
        y = F.pad(y, (0, 0, olp, f - f0 - olp, olp, t - t0 - olp))
        y = self.intra(y.reshape(b * t, f, c)).reshape(b, t, f, c)
        y = y.transpose(1, 2)  # [B, F, T, C]
        y = self.inter(y.reshape(b * f, t, c)).reshape(b, f, t, c)
        y = y.permute(0, 3, 2, 1)[..., olp : olp + t0, olp : olp + f0]  # [B, C, T, F]
        return y + self.attn(y)


# -- conditioning -----------------------------------------------------------------------------------------------------
class FiLM(nn.Module):
    """``(1 + gamma(z)) * x + beta(z)`` per channel, broadcast over (T, F); weights and biases zero-initialised, so it
    is exactly the identity at initialisation (wesep's FiLM)."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.lin = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        gamma, beta = self.lin(z).to(x.dtype)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * x + beta


# -- encoders ----------------------------------------------------------------------------------------------------------
def band_edges(n_fft: int, sample_rate: int, bands: Sequence[Sequence[float]]) -> list[int]:
    """Bin edges of a band split. ``bands``: ``[[width_hz, until_hz], ...]`` in increasing ``until_hz``; the last band
    ends at Nyquist. Returns edges ``[0, e1, ..., n_fft // 2 + 1]`` (every band >= 1 bin)."""
    n_bins = n_fft // 2 + 1
    hz_per_bin = sample_rate / n_fft
    edges, cur = [0], 0.0
    for width_hz, until_hz in bands:
        until = min(float(until_hz), sample_rate / 2)
        while cur + 1e-9 < until:
            cur = min(cur + float(width_hz), until)
            b = min(n_bins, max(edges[-1] + 1, int(round(cur / hz_per_bin))))
            if b > edges[-1]:
                edges.append(b)
    if edges[-1] < n_bins:
        if n_bins - edges[-1] <= 1 and len(edges) > 1:
            edges[-1] = n_bins
        else:
            edges.append(n_bins)
    return edges


class ConvEncoder(nn.Module):
    def __init__(self, channels: int, n_bins: int, eps: float):
        super().__init__()
        self.n_units = n_bins
        self.enc = nn.Sequential(nn.Conv2d(2, channels, 3, padding=1), nn.GroupNorm(1, channels, eps=eps))

    def forward(self, spec: Tensor) -> Tensor:  # spec: complex [B, F, T]
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, T, F]
        return self.enc(x)


class ConvDecoder(nn.Module):
    def __init__(self, channels: int, n_bins: int):
        super().__init__()
        self.dec = nn.ConvTranspose2d(channels, 2, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:  # [B, D, T, F] -> complex [B, F, T]
        y = self.dec(x).float()
        return torch.complex(y[:, 0], y[:, 1]).transpose(1, 2)


class BandSplitEncoder(nn.Module):
    """Per band: LayerNorm of its real/imag bins, then Linear to D. ``log_energy``: the band's log energy per frame
    (which the per-band LayerNorm removes) is appended to the normalised bins before the Linear, so the spectral
    envelope (the level of each band relative to the others: what tells voices apart) reaches the net."""

    def __init__(self, channels: int, edges: Sequence[int], eps: float, log_energy: bool = False):
        super().__init__()
        self.edges = list(edges)
        self.n_units = len(edges) - 1
        self.log_energy = bool(log_energy)
        widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
        extra = 1 if self.log_energy else 0
        self.norms = nn.ModuleList([nn.LayerNorm(2 * w, eps=eps) for w in widths])
        self.fcs = nn.ModuleList([nn.Linear(2 * w + extra, channels) for w in widths])

    def forward(self, spec: Tensor) -> Tensor:  # complex [B, F, T] -> [B, D, T, K]
        ri = torch.cat([spec.real, spec.imag], dim=1).transpose(1, 2)  # [B, T, 2F]
        n_bins = spec.shape[1]
        outs = []
        for k, (a, b) in enumerate(zip(self.edges[:-1], self.edges[1:])):
            band = torch.cat([ri[..., a:b], ri[..., n_bins + a : n_bins + b]], dim=-1)
            feat = self.norms[k](band)
            if self.log_energy:
                feat = torch.cat([feat, torch.log10(band.float().square().mean(-1, keepdim=True) + 1e-8).to(feat.dtype)], -1)
            outs.append(self.fcs[k](feat))
        return torch.stack(outs, dim=-1).transpose(1, 2)  # [B, D, T, K]


class BandSplitDecoder(nn.Module):
    def __init__(self, channels: int, edges: Sequence[int], hidden: int, eps: float):
        super().__init__()
        self.edges = list(edges)
        widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
        if hidden > 0:
            self.mlps = nn.ModuleList([nn.Sequential(nn.LayerNorm(channels, eps=eps), nn.Linear(channels, hidden), nn.Tanh(),
                                                     nn.Linear(hidden, 2 * w)) for w in widths])
        else:
            self.mlps = nn.ModuleList([nn.Sequential(nn.LayerNorm(channels, eps=eps), nn.Linear(channels, 2 * w))
                                       for w in widths])

    def forward(self, x: Tensor) -> Tensor:  # [B, D, T, K] -> complex [B, F, T]
        x = x.permute(0, 3, 2, 1)  # [B, K, T, D]
        re, im = [], []
        for k, (a, b) in enumerate(zip(self.edges[:-1], self.edges[1:])):
            y = self.mlps[k](x[:, k]).float()  # [B, T, 2w]
            re.append(y[..., : b - a])
            im.append(y[..., b - a :])
        return torch.complex(torch.cat(re, -1), torch.cat(im, -1)).transpose(1, 2)


# -- the extractor --------------------------------------------------------------------------------------------------
class TSENet(nn.Module):
    """TF-GridNet V2 target speaker extractor (see the module docs). ``forward(mixture [B, S], enrollment [B, Se])``
    returns the estimate ``[B, S]`` at the same rate and scale as the mixture."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 128,
        win_length: int | None = None,
        encoder: str = "conv",
        bands: Sequence[Sequence[float]] | None = None,
        band_decoder_hidden: int = 0,
        band_log_energy: bool = False,
        emb_dim: int = 48,
        emb_ks: int = 1,
        emb_hs: int = 1,
        lstm_hidden: int = 192,
        n_blocks: int = 6,
        attn_heads: int = 4,
        attn_qk_dim: int | None = None,
        attn_approx_qk_dim: int = 512,
        fusion: str = "concat",
        fusion_heads: int | None = None,
        reinject_blocks: Sequence[int] = (),
        film: bool = False,
        film_blocks: Sequence[int] = (),
        cond_dropout: float = 0.0,
        cond_dropout_mode: str = "zero_reference",
        grad_checkpointing: bool = False,
        output: str = "mapping",
        eps: float = 1e-5,
    ):
        super().__init__()
        if output not in ("mapping", "mask"):
            raise ValueError(f"model.net.output must be mapping|mask, got {output!r}")
        if fusion not in ("concat", "concat_project", "add"):
            raise ValueError(f"model.net.fusion must be concat|concat_project|add, got {fusion!r}")
        if cond_dropout_mode not in ("zero_reference", "skip"):
            raise ValueError(f"model.net.cond_dropout_mode must be zero_reference|skip, got {cond_dropout_mode!r}")
        if encoder not in ("conv", "bandsplit"):
            raise ValueError(f"model.net.encoder must be conv|bandsplit, got {encoder!r}")
        for name, blocks in (("reinject_blocks", reinject_blocks), ("film_blocks", film_blocks)):
            bad = [i for i in blocks if not 0 <= int(i) < n_blocks]
            if bad:
                raise ValueError(f"model.net.{name} {list(blocks)} has indices outside 0..{n_blocks - 1}")
        if film_blocks and not film:
            raise ValueError("model.net.film_blocks is set but model.net.film is false")
        self.sample_rate, self.n_fft, self.hop = int(sample_rate), int(n_fft), int(hop_length)
        self.win = int(win_length or n_fft)
        if self.win > self.n_fft:
            raise ValueError(f"model.net.win_length ({self.win}) must be <= n_fft ({self.n_fft})")
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        n_bins = self.n_fft // 2 + 1
        if encoder == "conv":
            self.encoder: nn.Module = ConvEncoder(emb_dim, n_bins, eps)
            n_units = n_bins
        else:
            if not bands:
                raise ValueError("model.net.encoder=bandsplit needs model.net.bands ([[width_hz, until_hz], ...])")
            edges = band_edges(self.n_fft, self.sample_rate, bands)
            self.encoder = BandSplitEncoder(emb_dim, edges, eps, band_log_energy)
            n_units = len(edges) - 1
        self.n_units = n_units
        self.fusion_mode = fusion
        block_dim = 2 * emb_dim if fusion == "concat" else emb_dim
        self.block_dim = block_dim
        fh = int(fusion_heads or attn_heads)
        qk = int(attn_qk_dim) if attn_qk_dim else int(math.ceil(attn_approx_qk_dim / n_units))
        self.fusion = CrossAttention(emb_dim, n_units, fh, qk, eps)
        self.fuse_proj = nn.Conv2d(2 * emb_dim, emb_dim, 1) if fusion == "concat_project" else None
        self.reinject_blocks = [int(i) for i in reinject_blocks]
        self.reinject = nn.ModuleDict({str(i): CrossAttention(block_dim, n_units, fh, qk, eps) for i in self.reinject_blocks})
        # re-injection adds g * attention with g zero-initialised: an exact no-op at initialisation, like FiLM
        self.reinject_gate = nn.ParameterDict({str(i): nn.Parameter(torch.zeros(1, block_dim, 1, 1))
                                               for i in self.reinject_blocks})
        self.enroll_proj = nn.Conv2d(emb_dim, block_dim, 1) if (self.reinject_blocks and block_dim != emb_dim) else None
        self.use_film = bool(film)
        self.film_blocks = [int(i) for i in film_blocks]
        if film:
            # speaker embedding by statistics pooling of a non-linear per-unit feature (x-vector style): the
            # encoder output itself is linear in the STFT's real/imag parts, whose time average is ~0 for any voice
            self.spk_frame = nn.Sequential(nn.Conv2d(emb_dim, emb_dim, 1), nn.PReLU())
            self.spk_mlp = nn.Sequential(nn.Linear(2 * emb_dim, emb_dim), nn.PReLU())
            self.film_fusion = FiLM(emb_dim, block_dim)
            self.film = nn.ModuleDict({str(i): FiLM(emb_dim, block_dim) for i in self.film_blocks})
        self.blocks = nn.ModuleList([GridNetV2Block(block_dim, n_units, emb_ks, emb_hs, lstm_hidden, attn_heads,
                                                    attn_qk_dim, attn_approx_qk_dim, eps) for _ in range(n_blocks)])
        if encoder == "conv":
            self.decoder: nn.Module = ConvDecoder(block_dim, n_bins)
        else:
            self.decoder = BandSplitDecoder(block_dim, edges, int(band_decoder_hidden), eps)
        self.output = output
        if output == "mask":  # complex ratio mask initialised at 1 + 0j: the untrained extractor passes the mixture
            with torch.no_grad():
                if encoder == "conv":
                    self.decoder.dec.bias.copy_(torch.tensor([1.0, 0.0]))
                else:
                    for k, mlp in enumerate(self.decoder.mlps):
                        w = (edges[k + 1] - edges[k])
                        mlp[-1].bias.zero_()
                        mlp[-1].bias[:w] = 1.0
        self.cond_dropout = float(cond_dropout)
        self.cond_dropout_mode = cond_dropout_mode
        self.grad_checkpointing = bool(grad_checkpointing)
        self.eps = eps
        # z of the last forward, kept only when asked (the speaker-classification loss): a graph-holding tensor
        # attribute would break deepcopy (EMA) and hold the graph of the last step
        self.keep_speaker_embedding = False
        self.last_speaker_embedding: Tensor | None = None

    # ---- STFT
    def stft(self, x: Tensor) -> Tensor:
        with _fp32_ctx(x):
            return torch.stft(x.float(), self.n_fft, self.hop, self.win, self.window, center=True, return_complex=True)

    def istft(self, spec: Tensor, length: int) -> Tensor:
        with _fp32_ctx(spec):
            return torch.istft(spec, self.n_fft, self.hop, self.win, self.window, center=True, length=length)

    @staticmethod
    def _std(x: Tensor) -> Tensor:
        return x.float().std(dim=-1, keepdim=True).clamp_min(1e-8)

    # ---- enrollment
    def encode_enrollment(self, enrollment: Tensor) -> dict[str, Any]:
        """Everything the extractor needs from an enrollment ``[B, Se]``; reuse it for many mixtures (cached K/V)."""
        e = self.encoder(self.stft(enrollment / self._std(enrollment)))  # [B, D, Te, F]
        cache: dict[str, Any] = {"fusion": self.fusion.keys_values(e)}
        if self.reinject_blocks:
            ep = self.enroll_proj(e) if self.enroll_proj is not None else e
            cache["reinject"] = {k: m.keys_values(ep) for k, m in self.reinject.items()}
        if self.use_film:
            h = self.spk_frame(e)
            with _fp32_ctx(h):
                h = h.float()
                stats = torch.cat([h.mean(dim=(2, 3)), torch.sqrt(h.var(dim=(2, 3), unbiased=False) + self.eps)], dim=1)
            cache["z"] = self.spk_mlp(stats.to(e.dtype))
        return cache

    def _drop_rows(self, b: int, device: torch.device) -> Tensor | None:
        if not self.training or self.cond_dropout <= 0:
            return None
        return torch.rand(b, device=device) < self.cond_dropout

    def forward(self, mixture: Tensor, enrollment: Tensor | None = None, enrollment_cache: dict[str, Any] | None = None) -> Tensor:
        """``mixture [B, S]`` (or ``[S]``), ``enrollment [B, Se]`` or a cache from :meth:`encode_enrollment`
        (batch 1 or B) -> estimate ``[B, S]``."""
        squeeze = mixture.dim() == 1
        if squeeze:
            mixture = mixture[None]
            enrollment = enrollment[None] if enrollment is not None and enrollment.dim() == 1 else enrollment
        b, length = mixture.shape
        drop = self._drop_rows(b, mixture.device)
        if enrollment_cache is None:
            if enrollment is None:
                raise ValueError("TSENet.forward needs an enrollment or an enrollment_cache")
            if drop is not None and self.cond_dropout_mode == "zero_reference":
                enrollment = enrollment * (~drop).to(enrollment.dtype)[:, None]
            enrollment_cache = self.encode_enrollment(enrollment)
        skip = drop if (drop is not None and self.cond_dropout_mode == "skip") else None
        keep = None if skip is None else (~skip).to(mixture.dtype)[:, None, None, None]

        std = self._std(mixture)
        spec = self.stft(mixture / std)
        x = self.encoder(spec)  # [B, D, T, F]
        a = self.fusion(x, cache=enrollment_cache["fusion"])
        if keep is not None:
            a = a * keep
        if self.fusion_mode == "concat":
            x = torch.cat([x, a], dim=1)
        elif self.fusion_mode == "concat_project":
            x = self.fuse_proj(torch.cat([x, a], dim=1))
        else:
            x = x + a
        z = enrollment_cache.get("z")
        if self.keep_speaker_embedding:
            self.last_speaker_embedding = z
        if z is not None and z.shape[0] != b:
            z = z.expand(b, -1)
        if self.use_film:
            zz = z if keep is None else z * keep[:, :, 0, 0]
            x = self.film_fusion(x, zz)
        for i, block in enumerate(self.blocks):
            key = str(i)
            if key in self.reinject:
                r = self.reinject[key](x, cache=enrollment_cache["reinject"][key])
                if keep is not None:
                    r = r * keep
                x = x + self.reinject_gate[key].to(x.dtype) * r
            if self.use_film and key in self.film:
                x = self.film[key](x, z if keep is None else z * keep[:, :, 0, 0])
            if self.grad_checkpointing and self.training and x.requires_grad:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        out = self.decoder(x)
        if self.output == "mask":
            out = out * spec
        est = self.istft(out, length)
        est = est * std
        return est[0] if squeeze else est
