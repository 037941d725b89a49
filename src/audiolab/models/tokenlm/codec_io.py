"""Codec access for the token LM: load a frozen codec checkpoint that matches the tokens, encode prompts, decode.

The codec is never trained, averaged (EMA) or saved with the LM: it is loaded from its own checkpoint when audio
is needed (demos, the generation CLI).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor


class CodecMismatchError(ValueError):
    """The codec checkpoint cannot decode the LM's tokens (names both and the numbers)."""


def load_codec_for_tokens(path: str | Path, n_q: int, card: int, frame_rate: float | None = None,
                          device: str | torch.device = "cpu"):
    """The frozen :class:`~audiolab.models.codec.model.Codec` of ``path``, checked against the LM's tokens.

    Raises:
        CodecMismatchError: codebook size differs from ``card``, fewer than ``n_q`` codebooks, another frame rate,
            or a segment-RMS codec (its per-segment scales are not part of the tokens).
    """
    from audiolab.utils.checkpoint import load_trained

    codec = load_trained(path, family="codec", submodule="codec", freeze=True, device=device).module
    if codec.bins != card:
        raise CodecMismatchError(f"codec {path}: codebooks of {codec.bins} codes, but the LM's tokens have "
                                 f"cardinality {card}")
    if codec.n_q < n_q:
        raise CodecMismatchError(f"codec {path}: {codec.n_q} codebooks, but the LM predicts K={n_q}")
    if frame_rate and abs(float(codec.frame_rate) - float(frame_rate)) > 1e-6:
        raise CodecMismatchError(f"codec {path}: frame rate {codec.frame_rate:g} Hz, but the tokens were made at "
                                 f"{frame_rate:g} Hz")
    if getattr(codec, "normalization", "none") == "segment_rms":
        raise CodecMismatchError(f"codec {path}: normalization=segment_rms needs per-segment scales that token "
                                 "files do not carry")
    for p in codec.parameters():
        p.requires_grad_(False)
    return codec.eval()


@torch.no_grad()
def decode_tokens(codec, codes: Tensor) -> Tensor:
    """``codes`` ``[B, K, T]`` (ids ``0..card-1``) -> audio ``[B, samples]`` (first channel)."""
    device = next(codec.parameters()).device
    audio = codec.decode(codes.long().to(device))
    return audio[:, 0].float().cpu()


@torch.no_grad()
def encode_audio(codec, audio: Tensor, n_q: int) -> Tensor:
    """Mono audio ``[samples]`` or ``[B, samples]`` at the codec's rate -> codes ``[B, n_q, T]``."""
    device = next(codec.parameters()).device
    x = audio.float().to(device)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    codes, _ = codec.encode(x.unsqueeze(1), n_q=n_q)
    return codes.long().cpu()
