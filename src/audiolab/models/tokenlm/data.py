"""Token data for the LM: the codec's ``[K, T_total]`` token export + manifest, random crops drawn in the Dataset.

``python -m audiolab.prepare codec_tokens ckpt_path=… input_dir=…`` writes ``tokens.npy`` (int16 ``[K, T_total]``,
files concatenated in time) and ``manifest.json`` (``cardinality``, ``n_q``, ``frame_rate``, ``files[i].offset /
n_frames / source``). Any ``.npy`` of that shape with such a manifest works (a manifest without ``files`` is one
file). Tags per file: ``files[i].tags`` if present, else the folder names of ``source`` (``melodic/violin/x.wav``
-> ``["melodic", "violin"]``).

Crops (the users' bug was a collate that always cut the *first* window):

* training: item ``(i, epoch)`` -> file ``i mod n_files``, start drawn from ``default_rng([seed, epoch, i])``:
  different every epoch, identical across runs (audiocraft seeds ``index + n·(epoch + seed)``). The epoch comes
  from :class:`EpochCropSampler` (a ``DistributedSampler``, so Lightning calls its ``set_epoch`` on one device and
  on many, and does not replace it under DDP);
* validation / test: crops seeded by the item index only (fixed);
* ``crop_mode=first`` reproduces the bug on purpose (start 0 every time);
* files shorter than ``min_segment_ratio`` x crop are skipped with a warning (``on_short=error`` refuses them);
  shorter-than-crop items are padded and the padding is masked (PAD, never a target);
* ``overfit_file``: one file for training and validation, always its first window (the users' one-clip overfit).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

log = logging.getLogger("audiolab")

CROP_MODES = ("random", "first")


class TokenDataError(ValueError):
    """Bad token data: the message names the file and the numbers."""


@dataclass
class TokenFile:
    source: str
    offset: int
    n_frames: int
    tags: list[str] = field(default_factory=list)


def _tags_of(entry: dict[str, Any]) -> list[str]:
    if entry.get("tags") is not None:
        return [str(t) for t in entry["tags"]]
    return [p for p in Path(str(entry.get("source", ""))).parent.parts if p not in ("", ".", "/")]


class TokenSet:
    """A token export: ``tokens`` ``[K, T_total]`` (memory-mapped) and its files.

    Args:
        root: a folder with ``tokens.npy`` + ``manifest.json``, or the ``.npy`` itself (manifest beside it).
        card: expected codebook size; ``None`` = the manifest's ``cardinality``.
    """

    def __init__(self, root: str | Path, card: int | None = None) -> None:
        root = Path(root)
        npy = root if root.suffix == ".npy" else root / "tokens.npy"
        manifest_path = npy.parent / "manifest.json"
        hint = "(build one with `python -m audiolab.prepare codec_tokens ckpt_path=… input_dir=…` or `tokenlm_music`)"
        if not npy.exists():
            raise FileNotFoundError(f"token file {str(npy)!r} does not exist {hint}")
        if not manifest_path.exists():
            raise FileNotFoundError(f"token manifest {str(manifest_path)!r} does not exist {hint}")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise TokenDataError(f"{manifest_path}: not valid JSON ({err})") from err
        self.path, self.manifest_path, self.manifest = npy, manifest_path, manifest
        tokens = np.load(npy, mmap_mode="r")
        if tokens.ndim != 2:
            raise TokenDataError(f"{npy}: expected tokens [K, T], got shape {tuple(tokens.shape)}")
        if not np.issubdtype(tokens.dtype, np.integer):
            raise TokenDataError(f"{npy}: expected integer tokens, got dtype {tokens.dtype}")
        self.tokens = tokens
        self.n_q, total = int(tokens.shape[0]), int(tokens.shape[1])
        if "n_q" in manifest and int(manifest["n_q"]) != self.n_q:
            raise TokenDataError(f"{npy}: has K={self.n_q} codebooks but {manifest_path} says n_q={manifest['n_q']}")
        if card is None and "cardinality" not in manifest:
            raise TokenDataError(f"{manifest_path}: no 'cardinality' (codebook size) and none given")
        self.card = int(manifest.get("cardinality", card)) if card is None else int(card)
        if "cardinality" in manifest and card is not None and int(manifest["cardinality"]) != int(card):
            raise TokenDataError(f"{manifest_path}: cardinality {manifest['cardinality']} but the model expects {card}")
        self.frame_rate = float(manifest.get("frame_rate", 0.0))
        self.sample_rate = int(manifest.get("sample_rate", 0))
        self.model_id = manifest.get("model_id")
        entries = manifest.get("files") or [{"source": npy.name, "offset": 0, "n_frames": total}]
        self.files: list[TokenFile] = []
        for e in entries:
            f = TokenFile(str(e["source"]), int(e["offset"]), int(e["n_frames"]), _tags_of(e))
            if f.n_frames <= 0:
                raise TokenDataError(f"{npy}: file {f.source!r} has {f.n_frames} frames (empty)")
            if f.offset < 0 or f.offset + f.n_frames > total:
                raise TokenDataError(f"{npy}: file {f.source!r} spans frames {f.offset}..{f.offset + f.n_frames} "
                                     f"outside the array's {total}")
            self.files.append(f)
        self._check_range()

    def _check_range(self) -> None:
        lo, hi = int(self.tokens.min()), int(self.tokens.max())
        if lo >= 0 and hi < self.card:
            return
        for f in self.files:  # name the first offending file
            c = np.asarray(self.codes(f))
            if int(c.min()) < 0 or int(c.max()) >= self.card:
                k, t = np.unravel_index(int(np.argmax((c < 0) | (c >= self.card))), c.shape)
                raise TokenDataError(f"{self.path}: file {f.source!r} holds token {int(c[k, t])} at codebook {k}, "
                                     f"frame {t}; ids must be in 0..{self.card - 1} (cardinality {self.card})")
        raise TokenDataError(f"{self.path}: token ids span {lo}..{hi}, outside 0..{self.card - 1}")

    def codes(self, f: TokenFile) -> np.ndarray:
        """``[K, n_frames]`` (a view of the memory map)."""
        return self.tokens[:, f.offset : f.offset + f.n_frames]

    @property
    def tag_vocabulary(self) -> list[str]:
        return sorted({t for f in self.files for t in f.tags})


class TokenCrops(Dataset):
    """Crops of ``crop_frames`` from ``files``.

    Items: ``{"codes": [K, crop] long (0 after ``length``), "length", "ended" (the crop reaches the file's end),
    "start", "tags", "source"}``. Keys are ``(i, epoch)`` (training, from :class:`EpochCropSampler`) or ``i``
    (evaluation: epoch-independent).
    """

    def __init__(self, tokens: TokenSet, files: list[TokenFile], crop_frames: int, n_items: int, train: bool,
                 seed: int = 0, crop_mode: str = "random") -> None:
        if crop_mode not in CROP_MODES:
            raise ValueError(f"data.crop_mode must be one of {list(CROP_MODES)}, got {crop_mode!r}")
        if not files:
            raise TokenDataError(f"{tokens.path}: no files to crop from")
        self.tokens, self.files, self.crop = tokens, files, int(crop_frames)
        self.n_items, self.train, self.seed, self.crop_mode = int(n_items), train, int(seed), crop_mode

    def __len__(self) -> int:
        return self.n_items

    def locate(self, key: int | tuple[int, int]) -> tuple[TokenFile, int]:
        """(file, start frame) of an item key."""
        i, epoch = (key if isinstance(key, tuple) else (int(key), 0))
        f = self.files[i % len(self.files)]
        room = f.n_frames - self.crop
        if self.crop_mode == "first" or room <= 0:
            return f, 0
        # training: (seed, epoch, i) -> new every epoch, same across runs; evaluation: (seed, i) only
        rng = np.random.default_rng([self.seed, epoch, i] if self.train else [self.seed, 2**31 - 1, i])
        return f, int(rng.integers(0, room + 1))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        f, start = self.locate(key)
        window = np.asarray(self.tokens.codes(f)[:, start : start + self.crop], dtype=np.int64)
        length = window.shape[1]
        codes = np.zeros((self.tokens.n_q, self.crop), dtype=np.int64)
        codes[:, :length] = window
        return {"codes": torch.from_numpy(codes), "length": length, "ended": start + length >= f.n_frames,
                "start": start, "tags": list(f.tags), "source": f.source}


def collate_tokens(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"codes": torch.stack([it["codes"] for it in items]),
            "lengths": torch.tensor([it["length"] for it in items], dtype=torch.long),
            "ended": torch.tensor([it["ended"] for it in items], dtype=torch.bool),
            "starts": torch.tensor([it["start"] for it in items], dtype=torch.long),
            "tags": [it["tags"] for it in items], "sources": [it["source"] for it in items]}


class EpochCropSampler(DistributedSampler):
    """Yields ``(i, epoch)`` keys in a seeded order that changes every epoch; splits items across DDP ranks.

    A ``DistributedSampler`` subclass so that Lightning calls :meth:`set_epoch` every epoch and never wraps it.
    """

    def __init__(self, n_items: int, seed: int = 0, shuffle: bool = True) -> None:
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        replicas = torch.distributed.get_world_size() if dist else 1
        rank = torch.distributed.get_rank() if dist else 0
        self.n_items = int(n_items)
        super().__init__(range(self.n_items), num_replicas=replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=False)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)
            order = torch.randperm(self.n_items, generator=g).tolist()
        else:
            order = list(range(self.n_items))
        order += order[: self.total_size - len(order)]  # pad to a multiple of the replicas
        for i in order[self.rank : self.total_size : self.num_replicas]:
            yield (i, self.epoch)


def split_files(files: list[TokenFile], val_fraction: float, test_fraction: float, seed: int
                ) -> tuple[list[TokenFile], list[TokenFile], list[TokenFile]]:
    """Deterministic split by file (a seeded permutation). At least one validation file when there are >= 2 files;
    an empty test split falls back to the validation files."""
    order = np.random.default_rng(seed).permutation(len(files)).tolist()
    n = len(files)
    n_val = min(n - 1, max(1, round(val_fraction * n))) if n >= 2 and val_fraction > 0 else 0
    n_test = min(n - 1 - n_val, round(test_fraction * n)) if test_fraction > 0 else 0
    n_test = max(n_test, 0)
    val = [files[i] for i in order[:n_val]]
    test = [files[i] for i in order[n_val : n_val + n_test]] or val
    train = [files[i] for i in order[n_val + n_test :]]
    return train, val, test


def vocabulary_coverage(tokens: TokenSet, files: list[TokenFile]) -> list[float]:
    """Per codebook: fraction of the ``card`` codes that occur at least once in ``files``."""
    seen = np.zeros((tokens.n_q, tokens.card), dtype=bool)
    for f in files:
        c = np.asarray(tokens.codes(f), dtype=np.int64)
        for k in range(tokens.n_q):
            seen[k, np.unique(c[k])] = True
    return seen.mean(axis=1).tolist()


def unigram_cross_entropy(tokens: TokenSet, train: list[TokenFile], held_out: list[TokenFile]) -> list[float]:
    """Per codebook: CE (nats) of ``held_out`` under the training set's add-one-smoothed unigram distribution —
    the baseline a model must beat to have learned anything beyond code frequencies."""
    counts = np.ones((tokens.n_q, tokens.card))
    for f in train:
        c = np.asarray(tokens.codes(f), dtype=np.int64)
        for k in range(tokens.n_q):
            counts[k] += np.bincount(c[k], minlength=tokens.card)
    logp = np.log(counts / counts.sum(axis=1, keepdims=True))
    ce = np.zeros(tokens.n_q)
    n = 0
    for f in held_out:
        c = np.asarray(tokens.codes(f), dtype=np.int64)
        for k in range(tokens.n_q):
            ce[k] -= logp[k, c[k]].sum()
        n += c.shape[1]
    return (ce / max(n, 1)).tolist()


class TokenDataModule(L.LightningDataModule):
    """Random training crops, fixed validation / test crops over a token export.

    Args:
        root: token folder (``tokens.npy`` + ``manifest.json``) or the ``.npy``.
        crop_seconds: crop length (frames = ``round(crop_seconds * frame_rate)``); ``crop_frames`` overrides it.
        batch_size, num_workers: loaders.
        val_fraction, test_fraction, split_seed: file-level split.
        crops_per_epoch: training items per epoch (``None`` = training frames / crop frames, >= one per file).
        val_crops_per_file: fixed crops per validation / test file.
        min_segment_ratio: files shorter than this fraction of a crop are skipped (audiocraft: 0.8).
        on_short: ``skip`` (warn) or ``error``.
        crop_mode: ``random`` (default) or ``first`` (the users' bug, on purpose).
        max_train_files: use only the first N training files (a data-size ladder; nested: 1 ⊂ 10 ⊂ 40).
        overfit_file: a file index or ``source`` to train and validate on alone (first window).
        include_tags: keep only files carrying one of these tags, *after* the split (so a filtered evaluation of a
            checkpoint sees a subset of the same held-out files, e.g. ``[melodic]`` vs ``[percussive]``).
        seed: crop seed.
        card: expected codebook size (``None`` = manifest).
    """

    def __init__(self, root: str, crop_seconds: float = 10.0, crop_frames: int | None = None, batch_size: int = 8,
                 num_workers: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1, split_seed: int = 0,
                 crops_per_epoch: int | None = None, val_crops_per_file: int = 2, min_segment_ratio: float = 0.8,
                 on_short: str = "skip", crop_mode: str = "random", max_train_files: int | None = None,
                 overfit_file: int | str | None = None, include_tags: list[str] | None = None, seed: int = 0,
                 card: int | None = None) -> None:
        super().__init__()
        if on_short not in ("skip", "error"):
            raise ValueError(f"data.on_short must be 'skip' or 'error', got {on_short!r}")
        if crop_mode not in CROP_MODES:
            raise ValueError(f"data.crop_mode must be one of {list(CROP_MODES)}, got {crop_mode!r}")
        self.root, self.crop_seconds, self.crop_frames_cfg = root, crop_seconds, crop_frames
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.crops_per_epoch, self.val_crops_per_file = crops_per_epoch, int(val_crops_per_file)
        self.min_segment_ratio, self.on_short, self.crop_mode = float(min_segment_ratio), on_short, crop_mode
        self.max_train_files, self.overfit_file, self.seed, self.card = max_train_files, overfit_file, int(seed), card
        self.include_tags = [str(t) for t in include_tags] if include_tags else None
        self.tokens: TokenSet | None = None
        self.stats: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------------ setup
    @property
    def crop_frames(self) -> int:
        if self.crop_frames_cfg:
            return int(self.crop_frames_cfg)
        if self.tokens is None or self.tokens.frame_rate <= 0:
            raise TokenDataError(f"{self.root}: manifest has no frame_rate; set data.crop_frames instead of crop_seconds")
        return max(1, int(round(self.crop_seconds * self.tokens.frame_rate)))

    def setup(self, stage: str | None = None) -> None:
        if self.tokens is not None:
            return
        self.tokens = TokenSet(self.root, card=self.card)
        files = self.tokens.files
        crop = self.crop_frames
        if self.overfit_file is not None:
            self.crop_mode = "first"
            one = self._find(files, self.overfit_file)
            self.train_files = self.val_files = self.test_files = [one]
        else:
            min_frames = math.ceil(self.min_segment_ratio * crop)
            short = [f for f in files if f.n_frames < min_frames]
            if short:
                names = ", ".join(f"{f.source} ({f.n_frames} frames)" for f in short[:5])
                msg = (f"{self.tokens.path}: {len(short)} file(s) shorter than min_segment_ratio x crop = "
                       f"{self.min_segment_ratio} x {crop} = {min_frames} frames: {names}")
                if self.on_short == "error" or len(short) == len(files):
                    raise TokenDataError(msg + (" (no file left)" if len(short) == len(files) else ""))
                log.warning("%s; skipped", msg)
            files = [f for f in files if f.n_frames >= min_frames]
            self.train_files, self.val_files, self.test_files = split_files(
                files, self.val_fraction, self.test_fraction, self.split_seed)
            if not self.train_files:
                raise TokenDataError(f"{self.tokens.path}: no training file left after the split ({len(files)} files)")
            if self.max_train_files:
                self.train_files = self.train_files[: int(self.max_train_files)]
            if self.include_tags:
                keep = set(self.include_tags)
                self.train_files, self.val_files, self.test_files = (
                    [f for f in fs if keep & set(f.tags)] for fs in (self.train_files, self.val_files, self.test_files))
                if not self.train_files or not self.val_files:
                    raise TokenDataError(f"{self.tokens.path}: data.include_tags={self.include_tags} leaves "
                                         f"{len(self.train_files)} train / {len(self.val_files)} val files")
            if not self.val_files:  # one file: validate on it (an overfit in all but name)
                self.val_files = self.test_files = self.train_files
        train_frames = sum(f.n_frames for f in self.train_files)
        n_train = self.crops_per_epoch or max(len(self.train_files), train_frames // crop)
        if self.overfit_file is not None:
            n_train = self.crops_per_epoch or self.batch_size
        self.train_set = TokenCrops(self.tokens, self.train_files, crop, n_train, True, self.seed, self.crop_mode)
        n_eval = 1 if self.overfit_file is not None else self.val_crops_per_file
        eval_mode = "first" if self.overfit_file is not None else "random"
        self.val_set = TokenCrops(self.tokens, self.val_files, crop, n_eval * len(self.val_files), False, self.seed,
                                  eval_mode)
        self.test_set = TokenCrops(self.tokens, self.test_files, crop, n_eval * len(self.test_files), False,
                                   self.seed, eval_mode)
        self.stats = {
            "n_files": {"train": len(self.train_files), "val": len(self.val_files), "test": len(self.test_files)},
            "train_frames": train_frames, "crop_frames": crop, "crops_per_epoch": n_train,
            "coverage": vocabulary_coverage(self.tokens, self.train_files),
            "unigram_ce": unigram_cross_entropy(self.tokens, self.train_files, self.val_files),
        }
        cov = ", ".join(f"{c:.3f}" for c in self.stats["coverage"])
        log.info("token data %s: %d train / %d val files, %d train frames (%.1f crops of %d), vocabulary coverage "
                 "per codebook [%s], held-out unigram CE %.3f nats", self.tokens.path, len(self.train_files),
                 len(self.val_files), train_frames, train_frames / crop, crop, cov,
                 float(np.mean(self.stats["unigram_ce"])))

    @staticmethod
    def _find(files: list[TokenFile], key: int | str) -> TokenFile:
        if isinstance(key, int) or str(key).lstrip("-").isdigit():
            i = int(key)
            if not -len(files) <= i < len(files):
                raise TokenDataError(f"data.overfit_file={i} but there are {len(files)} files")
            return files[i]
        for f in files:
            if f.source == key or Path(f.source).stem == key:
                return f
        raise TokenDataError(f"data.overfit_file={key!r} matches no file source (e.g. {files[0].source!r})")

    # ------------------------------------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        sampler = EpochCropSampler(len(self.train_set), seed=self.seed, shuffle=True)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          collate_fn=collate_tokens, drop_last=False, persistent_workers=False)

    def _eval_loader(self, ds: TokenCrops) -> DataLoader:
        return DataLoader(ds, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          collate_fn=collate_tokens)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)

    def probe_batch(self, n: int) -> dict[str, Any]:
        """The first ``n`` fixed validation crops (repeated when there are fewer)."""
        self.setup()
        return collate_tokens([self.val_set[i % len(self.val_set)] for i in range(n)])

    def train_probe_batch(self, n: int) -> dict[str, Any]:
        """``n`` fixed crops of the *training* files (epoch 0 keys): train-side CE on the same ruler as held-out."""
        self.setup()
        return collate_tokens([self.train_set[(i, 0)] for i in range(n)])
