"""Runs never lose results (issue "Runs never lose results"): run folders are not reused by accident, resume keeps
every metric row and falls back past an unreadable checkpoint, checkpoints are written atomically and read without
unpickling code, wrong types are named before any folder exists, the thread count is set.

CLI checks run ``python -m audiolab.train`` in a subprocess: what matters there happens before Hydra writes anything.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolab.train import train_one
from audiolab.utils.checkpoint import CheckpointError, load_trained, read_checkpoint
from audiolab.utils.runs import (
    AtomicCheckpointIO,
    CSVLogger,
    RunFolderError,
    apply_threads,
    atomic_torch_save,
    check_run_folder,
    clean_temp_files,
    default_threads,
    resolve_resume,
)

BASE = ["experiment=ddsp_transformer", "debug=fast", "threads=1", "callbacks.media=null"]


def _cli(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUDIOLAB_ROOT": str(cwd), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "audiolab.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def _fake_run_folder(folder: Path) -> None:
    """What an earlier run leaves: checkpoints, a CSV, a probe summary."""
    (folder / "checkpoints").mkdir(parents=True)
    torch.save({"global_step": 200, "state_dict": {}}, folder / "checkpoints" / "probe_best.ckpt")
    torch.save({"global_step": 200, "state_dict": {}}, folder / "checkpoints" / "last.ckpt")
    (folder / "csv").mkdir()
    (folder / "csv" / "metrics.csv").write_text("step,train/loss\n" + "".join(f"{i},1.0\n" for i in range(50)))
    (folder / "probe_summary.json").write_text('{"best_step": 200}')


# ------------------------------------------------------------------------------------------------ CLI, before Hydra writes
def _main(args: list[str], root: Path, monkeypatch, capsys) -> tuple[int, str]:
    """``python -m audiolab.train <args>`` in this process (Hydra's real run path, without the import time)."""
    from hydra.core.global_hydra import GlobalHydra

    from audiolab import train

    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["audiolab.train", *args])
    monkeypatch.setenv("AUDIOLAB_ROOT", str(root))
    monkeypatch.chdir(root)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        train.main()
    GlobalHydra.instance().clear()
    return info.value.code, capsys.readouterr().err


def test_cli_refuses_before_writing_anything(tmp_path, monkeypatch, capsys):
    """No experiment -> list; wrong type -> key named; reused folder -> the three ways out; nothing to resume -> error.
    Each: exit 2, one message, and no file created or touched (Hydra's run folder included)."""
    runs = tmp_path / "logs" / "debug" / "runs"
    _fake_run_folder(runs / "old")
    before = _snapshot(tmp_path)

    code, err = _main([], tmp_path, monkeypatch, capsys)
    assert code == 2 and "experiment=ddsp_transformer" in err and "experiment=codec_unbounded" in err

    code, err = _main([*BASE, "run_name=typed", "trainer.max_steps=abc"], tmp_path, monkeypatch, capsys)
    assert code == 2 and "trainer.max_steps='abc' (str): expected an integer" in err, err

    code, err = _main([*BASE, "run_name=old"], tmp_path, monkeypatch, capsys)
    assert code == 2, err
    for offer in ("ckpt_path=last", "run_name=", "overwrite=true"):
        assert offer in err, err

    code, err = _main([*BASE, "run_name=typo", "ckpt_path=last"], tmp_path, monkeypatch, capsys)
    assert code == 2 and "nothing to resume" in err and "last_or_new" in err, err
    assert "Traceback" not in err
    assert _snapshot(tmp_path) == before, "a refused run wrote or touched files"


def test_cli_missing_files_are_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """A missing init_from checkpoint or data root, and evaluate without (or with a bad) ckpt_path / split: one line
    naming it, exit 2 (were Hydra's 'Error executing job' with a traceback, exit 1)."""
    from hydra.core.global_hydra import GlobalHydra

    from audiolab import evaluate

    code, err = _main([*BASE, "run_name=a", f"init_from={tmp_path / 'nope.ckpt'}"], tmp_path, monkeypatch, capsys)
    assert code == 2 and "init_from" in err and "nope.ckpt" in err and "Traceback" not in err, (code, err)
    code, err = _main(["experiment=codec_unbounded", "debug=fast", "threads=1", "run_name=b",
                       f"data.root={tmp_path / 'no_audio'}"], tmp_path, monkeypatch, capsys)
    assert code == 2 and "no_audio" in err and "Traceback" not in err, (code, err)

    for args, expected in (([], "ckpt_path=... is required"), ([f"ckpt_path={tmp_path / 'x.ckpt'}"], "x.ckpt"),
                           ([f"ckpt_path={tmp_path}", "split=train"], "split='train'")):
        GlobalHydra.instance().clear()
        monkeypatch.setattr(sys, "argv", ["audiolab.evaluate", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            evaluate.main()
        GlobalHydra.instance().clear()
        err = capsys.readouterr().err
        assert info.value.code == 2 and expected in err and "Traceback" not in err, (args, info.value.code, err)


def test_overwrite_deletes_the_earlier_run(tmp_path):
    folder = tmp_path / "run"
    _fake_run_folder(folder)
    (folder / ".hydra").mkdir()  # the current job's Hydra files are kept
    with pytest.raises(RunFolderError, match="already holds a run"):
        check_run_folder(folder, None, overwrite=False)
    check_run_folder(folder, "last", overwrite=False)  # resume: fine
    check_run_folder(folder, str(folder / "checkpoints" / "probe_best.ckpt"))  # its own checkpoint: fine
    with pytest.raises(RunFolderError):
        check_run_folder(folder, str(tmp_path / "elsewhere.ckpt"))
    check_run_folder(folder, None, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == [".hydra"]


def test_a_run_that_stopped_before_any_result_does_not_block_its_folder(tmp_path):
    """A run that failed at data setup leaves resolved_config.yaml only: the corrected command may start there (was:
    refused as 'already holds a run', and ckpt_path=last refused too: only overwrite=true got out)."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "resolved_config.yaml").write_text("seed: 0\n")
    (folder / "wandb_id.txt").write_text("abc\n")
    check_run_folder(folder, None, overwrite=False)
    (folder / "csv").mkdir()
    with pytest.raises(RunFolderError, match="already holds a run"):
        check_run_folder(folder, None, overwrite=False)


def test_resume_last_with_nothing_is_an_error_last_or_new_starts_fresh(compose_run, tmp_path):
    with pytest.raises(RunFolderError, match="nothing to resume"):
        train_one(compose_run([*BASE, "ckpt_path=last", "test=false"], tmp_path / "typo"))
    assert not (tmp_path / "typo").exists()
    result = train_one(compose_run([*BASE, "ckpt_path=last_or_new", "trainer.max_steps=2", "test=false"], tmp_path / "new"))
    assert result["probe_summary"]["history"][0]["step"] == 0
    assert read_checkpoint(tmp_path / "new" / "checkpoints" / "last.ckpt")["global_step"] == 2


# ------------------------------------------------------------------------------------------------ safe loading
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _crafted(path: Path, marker: Path, target: str = "audiolab.models.codec.module.CodecModule") -> Path:
    torch.save({"state_dict": {}, "global_step": 1, "audiolab_config": {"model": {"_target_": target}},
                "payload": _Payload(marker)}, path)
    return path


def test_crafted_checkpoint_never_runs_its_payload(tmp_path, compose_run, capsys):
    from audiolab.evaluate import evaluate
    from audiolab.models.codec import cli as codec_cli
    from audiolab.models.ddsp import infer as ddsp_infer

    marker = tmp_path / "PWNED"
    bad = _crafted(tmp_path / "crafted.ckpt", marker)
    wav = tmp_path / "in.wav"
    sf.write(wav, np.zeros(24000, dtype=np.float32), 24000)
    with pytest.raises(CheckpointError, match="crafted.ckpt.*refuses"):
        read_checkpoint(bad)
    with pytest.raises(CheckpointError):
        load_trained(bad)
    with pytest.raises(CheckpointError):
        evaluate(str(bad), tmp_path / "eval")
    with pytest.raises(CheckpointError):  # the path Lightning takes for trainer.fit/test(ckpt_path=...)
        AtomicCheckpointIO().load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="init_from"):
        train_one(compose_run([*BASE, f"init_from={bad}", "test=false"], tmp_path / "run"))
    assert codec_cli.main(["encode", str(wav), str(tmp_path / "o.alc"), "--ckpt", str(bad)]) == 2
    assert ddsp_infer.main([str(wav), str(tmp_path / "o.wav"), "--ckpt", str(bad)]) == 2
    assert "crafted.ckpt" in capsys.readouterr().err
    assert not marker.exists(), "a crafted checkpoint ran code"


def test_convert_refuses_without_trust(tmp_path):
    from audiolab.utils.checkpoint import convert_checkpoint, main

    marker = tmp_path / "PWNED"
    bad = _crafted(tmp_path / "crafted.ckpt", marker)
    with pytest.raises(CheckpointError, match="trust"):
        convert_checkpoint(bad, tmp_path / "new.ckpt")
    assert main(["convert", str(bad), str(tmp_path / "new.ckpt")]) == 2
    assert not marker.exists() and not (tmp_path / "new.ckpt").exists()
    wav = tmp_path / "take1.wav"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(CheckpointError, match=r"take1\.wav.*could not be read"):
        convert_checkpoint(wav, tmp_path / "new.ckpt", trust=True)


def test_convert_makes_an_older_checkpoint_loadable(fast_run, tmp_path):
    """A checkpoint of an older audiolab (OmegaConf objects in hyper_parameters, a Path, numpy values) is refused by
    the safe loader with a hint; `convert --trust` rewrites it so that load_trained gives the same model."""
    from omegaconf import OmegaConf

    from audiolab.utils.checkpoint import main

    r = fast_run("ddsp_transformer")
    src = r.out / "checkpoints" / "last.ckpt"
    ckpt = read_checkpoint(src)
    old = dict(ckpt, hyper_parameters={"cfg": OmegaConf.create({"a": 1, "b": "${a}"})},
               extra={"dir": Path("/tmp/x"), "score": np.float32(0.5), "arr": np.arange(3),
                      "list": OmegaConf.create([1, "x"])})
    torch.save(old, tmp_path / "old.ckpt")
    with pytest.raises(CheckpointError, match=r"old\.ckpt.*refuses.*convert"):
        read_checkpoint(tmp_path / "old.ckpt")
    assert main(["convert", str(tmp_path / "old.ckpt"), str(tmp_path / "new.ckpt"), "--trust"]) == 0
    new = read_checkpoint(tmp_path / "new.ckpt")
    assert new["hyper_parameters"] == {"cfg": {"a": 1, "b": 1}}
    assert new["extra"]["dir"] == "/tmp/x" and new["extra"]["score"] == 0.5
    assert torch.equal(new["extra"]["arr"], torch.arange(3)) and new["extra"]["list"] == [1, "x"]
    assert new["global_step"] == ckpt["global_step"] and new.keys() == old.keys()
    a, b = load_trained(src).module.state_dict(), load_trained(tmp_path / "new.ckpt").module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path):
    """A WAV or text file passed as a checkpoint is "not a PyTorch checkpoint", not "holds Python objects"."""
    wav = tmp_path / "take1.wav"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello\n")
    for path in (wav, text):
        with pytest.raises(CheckpointError, match=rf"{path.name}.*not a PyTorch checkpoint") as info:
            read_checkpoint(path)
        assert "Python objects" not in str(info.value) and "\n" not in str(info.value)


def test_stored_config_cannot_name_arbitrary_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "audiolab_config": {"model": {"_target_": "os.system", "command": "true"}}}, path)
    with pytest.raises(CheckpointError, match=r"model\._target_='os\.system' is not an audiolab class"):
        load_trained(path)


# ------------------------------------------------------------------------------------------------ atomic writes
def test_atomic_save_writes_in_the_destination_folder_and_cleans_up(tmp_path, monkeypatch):
    dest = tmp_path / "ckpts" / "last.ckpt"
    atomic_torch_save({"global_step": 1}, dest)
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((Path(src), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "elsewhere"))  # another filesystem must not matter
    atomic_torch_save({"global_step": 2}, dest)
    assert seen and seen[0][0].parent == dest.parent and seen[0][1] == dest
    assert read_checkpoint(dest)["global_step"] == 2

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save({"bad": Unpicklable()}, dest)
    assert read_checkpoint(dest)["global_step"] == 2, "a failed write must leave the previous file"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["last.ckpt"], "temporary file left behind"
    stale = dest.parent / ".last.ckpt.x1y2z3.ckpt-tmp"  # a killed writer's leftover
    stale.write_bytes(b"partial")
    assert clean_temp_files(dest.parent) == [stale] and not stale.exists()


def test_resume_falls_back_to_newest_readable_checkpoint(fast_run, tmp_path, compose_run):
    r = fast_run("ddsp_transformer")
    out = r.copy_to(tmp_path / "run")
    (out / "checkpoints" / "last.ckpt").write_bytes(b"")  # a kill during a copy to another filesystem left this
    newest = max((p for p in (out / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt"), key=lambda p: p.stat().st_mtime)
    with pytest.warns(UserWarning, match=r"last\.ckpt"):
        point = resolve_resume(out, "last")
    assert point.path == newest
    steps = int(r.cfg.trainer.max_steps)
    with pytest.warns(UserWarning, match=r"last\.ckpt.*empty"):
        train_one(compose_run([*BASE, "ckpt_path=last", f"trainer.max_steps={steps + 2}", "test=false"], out))
    assert read_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == steps + 2


# ------------------------------------------------------------------------------------------------ CSV history
def test_csv_logger_appends_extends_header_and_truncates(tmp_path):
    a = CSVLogger(str(tmp_path))
    a.log_metrics({"train/loss": 1.0}, step=0)
    a.log_metrics({"train/loss": 0.5}, step=1)
    a.save()
    b = CSVLogger(str(tmp_path))  # a resumed run: the file is kept, new columns extend the header
    assert b.rows_on_disk == 2
    b.log_metrics({"train/loss": 0.25, "val/loss": 0.3}, step=2)
    b.save()
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["0", "1", "2"] and rows[2]["val/loss"] == "0.3" and rows[0]["train/loss"] == "1.0"
    b.tag(2)  # rows tagged with the global step of their state; untagged rows wait for a tag once tagging is used
    b.log_metrics({"train/loss": 0.2}, step=3)
    b.save()
    assert b.rows_on_disk == 3
    b.tag(3)
    b.save()
    assert b.rows_on_disk == 4
    assert b.truncate(2) == 1 and b.rows_on_disk == 3  # a resume from step 2 drops the step-3 row
    assert CSVLogger(str(tmp_path)).truncate(5) == 0
    assert CSVLogger(str(tmp_path)).truncate(None) == 3


def _history(folder: Path) -> tuple[dict, dict, list[dict]]:
    """CSV values by (step, metric) (each must appear once; ``epoch`` is on every row), the ``global_step`` each
    row belongs to, and the probe history."""
    with open(folder / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    skip = ("step", "epoch", "global_step")
    items = [((int(float(r["step"])), k), float(v), int(r["global_step"])) for r in rows for k, v in r.items()
             if k not in skip and v]
    values = {key: v for key, v, _ in items}
    tags = {key: g for key, _, g in items}
    assert len(values) == len(items), f"{folder}: a metric appears twice for the same step"
    history = json.loads((folder / "probe_summary.json").read_text())["history"]
    return values, tags, [{k: v for k, v in h.items() if k != "time_s"} for h in history]


def _compare_with_uninterrupted(resumed: Path, reference: Path, resumed_from: int) -> None:
    """Same (step, metric) rows and probe steps as the uninterrupted run; identical values up to the resumed step."""
    a, tags_a, pa = _history(resumed)
    b, tags_b, pb = _history(reference)
    assert sorted(a) == sorted(b), (f"merged history differs: only resumed {sorted(set(a) - set(b))[:5]}, "
                                    f"only uninterrupted {sorted(set(b) - set(a))[:5]}")
    assert tags_a == tags_b, "rows belong to other steps after the resume"
    before = [k for k in b if tags_b[k] <= resumed_from]
    assert before and all(a[k] == pytest.approx(b[k], rel=1e-6) for k in before), "rows before the resume changed"
    assert [h["step"] for h in pa] == [h["step"] for h in pb]
    assert [h for h in pa if h["step"] <= resumed_from] == [h for h in pb if h["step"] <= resumed_from]


INTERRUPT = [*BASE, "trainer.max_steps=10", "callbacks.last_checkpoint.every_n_steps=3", "trainer.val_check_interval=4",
             "callbacks.probe.every_n_steps=1", "test=false"]


@pytest.fixture(scope="module")
def uninterrupted(compose_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    train_one(compose_run(INTERRUPT, out))
    return out


@pytest.mark.parametrize(("crash_at", "saved_at"), [(8, 6), (5, 4)], ids=["every_n_save", "validation_save"])
def test_interrupted_run_resumes_to_the_uninterrupted_history(uninterrupted, compose_run, tmp_path, monkeypatch,
                                                              crash_at, saved_at):
    """Fast variant of the kill test: an exception after step ``crash_at`` (Lightning's failure path flushes the rows
    logged after the last checkpoint), resume with ckpt_path=last, compare with an uninterrupted run. last.ckpt is
    from the every-3-steps save (step 6) or from the validation of step 4."""
    from audiolab.callbacks.probe import ProbeCallback

    original = ProbeCallback.on_train_batch_end

    def crash(self, trainer, pl_module, outputs, batch, batch_idx):
        original(self, trainer, pl_module, outputs, batch, batch_idx)
        if trainer.global_step == crash_at:
            raise RuntimeError("simulated crash")

    with monkeypatch.context() as mp:
        mp.setattr(ProbeCallback, "on_train_batch_end", crash)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train_one(compose_run(INTERRUPT, tmp_path / "run"))
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == saved_at
    train_one(compose_run([*INTERRUPT, "ckpt_path=last"], tmp_path / "run"))
    _compare_with_uninterrupted(tmp_path / "run", uninterrupted, saved_at)


@pytest.mark.slow
def test_kill9_mid_run_then_resume_matches_uninterrupted(tmp_path):
    """kill -9 of a CLI run once last.ckpt holds step >= 30 of 60; ``ckpt_path=last`` completes it."""
    args = ["experiment=ddsp_transformer", "debug=fast", "callbacks.media=null", "test=false", "trainer.max_steps=60",
            "callbacks.last_checkpoint.every_n_steps=10", "trainer.val_check_interval=20", "callbacks.probe.every_n_steps=5",
            "paths.cache_dir=" + str(tmp_path / "cache")]
    assert _cli([*args, "run_name=reference"], tmp_path, timeout=900).returncode == 0
    env = {**os.environ, "AUDIOLAB_ROOT": str(tmp_path), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "audiolab.train", *args, "run_name=killed"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "logs" / "debug" / "runs" / "killed" / "checkpoints" / "last.ckpt"
    deadline, step = time.time() + 600, -1
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            try:
                step = read_checkpoint(last)["global_step"]
            except CheckpointError:
                step = -1
            if step >= 30:
                break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 30 <= step < 60, f"not killed mid-run (last.ckpt step {step})"
    step = read_checkpoint(last)["global_step"]
    resumed = _cli([*args, "run_name=killed", "ckpt_path=last"], tmp_path, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = tmp_path / "logs" / "debug" / "runs"
    _compare_with_uninterrupted(runs / "killed", runs / "reference", step)


# ------------------------------------------------------------------------------------------------ checkpoint cadence, threads
def test_last_checkpoint_every_n_steps(compose_run, tmp_path, monkeypatch):
    from audiolab.callbacks.last_checkpoint import LastCheckpoint

    saved = []
    original = LastCheckpoint._save

    def spy(self, trainer):
        before = self._saved_step
        original(self, trainer)
        if self._saved_step != before:
            saved.append(trainer.global_step)

    monkeypatch.setattr(LastCheckpoint, "_save", spy)
    train_one(compose_run([*BASE, "trainer.max_steps=7", "callbacks.last_checkpoint.every_n_steps=3",
                           "trainer.val_check_interval=100", "test=false"], tmp_path / "run"))
    assert saved == [3, 6, 7], saved  # every 3 steps and at the end
    assert not [p for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.startswith(".")]


def test_threads_setting(make_cfg):
    assert make_cfg(["experiment=ddsp_transformer"]).threads == "auto"
    old = torch.get_num_threads()
    try:
        assert apply_threads("auto") == default_threads() == max(1, len(os.sched_getaffinity(0)) // 2)
        assert torch.get_num_threads() == default_threads()
        assert apply_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="threads"):
            apply_threads(0)
    finally:
        torch.set_num_threads(old)
