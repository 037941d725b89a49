"""The parts every cached, split datamodule shares (DDSP features, audio crops, ...).

:class:`CachedSplitDataModule` is a ``LightningDataModule`` whose data is prepared once into a cache folder
(``_prepare(progress) -> Path``, implemented by the subclass) and split into ``train_set`` / ``val_set`` /
``test_set`` by ``setup`` (subclass). It supplies the rest: ``prepare_data`` (rank 0 builds the cache), the
three dataloaders, :meth:`~CachedSplitDataModule.probe_batch` (the fixed batch the probe and media callbacks use),
the length rule (:meth:`~CachedSplitDataModule.usable_sources`: files too short for one training example stop the
run at ``prepare_data``, naming the file, or are skipped with ``on_short_file=skip`` (default: as
``on_bad_file``) and listed in the split manifest ``splits/<key>.json``), the empty-split check (:meth:`~CachedSplitDataModule.check_splits`: a split
without examples is an error naming the split, never an empty test) and :func:`check_hparams` for one-line errors
naming the bad key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from audiolab.data.cache import atomic_write_bytes, content_hash, split_too_short

__all__ = ["CachedSplitDataModule", "check_hparams", "split_fraction_checks"]


def check_hparams(
    ranges: Iterable[tuple[str, Any, bool, str]] = (),
    choices: Iterable[tuple[str, Any, Sequence[Any]]] = (),
) -> None:
    """Raise ``ValueError("<key> must be <want>, got <value>")`` for the first failing check.

    Args:
        ranges: ``(key, value, ok, want)``: ``ok`` is the already evaluated condition, ``want`` its wording
            (e.g. ``">= 1"``, ``"in [0, 1)"``).
        choices: ``(key, value, allowed)``: ``value`` must be one of ``allowed``.
    """
    for key, value, ok, want in ranges:
        if not ok:
            raise ValueError(f"{key} must be {want}, got {value}")
    for key, value, allowed in choices:
        if value not in allowed:
            raise ValueError(f"{key} must be one of {tuple(allowed)}, got {value!r}")


def split_fraction_checks(val_fraction: float, test_fraction: float) -> list[tuple[str, Any, bool, str]]:
    """The range checks of ``val_fraction`` / ``test_fraction`` (each in [0, 1), sum < 1) for :func:`check_hparams`."""
    return [
        ("val_fraction", val_fraction, 0.0 <= val_fraction < 1.0, "in [0, 1)"),
        ("test_fraction", test_fraction, 0.0 <= test_fraction < 1.0, "in [0, 1)"),
        ("val_fraction + test_fraction", f"{val_fraction} + {test_fraction}", val_fraction + test_fraction < 1.0,
         "< 1"),
    ]


class CachedSplitDataModule(L.LightningDataModule):
    """Base datamodule: a cache prepared once, split into train / val / test, batched by DataLoaders.

    Subclasses set ``batch_size``, ``num_workers``, ``split_seed``, ``overfit_batches``, ``sample_rate``,
    ``on_bad_file`` in ``__init__``, implement ``_prepare(progress: bool) -> Path`` (build or reuse the cache, return
    its folder), :meth:`min_source` (the shortest usable source and the config key that sets it) and ``setup``
    (``usable_sources`` -> split -> fill ``train_set``, ``val_set``, ``test_set``, optionally ``train_sampler``;
    ``write_split_manifest``; ``check_splits``).

    Training batches: shuffled with a generator seeded by ``split_seed`` (reproducible order), or drawn by
    ``train_sampler`` when the subclass sets one; in overfit mode (``overfit_batches > 0``) neither: the fixed
    examples in order. Validation / test: in order.
    """

    batch_size: int
    num_workers: int
    split_seed: int
    overfit_batches: int
    sample_rate: int
    on_bad_file: str
    #: Policy for files too short for one example: ``None`` = ``on_bad_file``; ``"error"`` or ``"skip"``.
    on_short_file: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.cache_path: Path | None = None
        self.splits: dict[str, list[str]] = {}
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.train_sampler: Sampler | None = None
        self.too_short: list[str] = []
        self.split_manifest_path: Path | None = None

    def _prepare(self, progress: bool) -> Path:
        raise NotImplementedError

    def min_source(self) -> tuple[int, str]:
        """``(samples, why)``: sources shorter than ``samples`` give no training example; ``why`` names the config
        key(s) that set the limit (shown in the error)."""
        raise NotImplementedError

    def prepare_data(self) -> None:
        """Build or reuse the cache, then apply the length rule (Lightning calls this on local rank 0 only), so a
        too-short file stops the run before any training."""
        self.cache_path = self._prepare(progress=True)
        self.usable_sources(self._cache_manifest())

    def usable_sources(self, manifest: dict[str, Any]) -> list[dict[str, Any]]:
        """The cached sources long enough for one training example (:meth:`min_source`).

        Too-short ones raise an ``AudioLoadError`` naming the file (``on_short_file`` or, when that is None,
        ``on_bad_file`` is ``"error"``) or are skipped with a warning and kept in :attr:`too_short` (``"skip"``;
        :meth:`write_split_manifest` lists them).
        """
        n, why = self.min_source()
        policy = self.on_short_file or self.on_bad_file
        usable, short = split_too_short(manifest["sources"], n, self.sample_rate, policy, why,
                                        skip_hint="data.on_short_file=skip (or data.on_bad_file=skip)")
        self.too_short = [s["file"] for s in short]
        return usable

    def check_splits(self, detail: str) -> None:
        """Raise ``ValueError`` naming the first of train / val / test without examples (``detail``: what the split
        was made from); training must not end in an empty ``test_metrics.json``."""
        for key in ("train", "val", "test"):
            ds = getattr(self, f"{key}_set")
            if ds is None or len(ds) == 0:
                raise ValueError(
                    f"the {key} split has no examples ({detail}; split files: {self.splits.get(key, [])}); "
                    "add audio files, or change data.val_fraction / data.test_fraction / data.split_seed"
                )

    def write_split_manifest(self, manifest: dict[str, Any], key: str, params: dict[str, Any]) -> None:
        """Write ``splits/<content_hash(params)>.json`` in the cache folder: ``params``, the splits, the too-short
        files and, per cached source, its ``file``, ``n_samples`` (and ``category``) and ``split`` (``train``,
        ``val+test``, ... or ``too_short``). ``key``: the manifest field the splits list (``file`` or ``source``)."""
        assert self.cache_path is not None
        split_of: dict[str, list[str]] = {}
        for name in ("train", "val", "test"):
            for f in self.splits[name]:
                split_of.setdefault(f, []).append(name)
        files = [{"file": e["file"], **({"category": e["category"]} if "category" in e else {}),
                  "n_samples": e["n_samples"], "split": "+".join(split_of.get(e[key], [])) or "too_short"}
                 for e in manifest["sources"]]
        body = {"params": params, "cache": str(self.cache_path), "too_short": self.too_short,
                "splits": self.splits, "files": files}
        path = self.cache_path / "splits" / f"{content_hash([], params)}.json"
        data = (json.dumps(body, indent=2) + "\n").encode()
        if not path.is_file() or path.read_bytes() != data:
            atomic_write_bytes(path, data)
        self.split_manifest_path = path

    def _cache_manifest(self) -> dict[str, Any]:
        """The cache's ``manifest.json``; on ranks where ``prepare_data`` did not run (or when ``setup`` is called
        directly) the cache is looked up first, which is cheap once it exists."""
        if self.cache_path is None:
            self.cache_path = self._prepare(progress=False)
        return json.loads((self.cache_path / "manifest.json").read_text())

    def _loader(self, ds: Dataset | None, *, shuffle: bool = False, sampler: Sampler | None = None) -> DataLoader:
        if ds is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before requesting a dataloader")
        gen = torch.Generator().manual_seed(self.split_seed) if shuffle else None
        return DataLoader(
            ds, batch_size=self.batch_size, shuffle=shuffle, sampler=sampler, generator=gen,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(), drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        if self.overfit_batches > 0:
            return self._loader(self.train_set)
        if self.train_sampler is not None:
            return self._loader(self.train_set, sampler=self.train_sampler)
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def probe_batch(self, n: int = 4) -> dict[str, Any]:
        """Collated batch of the first ``n`` validation examples (fewer if the split is smaller); fixed order."""
        if self.val_set is None:
            self.setup("fit")
        assert self.val_set is not None
        k = min(int(n), len(self.val_set))
        if k == 0:
            raise ValueError("probe_batch: the validation split has no examples")
        return default_collate([self.val_set[i] for i in range(k)])
