"""DDSP decoders: per-frame conditioning -> raw (pre-activation) synth controls.

Every decoder maps ``x: [B, F, in_features]`` (``F`` frames; each input channel is one scalar feature,
e.g. ``ld_scaled``, ``f0_scaled``) to ``[B, F, out_features]`` *pre-activation* controls. The synth
applies ``exp_sigmoid`` itself, so no output nonlinearity here. For the paper's solo-instrument
config ``out_features = 1 (amps) + 60 (harmonic distribution) + 65 (noise magnitudes) = 126``.

Output-layer scale: every backbone feeds its last ``nn.Linear`` from a normalised representation
(LayerNorm inside each FC layer, or the Transformer's final LayerNorm), so with PyTorch's default
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` init the initial outputs have std of roughly 0.5 and
``exp_sigmoid`` starts in its sensitive range rather than saturated.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audiolab.nn.transformer import KVCache, TransformerStack

BACKBONES: tuple[str, ...] = ("mlp", "gru", "transformer", "micro_rnn")

# TF/Keras ``leaky_relu`` default slope, used by magenta's FcStack (torch's default is 0.01).
LEAKY_SLOPE = 0.2


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``module`` (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class StreamingDecoder(nn.Module):
    """Interface of the decoders: ``forward(x)`` on a whole excerpt, and ``stream(x, state) -> (y, state)`` on
    consecutive chunks of one longer sequence (``state=None`` at its start).

    ``streamable`` is True when feeding chunks through ``stream`` gives the same output as one ``forward`` over the
    concatenation *and* the output does not depend on the absolute frame index (so a file of any length behaves as
    the training windows did). Decoders that are not streamable (a transformer with absolute positions or attention
    over the whole sequence) are run on windows of the training length by
    :func:`audiolab.models.ddsp.render.decode_whole`.
    """

    streamable: bool = True

    def stream(self, x: Tensor, state: object = None) -> tuple[Tensor, object]:
        return self(x), state


class FcStack(nn.Module):
    """``layers x [Linear(hidden) -> LayerNorm -> LeakyReLU(0.2)]`` as in magenta ``ddsp.training.nn.FcStack``.

    ``layers = 0`` is the identity (tiny_instrument.gin uses this), in which case ``out_features``
    equals ``in_features``.

    Shapes: ``[..., in_features]`` -> ``[..., out_features]``.
    """

    def __init__(self, in_features: int, hidden_size: int, layers: int) -> None:
        super().__init__()
        if layers < 0:
            raise ValueError(f"layers must be >= 0, got {layers}")
        mods: list[nn.Module] = []
        width = in_features
        for _ in range(layers):
            mods += [nn.Linear(width, hidden_size), nn.LayerNorm(hidden_size), nn.LeakyReLU(LEAKY_SLOPE)]
            width = hidden_size
        self.net = nn.Sequential(*mods)
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _check_input(x: Tensor, in_features: int) -> None:
    if x.dim() != 3 or x.shape[-1] != in_features:
        raise ValueError(f"expected input [B, F, {in_features}], got {tuple(x.shape)}")


class _PerInputStacks(nn.Module):
    """One independent FcStack per scalar input feature, outputs concatenated.

    Separate stacks (not one shared Linear over all inputs) follow the paper and avoid the
    ddsp_pytorch weight-sharing bug (``[mlp] * 2``), since each stack is constructed fresh.

    Shapes: ``[B, F, in_features]`` -> ``[B, F, in_features * stack_out]``.
    """

    def __init__(self, in_features: int, hidden_size: int, layers: int) -> None:
        super().__init__()
        if in_features <= 0:
            raise ValueError(f"in_features must be positive, got {in_features}")
        self.stacks = nn.ModuleList(FcStack(1, hidden_size, layers) for _ in range(in_features))
        self.out_features = sum(s.out_features for s in self.stacks)

    def forward(self, x: Tensor) -> Tensor:
        # x[..., i:i+1] keeps the trailing feature axis so each stack sees [B, F, 1].
        return torch.cat([s(x[..., i : i + 1]) for i, s in enumerate(self.stacks)], dim=-1)


class MLPDecoder(StreamingDecoder):
    """Frame-wise decoder: per-input FcStacks -> concat -> FcStack -> Linear(out_features).

    No recurrence or attention, so each frame is decoded independently (trivially causal, no context).

    Shapes: ``[B, F, in_features]`` -> ``[B, F, out_features]``.
    """

    def __init__(
        self, in_features: int, out_features: int, hidden_size: int = 512, layers_per_stack: int = 3
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.input_stacks = _PerInputStacks(in_features, hidden_size, layers_per_stack)
        self.output_stack = FcStack(self.input_stacks.out_features, hidden_size, layers_per_stack)
        self.out = nn.Linear(self.output_stack.out_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.in_features)
        return self.out(self.output_stack(self.input_stacks(x)))


class GRUDecoder(StreamingDecoder):
    """Paper RnnFcDecoder (magenta ``RnnFcDecoder``, rnn_type='gru').

    per-input FcStacks -> concat -> unidirectional GRU(gru_size) -> concat(stack outputs, gru_out)
    -> FcStack -> Linear(out_features).

    The GRU is unidirectional, so the decoder is always causal: output at frame ``t`` depends only on
    frames ``<= t``. PyTorch's GRU has separate input/hidden biases, matching Keras ``reset_after=True``,
    so the parameter count equals magenta's (4,801,150 for the solo_instrument config).

    Shapes: ``[B, F, in_features]`` -> ``[B, F, out_features]``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_size: int = 512,
        layers_per_stack: int = 3,
        gru_size: int = 512,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.input_stacks = _PerInputStacks(in_features, hidden_size, layers_per_stack)
        self.gru = nn.GRU(self.input_stacks.out_features, gru_size, batch_first=True)
        self.output_stack = FcStack(self.input_stacks.out_features + gru_size, hidden_size, layers_per_stack)
        self.out = nn.Linear(self.output_stack.out_features, out_features)

    def forward_with_state(self, x: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Streaming form (magenta's ``stateless=True``): carry the GRU state across blocks.

        Args:
            x: ``[B, F, in_features]``.
            hidden: ``[1, B, gru_size]`` state from the previous block, or None for zeros.

        Returns:
            ``([B, F, out_features], [1, B, gru_size])``.
        """
        _check_input(x, self.in_features)
        stacked = self.input_stacks(x)  # [B, F, S]
        rnn_out, hidden = self.gru(stacked, hidden)  # [B, F, gru_size]
        # Skip connection of the stack outputs around the GRU, as in the paper.
        y = self.output_stack(torch.cat([stacked, rnn_out], dim=-1))
        return self.out(y), hidden

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_state(x)[0]

    def stream(self, x: Tensor, state: object = None) -> tuple[Tensor, object]:
        return self.forward_with_state(x, state)  # type: ignore[arg-type]


class MicroRNNDecoder(StreamingDecoder):
    """Gated micro-RNN: ``Linear(in, hidden) -> LeakyReLU -> GRU(hidden) -> LayerNorm -> Linear(out)``.

    A few thousand parameters (hidden 16-64) instead of the paper decoder's 4.8 M: the smallest recurrent
    backbone that still has memory (e.g. of the attack of a note), cheap enough for real-time use on one core.
    Causal and streamable (the GRU state is carried across chunks).

    Shapes: ``[B, F, in_features]`` -> ``[B, F, out_features]``.
    """

    def __init__(self, in_features: int, out_features: int, hidden_size: int = 32) -> None:
        super().__init__()
        if not 1 <= hidden_size <= 256:
            raise ValueError(f"micro_rnn hidden size (rnn_size) must be in [1, 256], got {hidden_size}")
        self.in_features = in_features
        self.out_features = out_features
        self.inp = nn.Sequential(nn.Linear(in_features, hidden_size), nn.LeakyReLU(LEAKY_SLOPE))
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.norm = nn.LayerNorm(hidden_size)
        self.out = nn.Linear(hidden_size, out_features)

    def stream(self, x: Tensor, state: object = None) -> tuple[Tensor, object]:
        """``x [B, F, in]``, ``state`` ``[1, B, hidden]`` or None -> (``[B, F, out]``, new state)."""
        _check_input(x, self.in_features)
        h, state = self.gru(self.inp(x), state)  # type: ignore[arg-type]
        return self.out(self.norm(h)), state

    def forward(self, x: Tensor) -> Tensor:
        return self.stream(x)[0]


class TransformerDecoder(StreamingDecoder):
    """Linear(in_features, d_model) -> TransformerStack -> Linear(d_model, out_features).

    With ``causal=True`` frame ``t`` sees only frames ``<= t``; ``causal=False`` uses the whole excerpt as context.
    ``attention_window`` (frames) bounds what each frame attends to; with it, ``causal=True`` and relative
    positions (``rotary`` or ``none``) the decoder is streamable: a whole file is decoded in chunks with a KV cache
    of fixed span, and every frame sees exactly the context it saw in training. With absolute positions
    (``sinusoidal``, ``learned``) or unbounded attention, frames past the training window see positions and
    context lengths never trained on; such decoders are run on windows of the training length instead.

    Shapes: ``[B, F, in_features]`` -> ``[B, F, out_features]``; ``F <= max_len`` unless streamable.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        d_model: int = 64,
        layers: int = 2,
        heads: int = 4,
        ff_multiplier: int = 4,
        dropout: float = 0.0,
        causal: bool = True,
        positional: str = "sinusoidal",
        max_len: int = 8192,
        attention_window: int | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.inp = nn.Linear(in_features, d_model)
        self.stack = TransformerStack(
            d_model,
            layers,
            heads,
            ff_multiplier=ff_multiplier,
            dropout=dropout,
            causal=causal,
            positional=positional,
            max_len=max_len,
            attention_window=attention_window,
        )
        self.out = nn.Linear(d_model, out_features)
        self.streamable = bool(causal and self.stack.unbounded_length)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.in_features)
        return self.out(self.stack(self.inp(x)))

    def stream(self, x: Tensor, state: object = None) -> tuple[Tensor, object]:
        """Chunked decoding with a fixed-span KV cache (``state``); needs ``streamable``."""
        if not self.streamable:
            raise ValueError("stream() needs a causal transformer with attention_window set and positional "
                             "'rotary' or 'none'")
        _check_input(x, self.in_features)
        cache = state if isinstance(state, KVCache) else KVCache()
        return self.out(self.stack(self.inp(x), cache=cache)), cache


def build_decoder(
    backbone: str,
    in_features: int,
    out_features: int,
    *,
    hidden_size: int = 512,
    layers_per_stack: int = 3,
    gru_size: int = 512,
    d_model: int = 64,
    layers: int = 2,
    heads: int = 4,
    ff_multiplier: int = 4,
    dropout: float = 0.0,
    causal: bool = True,
    positional: str = "sinusoidal",
    max_len: int = 8192,
    attention_window: int | None = None,
    rnn_size: int = 32,
) -> StreamingDecoder:
    """Build a decoder by name.

    ``hidden_size`` / ``layers_per_stack`` apply to "mlp" and "gru"; ``gru_size`` to "gru"; ``rnn_size`` to
    "micro_rnn"; ``d_model`` … ``attention_window`` to "transformer". Options that do not apply to the chosen backbone are ignored, so one flat config
    can switch backbones. In particular ``causal=False`` with "gru" is accepted and has no effect: the
    unidirectional GRU is always causal (and "mlp" is frame-wise, hence trivially causal).
    """
    if backbone == "mlp":
        return MLPDecoder(
            in_features, out_features, hidden_size=hidden_size, layers_per_stack=layers_per_stack
        )
    if backbone == "gru":
        return GRUDecoder(
            in_features,
            out_features,
            hidden_size=hidden_size,
            layers_per_stack=layers_per_stack,
            gru_size=gru_size,
        )
    if backbone == "transformer":
        return TransformerDecoder(
            in_features,
            out_features,
            d_model=d_model,
            layers=layers,
            heads=heads,
            ff_multiplier=ff_multiplier,
            dropout=dropout,
            causal=causal,
            positional=positional,
            max_len=max_len,
            attention_window=attention_window,
        )
    if backbone == "micro_rnn":
        return MicroRNNDecoder(in_features, out_features, hidden_size=rnn_size)
    raise ValueError(f"unknown decoder backbone {backbone!r}; allowed values: {list(BACKBONES)}")
