"""Codec inference beyond one forward pass: checkpoint loading, streaming and chunked encode/decode.

* **Streaming** (causal models): :class:`StreamingEncoder` / :class:`StreamingDecoder` carry the convolution and LSTM
  state across chunks of any length. Concatenated outputs equal the whole-file result (same zero padding at the
  start, the end of the stream zero-padded to a whole frame as in :meth:`Codec.encode`).
* **Inference copy**: :func:`prepare_for_inference` returns a numerically equivalent copy tuned for inference
  (weight norm baked into plain weights, native CPU LSTM kernel for short streamed chunks); the training modules
  are left as they are.
* **Chunked** (long files, bounded memory): causal models stream in chunks; non-causal models encode each chunk
  with enough left/right context (the analytic receptive field) that every kept frame sees exactly the samples it
  sees in the whole-file pass. A non-causal LSTM has an unbounded receptive field and cannot be chunked exactly:
  refused with a clear error when the signal is longer than one chunk (one chunk is simply the whole file).
"""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from audiolab.models.codec.model import Codec


def model_id(codec: Codec) -> str:
    """16 hex digits identifying the weights (sha1 over the state dict), written into every ``.alc`` header."""
    h = hashlib.sha1()
    for name, tensor in sorted(codec.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


def load_codec(ckpt_path: str | Path, device: str = "cpu") -> Codec:
    """The :class:`Codec` of an audiolab codec checkpoint or run folder (EMA weights when EMA was on), in eval mode.

    Loaded by :func:`audiolab.utils.checkpoint.load_trained` (``weights_only=True``; other families refused by name).
    """
    from audiolab.utils.checkpoint import load_trained

    return load_trained(ckpt_path, family="codec", submodule="codec", device=device).module


# ---------------------------------------------------------------------------------------------------- inference copy
class _ShortInputNativeLSTM(nn.LSTM):
    """``nn.LSTM`` that runs PyTorch's native CPU kernel instead of oneDNN for inputs of at most
    ``NATIVE_MAX_STEPS`` time steps (inference copies only, see :func:`prepare_for_inference`).

    oneDNN's LSTM pays a per-call cost of several ms (measured ~6-8 ms on a 512-unit 2-layer LSTM, 1 thread,
    torch 2.11) that dominates a streamed 20 ms chunk (1-2 frames: native ~2-3 ms); from ~50 steps on oneDNN is
    faster, so whole files keep it. Same math, results equal up to float rounding (~1e-7).
    """

    NATIVE_MAX_STEPS = 32

    def forward(self, input, hx=None):  # nn.LSTM's signature
        steps = input.shape[1 if self.batch_first else 0] if input.dim() == 3 else input.shape[0]
        if (input.device.type != "cpu" or steps > self.NATIVE_MAX_STEPS
                or not torch.backends.mkldnn.is_available() or not torch.backends.mkldnn.enabled):
            return super().forward(input, hx)
        # process-global flag, switched off for the duration of this call only (other flags untouched)
        previous = torch.backends.mkldnn.set_flags(False, None, None, None)
        try:
            return super().forward(input, hx)
        finally:
            torch.backends.mkldnn.set_flags(previous[0], None, None, None)


def _bake_parametrizations_(module: nn.Module) -> int:
    """Replace every parametrization (weight norm) under ``module`` by the tensor it computes; -> count."""
    n = 0
    for sub in list(module.modules()):
        if not parametrize.is_parametrized(sub):
            continue
        # deepcopy shares the generated ``Parametrized<Cls>`` class between a module and its copy, and
        # remove_parametrizations deletes the parametrized property from that class: without a class of its
        # own, baking the copy would break the original (AttributeError: ... has no attribute 'weight').
        cls = type(sub)
        attrs = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        sub.__class__ = type(cls.__name__, cls.__bases__, attrs)
        for name in list(sub.parametrizations.keys()):
            parametrize.remove_parametrizations(sub, name, leave_parametrized=True)
            n += 1
    return n


def prepare_for_inference(codec: Codec) -> Codec:
    """An inference-only copy of ``codec`` (which is left untouched), numerically equivalent to it:

    * **weight norm baked**: each ``weight_norm`` parametrization is replaced by the plain weight it computes
      (``g * v / ||v||``, the same tensor, so convolutions give bit-identical results). The training modules
      recompute it on every call: ~7 ms per pass of the 24 kHz model on one CPU thread, paid per streamed chunk.
    * **short-chunk LSTM**: the bottleneck LSTMs use the native CPU kernel for inputs of <= 32 frames
      (:class:`_ShortInputNativeLSTM`), oneDNN for longer ones.
    * eval mode, ``requires_grad=False``.

    The copy's ``state_dict`` has plain ``weight`` keys instead of ``parametrizations.weight.original0/1``: it is
    not a training checkpoint, and :func:`model_id` must be computed on the original codec (a container header
    names the trained weights).
    """
    out = copy.deepcopy(codec).eval()
    _bake_parametrizations_(out)
    for sub in out.modules():
        if type(sub) is nn.LSTM:
            sub.__class__ = _ShortInputNativeLSTM  # adds only a forward override; same parameters/buffers
    return out.requires_grad_(False)


def _bct(codec: Codec, audio: Tensor) -> Tensor:
    return codec._as_bct(audio)


# ---------------------------------------------------------------------------------------------------- streaming
class StreamingEncoder:
    """Push audio chunks of any length, get the codes of every completed frame; :meth:`flush` ends the stream."""

    def __init__(self, codec: Codec, n_q: int | None = None):
        if not codec.causal:
            raise ValueError("streaming needs a causal codec (model.codec.seanet.causal=true)")
        if codec.normalization == "segment_rms":
            raise ValueError("normalization=segment_rms needs a whole segment before encoding: it cannot stream")
        self.codec, self.n_q = codec, n_q
        self.state = None
        self.buffer: Tensor | None = None
        self.samples_in = 0

    @torch.inference_mode()
    def push(self, audio: Tensor) -> Tensor:
        """``audio [B, C, T]`` (or ``[T]``) -> codes ``[B, K, F_new]`` (``F_new`` may be 0)."""
        x = _bct(self.codec, audio)
        self.samples_in += x.shape[-1]
        self.buffer = x if self.buffer is None else torch.cat([self.buffer, x], dim=-1)
        hop = self.codec.hop_length
        n = (self.buffer.shape[-1] // hop) * hop
        if n == 0:
            k = self.n_q or self.codec.n_q
            return torch.zeros(x.shape[0], k, 0, dtype=torch.long, device=x.device)
        frames, self.state = self.codec.encoder.forward_streaming(self.buffer[..., :n], self.state)
        self.buffer = self.buffer[..., n:]
        return self.codec.quantizer.encode(frames, n_q=self.n_q)

    def flush(self) -> Tensor:
        """Zero-pad what is left to one frame and encode it (as :meth:`Codec.encode` pads the file end)."""
        if self.buffer is None or self.buffer.shape[-1] == 0:
            k = self.n_q or self.codec.n_q
            b = 1 if self.buffer is None else self.buffer.shape[0]
            return torch.zeros(b, k, 0, dtype=torch.long)
        pad = self.codec.hop_length - self.buffer.shape[-1]
        rest = F.pad(self.buffer, (0, pad))
        self.buffer = rest[..., :0]
        return self._encode_padded(rest)

    @torch.inference_mode()
    def _encode_padded(self, x: Tensor) -> Tensor:
        frames, self.state = self.codec.encoder.forward_streaming(x, self.state)
        return self.codec.quantizer.encode(frames, n_q=self.n_q)


class StreamingDecoder:
    """Push codes ``[B, K, F]``, get ``F * hop`` samples per push; equal to :meth:`Codec.decode` on the whole stream."""

    def __init__(self, codec: Codec):
        if not codec.causal:
            raise ValueError("streaming needs a causal codec (model.codec.seanet.causal=true)")
        if codec.normalization == "segment_rms":
            raise ValueError("normalization=segment_rms cannot stream (per-segment scales)")
        self.codec = codec
        self.state = None

    @torch.inference_mode()
    def push(self, codes: Tensor) -> Tensor:
        if codes.shape[-1] == 0:
            return torch.zeros(codes.shape[0], self.codec.channels, 0)
        latent = self.codec.quantizer.decode(codes)
        y, self.state = self.codec.decoder.forward_streaming(latent, self.state)
        return self.codec.output_activation(y)


# ---------------------------------------------------------------------------------------------------- chunked
def _chunk_frames(codec: Codec, chunk_seconds: float) -> int:
    frames = int(round(chunk_seconds * codec.sample_rate / codec.hop_length))
    if codec.segment_samples:
        per_seg = codec.segment_samples // codec.hop_length
        frames = max(per_seg, (frames // per_seg) * per_seg)
    return max(1, frames)


@torch.inference_mode()
def encode_long(codec: Codec, audio: Tensor, n_q: int | None = None, chunk_seconds: float = 30.0
                ) -> tuple[Tensor, Tensor | None]:
    """Encode a long signal in chunks of ``chunk_seconds`` (0 = whole file). Returns ``(codes [B, K, F], scales)``,
    equal to :meth:`Codec.encode` on the whole signal."""
    if chunk_seconds <= 0:
        return codec.encode(audio, n_q=n_q)
    x = codec._pad_to_frames(_bct(codec, audio))
    hop = codec.hop_length
    chunk = _chunk_frames(codec, chunk_seconds) * hop
    if x.shape[-1] <= chunk:
        # one chunk is the whole file: exact for every codec, a non-causal LSTM included
        return codec.encode(audio, n_q=n_q)
    if codec.causal and codec.normalization != "segment_rms":
        enc = StreamingEncoder(codec, n_q)
        codes = [enc.push(x[..., i:i + chunk]) for i in range(0, x.shape[-1], chunk)]
        codes.append(enc.flush())
        return torch.cat(codes, dim=-1), None
    scales = None
    if codec.normalization == "segment_rms":
        scales = codec.segment_scales(x)
        x = codec._apply_scales(x, scales, inverse=True)
    if codec.encoder.lstm:
        raise ValueError("a non-causal encoder with an LSTM depends on the whole signal: it cannot be chunked exactly; "
                         "encode the whole file (chunk_seconds=0)")
    left = math.ceil(codec.encoder.left_context_samples() / hop) * hop
    right = math.ceil(codec.encoder.lookahead_samples() / hop) * hop
    out = []
    total = x.shape[-1]
    for start in range(0, total, chunk):
        stop = min(total, start + chunk)
        lo, hi = max(0, start - left), min(total, stop + right)
        frames = codec.encoder(x[..., lo:hi])
        keep = frames[..., (start - lo) // hop:(stop - lo) // hop]
        out.append(codec.quantizer.encode(keep, n_q=n_q))
    return torch.cat(out, dim=-1), scales


@torch.inference_mode()
def decode_long(codec: Codec, codes: Tensor, scales: Tensor | None = None, length: int | None = None,
                chunk_seconds: float = 30.0) -> Tensor:
    """Decode ``codes [B, K, F]`` in chunks; equal to :meth:`Codec.decode` on the whole stream. -> ``[B, C, T]``."""
    frames = _chunk_frames(codec, chunk_seconds) if chunk_seconds > 0 else 0
    if chunk_seconds <= 0 or codes.shape[-1] <= frames:
        return codec.decode(codes, scales, length)
    if codec.causal and codec.normalization != "segment_rms":
        dec = StreamingDecoder(codec)
        y = torch.cat([dec.push(codes[..., i:i + frames]) for i in range(0, codes.shape[-1], frames)], dim=-1)
    else:
        if codec.decoder.lstm:
            raise ValueError("a non-causal decoder with an LSTM depends on all frames: it cannot be chunked exactly; "
                             "decode the whole file (chunk_seconds=0)")
        if codec.normalization == "segment_rms" and scales is None:
            raise ValueError("this codec was trained with normalization=segment_rms: decoding needs the scales")
        latent = codec.quantizer.decode(codes)
        left, right = codec.decoder.left_context_frames(), codec.decoder.lookahead_frames()
        hop, total, out = codec.hop_length, latent.shape[-1], []
        for start in range(0, total, frames):
            stop = min(total, start + frames)
            lo, hi = max(0, start - left), min(total, stop + right)
            y = codec.decoder(latent[..., lo:hi])
            out.append(y[..., (start - lo) * hop:(stop - lo) * hop])
        y = codec.output_activation(torch.cat(out, dim=-1))
        if scales is not None:
            y = codec._apply_scales(y, scales, inverse=False)
    return y[..., :length] if length is not None else y
