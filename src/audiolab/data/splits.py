"""Deterministic train/val/test splits by source (file) or group, so no crop of a val/test file is trained on.

* :func:`split_sources`: a seeded permutation of source names (the DDSP family splits its files with it).
* :func:`split_by_category`: files grouped by category (first-level folder, e.g. ``speech`` / ``music``) and split
  group (file or second-level folder), each category split with :func:`split_sources` (crop datamodules).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Sequence

import numpy as np

__all__ = ["split_sources", "split_by_category", "category_of", "SPLIT_BY"]

#: Split units of :func:`split_by_category`: one group per file, or per second-level folder.
SPLIT_BY = ("folder_file", "folder_subfolder")


def split_sources(
    names: Sequence[str], val_fraction: float, test_fraction: float, seed: int, *, allow_single: bool = False
) -> dict[str, list[str]]:
    """Deterministic split of source names into ``train``/``val``/``test``.

    Seeded permutation of the sorted names; ``n_val = max(1, round(n * val_fraction))`` and likewise for test
    when ``n >= 3`` (train keeps at least one source). With 2 sources: 1 train, 1 val, test = val (warning).
    With 1 source: error unless ``allow_single`` (then train = val = test).
    """
    names = sorted(names)
    n = len(names)
    if n == 0:
        raise ValueError("no sources to split")
    if n == 1:
        if not allow_single:
            raise ValueError(
                f"only 1 source file ({names[0]!r}): need >= 2 for a train/val split by file "
                "(or use overfit_batches > 0)"
            )
        return {"train": names, "val": names, "test": names}
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [names[i] for i in order]
    if n == 2:
        warnings.warn("only 2 source files: 1 train, 1 val, and test reuses the val file", stacklevel=2)
        return {"train": shuffled[:1], "val": shuffled[1:], "test": shuffled[1:]}
    n_val = max(1, int(math.floor(n * val_fraction + 0.5)))
    n_test = max(1, int(math.floor(n * test_fraction + 0.5)))
    while n - n_val - n_test < 1:
        if n_val >= n_test and n_val > 1:
            n_val -= 1
        else:
            n_test -= 1
    return {
        "val": sorted(shuffled[:n_val]),
        "test": sorted(shuffled[n_val : n_val + n_test]),
        "train": sorted(shuffled[n_val + n_test :]),
    }


def category_of(rel: str) -> str:
    """Category of a file from its posix path relative to the root: the first-level folder (``"."`` if none)."""
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else "."


def _group_of(rel: str, split_by: str) -> str:
    """Split group of a file: the file itself, or (``folder_subfolder``) its second-level folder."""
    parts = rel.split("/")
    if split_by == "folder_subfolder" and len(parts) > 2:
        return "/".join(parts[:2])
    return rel


def split_by_category(
    files: Sequence[str], val_fraction: float, test_fraction: float, seed: int, split_by: str = "folder_file"
) -> dict[str, list[str]]:
    """Deterministic train/val/test split of ``files`` (posix paths relative to the root), per category.

    Files are grouped (``folder_file``: one group per file; ``folder_subfolder``: one group per second-level
    folder, e.g. one speaker / voice / instrument) and the groups of each category are split with
    :func:`split_sources` (seeded permutation; ``max(1, round(n * fraction))`` val and test
    groups when the category has >= 3 groups, so every such category is in every split). The seed of a
    category is ``seed + crc32(category)``: adding a category does not reshuffle the others. A category with
    a single group goes to train only (warning); with two groups: 1 train, 1 val, test = val (warning).

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` sorted file lists (val and test may share files only
        in the two-group case).
    """
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
    by_cat: dict[str, dict[str, list[str]]] = {}
    for f in files:
        by_cat.setdefault(category_of(f), {}).setdefault(_group_of(f, split_by), []).append(f)
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for cat in sorted(by_cat):
        groups = by_cat[cat]
        if len(groups) == 1:
            warnings.warn(f"category {cat!r} has a single split group ({next(iter(groups))!r}): train only",
                          stacklevel=2)
            out["train"].extend(next(iter(groups.values())))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts = split_sources(sorted(groups), val_fraction, test_fraction, seed + zlib.crc32(cat.encode()))
        if len(groups) == 2:
            warnings.warn(f"category {cat!r} has only 2 split groups: 1 train, 1 val, and test reuses the val group",
                          stacklevel=2)
        for key, names in parts.items():
            out[key].extend(f for g in names for f in groups[g])
    return {k: sorted(v) for k, v in out.items()}
