"""Smoke test of ``python -m audiolab.bench tse --quick`` (correctness of the report, not timing)."""

from __future__ import annotations

import json

from audiolab.bench.__main__ import main as bench_main
from audiolab.models.tse.bench import espnet_available


def test_tse_bench_quick(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_main(["tse", "--quick", "--configs", "tiny", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    row = res["configs"]["tiny"]
    assert row["params"]["ours"] > 0 and row["train_step"]["ours"]["median_ms"] > 0
    assert row["audio_seconds_per_second"]["ours"] > 0
    if espnet_available():  # the peer ran in the same process, on the same input sizes
        assert row["params"]["peer"] > 0 and row["ratio_ours_over_peer_time"] > 0
        assert all(r["max_abs_diff"] < 1e-4 for r in res["checks"]["block_parity"].values())
    else:
        assert "peer_missing" in res
    assert "| tiny |" in capsys.readouterr().out
