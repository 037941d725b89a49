"""Deterministic splits by source and by category/group."""

from __future__ import annotations

import pytest

from audiolab.data.splits import split_by_category, split_sources


def test_split_by_source_deterministic():
    names = [f"f{i}" for i in range(10)]
    a, b = split_sources(names, 0.15, 0.15, seed=3), split_sources(names, 0.15, 0.15, seed=3)
    assert a == b
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(names)
    assert len(a["val"]) == len(a["test"]) == 2
    s3 = split_sources(["x", "y", "z"], 0.15, 0.15, seed=0)
    assert all(len(v) == 1 for v in s3.values())
    with pytest.raises(ValueError, match="only 1 source"):
        split_sources(["x"], 0.15, 0.15, seed=0)


def test_split_stratified_by_category_for_any_seed():
    files = [f"speech/p{i:02d}.wav" for i in range(30)] + [f"music/m{i}.wav" for i in range(3)]
    for seed in range(20):  # a global (unstratified) split would often leave music out of val or test
        s = split_by_category(files, 0.1, 0.1, seed)
        for key in ("train", "val", "test"):
            assert {f.split("/")[0] for f in s[key]} == {"speech", "music"}, (seed, key)
        assert sorted(s["train"] + s["val"] + s["test"]) == sorted(files)


def test_split_by_subfolder_keeps_groups_together():
    files = [f"speech/spk{g}/f{i}.wav" for g in range(4) for i in range(3)] + [f"music/m{i}.wav" for i in range(4)]
    s = split_by_category(files, 0.25, 0.25, 0, split_by="folder_subfolder")
    for key in ("train", "val", "test"):
        spk = {f.split("/")[1] for f in s[key] if f.startswith("speech/")}
        others = set().union(*({f.split("/")[1] for f in s[k] if f.startswith("speech/")} for k in s if k != key))
        assert spk and not spk & others, key
