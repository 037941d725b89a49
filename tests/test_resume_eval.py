"""Full resume (ckpt_path=last), evaluate from a checkpoint's stored config, and weights-only init_from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from audiolab.evaluate import evaluate
from audiolab.models.ddsp.module import DDSPModule
from audiolab.train import train_one

BASE = ["experiment=ddsp_transformer", "debug=fast"]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _fake_f0_metric(audio, f0_hz, confidence, *args, **kwargs) -> dict:
    n = int(f0_hz.numel())
    return {"f0_l1_cents": 0.0, "f0_outlier_ratio": 0.0, "f0_frames": n, "f0_cents_sum": 0.0, "f0_inliers": n, "f0_outliers": 0}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, compose_run):
    """4 steps (debug=fast), tested on probe_best; evaluated right away, before anything overwrites the checkpoint."""
    out = tmp_path_factory.mktemp("resume") / "run"
    with pytest.MonkeyPatch.context() as mp:
        # the CREPE-based f0 test metric is not under test here and dominates the time on 2 cores
        mp.setattr("audiolab.models.ddsp.module.f0_l1_cents", _fake_f0_metric)
        # evaluate() tests the whole split, so the training run must too (debug=fast limits it to 1 batch)
        result = train_one(compose_run([*BASE, "run_name=fixed", "trainer.limit_test_batches=1.0"], out))
        summary = json.loads((out / "probe_summary.json").read_text())
        best = out / "checkpoints" / "probe_best.ckpt"
        eval_dir = out.parent / "eval"
        ev = evaluate(str(best), eval_dir, accelerator="cpu")
    snapshot = {
        "last": _load(out / "checkpoints" / "last.ckpt"),
        "best": _load(best),
    }
    return {"out": out, "result": result, "summary": summary, "eval": ev, "eval_dir": eval_dir, **snapshot}


def test_first_run_state(first_run):
    assert first_run["last"]["global_step"] == 4
    assert [h["step"] for h in first_run["summary"]["history"]] == [0, 2, 4]
    assert first_run["result"]["tested_checkpoint"] == str(first_run["out"] / "checkpoints" / "probe_best.ckpt")


def test_evaluate_writes_metrics_config_audio(first_run):
    eval_dir: Path = first_run["eval_dir"]
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert "test/spectral" in metrics["metrics"]
    assert metrics["checkpoint"].endswith("probe_best.ckpt")
    assert metrics["global_step"] == first_run["best"]["global_step"]
    stored = OmegaConf.load(eval_dir / "stored_config.yaml")
    trained = OmegaConf.load(first_run["out"] / "resolved_config.yaml")
    assert OmegaConf.to_container(stored.model) == OmegaConf.to_container(trained.model)
    assert OmegaConf.to_container(stored.data) == OmegaConf.to_container(trained.data)
    outputs = sorted((eval_dir / "audio").glob("*_output.wav"))
    targets = sorted((eval_dir / "audio").glob("*_target.wav"))
    assert outputs and len(outputs) == len(targets)


def test_evaluate_reproduces_training_test_metric(first_run):
    trained = first_run["result"]["test/spectral"]
    evaluated = first_run["eval"]["metrics"]["test/spectral"]
    assert evaluated == pytest.approx(trained, rel=1e-4), (trained, evaluated)


def test_resume_continues_steps_optimizer_and_probe(first_run, compose_run):
    out: Path = first_run["out"]
    result = train_one(compose_run([*BASE, "run_name=fixed", "trainer.max_steps=6", "ckpt_path=last", "test=false"], out))
    last = _load(out / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 6
    states = last["optimizer_states"][0]["state"]
    assert states, "optimizer state is empty"
    steps = {int(torch.as_tensor(s["step"]).item()) for s in states.values()}
    assert steps == {6}, f"Adam step counters {steps}: optimizer state was not restored"
    history = json.loads((out / "probe_summary.json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 2, 4, 6], "probe history restarted instead of continuing"
    assert history[:3] == first_run["summary"]["history"]
    assert result["probe_summary"]["history"] == history
    # the W&B id file keeps one id per run folder
    assert (out / "wandb_id.txt").exists() is False or (out / "wandb_id.txt").read_text().strip()


def test_init_from_loads_weights_at_step_zero(first_run, compose_run, tmp_path, monkeypatch):
    source = first_run["out"] / "checkpoints" / "last.ckpt"
    source_sd = _load(source)["state_dict"]
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
    last = _load(out / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 2
    history = json.loads((out / "probe_summary.json").read_text())["history"]
    assert history[0]["step"] == 0


def test_init_from_missing_file_names_it(compose_run, tmp_path):
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        train_one(compose_run([*BASE, f"init_from={missing}", *["callbacks.media=null", "test=false"]], tmp_path / "r"))
