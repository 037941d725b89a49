"""Audio file I/O: robust loading, atomic saving and audio file discovery.

All loaders return mono float32 torch tensors of shape ``[T]`` (samples) at the requested
sample rate (Hz). Every failure mode a dataset can hit (missing, corrupt, empty, too short,
NaN/Inf, silent) raises :class:`AudioLoadError` with the file path in the message so that a
bad file in a 100k-file corpus can be found from the log line alone.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from audiolab.data.cache import atomic_path

__all__ = ["AudioLoadError", "load_audio", "save_audio", "audio_files", "AUDIO_EXTENSIONS"]

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

# Peak amplitude below which a file is considered digital silence (~ -120 dBFS).
_SILENCE_PEAK = 1e-6

# Extension -> (libsndfile container, subtype) used by save_audio.
_SAVE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}


class AudioLoadError(ValueError):
    """Raised when an audio file cannot be used; the message names the path and what was expected."""


def load_audio(
    path: str | os.PathLike,
    sample_rate: int,
    *,
    min_seconds: float = 0.0,
    allow_silent: bool = False,
    channel: int | None = None,
) -> torch.Tensor:
    """Load an audio file as a mono float32 tensor at ``sample_rate``.

    Pipeline: ``soundfile.read(always_2d=True, dtype="float32")`` -> mean over channels (or the one ``channel``)
    -> ``torchaudio.functional.resample`` if the file rate differs from ``sample_rate``.

    Args:
        path: audio file (any format libsndfile decodes: wav incl. 8/16/24/32-bit and float,
            flac, ogg, aiff, mp3 with libsndfile >= 1.1).
        sample_rate: target rate in Hz.
        min_seconds: minimum duration in seconds (measured at the file's own rate).
        allow_silent: if False, a file whose peak |x| < 1e-6 raises.
        channel: ``None`` = downmix (mean of the channels); ``k`` = only channel ``k`` (0-based).

    Returns:
        float32 tensor ``[T]`` in [-1, 1] (nominal), ``T = ceil(T_file * sample_rate / file_rate)``.

    Raises:
        AudioLoadError: missing, undecodable, empty, too short, non-finite or silent file; no channel ``channel``.
        ValueError: ``sample_rate`` not positive.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate}")
    p = pathlib.Path(path)
    if not p.is_file():
        what = "is a directory" if p.is_dir() else "does not exist"
        raise AudioLoadError(f"audio file {str(p)!r} {what}; expected an existing audio file")
    if p.stat().st_size == 0:
        raise AudioLoadError(f"audio file {str(p)!r} is empty (0 bytes); expected audio samples")
    try:
        data, file_sr = sf.read(str(p), always_2d=True, dtype="float32")
    except Exception as exc:  # libsndfile raises LibsndfileError/RuntimeError/TypeError depending on the fault
        raise AudioLoadError(
            f"could not decode audio file {str(p)!r} ({type(exc).__name__}: {exc}); "
            f"expected a readable {', '.join(AUDIO_EXTENSIONS)} file"
        ) from exc

    n_samples = data.shape[0]
    if n_samples == 0:
        raise AudioLoadError(f"audio file {str(p)!r} is empty (0 samples); expected audio samples")
    duration = n_samples / float(file_sr)
    if duration < min_seconds:
        raise AudioLoadError(
            f"audio file {str(p)!r} is too short: {duration:.3f} s, expected at least {min_seconds:.3f} s"
        )
    if not np.isfinite(data).all():
        raise AudioLoadError(f"audio file {str(p)!r} contains non-finite samples (NaN/Inf); expected finite audio")

    if channel is not None and not 0 <= int(channel) < data.shape[1]:
        raise AudioLoadError(f"audio file {str(p)!r} has {data.shape[1]} channel(s): no channel {channel} (0-based)")
    # Downmix before resampling: one resample instead of one per channel.
    picked = data.mean(axis=1, dtype=np.float32) if channel is None else data[:, int(channel)]
    mono = torch.from_numpy(np.ascontiguousarray(picked))
    if not allow_silent and float(mono.abs().max()) < _SILENCE_PEAK:
        # Checked on the downmix so a perfectly anti-phase stereo file (silent in mono) is also caught.
        raise AudioLoadError(
            f"audio file {str(p)!r} is silent (peak < {_SILENCE_PEAK:g}); expected non-silent audio "
            "(to keep silent files set data.allow_silent=true, or allow_silent=true for python -m audiolab.prepare)"
        )
    if int(file_sr) != int(sample_rate):
        mono = AF.resample(mono, orig_freq=int(file_sr), new_freq=int(sample_rate))
    return mono.to(torch.float32).contiguous()


def save_audio(path: str | os.PathLike, audio: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write audio atomically (:func:`audiolab.data.cache.atomic_path`: temp file in the target directory, mode
    from the user's umask, then ``os.replace``; no temp file is left behind on failure).

    Args:
        path: destination; the extension picks the format: ``.wav`` -> PCM_16 WAV, ``.flac`` -> PCM_16 FLAC,
            ``.ogg`` -> Ogg Vorbis. Parent directories are created.
        audio: ``[T]`` mono or ``[C, T]`` multichannel. Float data is nominally in [-1, 1] and is clipped
            to that range (libsndfile would otherwise wrap out-of-range values when converting to int16).
            Integer arrays are passed to libsndfile unchanged.
        sample_rate: sample rate in Hz.

    Raises:
        ValueError: bad shape, non-finite samples, or an extension other than .wav/.flac/.ogg.
    """
    p = pathlib.Path(path)
    ext = p.suffix.lower()
    if ext not in _SAVE_FORMATS:
        raise ValueError(f"cannot save {str(p)!r}: extension {ext!r} not in {sorted(_SAVE_FORMATS)}")
    if isinstance(audio, torch.Tensor):
        arr = audio.detach().to("cpu")
        arr = arr.float().numpy() if arr.is_floating_point() else arr.numpy()
    else:
        arr = np.asarray(audio)
    if arr.ndim == 1:
        frames = arr
    elif arr.ndim == 2:
        frames = arr.T  # soundfile expects [T, C]
    else:
        raise ValueError(f"cannot save {str(p)!r}: audio must be [T] or [C, T], got shape {tuple(arr.shape)}")
    if np.issubdtype(frames.dtype, np.floating):
        if not np.isfinite(frames).all():
            raise ValueError(f"cannot save {str(p)!r}: audio contains NaN/Inf")
        frames = np.clip(frames, -1.0, 1.0).astype(np.float32)
    frames = np.ascontiguousarray(frames)

    container, subtype = _SAVE_FORMATS[ext]
    with atomic_path(p) as tmp:
        sf.write(str(tmp), frames, int(sample_rate), subtype=subtype, format=container)


def audio_files(
    root: str | os.PathLike, extensions: Iterable[str] = AUDIO_EXTENSIONS
) -> list[pathlib.Path]:
    """Recursively list audio files under ``root`` (sorted, extension match case-insensitive).

    Raises:
        FileNotFoundError: ``root`` does not exist (message names it).
        ValueError: no file with one of ``extensions`` under ``root`` (message names it).
    """
    r = pathlib.Path(root)
    if not r.exists():
        raise FileNotFoundError(f"audio root {str(r)!r} does not exist")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    if r.is_file():
        files = [r] if r.suffix.lower() in exts else []
    else:
        files = sorted(f for f in r.rglob("*") if f.is_file() and f.suffix.lower() in exts)
    if not files:
        raise ValueError(f"no audio files with extensions {sorted(exts)} found under {str(r)!r}")
    return files

