"""Configs and data that cannot work fail early with an error naming the key or the file; valid odd formats are used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra.errors import InstantiationException

from audiolab.evaluate import evaluate
from audiolab.train import run, train_one

BASE = ["experiment=ddsp_transformer", "debug=fast", "callbacks.media=null", "test=false"]


@pytest.mark.parametrize(("overrides", "exc", "pattern"), [
    (["model.decoder.backbone=bogus"], ValueError, r"backbone.*bogus"),
    (["model.decoder.d_model=16", "model.decoder.heads=3"], ValueError, r"d_model.*divisible.*heads"),
    (["model.net.head=bogus"], ValueError, r"model\.net\.head.*bogus"),
    (["model.loss.loudness.type=bogus", "model.loss.loudness.weight=0.1"], ValueError, r"model\.loss\.loudness\.type.*bogus"),
    (["model.loss.loudness.type=db_l1", "model.loss.loudness.weight=0.0"], ValueError, r"model\.loss\.loudness\.weight"),
    (["ckpt_path=/tmp/x.ckpt", "init_from=/tmp/y.ckpt"], ValueError, r"ckpt_path.*init_from"),
    (["data.frame_rate=333"], ValueError, r"frame_rate.*333"),
    (["data.on_bad_file=bogus"], ValueError, r"on_bad_file.*bogus"),
], ids=["backbone", "heads", "head", "loudness_type", "loudness_weight0", "ckpt_and_init", "frame_rate", "on_bad_file"])
def test_bad_config_names_key(make_run_cfg, tmp_path, overrides, exc, pattern):
    cfg = make_run_cfg([*BASE, *overrides], output_dir=tmp_path / "run")
    # Hydra's instantiate wraps constructor errors (InstantiationException, message kept): either is fine
    with pytest.raises((exc, InstantiationException), match=pattern) as info:
        train_one(cfg)
    if isinstance(info.value, InstantiationException):
        assert isinstance(info.value.__cause__, exc), repr(info.value.__cause__)
    assert not (tmp_path / "run" / "checkpoints").exists(), "a failing config must not start training"


def test_stage_with_bad_override_fails_naming_key(make_run_cfg, tmp_path):
    cfg = make_run_cfg(["experiment=ddsp_transformer_abc", "debug=fast", "callbacks.media=null", "test=false"],
                       output_dir=tmp_path / "run")
    cfg.stages = [{"name": "A", "overrides": ["model.net.head=bogus"]}]
    with pytest.raises((ValueError, InstantiationException), match=r"model\.net\.head"):
        run(cfg)


def test_ckpt_path_missing_file(make_run_cfg, tmp_path):
    missing = tmp_path / "missing_dir" / "missing.ckpt"
    cfg = make_run_cfg([*BASE, f"ckpt_path={missing}"], output_dir=tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        train_one(cfg)


def test_probe_metric_unknown(make_run_cfg, tmp_path):
    cfg = make_run_cfg([*BASE, "callbacks.probe.metric=nonexistent"], output_dir=tmp_path / "run")
    with pytest.raises(KeyError, match="nonexistent"):
        train_one(cfg)


# ------------------------------------------------------------------------------------------------ data folders
def _tone(seconds: float, sr: int, f0: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.4 * np.sin(2 * np.pi * f0 * t) * (1 + 0.2 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _write_good(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "good_a.wav", _tone(1.5, 16000, 440.0), 16000)
    sf.write(folder / "good_b.wav", _tone(1.5, 16000, 330.0), 16000)
    sf.write(folder / "pcm8.wav", _tone(1.5, 16000, 220.0), 16000, subtype="PCM_U8")
    stereo = np.stack([_tone(1.5, 96000, 262.0), _tone(1.5, 96000, 262.0) * 0.5], axis=1)
    sf.write(folder / "hires_stereo.wav", stereo, 96000, subtype="PCM_24")


BAD_FILES = {
    "empty.wav": lambda p: p.write_bytes(b""),
    "corrupt.wav": lambda p: p.write_bytes(b"RIFF\x00\x00garbage" + bytes(range(256)) * 8),
    "silent.wav": lambda p: sf.write(p, np.zeros(24000, dtype=np.float32), 16000),
}


@pytest.fixture
def fake_f0(monkeypatch):
    """Constant 440 Hz, confidence 1: no CREPE in data tests."""
    calls = []

    def estimate_f0(audio, sample_rate, hop_length, **kwargs):
        n = audio.shape[-1] // hop_length
        calls.append(n)
        return torch.full((n,), 440.0), torch.ones(n)

    monkeypatch.setattr("audiolab.models.ddsp.data.estimate_f0", estimate_f0)
    return calls


def _data_cfg(make_run_cfg, tmp_path: Path, root: Path, on_bad_file: str, run: str = "run"):
    cfg = make_run_cfg([*BASE, f"data.root={root}", f"data.on_bad_file={on_bad_file}"], output_dir=tmp_path / run)
    cfg.data.cache_dir = str(tmp_path / "cache")
    return cfg


@pytest.mark.parametrize("bad", sorted(BAD_FILES))
def test_bad_file_error_names_file(make_run_cfg, tmp_path, fake_f0, bad):
    root = tmp_path / "audio"
    _write_good(root)
    BAD_FILES[bad](root / bad)
    cfg = _data_cfg(make_run_cfg, tmp_path, root, "error")
    with pytest.raises(Exception, match=bad.replace(".", r"\.")):
        train_one(cfg)
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_bad_files_skipped_valid_formats_used(make_run_cfg, tmp_path, fake_f0):
    root = tmp_path / "audio"
    _write_good(root)
    for name, write in BAD_FILES.items():
        write(root / name)
    cfg = _data_cfg(make_run_cfg, tmp_path, root, "skip")
    with pytest.warns(UserWarning, match="skipping bad audio file"):
        train_one(cfg)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    manifests = list((tmp_path / "cache").rglob("manifest.json"))
    assert len(manifests) == 1, manifests
    manifest = json.loads(manifests[0].read_text())
    used = {s["file"]: s for s in manifest["sources"]}
    assert set(used) == {"good_a.wav", "good_b.wav", "pcm8.wav", "hires_stereo.wav"}, sorted(used)
    assert {s["file"] for s in manifest["skipped"]} == set(BAD_FILES)
    assert all(s["reason"] for s in manifest["skipped"])
    # 96 kHz stereo -> 16 kHz mono, 1.5 s: same length as the 16 kHz files
    assert used["hires_stereo.wav"]["n_samples"] == used["good_a.wav"]["n_samples"] == 24000
    with np.load(manifests[0].parent / used["pcm8.wav"]["npz"]) as z:
        audio = z["audio"]
    assert audio.ndim == 1 and 0.2 < np.abs(audio).max() < 0.6, "8-bit wav not decoded to float [-1, 1]"
    with np.load(manifests[0].parent / used["hires_stereo.wav"]["npz"]) as z:
        audio = z["audio"]
    assert audio.ndim == 1 and np.abs(audio).max() > 0.1
    # the cached preparation that skipped files is refused with on_bad_file=error, naming a skipped file
    cfg = _data_cfg(make_run_cfg, tmp_path, root, "error", run="run2")
    with pytest.raises(Exception, match=r"(corrupt|empty|silent)\.wav"):
        train_one(cfg)


# ------------------------------------------------------------------------------------------------ evaluate
def test_evaluate_missing_checkpoint(tmp_path):
    missing = tmp_path / "does_not_exist.ckpt"
    with pytest.raises(FileNotFoundError, match="does_not_exist.ckpt"):
        evaluate(str(missing), tmp_path / "eval")


def test_evaluate_checkpoint_without_config(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "global_step": 3}, path)
    with pytest.raises(ValueError, match="plain.ckpt"):
        evaluate(str(path), tmp_path / "eval")
    assert not (tmp_path / "eval" / "metrics.json").exists()


# ------------------------------------------------------------------------------------------------ too-short files
def _short_file_root(root: Path) -> Path:
    """Three 1.5 s files and a 0.1 s one that the seeded split (seed 0) puts alone into the test split."""
    root.mkdir(parents=True, exist_ok=True)
    for name, f0 in (("good_a", 440.0), ("good_b", 330.0), ("good_c", 220.0)):
        sf.write(root / f"{name}.wav", _tone(1.5, 16000, f0), 16000)
    sf.write(root / "a_tiny.wav", _tone(0.1, 16000), 16000)
    return root


def test_too_short_file_stops_the_run_before_training(make_run_cfg, tmp_path, fake_f0):
    """Was: prepare accepted the 0.1 s file, the datamodule dropped it with a warning, the test split was empty and
    the run exited 0 with an empty test_metrics.json."""
    root = _short_file_root(tmp_path / "audio")
    cfg = _data_cfg(make_run_cfg, tmp_path, root, "error")
    cfg.test = True
    with pytest.raises(Exception, match=r"a_tiny\.wav' is too short: 0\.100 s, expected at least 1\.000 s "
                                        r"\(one example: data\.example_seconds=1\.0\).*data\.on_bad_file=skip"):
        train_one(cfg)
    assert not (tmp_path / "run" / "test_metrics.json").exists()
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_too_short_file_skipped_and_listed(make_run_cfg, tmp_path, fake_f0):
    root = _short_file_root(tmp_path / "audio")
    cfg = _data_cfg(make_run_cfg, tmp_path, root, "skip")
    cfg.test = True
    with pytest.warns(UserWarning, match=r"skipping 1 audio files shorter than 1\.000 s"):
        train_one(cfg)
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert metrics.get("test/spectral", 0) > 0, metrics
    (split_manifest,) = (tmp_path / "cache").rglob("splits/*.json")
    listed = json.loads(split_manifest.read_text())
    assert listed["too_short"] == ["a_tiny.wav"]
    assert {f["file"]: f["split"] for f in listed["files"]}["a_tiny.wav"] == "too_short"
    assert "a_tiny" not in sum(listed["splits"].values(), [])
