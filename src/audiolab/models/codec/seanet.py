"""SEANet encoder/decoder (EnCodec's convolutional backbone) with exact causal streaming.

Architecture (EnCodec ``SEANetEncoder``/``SEANetDecoder``; facts in shared/reference/codec.md section 1):

* Encoder: conv k=``kernel_size`` (C -> ``n_filters``); for each ratio of ``reversed(ratios)``:
  ``n_residual_layers`` residual blocks, then ELU -> strided conv (kernel ``2*ratio``, stride ``ratio``,
  channels doubled); optional residual LSTM; ELU -> conv k=``last_kernel_size`` -> ``dimension``.
* Decoder: the mirror image, with transposed convs for up-sampling and no output activation (output modes
  are applied by the codec model).

Shapes: audio ``[B, C, T]`` in *samples*; latents ``[B, D, F]`` in *frames*; ``T = F * hop_length`` with
``hop_length = prod(ratios)``. Every conv is padded so that it maps ``T_in`` to exactly ``T_in / stride``
steps, which is why the input length must be a multiple of ``hop_length`` (the codec model pads to whole
frames).

Padding follows EnCodec ``SConv1d``/``SConvTranspose1d``: a conv with effective kernel
``k_eff = (k - 1) * d + 1`` and stride ``s`` is padded by ``k_eff - s`` samples, all on the left when causal,
otherwise split with the extra sample on the left. A transposed conv (full output ``(F - 1) * s + k``) is
cropped by ``k - s``: all on the right when causal, split otherwise.

Streaming (``causal=True`` only): every layer that looks back in time has a ``forward_streaming(x, state)``
that returns ``(y, new_state)`` without mutating ``state``:

* ``StreamableConv1d`` keeps the last ``k_eff - s`` input steps as left context. A fresh state (``None``)
  pads the first chunk exactly as ``forward`` does (zeros for ``pad_mode="constant"``), so concatenated
  streamed outputs equal the whole-file output for any chunking into whole frames.
* ``StreamableConvTranspose1d`` emits the first ``F * s`` samples of each chunk's full transposed conv (plus
  the carried overlap from the previous chunk) and carries the last ``k - s`` samples. The whole-file
  forward crops exactly that never-flushed tail on the right.
* ``StreamableLSTM`` carries ``(h, c)``.

With ``pad_mode="reflect"`` a causal model's first frames reflect samples *after* time 0 (EnCodec does the
same), so the very start of the signal is not strictly causal and the first streamed chunk must be longer
than the left context of every layer (``min_first_chunk()``; a shorter one raises ``ValueError``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

NORMS: tuple[str, ...] = ("weight_norm", "none")
PAD_MODES: tuple[str, ...] = ("constant", "reflect")


def _apply_norm(module: nn.Module, norm: str) -> nn.Module:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return weight_norm(module) if norm == "weight_norm" else module


def pad1d(x: Tensor, left: int, right: int, mode: str = "constant") -> Tensor:
    """Pad the last axis of ``x`` (``[..., T]``) by ``left``/``right`` steps with zeros or reflection.

    ``F.pad(mode="reflect")`` needs ``T > pad``; for shorter inputs we first append zeros (as EnCodec's
    ``pad1d`` does) so tiny signals still work, then drop those zeros again.
    """
    if mode == "constant":
        return F.pad(x, (left, right))
    if mode != "reflect":
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {mode!r}")
    length = x.shape[-1]
    extra = max(0, max(left, right) - length + 1)
    if extra:
        x = F.pad(x, (0, extra))
    y = F.pad(x, (left, right), mode="reflect")
    return y[..., : y.shape[-1] - extra]


def _run_layers(layers: Sequence[nn.Module], x: Tensor, states: Sequence[Any] | None) -> tuple[Tensor, tuple]:
    """Stream ``x`` through ``layers``; stateless layers (activations, identity) are called directly."""
    new_states = []
    for i, layer in enumerate(layers):
        if hasattr(layer, "forward_streaming"):
            x, s = layer.forward_streaming(x, None if states is None else states[i])
        else:
            x, s = layer(x), None
        new_states.append(s)
    return x, tuple(new_states)


def _input_range(layers: Sequence[nn.Module], lo: int, hi: int) -> tuple[int, int]:
    """Map an output index range ``[lo, hi]`` back through ``layers`` to the input range it depends on.

    Pointwise layers (ELU, identity) keep the range. The LSTM is treated as pointwise here: its unbounded left
    context is handled by the callers (``ignore_lstm``).
    """
    for layer in reversed(list(layers)):
        if hasattr(layer, "input_range"):
            lo, hi = layer.input_range(lo, hi)
    return lo, hi


class StreamableConv1d(nn.Module):
    """Conv1d with EnCodec padding; whole-signal ``forward`` and causal ``forward_streaming``.

    Shapes: ``[B, C_in, T]`` -> ``[B, C_out, T // stride]`` (``T`` a multiple of ``stride``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "constant",
    ):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.conv = _apply_norm(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation), norm
        )
        self.kernel_size, self.stride, self.dilation = int(kernel_size), int(stride), int(dilation)
        self.causal, self.pad_mode = bool(causal), pad_mode
        self.effective_kernel = (self.kernel_size - 1) * self.dilation + 1
        self.padding_total = self.effective_kernel - self.stride
        if self.padding_total < 0:
            # a stride larger than the kernel would skip input samples; SEANet never builds such a conv
            raise ValueError(f"stride {stride} > effective kernel {self.effective_kernel}")
        if self.causal:
            self.padding_left, self.padding_right = self.padding_total, 0
        else:
            self.padding_right = self.padding_total // 2
            self.padding_left = self.padding_total - self.padding_right

    def _check_length(self, length: int) -> None:
        if length <= 0 or length % self.stride:
            raise ValueError(
                f"conv input length {length} must be a positive multiple of its stride {self.stride}"
            )

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[-1]
        self._check_length(length)
        y = self.conv(pad1d(x, self.padding_left, self.padding_right, self.pad_mode))
        # padding_total = k_eff - stride makes the frame count exact, so no EnCodec "extra padding" is needed
        assert y.shape[-1] == length // self.stride, (y.shape, length, self.stride)
        return y

    def forward_streaming(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """One chunk ``[B, C_in, T_chunk]`` -> ``([B, C_out, T_chunk // stride], context)``.

        ``context`` (the new state) is ``[B, C_in, k_eff - s]``: the last input steps the next chunk needs.

        ``state=None`` starts a stream: the chunk is left-padded exactly like ``forward`` pads a whole signal.
        """
        if not self.causal:
            raise ValueError("streaming needs causal=True (a non-causal conv looks ahead)")
        length = x.shape[-1]
        self._check_length(length)
        context = self.padding_left
        if state is None:
            if self.pad_mode == "reflect" and 0 < length <= context:
                raise ValueError(
                    f"with pad_mode='reflect' the first streamed chunk must be longer than every layer's "
                    f"left context: a conv (kernel {self.kernel_size}, dilation {self.dilation}) got "
                    f"{length} steps but needs more than {context}; send a longer first chunk or use "
                    "pad_mode='constant'"
                )
            x_full = pad1d(x, context, 0, self.pad_mode)
        else:
            x_full = torch.cat([state, x], dim=-1)
        y = self.conv(x_full)
        assert y.shape[-1] == length // self.stride
        # clone: a slice would keep the whole chunk's storage alive until the next call
        return y, x_full[..., x_full.shape[-1] - context :].clone()

    def input_range(self, lo: int, hi: int) -> tuple[int, int]:
        """Output steps ``[lo, hi]`` depend on inputs ``[lo*s - pad_left, hi*s - pad_left + k_eff - 1]``."""
        start = lo * self.stride - self.padding_left
        return start, hi * self.stride - self.padding_left + self.effective_kernel - 1


class StreamableConvTranspose1d(nn.Module):
    """ConvTranspose1d cropped to exactly ``T_in * stride`` outputs; causal ``forward_streaming``.

    Shapes: ``[B, C_in, F]`` -> ``[B, C_out, F * stride]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        causal: bool = False,
        norm: str = "weight_norm",
    ):
        super().__init__()
        self.convtr = _apply_norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride), norm)
        self.kernel_size, self.stride, self.causal = int(kernel_size), int(stride), bool(causal)
        self.padding_total = self.kernel_size - self.stride
        if self.padding_total < 0:
            raise ValueError(f"stride {stride} > kernel {kernel_size} would leave gaps in the output")
        if self.causal:
            # everything cropped on the right = the overlap-add tail that a stream has not received yet
            self.crop_left, self.crop_right = 0, self.padding_total
        else:
            self.crop_right = self.padding_total // 2
            self.crop_left = self.padding_total - self.crop_right

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[-1]
        if length <= 0:
            raise ValueError("transposed conv input must have at least one step")
        y = self.convtr(x)
        y = y[..., self.crop_left : y.shape[-1] - self.crop_right]
        assert y.shape[-1] == length * self.stride
        return y

    def forward_streaming(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """One chunk ``[B, C_in, F_chunk]`` -> ``([B, C_out, F_chunk * s], tail [B, C_out, k - s])``.

        The tail is the part of the overlap-add that later frames still contribute to. It is carried *without*
        bias: the bias is added once, to emitted samples only, or overlapping samples would get it twice.
        """
        if not self.causal:
            raise ValueError(
                "streaming needs causal=True (a non-causal transposed conv crops future samples)"
            )
        length = x.shape[-1]
        if length <= 0:
            raise ValueError("transposed conv input must have at least one step")
        y = F.conv_transpose1d(x, self.convtr.weight, None, self.stride)  # [B, C_out, F*s + (k - s)]
        if state is not None:
            y = y + F.pad(state, (0, y.shape[-1] - state.shape[-1]))
        emit = length * self.stride
        out, tail = y[..., :emit], y[..., emit:]
        bias = self.convtr.bias
        if bias is not None:
            out = out + bias[:, None]
        return out, tail.clone()

    def input_range(self, lo: int, hi: int) -> tuple[int, int]:
        """Cropped outputs ``[lo, hi]`` = full outputs ``[lo + c, hi + c]``; full output ``t`` sums the
        inputs ``i`` with ``0 <= t - i*s <= k - 1``."""
        s, c = self.stride, self.crop_left
        return -((self.kernel_size - 1 - lo - c) // s), (hi + c) // s


class StreamableLSTM(nn.Module):
    """Unidirectional LSTM over time with a residual skip (EnCodec ``SLSTM``): ``y = lstm(x) + x``.

    Shapes: ``[B, D, T]`` -> ``[B, D, T]``; the streaming state is the LSTM's ``(h, c)``.
    """

    def __init__(self, dimension: int, num_layers: int = 2, skip: bool = True):
        super().__init__()
        self.skip = bool(skip)
        self.lstm = nn.LSTM(dimension, dimension, num_layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_streaming(x, None)[0]

    def forward_streaming(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        y, new_state = self.lstm(x.permute(2, 0, 1), state)  # LSTM wants [T, B, D]
        y = y.permute(1, 2, 0)
        return (y + x if self.skip else y), new_state

    def input_range(self, lo: int, hi: int) -> tuple[int, int]:
        # no look-ahead; the (unbounded) look-back is reported by the model's receptive-field methods
        return lo, hi


class SEANetResidualBlock(nn.Module):
    """ELU -> conv k (dilated, dim -> dim/compress) -> ELU -> conv 1 (-> dim), plus identity or 1x1-conv skip.

    Shapes: ``[B, dim, T]`` -> ``[B, dim, T]``.
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int = 3,
        dilation: int = 1,
        compress: int = 2,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "constant",
        true_skip: bool = True,
    ):
        super().__init__()
        hidden = dim // compress
        if hidden < 1:
            raise ValueError(f"compress={compress} leaves no hidden channels for dim={dim}")
        conv = dict(causal=causal, norm=norm, pad_mode=pad_mode)
        self.block = nn.ModuleList(
            [
                nn.ELU(),
                StreamableConv1d(dim, hidden, kernel_size, dilation=dilation, **conv),
                nn.ELU(),
                StreamableConv1d(hidden, dim, 1, **conv),
            ]
        )
        self.shortcut: nn.Module = nn.Identity() if true_skip else StreamableConv1d(dim, dim, 1, **conv)

    def forward(self, x: Tensor) -> Tensor:
        y = x
        for layer in self.block:
            y = layer(y)
        return self.shortcut(x) + y

    def forward_streaming(self, x: Tensor, state: tuple | None) -> tuple[Tensor, tuple]:
        block_state, skip_state = (None, None) if state is None else state
        y, block_state = _run_layers(self.block, x, block_state)
        skip, skip_state = _run_layers([self.shortcut], x, None if skip_state is None else skip_state)
        return skip + y, (block_state, skip_state)

    def input_range(self, lo: int, hi: int) -> tuple[int, int]:
        b_lo, b_hi = _input_range(self.block, lo, hi)
        s_lo, s_hi = _input_range([self.shortcut], lo, hi)
        return min(b_lo, s_lo), max(b_hi, s_hi)


@dataclass(frozen=True)
class SEANetStreamingState:
    """Per-layer streaming states (``None`` = stream not started) and the number of steps consumed so far
    (samples for the encoder, frames for the decoder). Immutable: a state can be reused to branch a stream."""

    layers: tuple
    steps: int = 0


def _check_args(
    channels: int,
    dimension: int,
    n_filters: int,
    ratios: Sequence[int],
    n_residual_layers: int,
    lstm: int,
    compress: int,
    norm: str,
    pad_mode: str,
) -> list[int]:
    ratios = [int(r) for r in ratios]
    if not ratios or any(r < 1 for r in ratios):
        raise ValueError(f"ratios must be a non-empty sequence of positive ints, got {ratios}")
    if min(channels, dimension, n_filters, compress) < 1 or n_residual_layers < 0 or lstm < 0:
        raise ValueError(
            "channels, dimension, n_filters, compress must be >= 1; n_residual_layers, lstm >= 0"
        )
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    return ratios


def _walk_convs(layers: Sequence[nn.Module], scale: Fraction) -> Iterator[tuple[StreamableConv1d, Fraction]]:
    """Yield every ``StreamableConv1d`` with its input rate in steps per model-input step."""
    for layer in layers:
        if isinstance(layer, StreamableConv1d):
            yield layer, scale
            scale = scale / layer.stride
        elif isinstance(layer, StreamableConvTranspose1d):
            scale = scale * layer.stride
        elif isinstance(layer, SEANetResidualBlock):
            yield from _walk_convs([*layer.block, layer.shortcut], scale)


class _SEANetBase(nn.Module):
    """Shared plumbing: layer list, streaming loop, receptive-field walk."""

    layers: nn.ModuleList
    causal: bool
    lstm: int
    hop_length: int

    def _run(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def streaming_state(self) -> SEANetStreamingState:
        """A fresh stream: every buffer empty (equivalent to the zero left padding of the whole-file pass)."""
        if not self.causal:
            raise ValueError("streaming needs causal=True")
        return SEANetStreamingState(layers=(None,) * len(self.layers))

    def _stream(self, x: Tensor, state: SEANetStreamingState | None) -> tuple[Tensor, SEANetStreamingState]:
        if not self.causal:
            raise ValueError("streaming needs causal=True")
        self._check_first_chunk(x.shape[-1], state)
        state = self.streaming_state() if state is None else state
        y, layer_states = _run_layers(self.layers, x, state.layers)
        return y, SEANetStreamingState(layers=layer_states, steps=state.steps + x.shape[-1])

    def min_first_chunk(self) -> int:
        """Shortest first streamed chunk (samples for the encoder, frames for the decoder) for which
        streaming equals the whole-file pass. 1 frame with ``pad_mode="constant"``; with ``"reflect"`` every
        conv must see more steps than its left context, because its reflected padding is built from the
        first chunk."""
        need = Fraction(1)
        for conv, scale in _walk_convs(self.layers, Fraction(1)):
            if conv.pad_mode == "reflect" and conv.padding_left:
                need = max(need, Fraction(math.floor(conv.padding_left / scale) + 1))
        unit = self.hop_length if isinstance(self, SEANetEncoder) else 1
        return math.ceil(need / unit) * unit

    def _check_first_chunk(self, length: int, state: SEANetStreamingState | None) -> None:
        if (state is None or state.steps == 0) and length < self.min_first_chunk():
            raise ValueError(
                f"with pad_mode='reflect' the first streamed chunk must have at least "
                f"{self.min_first_chunk()} steps, got {length}; or use pad_mode='constant'"
            )

    def _check_lstm(self, ignore_lstm: bool) -> None:
        if self.lstm and not ignore_lstm:
            raise ValueError(
                "with lstm > 0 every output depends on the whole past (unbounded left context); "
                "pass ignore_lstm=True for the receptive field of the convolutions only"
            )


class SEANetEncoder(_SEANetBase):
    """Waveform -> latent frames: ``[B, channels, T]`` samples -> ``[B, dimension, T // hop_length]``."""

    def __init__(
        self,
        channels: int = 1,
        dimension: int = 128,
        n_filters: int = 32,
        ratios: Sequence[int] = (8, 5, 4, 2),
        n_residual_layers: int = 1,
        dilation_base: int = 2,
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        compress: int = 2,
        lstm: int = 0,
        causal: bool = False,
        true_skip: bool = True,
        norm: str = "weight_norm",
        pad_mode: str = "constant",
    ):
        super().__init__()
        ratios = _check_args(
            channels, dimension, n_filters, ratios, n_residual_layers, lstm, compress, norm, pad_mode
        )
        self.channels, self.dimension, self.n_filters = int(channels), int(dimension), int(n_filters)
        self.ratios = ratios  # decoder order, as in EnCodec; the encoder walks them reversed
        self.hop_length = int(math.prod(ratios))
        self.causal, self.lstm = bool(causal), int(lstm)
        conv = dict(causal=causal, norm=norm, pad_mode=pad_mode)
        mult = 1
        layers: list[nn.Module] = [StreamableConv1d(channels, n_filters, kernel_size, **conv)]
        for ratio in reversed(ratios):
            dim = mult * n_filters
            for j in range(n_residual_layers):
                layers.append(
                    SEANetResidualBlock(
                        dim, residual_kernel_size, dilation_base**j, compress, true_skip=true_skip, **conv
                    )
                )
            layers += [nn.ELU(), StreamableConv1d(dim, dim * 2, 2 * ratio, stride=ratio, **conv)]
            mult *= 2
        if lstm:
            layers.append(StreamableLSTM(mult * n_filters, lstm))
        layers += [nn.ELU(), StreamableConv1d(mult * n_filters, dimension, last_kernel_size, **conv)]
        self.layers = nn.ModuleList(layers)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.channels:
            raise ValueError(f"expected audio [B, {self.channels}, T], got {tuple(x.shape)}")
        length = x.shape[-1]
        if length <= 0 or length % self.hop_length:
            raise ValueError(
                f"input length T={length} is not a positive multiple of hop_length={self.hop_length}; "
                "pad the signal to whole frames first"
            )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, T]`` samples (``T`` a multiple of ``hop_length``) -> ``[B, dimension, T // hop]``."""
        self._check_input(x)
        return self._run(x)

    def forward_streaming(
        self, x: Tensor, state: SEANetStreamingState | None = None
    ) -> tuple[Tensor, SEANetStreamingState]:
        """Causal streaming: chunk ``[B, C, T_chunk]`` (a multiple of ``hop_length``, may vary per call) ->
        ``([B, dimension, T_chunk // hop_length], new_state)``. Concatenated outputs equal ``forward`` on the
        concatenated input."""
        self._check_input(x)
        return self._stream(x, state)

    def _frame_input_range(self) -> tuple[int, int]:
        return _input_range(
            self.layers, 0, 0
        )  # samples that frame 0 depends on (relative to its first sample)

    def lookahead_samples(self) -> int:
        """Samples after the end of a frame's own hop that the frame depends on (0 when causal)."""
        return self._frame_input_range()[1] - (self.hop_length - 1)

    def left_context_samples(self, ignore_lstm: bool = False) -> int:
        """Samples before the start of a frame's own hop that the frame depends on."""
        self._check_lstm(ignore_lstm)
        return -self._frame_input_range()[0]

    def receptive_field_samples(self, ignore_lstm: bool = False) -> int:
        """Total input samples one output frame depends on: ``left_context + hop_length + lookahead``.

        Frame ``n`` depends on samples ``[n*hop - left_context, (n+1)*hop - 1 + lookahead]`` (away from the
        signal edges, where padding stands in). With an LSTM the left context is unbounded: raises unless
        ``ignore_lstm``.
        """
        lo, hi = self._frame_input_range()
        self._check_lstm(ignore_lstm)
        return hi - lo + 1


class SEANetDecoder(_SEANetBase):
    """Latent frames -> waveform. ``[B, dimension, F]`` frames -> ``[B, channels, F * hop_length]`` samples.

    The last layer is a plain conv to ``channels``: no output activation, the codec model applies its output
    mode.
    """

    def __init__(
        self,
        channels: int = 1,
        dimension: int = 128,
        n_filters: int = 32,
        ratios: Sequence[int] = (8, 5, 4, 2),
        n_residual_layers: int = 1,
        dilation_base: int = 2,
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        compress: int = 2,
        lstm: int = 0,
        causal: bool = False,
        true_skip: bool = True,
        norm: str = "weight_norm",
        pad_mode: str = "constant",
    ):
        super().__init__()
        ratios = _check_args(
            channels, dimension, n_filters, ratios, n_residual_layers, lstm, compress, norm, pad_mode
        )
        self.channels, self.dimension, self.n_filters = int(channels), int(dimension), int(n_filters)
        self.ratios = ratios
        self.hop_length = int(math.prod(ratios))
        self.causal, self.lstm = bool(causal), int(lstm)
        conv = dict(causal=causal, norm=norm, pad_mode=pad_mode)
        mult = 2 ** len(ratios)
        layers: list[nn.Module] = [StreamableConv1d(dimension, mult * n_filters, kernel_size, **conv)]
        if lstm:
            layers.append(StreamableLSTM(mult * n_filters, lstm))
        for ratio in ratios:
            dim = mult * n_filters // 2
            layers += [
                nn.ELU(),
                StreamableConvTranspose1d(
                    mult * n_filters, dim, 2 * ratio, stride=ratio, causal=causal, norm=norm
                ),
            ]
            for j in range(n_residual_layers):
                layers.append(
                    SEANetResidualBlock(
                        dim, residual_kernel_size, dilation_base**j, compress, true_skip=true_skip, **conv
                    )
                )
            mult //= 2
        layers += [nn.ELU(), StreamableConv1d(n_filters, channels, last_kernel_size, **conv)]
        self.layers = nn.ModuleList(layers)

    def _check_input(self, z: Tensor) -> None:
        if z.dim() != 3 or z.shape[1] != self.dimension or z.shape[-1] <= 0:
            raise ValueError(f"expected latents [B, {self.dimension}, F>0], got {tuple(z.shape)}")

    def forward(self, z: Tensor) -> Tensor:
        """``[B, dimension, F]`` frames -> ``[B, channels, F * hop_length]`` samples."""
        self._check_input(z)
        return self._run(z)

    def forward_streaming(
        self, z: Tensor, state: SEANetStreamingState | None = None
    ) -> tuple[Tensor, SEANetStreamingState]:
        """Causal streaming: ``[B, dimension, F_chunk]`` -> ``([B, channels, F_chunk * hop], new_state)``."""
        self._check_input(z)
        return self._stream(z, state)

    def _frame_range(self) -> tuple[int, int]:
        return _input_range(self.layers, 0, self.hop_length - 1)  # latent frames that frame 0's samples need

    def lookahead_frames(self) -> int:
        """Later latent frames that the samples of frame ``n``'s hop depend on (0 when causal)."""
        return self._frame_range()[1]

    def left_context_frames(self, ignore_lstm: bool = False) -> int:
        """Earlier latent frames that the samples of frame ``n``'s hop depend on."""
        self._check_lstm(ignore_lstm)
        return -self._frame_range()[0]

    def receptive_field_frames(self, ignore_lstm: bool = False) -> int:
        """Count of the latent frames ``[n - left_context, n + lookahead]`` that output samples
        ``[n*hop, (n+1)*hop)`` depend on. Raises with an LSTM unless ``ignore_lstm`` (unbounded left
        context)."""
        lo, hi = self._frame_range()
        self._check_lstm(ignore_lstm)
        return hi - lo + 1


def encoder_lookahead_samples(encoder: SEANetEncoder) -> int:
    """Samples of future context an encoder frame needs beyond its own hop: 0 for a causal encoder."""
    return encoder.lookahead_samples()
