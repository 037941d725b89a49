"""End-to-end training on the embedded violin demo (debug=fast): artifacts, stages, determinism, overfitting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from audiolab.train import train_one
from audiolab.utils.config import CONF_DIR

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("ddsp_*.yaml"))  # codec: tests/models/codec
# no media, no test-time CREPE metric: only what a test needs
QUIET = ["callbacks.media=null", "test=false"]


def _check_media(out: Path, max_steps: int) -> None:
    assert sorted(out.glob("media/*/ex0_output.wav")), f"no media/*/ex0_output.wav under {out}"
    assert (out / "media" / f"step_{max_steps:07d}" / "ex0_output.wav").is_file()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_ddsp_experiment_debug_fast(fast_run, experiment):
    """DDSP specifics of the shared debug=fast fit (the run folder itself is checked in test_framework.py)."""
    r = fast_run(experiment)
    cfg, out, result = r.cfg, r.out, r.result
    max_steps = int(cfg.trainer.max_steps)
    assert math.isfinite(result["test/spectral"]) and math.isfinite(result["test/f0_l1_cents"]), result
    if not cfg.get("stages"):
        _check_media(out, max_steps)
        assert OmegaConf.load(out / "resolved_config.yaml").model.decoder.backbone == cfg.model.decoder.backbone
        return
    # staged experiment: one folder per stage, stage k+1 starts from stage k's probe-best weights
    stages_summary = json.loads((out / "stages_summary.json").read_text())
    rows = stages_summary["stages"]
    assert [r["stage"] for r in rows] == [s.name for s in cfg.stages]
    assert len(rows) == 3
    for row in rows:
        folder = Path(row["output_dir"])
        assert folder.parent == out / "stages"
        _check_media(folder, max_steps)
        assert row["best_checkpoint"] and Path(row["best_checkpoint"]).is_file()
        assert math.isfinite(row["min_value"])
        assert math.isfinite(row["test"]["test/spectral"])
    assert rows[0]["init_from"] is None
    assert rows[1]["init_from"] == rows[0]["best_checkpoint"]
    assert rows[2]["init_from"] == rows[1]["best_checkpoint"]
    rec = stages_summary["recommended_checkpoint"]
    assert rec and Path(rec).is_file()
    assert stages_summary["recommended_value"] == min(r["min_value"] for r in rows)
    assert result["probe/spectral"] == pytest.approx(stages_summary["recommended_value"])
    # each stage's stored config carries its own overrides
    b = OmegaConf.load(Path(rows[1]["output_dir"]) / "resolved_config.yaml")
    assert b.model.optim.optimizer.lr == pytest.approx(3e-5)
    assert b.init_from == rows[0]["best_checkpoint"]
    c = OmegaConf.load(Path(rows[2]["output_dir"]) / "resolved_config.yaml")
    assert c.model.loss.loudness.type == "none"


def _history(make_run_cfg, out: Path, seed: int) -> list[dict]:
    cfg = make_run_cfg(["experiment=ddsp_transformer", "debug=fast", f"seed={seed}", "trainer.deterministic=true",
                        *QUIET], output_dir=out)
    result = train_one(cfg)
    # wall-clock fields (e.g. time_s) are not expected to repeat; every metric is
    return [{k: v for k, v in h.items() if not k.startswith("time")} for h in result["probe_summary"]["history"]]


def test_seed_determinism(make_run_cfg, tmp_path):
    a = _history(make_run_cfg, tmp_path / "a", 0)
    b = _history(make_run_cfg, tmp_path / "b", 0)
    c = _history(make_run_cfg, tmp_path / "c", 1)
    assert [h["step"] for h in a] == [h["step"] for h in b] == [h["step"] for h in c]
    assert a == b, "same seed, different probe history"
    assert [h["spectral"] for h in a] != [h["spectral"] for h in c], "different seeds gave the same probe history"


def _overfit(make_run_cfg, out: Path, steps: int) -> dict:
    cfg = make_run_cfg([
        "experiment=ddsp_transformer", "debug=fast",
        "data.overfit_batches=1", "data.batch_size=1", "data.example_seconds=1.0",
        "model.optim.optimizer.lr=3e-3", f"trainer.max_steps={steps}", "callbacks.probe.every_n_steps=10",
        f"trainer.val_check_interval={steps}", *QUIET,
    ], output_dir=out)
    return train_one(cfg)["probe_summary"]


def test_overfits_one_phrase(make_run_cfg, tmp_path):
    """A DDSP model overfits one real rendered phrase: the probe spectral loss falls to <= 50 % within 50 steps."""
    s = _overfit(make_run_cfg, tmp_path / "run", 50)
    history = [h["spectral"] for h in s["history"]]
    assert [h["step"] for h in s["history"]] == list(range(0, 51, 10))
    assert s["best_value"] <= 0.5 * s["initial_value"], history
    assert history[-1] <= 0.5 * history[0], history


@pytest.mark.slow
def test_overfits_one_phrase_long(make_run_cfg, tmp_path):
    """Longer run: keeps improving well past the first halving (<= 25 % of the step-0 loss by step 150)."""
    s = _overfit(make_run_cfg, tmp_path / "run", 150)
    history = [h["spectral"] for h in s["history"]]
    assert s["best_value"] <= 0.25 * s["initial_value"], history
