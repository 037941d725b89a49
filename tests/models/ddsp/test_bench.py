"""Smoke test of ``python -m audiolab.bench ddsp --quick`` at tiny sizes (correctness, not timing)."""

from __future__ import annotations

import json

from audiolab.bench.__main__ import main as bench_main
from audiolab.models.ddsp import bench as ddsp

TINY = [
    "--quick", "--device", "cpu",
    "--batch-size", "1", "--seconds", "0.2", "--warmup", "1", "--repeats", "1",
    "--synth-seconds", "0.2", "--synth-warmup", "0", "--synth-repeats", "1",
    "--loss-batch-size", "1", "--loss-samples", "4096", "--loss-warmup", "0", "--loss-repeats", "1",
]  # fmt: skip


def test_ddsp_bench_quick(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_main(["ddsp", *TINY, "--out", str(out)]) == 0
    result = json.loads(out.read_text())

    for key in ("benchmark", "date", "device", "environment", "settings", *ddsp.SECTIONS):
        assert key in result, key
    assert result["device"]["description"]
    assert result["environment"]["torch"]
    assert result["settings"]["batch_size"] == 1

    ts = result["train_step"]
    assert set(ts["backbones"]) == set(ddsp.BACKBONES)
    for r in ts["backbones"].values():
        assert r["ms_per_step"] > 0 and r["examples_per_s"] > 0 and r["audio_seconds_per_s"] > 0
        assert r["parameters"] > 0 and r["peak_memory"]["peak_bytes"] > 0
    assert "skipped" in result["bf16"]  # CPU run: bf16 autocast is a CUDA-only section

    renders = result["synth_render"]["renders"]
    assert len(renders) == 1 and next(iter(renders.values()))["real_time_factor"] > 0

    sl = result["spectral_loss_vs_auraloss"]
    assert sl["peer"].startswith("auraloss.freq.MultiResolutionSTFTLoss ")
    assert sl["abs_diff"] < 1e-5 and sl["rel_diff"] < 1e-5 and sl["values_match"]
    assert sl["ours_fwd_bwd_ms"] > 0 and sl["auraloss_fwd_bwd_ms"] > 0

    stdout = capsys.readouterr().out
    assert "train_step" in stdout and "auraloss" in stdout

    # unknown family: non-zero exit with the list of families
    assert bench_main(["no_such_family"]) == 2
    assert "ddsp" in capsys.readouterr().err
