"""Framework checks, parametrized over every experiment in conf/experiment (a new family is covered by its configs).

One ``debug=fast`` fit per experiment (session fixture ``fast_run`` in conftest.py) is reused by: the run folder and
probe summary, safe loading of every checkpoint, the shared loader, evaluate reproducing config and test metrics,
resume continuing step + optimizer + probe + CSV history. Compose and bad-config checks need no fit.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from audiolab.evaluate import evaluate
from audiolab.train import run, train_one
from audiolab.utils.checkpoint import CheckpointError, family_of, load_trained, read_checkpoint
from audiolab.utils.config import CONF_DIR, to_container, validate_train_config

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def _csv_rows(folder: Path) -> list[dict]:
    path = folder / "csv" / "metrics.csv"
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _metric_keys(row: dict) -> list[tuple[int, str]]:
    """(step, metric) of a CSV row; Lightning adds ``epoch`` and audiolab ``global_step`` to every row: not metrics."""
    return [(int(float(row["step"])), k) for k, v in row.items() if k not in ("step", "epoch", "global_step") and v not in ("", None)]


def test_experiments_found():
    assert {"ddsp_transformer", "codec_unbounded"} <= set(EXPERIMENTS), EXPERIMENTS


# ------------------------------------------------------------------------------------------------ compose
@pytest.mark.parametrize("debug", [False, True], ids=["full", "debug_fast"])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(make_cfg, experiment, debug):
    cfg = make_cfg([f"experiment={experiment}"] + (["debug=fast"] if debug else []))
    resolved = to_container(cfg)
    family = family_of(resolved["model"]["_target_"])
    assert family, f"model._target_ {resolved['model']['_target_']} is not in audiolab.models.<family>"
    assert resolved["data"]["_target_"].startswith("audiolab."), resolved["data"]["_target_"]
    obj = resolved["objective"]
    assert obj["monitor"].startswith("val/") and obj["mode"] in ("min", "max") and obj["probe"], obj
    cbs = resolved["callbacks"]
    # the family-neutral callbacks read the objective block
    assert cbs["model_checkpoint"]["monitor"] == cbs["early_stopping"]["monitor"] == obj["monitor"]
    assert cbs["probe"]["metric"] == obj["probe"] and cbs["probe"]["mode"] == obj["mode"]
    assert resolved["trainer"]["gradient_clip_val"] == obj["gradient_clip_val"]
    assert resolved["optimized_metric"] == f"probe/{obj['probe']}"
    assert cbs["ema"]["_target_"] == "audiolab.callbacks.ema.EMA"
    assert resolved["logger"]["csv"]["_target_"] == "audiolab.utils.runs.CSVLogger"
    if debug:
        assert resolved["trainer"]["max_steps"] <= 10 and resolved["trainer"]["accelerator"] == "cpu"
        assert "wandb" not in (resolved["logger"] or {}), "debug=fast must not start W&B"
    validate_train_config(cfg)


def test_base_config_names_no_family(make_cfg):
    cfg = make_cfg([])
    assert cfg.get("model") is None and cfg.get("data") is None
    for name in ("train.yaml", "callbacks/default.yaml", "trainer/default.yaml", "logger/csv.yaml"):
        text = (CONF_DIR / name).read_text().lower()
        for family in ("ddsp", "codec", "spectral", "mel_distance"):
            assert family not in text, f"conf/{name} names {family!r}"


# ------------------------------------------------------------------------------------------------ one fit
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fast_fit_run_folder(fast_run, experiment):
    r = fast_run(experiment)
    probe_key = f"probe/{r.cfg.objective.probe}"
    assert math.isfinite(r.result[probe_key]), r.result
    tests = {k: v for k, v in r.result.items() if k.startswith("test/")}
    assert tests and all(math.isfinite(v) for v in tests.values()), tests
    for folder in r.folders:
        max_steps = int(OmegaConf.load(folder / "resolved_config.yaml").trainer.max_steps)
        ckpts = sorted((folder / "checkpoints").glob("*.ckpt"))
        assert {"last.ckpt", "probe_best.ckpt"} <= {p.name for p in ckpts}, ckpts
        assert not list((folder / "checkpoints").glob(".*")), "temporary checkpoint files left behind"
        for path in ckpts:  # every checkpoint audiolab writes loads with weights_only=True
            ckpt = read_checkpoint(path)
            assert "audiolab_config" in ckpt and "state_dict" in ckpt
        last = read_checkpoint(folder / "checkpoints" / "last.ckpt")
        assert last["global_step"] == max_steps
        # probe summary: step 0 .. max_steps, best = min/max of the history, best checkpoint on disk
        summary = json.loads((folder / "probe_summary.json").read_text())
        metric = r.cfg.objective.probe
        steps = [h["step"] for h in summary["history"]]
        assert steps[0] == 0 and steps[-1] == max_steps and steps == sorted(set(steps)), steps
        values = [h[metric] for h in summary["history"]]
        assert all(math.isfinite(v) for v in values)
        best = min(values) if r.cfg.objective.mode == "min" else max(values)
        assert summary["best_value"] == pytest.approx(best) and summary["metric"] == f"probe/{metric}"
        assert Path(summary["best_checkpoint"]).is_file()
        # CSV: each (step, metric) once; probe rows present
        rows = _csv_rows(folder)
        keys = [k for row in rows for k in _metric_keys(row)]
        assert len(keys) == len(set(keys)), "a metric was logged twice for the same step"
        assert {k for _, k in keys} >= {probe_key}
    if not r.staged:
        assert r.result["tested_checkpoint"] == str(r.out / "checkpoints" / "probe_best.ckpt")
        saved = json.loads((r.out / "test_metrics.json").read_text())
        assert all(saved[k] == pytest.approx(v) for k, v in tests.items())


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_loader_rebuilds_trained_module(fast_run, experiment):
    r = fast_run(experiment)
    folder = r.folders[-1]
    trained = load_trained(folder, family=r.family)
    assert trained.path == folder / "checkpoints" / "probe_best.ckpt"
    assert trained.family == r.family and not trained.module.training
    ckpt = read_checkpoint(trained.path)
    assert trained.global_step == ckpt["global_step"]
    for k, v in trained.module.state_dict().items():
        assert torch.equal(v, ckpt["state_dict"][k]), k
    frozen = load_trained(folder / "checkpoints" / "last.ckpt", freeze=True)
    assert not any(p.requires_grad for p in frozen.module.parameters())
    other = "codec" if r.family != "codec" else "ddsp"
    with pytest.raises(CheckpointError, match=rf"not a {other} checkpoint.*{r.family}"):
        load_trained(folder, family=other)
    with pytest.raises(CheckpointError, match="no submodule 'nope'"):
        load_trained(folder, submodule="nope")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_evaluate_reproduces_config_and_test_metrics(fast_run, experiment, tmp_path):
    r = fast_run(experiment)
    folder = r.folders[-1]
    tested = r.result["tested_checkpoint"] if not r.staged else str(folder / "checkpoints" / "probe_best.ckpt")
    trained_metrics = json.loads((folder / "test_metrics.json").read_text())
    ev = evaluate(tested, tmp_path / "eval", accelerator="cpu")
    stored = OmegaConf.load(tmp_path / "eval" / "stored_config.yaml")
    trained = OmegaConf.load(folder / "resolved_config.yaml")
    assert OmegaConf.to_container(stored.model) == OmegaConf.to_container(trained.model)
    assert OmegaConf.to_container(stored.data) == OmegaConf.to_container(trained.data)
    assert ev["global_step"] == read_checkpoint(tested)["global_step"]
    compared = [k for k in trained_metrics if k.startswith("test/")]
    assert compared
    for key in compared:
        assert ev["metrics"][key] == pytest.approx(trained_metrics[key], rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_resume_continues_step_optimizer_probe_and_csv(fast_run, experiment, compose_run, tmp_path):
    r = fast_run(experiment)
    out = r.copy_to(tmp_path / "run")
    if r.staged:  # finished stages are not trained again; the summary is the same
        result = run(compose_run([f"experiment={experiment}", "debug=fast", "threads=1", "ckpt_path=last", "test=false"], out))
        before = json.loads((r.out / "stages_summary.json").read_text())
        assert result["stages_summary"]["ranking"] == before["ranking"]
        assert all(json.loads((f / "stage_done.json").read_text()) for f in r.folders)
        return
    steps = int(r.cfg.trainer.max_steps)
    old_rows = _csv_rows(out)
    old_history = json.loads((out / "probe_summary.json").read_text())["history"]
    train_one(compose_run([f"experiment={experiment}", "debug=fast", "threads=1", "ckpt_path=last",
                           f"trainer.max_steps={steps + 2}", "test=false", "callbacks.media=null"], out))
    last = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert last["global_step"] == steps + 2
    counters = {int(torch.as_tensor(s["step"]).item()) for o in last["optimizer_states"] for s in o["state"].values()}
    first = read_checkpoint(r.out / "checkpoints" / "last.ckpt")
    old_counters = {int(torch.as_tensor(s["step"]).item()) for o in first["optimizer_states"] for s in o["state"].values()}
    assert counters and old_counters and min(counters) == max(old_counters) + 2, (old_counters, counters)
    history = json.loads((out / "probe_summary.json").read_text())["history"]
    assert history[: len(old_history)] == old_history, "probe history restarted instead of continuing"
    assert history[-1]["step"] == steps + 2
    rows = _csv_rows(out)
    # every earlier row is kept (the first run's test rows too: they belong to the state at its last step)
    assert [{k: v for k, v in row.items() if v} for row in rows[: len(old_rows)]] == [
        {k: v for k, v in row.items() if v} for row in old_rows]
    assert {int(r["global_step"]) for r in rows[len(old_rows):]} == {steps + 1, steps + 2}
    keys = [k for row in rows for k in _metric_keys(row)]
    assert len(keys) == len(set(keys)), "resume logged a metric twice for the same step"
    assert max(s for s, _ in keys) == steps + 2


# ------------------------------------------------------------------------------------------------ bad configs
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_bad_config_types_name_the_key_before_any_folder(make_run_cfg, tmp_path, experiment):
    out = tmp_path / "run"
    for override, pattern in (("trainer.max_steps=abc", r"trainer\.max_steps='abc' \(str\): expected an integer"),
                              ("data.batch_size=2.5", r"data\.batch_size=2\.5"),
                              ("objective.mode=maximum", r"objective\.mode='maximum'")):
        cfg = make_run_cfg([f"experiment={experiment}", "debug=fast", override], output_dir=out)
        with pytest.raises(ValueError, match=pattern):
            run(cfg)
        assert not out.exists(), f"{override}: a folder was created before the error"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_unknown_probe_metric_named(make_run_cfg, tmp_path, experiment):
    cfg = make_run_cfg([f"experiment={experiment}", "debug=fast", "threads=1", "objective.probe=nonexistent", "test=false",
                        "callbacks.media=null"], output_dir=tmp_path / "run")
    with pytest.raises(KeyError, match="nonexistent"):
        run(cfg)


def test_missing_objective_is_named(make_run_cfg, tmp_path):
    cfg = make_run_cfg(["model=ddsp", "data=ddsp", "debug=fast"], output_dir=tmp_path / "run")
    with pytest.raises(ValueError, match=r"objective\.monitor is not set"):
        run(cfg)
    assert not (tmp_path / "run").exists()
