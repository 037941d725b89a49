"""Crops over a folder of audio (speech, music, drums, ...): prepared once, then random fixed-length crops.

Family-neutral: the codec trains on it (:class:`audiolab.models.codec.data.CodecDataModule`), and any family that
learns from fixed-length excerpts of a folder of audio can use :class:`AudioCropDataModule` as is.

Preparation (:func:`prepare_audio_cache`, cached and content-addressed): every audio file under
``root`` (recursive) is loaded with :func:`audiolab.audio.io.load_audio` (mono downmix, resampled to
``sample_rate``), optionally loudness-normalised per file (``normalize="loudness"``: ITU-R BS.1770 integrated
loudness with pyloudnorm to ``target_lufs``, then scaled down if the peak exceeds 1 — DAC's
``normalize(-16) + ensure_max_of_audio()``, done once here instead of per excerpt) and stored in one
concatenated array ``audio.npy`` (float16 by default, memory-mapped by the datasets) with per-file offsets in
``manifest.json``.

Split (:func:`audiolab.data.splits.split_by_category`): by source file (or by sub-folder, ``split_by="folder_subfolder"``) with a seeded
shuffle *within each category* (category = first-level folder under ``root``, e.g. ``speech`` / ``music``), so
every category with >= 3 groups appears in train, val and test, and no crop of a val/test file is ever trained on.

Crops (``T = round(crop_seconds * sample_rate)`` samples):

- train (:class:`RandomCropDataset`): ``crops_per_epoch`` independent random crops per epoch. A crop picks a file
  with probability proportional to its number of crop positions (``n_samples - T + 1``, i.e. every crop position
  of the training audio is equally likely: length-proportional, not category-balanced — the corpus builder sets
  the speech/music balance), then a uniform start. Crops whose RMS is below ``min_crop_db`` dBFS are redrawn
  (same file, up to :data:`MAX_CROP_TRIES` draws, then the loudest draw is kept), like DAC's ``loudness_cutoff``.
  Crop ``i`` of epoch ``e`` uses ``np.random.default_rng([seed, e, i])``: reproducible and independent of the
  worker that computes it. The epoch reaches the workers *inside the index*: :class:`EpochSampler` yields
  ``e * crops_per_epoch + i`` and Lightning calls its ``set_epoch(e)`` at the start of every training epoch
  (``_set_sampler_epoch``), so persistent workers need no shared state; without ``set_epoch`` the sampler
  advances one epoch per iteration on its own.
- val/test (:class:`FixedCropDataset`): ``val_crops_per_file`` crops per file at evenly spaced positions, each
  moved within its own segment of the file to the first position (centre first) that passes the same loudness
  rule (or, if the whole segment is quiet, to the nearest loud position in the file; duplicates dropped). Items are ordered round-robin over categories, so every batch (and :meth:`AudioCropDataModule.probe_batch`)
  mixes speech and music.

Batches: ``{"audio": float32 [B, T], "source": list[str]}`` (``source`` = file path relative to ``root``).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from audiolab.audio.io import AudioLoadError, audio_files, load_audio
from audiolab.data.cache import (
    atomic_path,
    atomic_save_npz,
    atomic_write_json,
    completed_manifest,
    content_hash,
    skip_bad_file,
)
from audiolab.data.module import CachedSplitDataModule, check_hparams, split_fraction_checks
from audiolab.data.splits import SPLIT_BY, category_of, split_by_category

__all__ = [
    "CACHE_VERSION",
    "ROOT_HINT",
    "MAX_CROP_TRIES",
    "prepare_audio_cache",
    "loudness_normalize",
    "RandomCropDataset",
    "FixedCropDataset",
    "EpochSampler",
    "AudioCropDataModule",
]

#: Bumped whenever the cached format or computation changes (part of the cache key).
CACHE_VERSION = 1
#: The ``family`` entry of the cache key and manifest. The caches were first built for the codec; the value is
#: kept so that existing caches stay valid (the cached audio does not depend on the family that reads it).
_CACHE_FAMILY = "codec"
#: Draws per crop before the loudest draw is accepted (train and val/test).
MAX_CROP_TRIES = 10
#: Default second half of the missing-root error; a family's datamodule names how to build its own data.
ROOT_HINT = "set data.root=/path/to/a/folder/of/audio"
_NORMALIZE = ("none", "loudness")
_ON_BAD_FILE = ("error", "skip")
_DTYPES = ("float16", "float32")
#: pyloudnorm's gating block (s): shorter signals have no integrated loudness.
_LOUDNESS_BLOCK_S = 0.4


# -- preparation ---------------------------------------------------------------------------------------------
def _params(sample_rate: int, normalize: str, target_lufs: float, dtype: str,
            allow_silent: bool = False) -> dict[str, Any]:
    """Everything that changes the cached audio (the cache key's parameter part). Keys that only exist for a
    non-default choice (``target_lufs``, ``allow_silent``) keep the keys of caches made before they existed."""
    p: dict[str, Any] = {"family": _CACHE_FAMILY, "version": CACHE_VERSION, "sample_rate": int(sample_rate),
                         "normalize": normalize, "dtype": dtype, "downmix": "mean", "resampler": "torchaudio"}
    if normalize == "loudness":
        p["target_lufs"] = float(target_lufs)
    if allow_silent:
        p["allow_silent"] = True
    return p


def loudness_normalize(audio: np.ndarray, sample_rate: int, target_lufs: float) -> tuple[np.ndarray, float | None, float]:
    """Scale ``audio`` to ``target_lufs`` integrated loudness, then down so that its peak is at most 1.

    Args:
        audio: float ``[T]`` mono samples at ``sample_rate`` Hz.
        target_lufs: target integrated loudness (LUFS, ITU-R BS.1770-4 via pyloudnorm).

    Returns:
        ``(scaled float32 [T], measured loudness in LUFS or None, applied gain in dB)``. Audio shorter than one
        400 ms gating block, or whose loudness is below the absolute gate (-70 LUFS), is returned unchanged
        (loudness ``None``, gain 0).
    """
    try:
        import pyloudnorm
    except ImportError:
        raise ImportError("normalize='loudness' needs pyloudnorm: pip install pyloudnorm (pip install -e .)") from None
    x = np.asarray(audio, dtype=np.float64)
    if x.shape[0] <= int(_LOUDNESS_BLOCK_S * sample_rate):
        return np.asarray(audio, dtype=np.float32), None, 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lufs = float(pyloudnorm.Meter(int(sample_rate)).integrated_loudness(x))
    if not np.isfinite(lufs):
        return np.asarray(audio, dtype=np.float32), None, 0.0
    gain_db = float(target_lufs) - lufs
    y = x * 10.0 ** (gain_db / 20.0)
    peak = float(np.abs(y).max())
    if peak > 1.0:
        y /= peak
        gain_db -= 20.0 * np.log10(peak)
    return y.astype(np.float32), lufs, gain_db


def _root_or_hint(root: str | os.PathLike, hint: str) -> Path:
    r = Path(root).expanduser()
    if not r.exists():
        raise FileNotFoundError(f"data root {str(r)!r} does not exist: {hint}")
    return r


def prepare_audio_cache(
    root: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    sample_rate: int = 24000,
    normalize: str = "none",
    target_lufs: float = -16.0,
    on_bad_file: str = "error",
    dtype: str = "float16",
    progress: bool = True,
    root_hint: str = ROOT_HINT,
    allow_silent: bool = False,
) -> Path:
    """Resample (and optionally loudness-normalise) every audio file under ``root`` into one cached array.

    Cache folder: ``cache_dir/<content_hash(files, params)>`` (the key covers relative path, size and mtime of
    every file and the parameters). Per-file results are first written atomically to ``parts/<file>.npz``
    (an interrupted run resumes from them), then concatenated into ``audio.npy`` (``dtype`` ``[N]``, atomic
    rename); ``manifest.json`` is written last, so a folder with a manifest is complete and reused as is.

    Manifest: ``params``; ``sources``: one entry per usable file with ``source``/``file`` (posix path relative to
    ``root``), ``path``, ``category`` (first-level folder, ``"."`` for files directly in ``root``), ``offset`` and
    ``n_samples`` (samples into ``audio.npy``), ``seconds``, ``loudness_lufs`` (before normalisation, only with
    ``normalize="loudness"``), ``gain_db``; ``skipped``: bad files with the reason.

    Args:
        root: folder (recursive) or single audio file, any rate / channel count.
        cache_dir: parent of the cache folders.
        sample_rate: target rate (Hz). normalize: ``"none"`` or ``"loudness"``. target_lufs: LUFS.
        on_bad_file: ``"error"`` raises the :class:`AudioLoadError` naming the file (unreadable, empty,
            non-finite or silent), also when a cached manifest lists skipped files; ``"skip"`` warns and records
            it in ``manifest["skipped"]``.
        dtype: storage type of the cached audio, ``"float16"`` (half the memory; ~66 dB SNR) or ``"float32"``.
        progress: tqdm bar over the files.
        root_hint: how to get the data, appended to the missing-root / no-audio errors.
        allow_silent: keep digitally silent files (peak < 1e-6) instead of treating them as bad files.

    Returns:
        The cache folder (``manifest.json`` + ``audio.npy``).

    Raises:
        FileNotFoundError: ``root`` does not exist (the message ends with ``root_hint``).
        ValueError: bad parameter (names the key), no audio under ``root``, or every file is bad.
        AudioLoadError: a bad file with ``on_bad_file="error"``.
    """
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate}")
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
    if on_bad_file not in _ON_BAD_FILE:
        raise ValueError(f"on_bad_file must be one of {_ON_BAD_FILE}, got {on_bad_file!r}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    r = _root_or_hint(root, root_hint)
    try:
        files = audio_files(r)
    except ValueError as exc:
        raise ValueError(f"{exc}: {root_hint}") from exc
    base = r if r.is_dir() else r.parent
    params = _params(sample_rate, normalize, target_lufs, dtype, allow_silent)
    out = Path(cache_dir).expanduser() / content_hash(files, params, root=base)
    manifest_path = out / "manifest.json"
    if completed_manifest(out, on_bad_file) is not None:
        return out

    from tqdm.auto import tqdm

    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    sources: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for i, path in enumerate(tqdm(files, desc="prepare audio", unit="file", disable=not progress,
                                  dynamic_ncols=True)):
        rel = path.resolve().relative_to(base.resolve()).as_posix() if r.is_dir() else path.name
        part = parts / f"{i:06d}.npz"  # the file list is part of the cache key: indices are stable
        if part.is_file():  # complete (atomic write) from an interrupted earlier run
            with np.load(part) as z:
                n, lufs, gain_db = int(z["audio"].shape[0]), z["loudness_lufs"].item(), float(z["gain_db"])
        else:
            try:
                audio = load_audio(path, int(sample_rate), allow_silent=allow_silent).numpy()
            except AudioLoadError as exc:
                skip_bad_file(exc, path, rel, on_bad_file, skipped)
                continue
            lufs, gain_db = None, 0.0
            if normalize == "loudness":
                audio, lufs, gain_db = loudness_normalize(audio, int(sample_rate), target_lufs)
            atomic_save_npz(part, audio=audio.astype(dtype), loudness_lufs=np.array(np.nan if lufs is None else lufs),
                            gain_db=np.array(gain_db))
            n = int(audio.shape[0])
        lufs = None if lufs is None or not np.isfinite(lufs) else round(float(lufs), 3)
        sources.append({"part": part.name, "source": rel, "file": rel, "path": str(path), "category": category_of(rel), "offset": 0,
                        "n_samples": n, "seconds": round(n / sample_rate, 4), "loudness_lufs": lufs,
                        "gain_db": round(gain_db, 3)})
    if not sources:
        raise ValueError(
            f"no usable audio in root {str(r)!r}: all {len(files)} files were bad "
            f"(first: {skipped[0]['path']}: {skipped[0]['reason']})"
        )
    offset = 0
    for s in sources:
        s["offset"] = offset
        offset += s["n_samples"]
    _concatenate(out / "audio.npy", [parts / s.pop("part") for s in sources], offset, dtype)
    manifest = {
        "family": _CACHE_FAMILY,
        "root": str(r),
        "params": params,
        "n_sources": len(sources),
        "n_samples": offset,
        "total_seconds": round(offset / sample_rate, 3),
        "seconds_per_category": _seconds_per_category(sources, sample_rate),
        "sources": sources,
        "skipped": skipped,
    }
    atomic_write_json(manifest_path, manifest)  # last: marks the cache complete
    shutil.rmtree(parts, ignore_errors=True)
    print(f"prepared {len(sources)} sources ({manifest['total_seconds']:.1f} s) -> {out}", flush=True)
    return out


def _seconds_per_category(sources: Sequence[dict[str, Any]], sample_rate: int) -> dict[str, float]:
    acc: dict[str, float] = {}
    for s in sources:
        acc[s["category"]] = acc.get(s["category"], 0.0) + s["n_samples"] / sample_rate
    return {k: round(v, 3) for k, v in sorted(acc.items())}


def _concatenate(dest: Path, parts: Sequence[Path], n_total: int, dtype: str) -> None:
    """Stream ``parts`` (npz with key ``audio``) into one ``.npy`` of ``n_total`` samples, atomically."""
    with atomic_path(dest, suffix=".npy") as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=(n_total,))
        pos = 0
        for p in parts:
            with np.load(p) as z:
                a = z["audio"]
            arr[pos : pos + a.shape[0]] = a
            pos += a.shape[0]
        arr.flush()
        del arr


# -- datasets --------------------------------------------------------------------------------------------------
class _AudioStore:
    """Read-only view of a cache's ``audio.npy``, memory-mapped lazily in each process (workers included)."""

    def __init__(self, cache_path: str | os.PathLike) -> None:
        self.path = Path(cache_path) / "audio.npy"
        self._arr: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_arr": None}  # never pickle the memmap (it would copy the whole corpus)

    def read(self, offset: int, start: int, n: int) -> np.ndarray:
        """float32 ``[n]`` samples ``start .. start + n`` of the file stored at ``offset``."""
        if self._arr is None:
            self._arr = np.load(self.path, mmap_mode="r")
        return np.array(self._arr[offset + start : offset + start + n], dtype=np.float32)  # writable copy


def _rms_db(x: np.ndarray) -> float:
    """RMS level of ``x`` in dBFS (floor -240)."""
    return float(10.0 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-24))


def _first_loud(store: _AudioStore, entry: dict[str, Any], starts: Sequence[int], n: int,
                min_db: float) -> tuple[int, float]:
    """First of ``starts`` whose crop is at least ``min_db`` dBFS RMS, else the loudest: ``(start, level dB)``."""
    best, best_db = int(starts[0]), -np.inf
    for s in starts:
        db = _rms_db(store.read(entry["offset"], int(s), n))
        if db >= min_db:
            return int(s), db
        if db > best_db:
            best, best_db = int(s), db
    return best, best_db


class RandomCropDataset(Dataset):
    """``crops_per_epoch`` random crops of ``n_samples`` per epoch, reproducible per ``(seed, epoch, index)``.

    Index ``k`` means crop ``k % crops_per_epoch`` of epoch ``k // crops_per_epoch`` (see :class:`EpochSampler`;
    plain indices ``0 .. len - 1`` are epoch 0). Items: ``{"audio": float32 [n_samples], "source": str}``.
    """

    def __init__(self, cache_path: str | os.PathLike, entries: Sequence[dict[str, Any]], n_samples: int,
                 crops_per_epoch: int, seed: int = 0, min_crop_db: float = -40.0) -> None:
        self.store = _AudioStore(cache_path)
        self.entries = [e for e in entries if e["n_samples"] >= n_samples]
        if not self.entries:
            raise ValueError(f"RandomCropDataset: no file is at least {n_samples} samples long")
        self.n_samples = int(n_samples)
        self.crops_per_epoch = int(crops_per_epoch)
        self.seed = int(seed)
        self.min_crop_db = float(min_crop_db)
        positions = np.array([e["n_samples"] - self.n_samples + 1 for e in self.entries], dtype=np.float64)
        self._cum = np.cumsum(positions)

    def __len__(self) -> int:
        return self.crops_per_epoch

    def locate(self, index: int) -> tuple[int, int]:
        """``(entry index, start sample)`` of crop ``index`` (epoch folded in, see class docs)."""
        epoch, i = divmod(int(index), self.crops_per_epoch)
        rng = np.random.default_rng([self.seed, epoch, i])
        k = int(np.searchsorted(self._cum, rng.random() * self._cum[-1], side="right"))
        entry = self.entries[min(k, len(self.entries) - 1)]
        hi = entry["n_samples"] - self.n_samples + 1
        starts = rng.integers(0, hi, size=MAX_CROP_TRIES)
        return min(k, len(self.entries) - 1), _first_loud(self.store, entry, starts, self.n_samples, self.min_crop_db)[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        k, start = self.locate(index)
        e = self.entries[k]
        return {"audio": torch.from_numpy(self.store.read(e["offset"], start, self.n_samples)), "source": e["source"]}


class FixedCropDataset(Dataset):
    """Fixed crops ``(entry, start)``; items ``{"audio": float32 [n_samples], "source": str}``."""

    def __init__(self, cache_path: str | os.PathLike, crops: Sequence[tuple[dict[str, Any], int]], n_samples: int) -> None:
        self.store = _AudioStore(cache_path)
        self.crops = list(crops)
        self.n_samples = int(n_samples)

    @classmethod
    def evenly_spaced(cls, cache_path: str | os.PathLike, entries: Sequence[dict[str, Any]], n_samples: int,
                      crops_per_file: int, min_crop_db: float = -40.0) -> FixedCropDataset:
        """``crops_per_file`` crops per entry: the span of crop starts ``[0, n - T]`` is cut into equal segments;
        in each, the first of :data:`MAX_CROP_TRIES` evenly spaced starts (ordered centre first) that reaches
        ``min_crop_db`` dBFS is taken; if none is, the nearest of ``MAX_CROP_TRIES * crops_per_file`` evenly
        spaced starts over the whole file that is (else the loudest). Duplicate starts are dropped. Order: round-robin over
        categories; within a category the first crop of every file (sorted by path), then the second ones, ...
        so the first items (:meth:`AudioCropDataModule.probe_batch`) cover many files of every category."""
        store = _AudioStore(cache_path)
        per_cat: dict[str, list[tuple[int, str, dict[str, Any], int]]] = {}
        k = max(1, int(crops_per_file))
        for e in entries:
            span = e["n_samples"] - n_samples
            if span < 0:
                continue
            chosen: list[int] = []
            for j in range(k):
                lo, hi = span * j / k, span * (j + 1) / k
                cands = np.unique(np.round(np.linspace(lo, hi, MAX_CROP_TRIES)).astype(int))
                centre = (lo + hi) / 2
                cands = sorted(cands.tolist(), key=lambda s, c=centre: (abs(s - c), s))
                s, db = _first_loud(store, e, cands, n_samples, min_crop_db)
                if db < min_crop_db:  # the whole segment is quiet: nearest loud position anywhere in the file
                    grid = np.unique(np.round(np.linspace(0, span, MAX_CROP_TRIES * k)).astype(int)).tolist()
                    s2, db2 = _first_loud(store, e, sorted(grid, key=lambda x, c=centre: (abs(x - c), x)),
                                          n_samples, min_crop_db)
                    s = s2 if db2 > db else s
                if s not in chosen:
                    chosen.append(s)
            per_cat.setdefault(e["category"], []).extend((j, e["file"], e, s) for j, s in enumerate(chosen))
        # within a category: first crop of every file, then the second ones, ...; then round-robin over categories
        lists = [[(e, s) for _, _, e, s in sorted(per_cat[c], key=lambda t: (t[0], t[1]))] for c in sorted(per_cat)]
        crops = [lst[i] for i in range(max((len(x) for x in lists), default=0)) for lst in lists if i < len(lst)]
        return cls(cache_path, crops, n_samples)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict[str, Any]:
        e, start = self.crops[i]
        return {"audio": torch.from_numpy(self.store.read(e["offset"], start, self.n_samples)), "source": e["source"]}


class EpochSampler(Sampler[int]):
    """Yields ``epoch * n + i`` for ``i < n``: the epoch travels to the (persistent) workers inside the index.

    ``set_epoch`` (called by Lightning at every training epoch start) fixes the epoch of the next iteration;
    each iteration then advances the epoch by one, so plain loops also get new crops every epoch.
    """

    def __init__(self, n: int, epoch: int = 0) -> None:
        self.n = int(n)
        self.epoch = int(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        self.epoch += 1
        return iter(range(epoch * self.n, (epoch + 1) * self.n))


# -- datamodule ------------------------------------------------------------------------------------------------
class AudioCropDataModule(CachedSplitDataModule):
    """Lightning datamodule of fixed-length crops from a folder of mixed audio.

    ``prepare_data`` builds/reuses the cache (:func:`prepare_audio_cache`) and refuses files shorter than one crop
    (error naming the file; with ``on_bad_file="skip"`` a warning, and the split manifest lists them); ``setup``
    splits by category and file (:func:`audiolab.data.splits.split_by_category`), writes
    ``splits/<key>.json`` in the cache folder (per-file split, too-short files, parameters) and builds the
    datasets: train :class:`RandomCropDataset` driven by :class:`EpochSampler`; val/test
    :class:`FixedCropDataset` (``val_crops_per_file`` crops per file); a split without crops is an error naming it.
    ``split_seed`` seeds both the split and the training crops. ``overfit_batches > 0``: train, val and test are the same first
    ``batch_size * overfit_batches`` epoch-0 training crops, frozen.

    Batches: ``{"audio": float32 [B, T], "source": list[str]}`` with ``T = round(crop_seconds * sample_rate)``.
    A subclass sets :attr:`root_hint` to say how its data is built (shown when ``root`` is missing).
    """

    root_hint: str = ROOT_HINT

    def __init__(
        self,
        root: str,
        cache_dir: str,
        sample_rate: int = 24000,
        crop_seconds: float = 1.0,
        batch_size: int = 16,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        split_by: str = "folder_file",
        crops_per_epoch: int | None = None,
        val_crops_per_file: int = 2,
        min_crop_db: float = -40.0,
        normalize: str = "none",
        target_lufs: float = -16.0,
        on_bad_file: str = "error",
        overfit_batches: int = 0,
        storage_dtype: str = "float16",
        allow_silent: bool = False,
        on_short_file: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_hparams([
            ("sample_rate", sample_rate, int(sample_rate) > 0, "a positive integer (Hz)"),
            ("crop_seconds", crop_seconds, crop_seconds > 0 and round(crop_seconds * sample_rate) >= 1, "> 0"),
            ("batch_size", batch_size, batch_size >= 1, ">= 1"),
            ("num_workers", num_workers, num_workers >= 0, ">= 0"),
            ("crops_per_epoch", crops_per_epoch, crops_per_epoch is None or crops_per_epoch >= 1, "null or >= 1"),
            ("val_crops_per_file", val_crops_per_file, val_crops_per_file >= 1, ">= 1"),
            ("overfit_batches", overfit_batches, overfit_batches >= 0, ">= 0"),
            *split_fraction_checks(val_fraction, test_fraction),
        ], [("split_by", split_by, SPLIT_BY), ("normalize", normalize, _NORMALIZE),
            ("on_bad_file", on_bad_file, _ON_BAD_FILE), ("on_short_file", on_short_file, (None, *_ON_BAD_FILE)),
            ("storage_dtype", storage_dtype, _DTYPES)])
        self.root = root
        self.cache_dir = cache_dir
        self.sample_rate = int(sample_rate)
        self.crop_seconds = float(crop_seconds)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.split_seed = int(split_seed)
        self.split_by = split_by
        self.crops_per_epoch = crops_per_epoch
        self.val_crops_per_file = int(val_crops_per_file)
        self.min_crop_db = float(min_crop_db)
        self.normalize = normalize
        self.target_lufs = float(target_lufs)
        self.on_bad_file = on_bad_file
        self.overfit_batches = int(overfit_batches)
        self.storage_dtype = storage_dtype
        self.allow_silent = bool(allow_silent)
        self.on_short_file = on_short_file

    @property
    def n_samples(self) -> int:
        """Samples per crop (``round(crop_seconds * sample_rate)``)."""
        return int(round(self.crop_seconds * self.sample_rate))

    def _prepare(self, progress: bool) -> Path:
        return prepare_audio_cache(self.root, self.cache_dir, sample_rate=self.sample_rate, normalize=self.normalize,
                                   target_lufs=self.target_lufs, on_bad_file=self.on_bad_file,
                                   dtype=self.storage_dtype, progress=progress, root_hint=self.root_hint,
                                   allow_silent=self.allow_silent)

    def min_source(self) -> tuple[int, str]:
        return self.n_samples, f"one crop: data.crop_seconds={self.crop_seconds}"

    def setup(self, stage: str | None = None) -> None:
        """Split the files and build the datasets (idempotent)."""
        if self.train_set is not None:
            return
        manifest = self._cache_manifest()
        T = self.n_samples
        usable = {e["file"]: e for e in self.usable_sources(manifest)}
        if not usable:
            raise ValueError(f"no file under root {self.root!r} is at least crop_seconds={self.crop_seconds} s long")
        self.splits = split_by_category(sorted(usable), self.val_fraction, self.test_fraction, self.split_seed,
                                        self.split_by)
        self.write_split_manifest(manifest, "file", {k: getattr(self, k) for k in (
            "crop_seconds", "val_fraction", "test_fraction", "split_seed", "split_by")})
        train_entries = [usable[f] for f in self.splits["train"]]
        if not train_entries:
            raise ValueError(f"the train split of root {self.root!r} is empty")
        n_crops = self.crops_per_epoch
        if n_crops is None:
            n_crops = max(1, int(round(sum(e["n_samples"] for e in train_entries) / T)))
        train = RandomCropDataset(self.cache_path, train_entries, T, n_crops, self.split_seed, self.min_crop_db)
        if self.overfit_batches > 0:
            n = self.batch_size * self.overfit_batches
            if n > n_crops:
                warnings.warn(f"overfit_batches: only {n_crops} crops per epoch (< {n} requested)", stacklevel=2)
            crops = [train.locate(i) for i in range(min(n, n_crops))]
            fixed = FixedCropDataset(self.cache_path, [(train.entries[k], s) for k, s in crops], T)
            self.train_set = self.val_set = self.test_set = fixed
            return
        self.train_set = train
        self.train_sampler = EpochSampler(len(train))
        for key in ("val", "test"):
            ds = FixedCropDataset.evenly_spaced(self.cache_path, [usable[f] for f in self.splits[key]], T,
                                                self.val_crops_per_file, self.min_crop_db)
            setattr(self, f"{key}_set", ds)
        self.check_splits(f"{len(usable)} usable files under data.root={self.root!r}; a category with a single "
                          "split group goes to train only")
