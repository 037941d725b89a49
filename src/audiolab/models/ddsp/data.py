"""DDSP data: feature preparation (f0, confidence, loudness), windowed dataset and Lightning datamodule.

Follows magenta/ddsp's data preparation (``ddsp_prepare_tfrecord``): 16 kHz mono audio, 250 Hz frames
(hop 64 samples), CREPE f0 with Viterbi decoding, A-weighted loudness (n_fft 512, 80 dB range), 4 s examples
cut every ``hop_seconds`` (1 s) for training. Differences: features are cached per *source file* (npz) and the
examples are cut on the fly, so ``example_seconds``/``hop_seconds`` can change without recomputing CREPE; the
split into train/val/test is by source file (no leakage of overlapping windows across splits); the tail of a
source is covered by one end-aligned window instead of zero padding.

Frame convention: frame ``k`` of every feature is centred on sample ``k * hop`` and an example of ``T`` samples
has ``F = T // hop`` frames (the extra centre-padded loudness frame is dropped).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from audiolab.audio.features import a_weighted_loudness
from audiolab.audio.io import AudioLoadError, audio_files, load_audio
from audiolab.audio.pitch import estimate_f0
from audiolab.data.cache import (
    atomic_save_npz,
    atomic_write_json,
    completed_manifest,
    content_hash,
    skip_bad_file,
    split_too_short,
)
from audiolab.data.cli import boolean, optional, parse_key_values
from audiolab.data.module import CachedSplitDataModule, check_hparams, split_fraction_checks
from audiolab.data.splits import split_sources

__all__ = [
    "EMBEDDED",
    "FEATURE_VERSION",
    "embedded_root",
    "resolve_root",
    "prepare_ddsp",
    "DDSPDataset",
    "DDSPDataModule",
    "prepare_main",
]

#: Special ``root`` value selecting the embedded violin demo data.
EMBEDDED = "embedded"
#: Bumped whenever the cached feature format or computation changes (part of the cache key).
FEATURE_VERSION = 1
#: Loudness analysis settings (DDSP v2 ``compute_loudness`` defaults used by its data prep).
LOUDNESS_N_FFT = 512
LOUDNESS_RANGE_DB = 80.0
LOUDNESS_REF_DB = 0.0
#: Sources shorter than this (seconds) are never padded into an example: shorter files are refused (or skipped).
MIN_SOURCE_SECONDS = 1.0
_CREPE_MODELS = ("full", "tiny")
_ON_BAD_FILE = ("error", "skip")


def embedded_root() -> Path:
    """Folder of the embedded violin demo audio (``audiolab/assets/ddsp_demo/audio/violin``)."""
    return Path(__file__).resolve().parents[2] / "assets" / "ddsp_demo" / "audio" / "violin"


def embedded_pitch_dir() -> Path:
    """Precomputed CREPE sidecars for the embedded demo (``assets/ddsp_demo/f0/<model>/<source>.npz``)."""
    return embedded_root().parent.parent / "f0"


def resolve_root(root: str | os.PathLike) -> Path:
    """Map ``"embedded"`` to :func:`embedded_root`; other values are taken as paths (``~`` expanded)."""
    if str(root) == EMBEDDED:
        return embedded_root()
    return Path(root).expanduser()


def _source_id(rel: str) -> str:
    """Source name of a file from its path relative to the input folder: the path without extension."""
    return str(Path(rel).with_suffix("")).replace(os.sep, "/")


def _npz_name(source: str) -> str:
    """File name of the cached features of ``source`` (subfolders flattened with ``__``)."""
    return source.replace("/", "__") + ".npz"


def _feature_params(sample_rate: int, frame_rate: int, crepe_model: str, allow_silent: bool = False) -> dict[str, Any]:
    """Everything that changes the cached features (the cache key's parameter part; ``allow_silent`` only when
    set, so caches made before the key existed keep their folder)."""
    return {**({"allow_silent": True} if allow_silent else {}),
        "family": "ddsp",
        "version": FEATURE_VERSION,
        "sample_rate": int(sample_rate),
        "frame_rate": int(frame_rate),
        "hop_length": int(sample_rate) // int(frame_rate),
        "crepe_model": crepe_model,
        "viterbi": True,
        "loudness_n_fft": LOUDNESS_N_FFT,
        "loudness_range_db": LOUDNESS_RANGE_DB,
        "loudness_ref_db": LOUDNESS_REF_DB,
    }


def _check_rates(sample_rate: int, frame_rate: int) -> None:
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate}")
    if int(frame_rate) <= 0 or int(sample_rate) % int(frame_rate) != 0:
        raise ValueError(
            f"frame_rate ({frame_rate}) must divide sample_rate ({sample_rate}) so that the hop is a whole "
            "number of samples"
        )


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_features(
    audio: torch.Tensor,
    sample_rate: int,
    frame_rate: int,
    *,
    crepe_model: str = "full",
    device: str | None = None,
    pitch_sidecar: Path | None = None,
    crepe_seed: int = 0,
) -> dict[str, np.ndarray]:
    """DDSP features of one mono signal.

    ``pitch_sidecar``: optional npz with precomputed CREPE ``f0_hz``/``confidence`` (see
    :func:`write_pitch_sidecar`); used only if its audio checksum and parameters match, else CREPE runs.

    Args:
        audio: float32 ``[T]`` samples at ``sample_rate`` Hz.
        sample_rate: Hz. frame_rate: feature frames per second (must divide ``sample_rate``).
        crepe_model: ``"full"`` or ``"tiny"``. device: where CREPE runs (default: CUDA if available).
        crepe_seed: seed of CREPE's f0 dither (:func:`audiolab.audio.pitch.estimate_f0`); preparation always
            uses 0, so the same file and parameters give identical features.

    Returns:
        ``audio`` float32 ``[F * hop]`` (trimmed), ``f0_hz`` float32 ``[F]`` (Hz, CREPE Viterbi),
        ``confidence`` float32 ``[F]`` (CREPE periodicity in [0, 1]), ``loudness_db`` float32 ``[F]``
        (A-weighted dB, floor ``-80``), with ``hop = sample_rate // frame_rate`` and ``F = T // hop``.
    """
    hop = sample_rate // frame_rate
    n_frames = audio.shape[-1] // hop
    cached = _read_pitch_sidecar(pitch_sidecar, audio, sample_rate, frame_rate, crepe_model) if pitch_sidecar else None
    if cached is not None:
        f0, conf = cached
    else:
        f0, conf = estimate_f0(audio, sample_rate, hop, model=crepe_model, viterbi=True,
                               device=device or _default_device(), seed=crepe_seed)
    ld = a_weighted_loudness(
        audio, sample_rate=sample_rate, frame_rate=frame_rate, n_fft=LOUDNESS_N_FFT, range_db=LOUDNESS_RANGE_DB,
        ref_db=LOUDNESS_REF_DB, center=True,
    )
    if ld.dim() == 2:
        ld = ld[0]
    return {
        "audio": audio[: n_frames * hop].detach().cpu().numpy().astype(np.float32),
        "f0_hz": f0[:n_frames].detach().cpu().numpy().astype(np.float32),
        "confidence": conf[:n_frames].detach().cpu().numpy().astype(np.float32),
        "loudness_db": ld[:n_frames].detach().cpu().numpy().astype(np.float32),
    }


def _audio_sha1(audio: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha1(audio.detach().cpu().float().numpy().tobytes()).hexdigest()


def pitch_sidecar_path(pitch_dir: Path, source: str, crepe_model: str) -> Path:
    return Path(pitch_dir) / crepe_model / _npz_name(source)


def write_pitch_sidecar(path: Path, audio: torch.Tensor, sample_rate: int, frame_rate: int, crepe_model: str,
                        device: str | None = None) -> None:
    """Precompute CREPE for one signal (e.g. on a GPU) so CPU-only machines skip the slow pitch tracker.

    The embedded demo ships these (``assets/ddsp_demo/f0/<model>/``): CREPE full on 109 s of audio takes many
    minutes on 2 CPU cores. The audio checksum guards against a sidecar that no longer matches its audio.
    """
    hop = sample_rate // frame_rate
    f0, conf = estimate_f0(audio, sample_rate, hop, model=crepe_model, viterbi=True, device=device or _default_device())
    atomic_save_npz(path, f0_hz=f0.cpu().numpy().astype(np.float32), confidence=conf.cpu().numpy().astype(np.float32),
                    audio_sha1=np.array(_audio_sha1(audio)), sample_rate=np.array(sample_rate),
                    frame_rate=np.array(frame_rate), crepe_model=np.array(crepe_model))


def _read_pitch_sidecar(path: Path, audio: torch.Tensor, sample_rate: int, frame_rate: int, crepe_model: str):
    if not Path(path).is_file():
        return None
    with np.load(path) as z:
        ok = (str(z["audio_sha1"]) == _audio_sha1(audio) and int(z["sample_rate"]) == sample_rate
              and int(z["frame_rate"]) == frame_rate and str(z["crepe_model"]) == crepe_model)
        if not ok:
            warnings.warn(f"pitch sidecar {path} does not match its audio/parameters; running CREPE", stacklevel=2)
            return None
        return torch.from_numpy(z["f0_hz"].copy()), torch.from_numpy(z["confidence"].copy())


def _cache_path(files: list[Path], root: Path, cache_dir: Path, params: dict[str, Any]) -> Path:
    return cache_dir / content_hash(files, params, root=root)


def prepare_ddsp(
    input_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    sample_rate: int = 16000,
    frame_rate: int = 250,
    crepe_model: str = "full",
    on_bad_file: str = "error",
    device: str | None = None,
    progress: bool = True,
    pitch_dir: str | os.PathLike | None = None,
    allow_silent: bool = False,
    min_seconds: float = 0.0,
) -> Path:
    """Compute (or reuse) the DDSP features of every audio file under ``input_dir``.

    For each file (sorted, recursive): ``load_audio`` (mono, resampled to ``sample_rate``) -> CREPE f0 and
    confidence (Viterbi, hop ``sample_rate // frame_rate``) -> A-weighted loudness; everything trimmed to
    ``F = T // hop`` frames and ``F * hop`` samples and saved as ``<cache>/features/<source>.npz`` with keys
    ``audio`` [F*hop] float32, ``f0_hz`` [F], ``confidence`` [F], ``loudness_db`` [F].

    The cache folder is ``cache_dir/<content_hash(files, params)>``; ``manifest.json`` (sources, params,
    skipped files) is written last and atomically, so a folder with a manifest is complete and is reused
    as is ("using cache ..."). An interrupted run resumes: existing npz files (always complete, written
    atomically) are kept.

    Args:
        input_dir: folder (searched recursively) or single audio file; ``"embedded"`` = demo violin.
        cache_dir: parent folder of the cache folders.
        sample_rate: Hz; frame_rate: frames per second (must divide ``sample_rate``).
        crepe_model: ``"full"`` (DDSP) or ``"tiny"`` (fast tests).
        on_bad_file: ``"error"`` raises the :class:`AudioLoadError` naming the file (also when a cached
            manifest lists skipped files); ``"skip"`` warns and records the file and reason in
            ``manifest["skipped"]``.
        device: CREPE device (default CUDA if available, else CPU). Not part of the cache key.
        progress: tqdm bar over files.
        allow_silent: keep digitally silent files (peak < 1e-6) instead of treating them as bad files.
        min_seconds: files shorter than this are too short for training (the datamodule's limit:
            ``min(example_seconds, 1 s)``): an error naming the file, or skipped with a warning under
            ``on_bad_file="skip"``. Checked on the finished cache (not part of its key: the features of the
            other files do not depend on it); the CLI's default is 1 s.

    Returns:
        The cache folder (contains ``manifest.json`` and ``features/``).

    Raises:
        ValueError: bad parameters (message names the key), or every file is bad (names ``input_dir``).
        FileNotFoundError: ``input_dir`` does not exist.
        AudioLoadError: a bad file with ``on_bad_file="error"``.
    """
    _check_rates(sample_rate, frame_rate)
    if crepe_model not in _CREPE_MODELS:
        raise ValueError(f"crepe_model must be one of {_CREPE_MODELS}, got {crepe_model!r}")
    if on_bad_file not in _ON_BAD_FILE:
        raise ValueError(f"on_bad_file must be one of {_ON_BAD_FILE}, got {on_bad_file!r}")
    root = resolve_root(input_dir)
    if pitch_dir is None and str(input_dir) == EMBEDDED:
        pitch_dir = embedded_pitch_dir()
    files = audio_files(root)
    base = root if root.is_dir() else root.parent
    params = _feature_params(sample_rate, frame_rate, crepe_model, allow_silent)
    out = _cache_path(files, base, Path(cache_dir).expanduser(), params)
    manifest_path = out / "manifest.json"
    done = completed_manifest(out, on_bad_file)
    if done is not None:
        _check_min_seconds(done, min_seconds, sample_rate, on_bad_file)
        return out

    from tqdm.auto import tqdm

    feat_dir = out / "features"
    feat_dir.mkdir(parents=True, exist_ok=True)
    sources: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    hop = sample_rate // frame_rate
    for path in tqdm(files, desc="prepare ddsp", unit="file", disable=not progress, dynamic_ncols=True):
        rel = path.resolve().relative_to(base.resolve()).as_posix() if root.is_dir() else path.name
        source = _source_id(rel)
        npz = feat_dir / _npz_name(source)
        if npz.is_file():  # complete (atomic write) from an interrupted earlier run
            with np.load(npz) as z:
                n_frames = int(z["f0_hz"].shape[0])
                mean_conf = float(z["confidence"].mean()) if n_frames else 0.0
        else:
            try:
                audio = load_audio(path, sample_rate, allow_silent=allow_silent)
                if audio.shape[0] // hop == 0:
                    raise AudioLoadError(f"audio file {str(path)!r} is shorter than one frame ({hop} samples)")
            except AudioLoadError as exc:
                skip_bad_file(exc, path, rel, on_bad_file, skipped)
                continue
            sidecar = pitch_sidecar_path(pitch_dir, source, crepe_model) if pitch_dir else None
            feats = compute_features(audio, sample_rate, frame_rate, crepe_model=crepe_model, device=device,
                                     pitch_sidecar=sidecar)
            atomic_save_npz(npz, **feats)
            n_frames = int(feats["f0_hz"].shape[0])
            mean_conf = float(feats["confidence"].mean())
        sources.append({
            "source": source,
            "file": rel,
            "path": str(path),
            "npz": f"features/{npz.name}",
            "n_samples": n_frames * hop,
            "n_frames": n_frames,
            "seconds": round(n_frames * hop / sample_rate, 4),
            "mean_confidence": round(mean_conf, 4),
        })

    if not sources:
        raise ValueError(
            f"no usable audio in input_dir {str(root)!r}: all {len(files)} files were bad "
            f"(first: {skipped[0]['path']}: {skipped[0]['reason']})"
        )
    manifest = {
        "family": "ddsp",
        "input_dir": str(root),
        "params": params,
        "n_sources": len(sources),
        "total_seconds": round(sum(s["seconds"] for s in sources), 3),
        "sources": sources,
        "skipped": skipped,
    }
    atomic_write_json(manifest_path, manifest)  # last: marks the cache complete
    print(f"prepared {len(sources)} sources ({manifest['total_seconds']:.1f} s) -> {out}", flush=True)
    _check_min_seconds(manifest, min_seconds, sample_rate, on_bad_file)
    return out


def _check_min_seconds(manifest: dict[str, Any], min_seconds: float, sample_rate: int, on_bad_file: str) -> None:
    if min_seconds > 0:
        split_too_short(manifest["sources"], int(round(min_seconds * sample_rate)), sample_rate, on_bad_file,
                        f"min_seconds={min_seconds}", skip_hint="on_bad_file=skip")


def min_source_seconds(example_seconds: float) -> float:
    """The shortest usable source (s): one example, or :data:`MIN_SOURCE_SECONDS` when examples are longer
    (sources from 1 s up to one example are padded to one example)."""
    return min(float(example_seconds), MIN_SOURCE_SECONDS)


def _window_starts(n_total: int, n_window: int, step: int, cover_tail: bool) -> list[int]:
    """Sample offsets of windows of ``n_window`` every ``step`` within ``n_total`` samples.

    With ``cover_tail`` an extra end-aligned window is added when the regular grid misses the tail.
    """
    if n_total < n_window:
        return []
    starts = list(range(0, n_total - n_window + 1, step))
    if cover_tail and starts[-1] + n_window < n_total:
        starts.append(n_total - n_window)
    return starts


class DDSPDataset(Dataset):
    """Fixed-length examples cut from cached DDSP sources.

    Each item is a dict: ``audio`` float32 ``[T]``, ``f0_hz`` ``[F]`` (Hz), ``f0_confidence`` ``[F]`` (0..1),
    ``loudness_db`` ``[F]`` (dB), ``source`` (source name = file path without extension, relative to the
    input folder), ``offset`` (int, samples into the source), with ``T = round(example_seconds * sample_rate)``
    and ``F = T // hop``.

    ``overlap=True`` (training): windows every ``hop_seconds`` like magenta's data prep, plus one end-aligned
    window covering the tail. ``overlap=False`` (val/test): non-overlapping windows; a remainder shorter than
    one example is dropped. A source shorter than one example but at least 1 s long gives one example padded at
    the end (audio 0, loudness ``-range_db``, f0 its last value, confidence 0); shorter sources are skipped
    with a warning.
    """

    def __init__(
        self,
        cache_path: str | os.PathLike,
        sources: Sequence[str] | None = None,
        *,
        example_seconds: float = 4.0,
        hop_seconds: float = 1.0,
        overlap: bool = True,
    ) -> None:
        self.cache_path = Path(cache_path)
        manifest = json.loads((self.cache_path / "manifest.json").read_text())
        p = manifest["params"]
        self.sample_rate = int(p["sample_rate"])
        self.hop_length = int(p["hop_length"])
        self.range_db = float(p["loudness_range_db"])
        self.n_samples = int(round(example_seconds * self.sample_rate))
        self.n_frames = self.n_samples // self.hop_length
        step = int(round(hop_seconds * self.sample_rate)) if overlap else self.n_samples
        if self.n_samples <= 0 or self.n_samples % self.hop_length:
            raise ValueError(f"example_seconds={example_seconds} must be a positive multiple of the hop "
                             f"({self.hop_length} samples at {self.sample_rate} Hz)")
        if step <= 0 or step % self.hop_length:
            raise ValueError(f"hop_seconds={hop_seconds} must be a positive multiple of the hop "
                             f"({self.hop_length} samples at {self.sample_rate} Hz)")
        by_name = {s["source"]: s for s in manifest["sources"]}
        names = sorted(by_name) if sources is None else list(sources)
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise KeyError(f"sources not in cache {self.cache_path}: {unknown}")

        self.sources: dict[str, dict[str, torch.Tensor]] = {}
        self.index: list[tuple[str, int]] = []
        for name in names:
            entry = by_name[name]
            with np.load(self.cache_path / entry["npz"]) as z:
                feats = {k: torch.from_numpy(np.array(z[k], dtype=np.float32)) for k in z.files}
            n = feats["audio"].shape[0]
            if n < self.n_samples:
                if n < MIN_SOURCE_SECONDS * self.sample_rate:
                    warnings.warn(
                        f"DDSPDataset: skipping source {name!r} ({n / self.sample_rate:.2f} s < "
                        f"{MIN_SOURCE_SECONDS} s)", stacklevel=2,
                    )
                    continue
                feats = self._pad(feats)
                n = self.n_samples
            self.sources[name] = feats
            self.index.extend((name, s) for s in _window_starts(n, self.n_samples, step, cover_tail=overlap))

    def _pad(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Pad a short source to one example: audio 0, loudness -range_db, f0 edge value, confidence 0."""
        n_f = feats["f0_hz"].shape[0]
        pad_f = self.n_frames - n_f
        edge = feats["f0_hz"][-1:] if n_f else torch.zeros(1)
        return {
            "audio": torch.nn.functional.pad(feats["audio"], (0, self.n_samples - feats["audio"].shape[0])),
            "f0_hz": torch.cat([feats["f0_hz"], edge.expand(pad_f)]),
            "confidence": torch.nn.functional.pad(feats["confidence"], (0, pad_f)),
            "loudness_db": torch.nn.functional.pad(feats["loudness_db"], (0, pad_f), value=-self.range_db),
        }

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        name, start = self.index[i]
        f = self.sources[name]
        k = start // self.hop_length
        return {
            "audio": f["audio"][start : start + self.n_samples].clone(),
            "f0_hz": f["f0_hz"][k : k + self.n_frames].clone(),
            "f0_confidence": f["confidence"][k : k + self.n_frames].clone(),
            "loudness_db": f["loudness_db"][k : k + self.n_frames].clone(),
            "source": name,
            "offset": int(start),
        }


class DDSPDataModule(CachedSplitDataModule):
    """Lightning datamodule for DDSP training on a folder of monophonic recordings.

    ``prepare_data`` computes/reuses the feature cache (:func:`prepare_ddsp`); ``setup`` splits the sources
    by file (:func:`split_sources`) and builds :class:`DDSPDataset` s (train: overlapping windows every
    ``hop_seconds``; val/test: non-overlapping). ``overfit_batches > 0`` uses the first
    ``batch_size * overfit_batches`` training examples (unshuffled) for train, val and test.

    Batches are dicts: ``audio`` [B, n_samples], ``f0_hz`` / ``f0_confidence`` / ``loudness_db`` [B, n_frames],
    ``source`` list[str], ``offset`` [B] (int64 samples).
    """

    def __init__(
        self,
        root: str,
        cache_dir: str,
        sample_rate: int = 16000,
        frame_rate: int = 250,
        example_seconds: float = 4.0,
        hop_seconds: float = 1.0,
        batch_size: int = 16,
        num_workers: int = 0,
        crepe_model: str = "full",
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 0,
        overfit_batches: int = 0,
        on_bad_file: str = "error",
        device: str | None = None,
        allow_silent: bool = False,
        on_short_file: str | None = None,
        probe_whole_seconds: float = 30.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        _check_rates(sample_rate, frame_rate)
        hop = sample_rate // frame_rate
        for key, sec in (("example_seconds", example_seconds), ("hop_seconds", hop_seconds)):
            n = sec * sample_rate
            if sec <= 0 or abs(n - round(n)) > 1e-6 or int(round(n)) % hop:
                raise ValueError(
                    f"{key}={sec}: {key} * sample_rate ({n:g} samples) must be a positive multiple of the "
                    f"hop ({hop} samples = sample_rate // frame_rate)"
                )
        check_hparams(
            [("batch_size", batch_size, batch_size >= 1, ">= 1"), ("num_workers", num_workers, num_workers >= 0, ">= 0"),
             ("overfit_batches", overfit_batches, overfit_batches >= 0, ">= 0"),
             *split_fraction_checks(val_fraction, test_fraction)],
            [("on_bad_file", on_bad_file, _ON_BAD_FILE), ("on_short_file", on_short_file, (None, *_ON_BAD_FILE)),
             ("crepe_model", crepe_model, _CREPE_MODELS)],
        )
        self.root = root
        self.cache_dir = cache_dir
        self.sample_rate = int(sample_rate)
        self.frame_rate = int(frame_rate)
        self.example_seconds = float(example_seconds)
        self.hop_seconds = float(hop_seconds)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.crepe_model = crepe_model
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.split_seed = int(split_seed)
        self.overfit_batches = int(overfit_batches)
        self.on_bad_file = on_bad_file
        self.device = device
        self.allow_silent = bool(allow_silent)
        self.on_short_file = on_short_file
        if probe_whole_seconds < 0:
            raise ValueError(f"data.probe_whole_seconds must be >= 0, got {probe_whole_seconds}")
        self.probe_whole_seconds = float(probe_whole_seconds)

    # -- shapes ------------------------------------------------------------------------------------------
    @property
    def hop_length(self) -> int:
        """Samples per feature frame (``sample_rate // frame_rate``)."""
        return self.sample_rate // self.frame_rate

    @property
    def n_samples(self) -> int:
        """Samples per example (``example_seconds * sample_rate``)."""
        return int(round(self.example_seconds * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """Feature frames per example (``n_samples // hop_length``)."""
        return self.n_samples // self.hop_length

    # -- lightning hooks --------------------------------------------------------------------------------
    def _prepare(self, progress: bool) -> Path:
        return prepare_ddsp(
            self.root, self.cache_dir, sample_rate=self.sample_rate, frame_rate=self.frame_rate,
            crepe_model=self.crepe_model, on_bad_file=self.on_bad_file, device=self.device, progress=progress,
            allow_silent=self.allow_silent,
        )

    def min_source(self) -> tuple[int, str]:
        seconds = min_source_seconds(self.example_seconds)
        why = (f"one example: data.example_seconds={self.example_seconds}" if seconds == self.example_seconds else
               f"sources from {MIN_SOURCE_SECONDS} s up are padded to one example of data.example_seconds="
               f"{self.example_seconds}")
        return int(round(seconds * self.sample_rate)), why

    def setup(self, stage: str | None = None) -> None:
        """Split sources by file and build the datasets (idempotent)."""
        if self.train_set is not None:
            return
        manifest = self._cache_manifest()
        names = [s["source"] for s in self.usable_sources(manifest)]
        if not names:
            raise ValueError(f"no source under root {self.root!r} is long enough ({self.min_source()[1]})")
        overfit = self.overfit_batches > 0
        self.splits = split_sources(names, self.val_fraction, self.test_fraction, self.split_seed,
                                    allow_single=overfit)
        self.write_split_manifest(manifest, "source", {k: getattr(self, k) for k in (
            "example_seconds", "hop_seconds", "val_fraction", "test_fraction", "split_seed")})
        kw = {"example_seconds": self.example_seconds, "hop_seconds": self.hop_seconds}
        train = DDSPDataset(self.cache_path, self.splits["train"], overlap=True, **kw)
        if len(train) == 0:
            raise ValueError(
                f"no training examples of {self.example_seconds} s in {self.splits['train']} "
                f"(root {self.root!r}); use shorter example_seconds or longer recordings"
            )
        if overfit:
            n = self.batch_size * self.overfit_batches
            if len(train) < n:
                warnings.warn(f"overfit_batches: only {len(train)} training examples (< {n} requested)", stacklevel=2)
            fixed = Subset(train, list(range(min(n, len(train)))))
            self.train_set = self.val_set = self.test_set = fixed
            return
        self.train_set = train
        self.val_set = DDSPDataset(self.cache_path, self.splits["val"], overlap=False, **kw)
        self.test_set = DDSPDataset(self.cache_path, self.splits["test"], overlap=False, **kw)
        self.check_splits(f"{len(names)} usable sources under data.root={self.root!r}")


    # -- whole files -------------------------------------------------------------------------------------
    def whole_sources(self, split: str) -> list[dict[str, Any]]:
        """The whole (unwindowed) sources of ``split`` ("train" / "val" / "test"), sorted by name: dicts with
        ``source`` (name), ``audio`` ``[T]``, ``f0_hz`` / ``confidence`` / ``loudness_db`` ``[F]`` (whole-file
        metrics and dataset statistics)."""
        if self.train_set is None:
            self.setup("fit")
        ds = getattr(self, f"{split}_set")
        ds = ds.dataset if isinstance(ds, Subset) else ds
        if ds is None:
            return []
        return [{"source": name, **feats} for name, feats in sorted(ds.sources.items())]

    def probe_batch(self, n: int = 4) -> dict[str, Any]:
        """The fixed validation windows of :meth:`CachedSplitDataModule.probe_batch` plus ``whole``: the first whole
        validation files (at most ``probe_whole_seconds`` in all, at least one file when the setting is > 0)."""
        batch = super().probe_batch(n)
        whole, total = [], 0.0
        if self.probe_whole_seconds > 0:
            for src in self.whole_sources("val"):
                seconds = src["audio"].shape[-1] / self.sample_rate
                if whole and total + seconds > self.probe_whole_seconds:
                    break
                whole.append({k: v for k, v in src.items() if k in ("f0_hz", "confidence", "loudness_db")})
                total += seconds
        batch["whole"] = whole
        return batch

    def dataset_statistics(self) -> dict[str, Any]:
        """Loudness / pitch statistics of the training split for timbre transfer
        (:func:`audiolab.models.ddsp.transfer.dataset_statistics`; plain types, stored in every checkpoint)."""
        from audiolab.models.ddsp.transfer import dataset_statistics

        return dataset_statistics([{k: v.numpy() for k, v in src.items() if k != "source" and k != "audio"}
                                   for src in self.whole_sources("train")])


# -- CLI -------------------------------------------------------------------------------------------------
_CLI_KEYS: dict[str, Callable[[str], Any]] = {
    "input_dir": str,
    "cache_dir": str,
    "sample_rate": int,
    "frame_rate": int,
    "crepe_model": str,
    "on_bad_file": str,
    "device": optional(str),
    "progress": boolean,
    "allow_silent": boolean,
    "min_seconds": float,
}


def default_cache_dir() -> str:
    """``$AUDIOLAB_ROOT/.cache/audiolab/ddsp`` (cwd if unset): the folder conf/data/ddsp.yaml uses by default."""
    return os.path.join(os.environ.get("AUDIOLAB_ROOT", "."), ".cache", "audiolab", "ddsp")


def prepare_main(argv: list[str]) -> None:
    """CLI: ``python -m audiolab.prepare ddsp input_dir=DIR [cache_dir=DIR] [sample_rate=16000] [frame_rate=250]
    [crepe_model=full|tiny] [on_bad_file=error|skip] [device=cuda] [progress=true] [allow_silent=false]
    [min_seconds=1.0]``.

    ``input_dir=embedded`` prepares the embedded violin demo; ``cache_dir`` defaults to :func:`default_cache_dir`
    (``$AUDIOLAB_ROOT/.cache/audiolab/ddsp``, the training config's default).
    Prints the cache folder. A bad argument is a one-line SystemExit naming the key (:mod:`audiolab.data.cli`).
    """
    kwargs = parse_key_values(argv, _CLI_KEYS, recipe="ddsp")
    if "input_dir" not in kwargs:
        raise SystemExit("prepare ddsp: input_dir=... is required (a folder of audio files, or 'embedded')")
    input_dir = kwargs.pop("input_dir")
    cache_dir = kwargs.pop("cache_dir", None) or default_cache_dir()
    kwargs.setdefault("min_seconds", MIN_SOURCE_SECONDS)  # the training default (4 s examples): 1 s
    out = prepare_ddsp(input_dir, cache_dir, **kwargs)
    print(out)
