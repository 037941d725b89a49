"""Sweeps that run (issue 7.8), ``make test-all``: the ``sweeps`` extra installs without moving hydra-core off 1.3,
and an Optuna sweep of two trials runs end to end, one trial after the other and two at once (joblib launcher).
The 2-job basic multirun is ``tests/test_slow.py::test_multirun_two_backbones``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _sweeps_requirements() -> list[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["sweeps"]


@pytest.fixture(scope="module")
def sweeps_extra() -> None:
    """``pip install`` the extra's requirements into this interpreter (what ``pip install -e .[sweeps]`` adds)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *_sweeps_requirements()],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    versions = subprocess.run([sys.executable, "-c", "import hydra, optuna; print(hydra.__version__, optuna.__version__)"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert versions[0].startswith("1.3."), f"the sweeps extra moved hydra-core to {versions[0]}"
    assert versions[1].startswith("2."), versions


def _sweep(tmp_path: Path, extra: list[str]) -> Path:
    env = {**os.environ, "AUDIOLAB_ROOT": str(tmp_path), "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1",
           "OMP_NUM_THREADS": "1"}
    args = ["-m", "experiment=ddsp_transformer", "hparams_search=ddsp_optuna", "debug=fast", "hydra.sweeper.n_trials=2",
            "callbacks.media=null", *extra]
    proc = subprocess.run([sys.executable, "-m", "audiolab.train", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    sweeps = list((tmp_path / "logs").glob("*/multiruns/*"))
    assert len(sweeps) == 1, list((tmp_path / "logs").rglob("*"))
    return sweeps[0]


def _check(sweep: Path) -> None:
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    space = OmegaConf.load(ROOT / "conf" / "hparams_search" / "ddsp_optuna.yaml").hydra.sweeper.params
    assert set(results.best_params) == set(space)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    values = []
    for job in jobs:
        summary = json.loads((job / "probe_summary.json").read_text())
        values.append(summary["best_value"])
        resolved = OmegaConf.load(job / "resolved_config.yaml")
        for key in space:  # the trial ran with the sampled values
            assert OmegaConf.select(resolved, key) is not None, key
    # Optuna got each trial's probe metric back from the task function: its best is the best trial's probe value
    assert math.isfinite(results.best_value) and results.best_value == pytest.approx(min(values))


def test_optuna_sweep_two_trials(tmp_path: Path, sweeps_extra: None) -> None:
    _check(_sweep(tmp_path, []))


def test_optuna_sweep_two_trials_at_once(tmp_path: Path, sweeps_extra: None) -> None:
    _check(_sweep(tmp_path, ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]))
