"""Slow end-to-end CLI runs (``make test-all``): DDP on CPU (2 spawned processes) and a 2-job Hydra multirun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

pytestmark = pytest.mark.slow


def _cli(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUDIOLAB_ROOT": str(cwd), "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "-m", "audiolab.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    return proc


@pytest.mark.parametrize("with_test", [False, True], ids=["fit", "fit_and_test"])
def test_ddp_sim_two_processes(tmp_path, with_test):
    _cli(["experiment=ddsp_transformer", "trainer=ddp_sim", "debug=fast", "run_name=ddp", "callbacks.media=null", f"test={with_test}"], tmp_path)
    runs = list((tmp_path / "logs").glob("*/runs/ddp"))
    assert len(runs) == 1, list((tmp_path / "logs").rglob("*"))
    out = runs[0]
    resolved = OmegaConf.load(out / "resolved_config.yaml")
    assert resolved.trainer.strategy == "ddp_spawn" and resolved.trainer.devices == 2, "debug=fast replaced trainer=ddp_sim"
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == resolved.trainer.max_steps
    summary = json.loads((out / "probe_summary.json").read_text())
    assert summary["history"][0]["step"] == 0 and summary["history"][-1]["step"] == resolved.trainer.max_steps


def test_multirun_two_backbones(tmp_path):
    _cli(["-m", "experiment=ddsp_transformer", "debug=fast", "model.decoder.backbone=mlp,transformer",
          "callbacks.media=null", "test=false"], tmp_path)
    sweeps = list((tmp_path / "logs").glob("*/multiruns/*"))
    assert len(sweeps) == 1, list((tmp_path / "logs").rglob("*"))
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    backbones = []
    for job in jobs:
        resolved = OmegaConf.load(job / "resolved_config.yaml")
        assert resolved.paths.output_dir == str(job)
        backbones.append(resolved.model.decoder.backbone)
        summary = json.loads((job / "probe_summary.json").read_text())
        assert summary["history"][-1]["step"] == resolved.trainer.max_steps
        assert Path(summary["best_checkpoint"]).parent == job / "checkpoints"
        ckpt = torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert ckpt["audiolab_config"]["model"]["decoder"]["backbone"] == backbones[-1]
    assert backbones == ["mlp", "transformer"]
