"""The parts every cached, split datamodule shares (DDSP features, audio crops, ...).

:class:`CachedSplitDataModule` is a ``LightningDataModule`` whose data is prepared once into a cache folder
(``_prepare(progress) -> Path``, implemented by the subclass) and split into ``train_set`` / ``val_set`` /
``test_set`` by ``setup`` (subclass). It supplies the rest: ``prepare_data`` (rank 0 builds the cache), the
three dataloaders, :meth:`~CachedSplitDataModule.probe_batch` (the fixed batch the probe and media callbacks use),
and :func:`check_hparams` for one-line errors naming the bad key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

__all__ = ["CachedSplitDataModule", "check_hparams"]


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

    Subclasses set ``batch_size``, ``num_workers``, ``split_seed``, ``overfit_batches`` in ``__init__``, implement
    ``_prepare(progress: bool) -> Path`` (build or reuse the cache, return its folder) and ``setup`` (fill
    ``train_set``, ``val_set``, ``test_set``; optionally ``train_sampler``).

    Training batches: shuffled with a generator seeded by ``split_seed`` (reproducible order), or drawn by
    ``train_sampler`` when the subclass sets one; in overfit mode (``overfit_batches > 0``) neither: the fixed
    examples in order. Validation / test: in order.
    """

    batch_size: int
    num_workers: int
    split_seed: int
    overfit_batches: int

    def __init__(self) -> None:
        super().__init__()
        self.cache_path: Path | None = None
        self.splits: dict[str, list[str]] = {}
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.train_sampler: Sampler | None = None

    def _prepare(self, progress: bool) -> Path:
        raise NotImplementedError

    def prepare_data(self) -> None:
        """Build or reuse the cache (Lightning calls this on local rank 0 only)."""
        self.cache_path = self._prepare(progress=True)

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
