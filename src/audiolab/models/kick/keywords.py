"""File-name rules for kick collections: which files are kicks, their keywords, their drum group; the vocabulary.

A kick collection is gathered by name (``kick``, ``bd``, ``bassdrum``), so the name is also the only label:
keywords are the lower-case name tokens (split on ``- _ .`` and spaces) that are not pure numbers and have at
least 2 characters. Velocity layers of one drum ("Kick-Soft", "Kick-Hard", "kick_v064") are near-duplicates,
so :func:`drum_group` strips velocity words and take numbers to put them in one split group.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "MIN_BYTES",
    "MAX_BYTES",
    "DEFAULT_EXCLUDE",
    "name_tokens",
    "keywords_from_name",
    "kick_name_reason",
    "drum_group",
    "KeywordVocabulary",
    "UnknownKeywordWarning",
]

#: Size filter of the aggregation (bytes): smaller files are empty/broken, bigger ones are loops or stems.
MIN_BYTES = 5 * 1024
MAX_BYTES = 1024 * 1024

#: Tokens that name the instrument rather than a property; every file in a kick set carries one of them, so as
#: keywords they would only dilute the averaged keyword embedding. Configurable (``data.exclude_keywords``).
DEFAULT_EXCLUDE = ("kick", "kicks", "bd", "bassdrum", "drum", "drums", "bass", "wav", "flac", "ogg", "aif", "aiff",
                   "mp3")

_SPLIT = re.compile(r"[-_.\s]+")
_BPM = re.compile(r"(?:^|[^a-z])(?:\d{2,3}\s*-?\s*bpm|bpm\s*-?\s*\d{2,3})(?:$|[^a-z])|(?:^|[-_.\s])bpm(?:$|[-_.\s])")
# velocity / dynamics words and take numbers: not a different drum
_VELOCITY = re.compile(r"^(?:soft|softest|softer|med|medium|mid|hard|hardest|harder|loud|loudest|quiet|ghost|"
                       r"pp|p|mp|mf|f|ff|fff|v\d+|vel\d+|velocity\d+|rr\d+|take\d+)$")


def name_tokens(stem: str) -> list[str]:
    """Lower-case tokens of a file stem split on ``- _ .`` and whitespace (empty tokens dropped)."""
    return [t for t in _SPLIT.split(stem.lower()) if t]


def keywords_from_name(stem: str) -> list[str]:
    """Keywords of a file stem: tokens (see :func:`name_tokens`) that are not pure numbers and have >= 2
    characters, in order of first appearance, without duplicates. ``"Kick_Long-808 punchy.v2"`` ->
    ``["kick", "long", "punchy", "v2"]``."""
    out: list[str] = []
    for t in name_tokens(stem):
        if len(t) >= 2 and not t.isdigit() and t not in out:
            out.append(t)
    return out


def kick_name_reason(name: str, size_bytes: int | None = None) -> str | None:
    """``None`` if a file name (with extension) passes the aggregation filter, else the reason it does not.

    Kept: the name contains ``kick``, or ``bassdrum`` / ``drumbass`` with separators removed (``bass_drum``,
    ``drum_bass_hard``), or a ``bd`` token (``bd_808``, ``tr909 bd``). Dropped: loops (``loop`` in the name),
    BPM-tagged names (``120bpm``, ``bpm_128``, a ``bpm`` token), files outside 5 KB - 1 MB when ``size_bytes``
    is given.
    """
    low = name.lower()
    stem = low.rsplit(".", 1)[0] if "." in low else low
    squashed = re.sub(r"[-_.\s]+", "", stem)
    tokens = name_tokens(stem)
    if not ("kick" in stem or "bassdrum" in squashed or "drumbass" in squashed or "bd" in tokens):
        return "not a kick name"
    if "loop" in stem:
        return "loop"
    if _BPM.search(stem):
        return "BPM-tagged"
    if size_bytes is not None:
        if size_bytes < MIN_BYTES:
            return f"smaller than {MIN_BYTES // 1024} KB"
        if size_bytes > MAX_BYTES:
            return f"larger than {MAX_BYTES // (1024 * 1024)} MB"
    return None


def drum_group(folder: str, stem: str) -> str:
    """Split-group id of a file: ``<folder>/<stem without velocity words and take numbers>``.

    Velocity words (soft, med, hard, ``v064``, ``vel3``, ...) are dropped, and a trailing 1-2 digit take number
    on a word of >= 3 letters is removed (``kick01`` -> ``kick``): the velocity layers and takes of one drum share
    a group, so they never straddle train and test. Different drums that happen to share a stem after this (the
    four ``kick0N`` of one folder) share a group too, which only makes the split more conservative.
    """
    kept = []
    for t in name_tokens(stem):
        if _VELOCITY.match(t):
            continue
        m = re.fullmatch(r"([a-z]{3,})\d{1,2}", t)
        kept.append(m.group(1) if m else t)
    return f"{folder.strip('/')}/{'_'.join(kept) or stem.lower()}"


class UnknownKeywordWarning(UserWarning):
    """A requested keyword is not in the model's vocabulary (it is ignored; the warning names it)."""


class KeywordVocabulary:
    """Keywords seen at least ``min_count`` times in the training split, sorted by count (desc) then name.

    ``encode`` turns keyword lists into a multi-hot ``[B, V]`` float matrix (the U-Net averages the embeddings
    of the active keywords; an all-zero row means "no keywords" -> the learned null embedding).
    """

    def __init__(self, words: Sequence[str], counts: Sequence[int] | None = None) -> None:
        self.words = [str(w) for w in words]
        if len(set(self.words)) != len(self.words):
            raise ValueError(f"keyword vocabulary has duplicates: {self.words}")
        self.counts = [int(c) for c in counts] if counts is not None else [0] * len(self.words)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, keyword_lists: Iterable[Sequence[str]], min_count: int = 5,
              exclude: Iterable[str] = DEFAULT_EXCLUDE, source: str = "the training split") -> KeywordVocabulary:
        """Count keywords (once per file) and keep those with ``count >= min_count``; raises if none is left."""
        ex = {e.lower() for e in exclude}
        counter: Counter[str] = Counter()
        n_files = 0
        for kws in keyword_lists:
            n_files += 1
            counter.update({k.lower() for k in kws if k.lower() not in ex})
        kept = sorted(((w, c) for w, c in counter.items() if c >= int(min_count)), key=lambda wc: (-wc[1], wc[0]))
        if not kept:
            top = ", ".join(f"{w}:{c}" for w, c in counter.most_common(5)) or "none"
            raise ValueError(
                f"empty keyword vocabulary: no keyword occurs in >= {min_count} of the {n_files} files of {source} "
                f"(most frequent: {top}); lower data.min_count or check the keywords column of metadata.csv")
        return cls([w for w, _ in kept], [c for _, c in kept])

    def __len__(self) -> int:
        return len(self.words)

    def split_known(self, keywords: Iterable[str]) -> tuple[list[str], list[str]]:
        """``(known, unknown)`` keywords (lower-cased, order kept, duplicates dropped)."""
        known: list[str] = []
        unknown: list[str] = []
        for k in keywords:
            k = str(k).strip().lower()
            if not k or k in known or k in unknown:
                continue
            (known if k in self.index else unknown).append(k)
        return known, unknown

    def encode(self, keyword_lists: Sequence[Sequence[str]], warn_unknown: bool = False) -> np.ndarray:
        """Multi-hot float32 ``[B, V]``; unknown keywords are ignored (with ``warn_unknown``: one warning naming
        them and the closest known words)."""
        out = np.zeros((len(keyword_lists), len(self.words)), dtype=np.float32)
        unknown_all: list[str] = []
        for b, kws in enumerate(keyword_lists):
            known, unknown = self.split_known(kws)
            for k in known:
                out[b, self.index[k]] = 1.0
            unknown_all += [u for u in unknown if u not in unknown_all]
        if warn_unknown and unknown_all:
            warnings.warn(f"unknown keywords ignored: {unknown_all} (not in the model's vocabulary of {len(self)}; "
                          f"known: {', '.join(self.words[:20])}{' ...' if len(self) > 20 else ''})",
                          UnknownKeywordWarning, stacklevel=2)
        return out

    def to_dict(self) -> dict:
        """Plain types for a checkpoint (``torch.load(weights_only=True)`` reads it)."""
        return {"words": list(self.words), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, d: dict) -> KeywordVocabulary:
        return cls(d["words"], d.get("counts"))
