"""Smoke test of ``python -m audiolab.bench kick --quick`` (correctness of the tables, not timing)."""

from __future__ import annotations

import json

import pytest

from audiolab.bench.__main__ import main as bench_main
from audiolab.models.kick import bench as kick


def test_kick_bench_quick(tmp_path):
    out = tmp_path / "bench.json"
    assert bench_main(["kick", "--quick", "--threads", "1", "--batch", "2", "--vocoder-batch", "1",
                       "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["settings"]["threads"] == 1 and len(r["load_average"]) == 3
    assert set(r["unet"]) == {"ours", "diffusers_unet2d"}
    assert r["unet"]["ours"]["params"] < r["unet"]["diffusers_unet2d"]["params"] < 1.5 * r["unet"]["ours"]["params"]
    assert set(r["vocoder"]) == {"hifigan_128"}  # --quick: one width, no reference peer
    unet_ms, vae_ms = r["unet"]["ours"]["ms_per_kick_step"], r["vae_decode"]["ms_per_kick"]
    voc_ms = r["vocoder"]["hifigan_128"]["ms_per_kick"]
    assert len(r["end_to_end_estimate"]) == len(kick.SAMPLER_STEPS)
    for row in r["end_to_end_estimate"]:  # per kick = steps x U-Net step + VAE + vocoder
        assert row["total_s_per_kick"] == pytest.approx((row["steps"] * unet_ms + vae_ms + voc_ms) / 1000, abs=2e-3)
        assert row["meets_1s"] == (row["steps"] * unet_ms + vae_ms + voc_ms <= 1000.0)
    (m,) = r["end_to_end_measured"]
    assert m["kicks"] == 2 and m["total_s"] == pytest.approx(m["unet_s"] + m["vae_s"] + m["vocoder_s"], abs=2e-3)
    assert out.with_suffix(".md").read_text().startswith("kick CPU bench")
