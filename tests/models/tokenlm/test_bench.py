"""Smoke test of ``python -m audiolab.bench tokenlm --quick`` at tiny sizes (correctness, not timing)."""

from __future__ import annotations

import json

import pytest

from audiolab.bench.__main__ import main as bench_main


def test_tokenlm_bench_quick(tmp_path):
    pytest.importorskip("transformers")
    out = tmp_path / "bench.json"
    assert bench_main(["tokenlm", "--quick", "--frames", "8", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["benchmark"] == "tokenlm" and r["device"]["description"] and r["environment"]["torch"]
    gen = r["generation"]
    for mode in ("kv_cache", "kv_cache_cfg", "no_cache"):
        assert gen[f"ours_{mode}"]["frames_per_s"] > 0 and gen[f"transformers_{mode}"]["frames_per_s"] > 0
        assert gen[f"ours_{mode}"]["time_ratio_vs_transformers"] > 0
    # the peer generated the same number of frames: [B, K, frames + 1 start step]
    assert r["peer_output_shape"] == [1, 4, 9]
    assert r["parameters"]["ours"] > 0 and r["parameters"]["transformers_musicgen"] > 0
    assert r["train_step"]["median_ms"] > 0
