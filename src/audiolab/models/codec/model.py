"""The codec: SEANet encoder -> residual VQ -> SEANet decoder -> output mode, with optional per-segment RMS scale.

Output modes (``output``):

* ``unbounded`` (default, EnCodec/SoundStream): the decoder's last conv *is* the waveform. Level is pinned by the
  scale-sensitive loss terms (waveform L1, linear mel), not by the architecture.
* ``tanh`` (DAC): ``tanh(conv)``.
* ``tanh_scale``: ``tanh(conv * s)`` with a learnable scalar ``s`` — the design our users reported as stalling at an
  RMS ratio of 0.2-0.3. Kept only so that failure can be reproduced next to the fix.

Normalization (``normalization``):

* ``none``: the codes carry the level (EnCodec 24 kHz, causal).
* ``segment_rms``: EnCodec-48k style. The input is divided by the RMS of each ``segment_seconds`` segment *before*
  the encoder; the scales are part of the encoded stream and the decoder output is multiplied back. Not streamable
  (the scale of a segment needs the whole segment), so it is refused for causal streaming.
* ``loudness``: DAC style, done at data preparation (``data.normalize=loudness``); the model itself does nothing.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiolab.models.codec.seanet import SEANetDecoder, SEANetEncoder
from audiolab.nn.rvq import ResidualVectorQuantizer

OUTPUT_MODES = ("unbounded", "tanh", "tanh_scale")
NORMALIZATIONS = ("none", "segment_rms", "loudness")


class Codec(nn.Module):
    """Mono (or ``channels``-channel) neural codec at ``sample_rate`` Hz.

    Shapes: audio ``[B, T]`` or ``[B, C, T]`` samples; latents ``[B, D, F]`` frames; codes ``[B, K, F]`` (int64);
    ``F = ceil(T / hop_length)`` (the input is zero-padded on the right to whole frames, the output is trimmed back).
    """

    def __init__(self, sample_rate: int = 24000, channels: int = 1, seanet: dict | None = None,
                 quantizer: dict | None = None, output: str = "unbounded", output_scale_init: float = 1.0,
                 normalization: str = "none", segment_seconds: float = 1.0):
        super().__init__()
        if output not in OUTPUT_MODES:
            raise ValueError(f"model.codec.output must be one of {OUTPUT_MODES}, got {output!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"model.codec.normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        seanet = dict(seanet or {})
        quantizer = dict(quantizer or {})
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.output, self.normalization = output, normalization
        self.encoder = SEANetEncoder(channels=channels, **seanet)
        self.decoder = SEANetDecoder(channels=channels, **seanet)
        self.dimension = int(seanet.get("dimension", 128))
        self.causal = bool(seanet.get("causal", False))
        self.quantizer = ResidualVectorQuantizer(dim=self.dimension, **quantizer)
        self.hop_length = int(self.encoder.hop_length)
        self.segment_samples = 0
        if normalization == "segment_rms":
            frames = max(1, round(segment_seconds * self.sample_rate / self.hop_length))
            self.segment_samples = frames * self.hop_length
        # the users' failing design: conv -> x learnable scale -> tanh
        self.output_scale = nn.Parameter(torch.tensor(float(output_scale_init))) if output == "tanh_scale" else None

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def n_q(self) -> int:
        return self.quantizer.n_q

    @property
    def bins(self) -> int:
        return self.quantizer.bins

    def bandwidth_to_n_q(self, bandwidth_kbps: float | None) -> int:
        """EnCodec rule ``n_q = floor(bw * 1000 / (log2(bins) * frame_rate))``; ``None`` = all codebooks."""
        if bandwidth_kbps is None:
            return self.n_q
        return self.quantizer.n_q_for_bandwidth(float(bandwidth_kbps), self.frame_rate)

    def supported_bandwidths(self) -> list[float]:
        return self.quantizer.supported_bandwidths(self.frame_rate)

    # ------------------------------------------------------------------------------------------------ helpers
    def _as_bct(self, audio: Tensor) -> Tensor:
        if audio.dim() == 1:
            audio = audio[None, None]
        elif audio.dim() == 2:
            audio = audio[:, None] if self.channels == 1 else audio[None]
        if audio.dim() != 3 or audio.shape[1] != self.channels:
            raise ValueError(f"expected audio [B, T] or [B, {self.channels}, T], got {tuple(audio.shape)}")
        return audio

    def _pad_to_frames(self, x: Tensor) -> Tensor:
        multiple = self.segment_samples or self.hop_length
        pad = (-x.shape[-1]) % multiple
        return F.pad(x, (0, pad)) if pad else x

    def segment_scales(self, x: Tensor) -> Tensor:
        """RMS of each segment (channel mean), ``[B, S]``; ``1e-8`` floor as in EnCodec."""
        mono = x.float().mean(1)
        segs = mono.reshape(mono.shape[0], -1, self.segment_samples)
        return 1e-8 + segs.pow(2).mean(-1).sqrt()

    def _apply_scales(self, x: Tensor, scales: Tensor, inverse: bool) -> Tensor:
        gain = scales.repeat_interleave(self.segment_samples, dim=-1)[:, None, : x.shape[-1]]
        return x / gain if inverse else x * gain

    def output_activation(self, y: Tensor) -> Tensor:
        if self.output == "tanh":
            return torch.tanh(y)
        if self.output == "tanh_scale":
            return torch.tanh(y * self.output_scale)
        return y

    # ------------------------------------------------------------------------------------------------ API
    def forward(self, audio: Tensor, n_q: int | None = None) -> dict[str, Any]:
        """Training/eval pass. Returns ``audio`` (same shape as the input), ``codes [B, K, F]``, ``commitment``,
        ``n_q_per_item [B]``, ``scales [B, S]`` or None, ``latent [B, D, F]`` and ``replaced_codes``."""
        squeeze = audio.dim() == 2 and self.channels == 1
        x = self._as_bct(audio)
        length = x.shape[-1]
        x = self._pad_to_frames(x)
        scales = None
        if self.normalization == "segment_rms":
            scales = self.segment_scales(x)
            x = self._apply_scales(x, scales, inverse=True)
        latent = self.encoder(x)
        q = self.quantizer(latent, n_q=n_q)
        y = self.output_activation(self.decoder(q["quantized"]))
        if scales is not None:
            y = self._apply_scales(y, scales, inverse=False)
        y = y[..., :length]
        return {"audio": y[:, 0] if squeeze else y, "codes": q["codes"], "commitment": q["commitment"],
                "n_q_per_item": q["n_q_per_item"], "scales": scales, "latent": latent,
                "replaced_codes": q.get("replaced_codes", 0)}

    @torch.no_grad()
    def encode(self, audio: Tensor, n_q: int | None = None) -> tuple[Tensor, Tensor | None]:
        """``audio [B, T]`` -> ``(codes [B, n_q, F], scales [B, S] or None)``."""
        x = self._pad_to_frames(self._as_bct(audio))
        scales = None
        if self.normalization == "segment_rms":
            scales = self.segment_scales(x)
            x = self._apply_scales(x, scales, inverse=True)
        return self.quantizer.encode(self.encoder(x), n_q=n_q), scales

    @torch.no_grad()
    def decode(self, codes: Tensor, scales: Tensor | None = None, length: int | None = None) -> Tensor:
        """``codes [B, K, F]`` -> audio ``[B, C, T]`` (``T = length`` or ``F * hop``)."""
        if self.normalization == "segment_rms" and scales is None:
            raise ValueError("this codec was trained with normalization=segment_rms: decode needs the per-segment scales")
        y = self.output_activation(self.decoder(self.quantizer.decode(codes)))
        if scales is not None:
            y = self._apply_scales(y, scales, inverse=False)
        return y[..., :length] if length is not None else y

    def describe(self) -> dict[str, Any]:
        """Facts a container header or token manifest needs."""
        return {"sample_rate": self.sample_rate, "channels": self.channels, "hop_length": self.hop_length,
                "frame_rate": self.frame_rate, "n_q": self.n_q, "bins": self.bins, "causal": self.causal,
                "output": self.output, "normalization": self.normalization, "segment_samples": self.segment_samples,
                "bits_per_code": int(math.ceil(math.log2(self.bins)))}
