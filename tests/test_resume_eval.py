"""evaluate's files (DDSP writes audio), and weights-only ``init_from``: step 0 and a fresh optimizer, strict errors that
name the keys, ``init_strict=false`` partial loading with one table. Resume and evaluate-reproduces-test are checked
for every experiment in test_framework.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from audiolab.evaluate import evaluate
from audiolab.models.ddsp.module import DDSPModule
from audiolab.train import train_one
from audiolab.utils.checkpoint import CheckpointError, load_weights, read_checkpoint, weights_table

BASE = ["experiment=ddsp_transformer", "debug=fast", "threads=1"]


def test_evaluate_writes_metrics_config_audio(fast_run, tmp_path):
    r = fast_run("ddsp_transformer")
    best = r.out / "checkpoints" / "probe_best.ckpt"
    evaluate(str(r.out), tmp_path / "eval", accelerator="cpu")  # a run folder: probe_best.ckpt
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert "test/spectral" in metrics["metrics"] and metrics["checkpoint"] == str(best)
    assert metrics["global_step"] == read_checkpoint(best)["global_step"]
    stored = OmegaConf.load(tmp_path / "eval" / "stored_config.yaml")
    assert stored.model.decoder.backbone == "transformer"
    outputs = sorted((tmp_path / "eval" / "audio").glob("*_output.wav"))
    targets = sorted((tmp_path / "eval" / "audio").glob("*_target.wav"))
    assert outputs and len(outputs) == len(targets)


def test_init_from_loads_weights_at_step_zero(fast_run, compose_run, tmp_path, monkeypatch):
    source = fast_run("ddsp_transformer").out / "checkpoints" / "last.ckpt"
    source_sd = read_checkpoint(source)["state_dict"]
    seen: dict = {}

    def capture(self):
        seen["step"] = self.trainer.global_step
        seen["state_dict"] = {k: v.detach().clone() for k, v in self.state_dict().items()}
        seen["opt_state"] = [dict(o.state) for o in self.trainer.optimizers]

    monkeypatch.setattr(DDSPModule, "on_train_start", capture, raising=False)
    out = tmp_path / "init"
    train_one(compose_run([*BASE, f"init_from={source}", "trainer.max_steps=2", "callbacks.media=null", "test=false"], out))
    assert seen["step"] == 0
    assert set(seen["state_dict"]) == set(source_sd)
    for k, v in source_sd.items():
        assert torch.equal(seen["state_dict"][k], v), f"{k} differs from the init_from checkpoint"
    assert all(not s for s in seen["opt_state"]), "init_from must start with a fresh optimizer"
    assert read_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == 2
    assert json.loads((out / "probe_summary.json").read_text())["history"][0]["step"] == 0


def test_init_from_missing_file_names_it(compose_run, tmp_path):
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        train_one(compose_run([*BASE, f"init_from={missing}", "callbacks.media=null", "test=false"], tmp_path / "r"))


def test_init_from_architecture_mismatch(fast_run, compose_run, tmp_path, capsys):
    """Another decoder width: strict = one error naming the keys (before any folder content); init_strict=false loads
    the tensors that match and prints one table of the rest."""
    source = fast_run("ddsp_transformer").out
    wider = [*BASE, f"init_from={source}", "model.decoder.d_model=32", "trainer.max_steps=1", "callbacks.media=null",
             "test=false"]
    with pytest.raises(CheckpointError, match=r"init_from=.*does not fit DDSPModule.*with another shape: net\.decoder.*init_strict=false"):
        train_one(compose_run(wider, tmp_path / "strict"))
    assert not (tmp_path / "strict" / "checkpoints").exists()
    capsys.readouterr()
    train_one(compose_run([*wider, "init_strict=false"], tmp_path / "partial"))
    out = capsys.readouterr().out
    assert "(non-strict)" in out and "problem" in out and "shape" in out and "net.decoder" in out


def test_load_weights_report_against_an_independent_count():
    src, dst = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 5), nn.ReLU())
    state = src.state_dict()
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"1 unexpected: extra\.weight; 2 with another shape: 1\.weight \[2, 4\] vs model \[5, 4\]"):
        load_weights(dst, state, strict=True)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    report = load_weights(dst, state, strict=False)
    assert report["loaded"] == ["0.weight", "0.bias"] and report["unexpected"] == ["extra.weight"]
    assert [k for k, _, _ in report["shape"]] == ["1.weight", "1.bias"] and report["missing"] == []
    assert torch.equal(dst[0].weight, src[0].weight) and torch.equal(dst[1].weight, before["1.weight"])
    table = weights_table(report).splitlines()
    assert table[0].split() == ["problem", "key", "checkpoint", "model"] and len(table) == 2 + 3


def test_load_weights_missing_keys_named():
    with pytest.raises(CheckpointError, match=r"2 missing in the checkpoint: weight, bias"):
        load_weights(nn.Linear(2, 2), {}, strict=True, source=str(Path("x.ckpt")))
