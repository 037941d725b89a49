"""Codebook usage statistics against closed forms, and their DDP all-reduce."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from audiolab.metrics.codebook import CodebookUsageAccumulator, bitrate_kbps, codebook_stats


def test_codebook_stats_uniform_and_single_code():
    bins, k = 64, 3
    g = torch.Generator().manual_seed(0)
    uniform = torch.stack([torch.randperm(bins, generator=g).repeat(5) for _ in range(k)])[None]  # [1, K, T]
    s = codebook_stats(uniform, bins)
    torch.testing.assert_close(s["usage"], torch.ones(k, dtype=torch.float64))
    torch.testing.assert_close(s["perplexity"], torch.full((k,), float(bins), dtype=torch.float64))
    torch.testing.assert_close(s["entropy_bits"], torch.full((k,), math.log2(bins), dtype=torch.float64))
    assert float(s["effective_percentage"]) == pytest.approx(1.0)
    single = torch.full((2, k, 50), 7)
    s = codebook_stats(single, bins)
    torch.testing.assert_close(s["usage"], torch.full((k,), 1 / bins, dtype=torch.float64))
    torch.testing.assert_close(s["perplexity"], torch.ones(k, dtype=torch.float64))
    assert float(s["entropy_bits_mean"]) == 0.0 and float(s["effective_percentage"]) == 0.0
    # half the codes used uniformly in codebook 0, all in codebook 1 -> entropy 5 and 6 bits
    mixed = torch.stack([torch.arange(32).repeat(4), torch.arange(64).repeat(2)])[None]
    s = codebook_stats(mixed, bins)
    torch.testing.assert_close(s["entropy_bits"], torch.tensor([5.0, 6.0], dtype=torch.float64))
    assert float(s["effective_percentage"]) == pytest.approx(11 / 12)
    with pytest.raises(ValueError):
        codebook_stats(torch.full((1, 1, 4), bins), bins)


def test_accumulator_equals_stats_of_concatenation_and_resets():
    bins = 32
    g = torch.Generator().manual_seed(1)
    a = (torch.rand(2, 4, 40, generator=g) ** 3 * bins).long()  # skewed, not every code used
    b = (torch.rand(3, 4, 25, generator=g) ** 2 * bins).long()
    acc = CodebookUsageAccumulator(bins)
    acc.update(a)
    acc.update(b)
    got = acc.compute()
    both = torch.cat([a.transpose(0, 1).reshape(4, -1), b.transpose(0, 1).reshape(4, -1)], dim=1)  # [K, N]
    ref = codebook_stats(both[None], bins)
    for key in ("usage", "perplexity", "entropy_bits", "tokens"):
        assert got[key] == pytest.approx(ref[key].tolist())
    assert got["effective_percentage"] == pytest.approx(float(ref["effective_percentage"]))
    assert got["usage"] != pytest.approx(codebook_stats(a, bins)["usage"].tolist())
    assert acc.compute() == got  # compute does not consume or double count
    acc.reset()
    assert math.isnan(acc.compute()["entropy_bits_mean"])
    acc.update(b[:, :2])  # fewer codebooks (quantizer dropout) then more
    acc.update(b)
    assert acc.compute()["tokens"] == [150.0, 150.0, 75.0, 75.0]


def test_accumulator_all_reduces_under_ddp(tmp_path: Path):
    """Two gloo ranks with different codes (and codebook counts) both report the global statistics."""
    script = textwrap.dedent(
        """
        import json, sys, torch, torch.distributed as dist
        from audiolab.metrics.codebook import CodebookUsageAccumulator
        rank, init = int(sys.argv[1]), sys.argv[2]
        dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
        acc = CodebookUsageAccumulator(8)
        if rank == 0:
            acc.update(torch.zeros(1, 1, 4, dtype=torch.long))
        else:
            acc.update(torch.arange(8).view(1, 1, 8).repeat(1, 2, 1))
        out = acc.compute()
        dist.destroy_process_group()
        print(json.dumps({"tokens": out["tokens"], "usage": out["usage"]}))
        """
    )
    init = f"file://{tmp_path / 'store'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(r), init], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for r in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    for stdout, _ in outs:
        res = json.loads(stdout.strip().splitlines()[-1])
        assert res["tokens"] == [12.0, 8.0]
        assert res["usage"] == [1.0, 1.0]


def test_bitrate():
    assert bitrate_kbps(8, 1024, 75) == pytest.approx(6.0)
    assert bitrate_kbps(9, 1024, 44100 / 512) == pytest.approx(7.752, abs=1e-3)
