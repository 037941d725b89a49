"""DDSP data preparation, cache, dataset, datamodule and embedded demo data.

Only one test family runs real CREPE ("tiny", ~7 s of synthetic audio, shared by a module fixture); the others
replace ``estimate_f0`` with a constant-pitch fake to stay fast.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import audiolab.models.ddsp.data as ddsp
from audiolab.audio.io import AudioLoadError
from audiolab.data.cache import atomic_save_npz, atomic_write_json, content_hash
from audiolab.models.ddsp.data import (
    DDSPDataModule,
    DDSPDataset,
    embedded_root,
    prepare_ddsp,
    prepare_main,
)

FILE_SR = 22050
TRUE_F0 = {"a_low": 220.0, "b_mid": 330.0, "c_high": 523.25}


def write_tone(path: Path, f0: float, seconds: float, sr: int = FILE_SR, stereo: bool = True) -> None:
    """Harmonic tone (3 partials) with 50 ms fades, written as 16-bit WAV (stereo: right channel 0.8x left)."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(a * np.sin(2 * np.pi * k * f0 * t) for k, a in ((1, 0.5), (2, 0.2), (3, 0.1)))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
    x = (x * fade).astype(np.float32)
    data = np.stack([x, 0.8 * x], axis=1) if stereo else x
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, subtype="PCM_16")


class FakeF0:
    """Drop-in for ``estimate_f0`` returning 440 Hz / confidence 1 and counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, audio, sample_rate, hop_length, **kw):
        self.calls += 1
        n = audio.shape[-1] // hop_length
        return torch.full((n,), 440.0), torch.ones(n)


@pytest.fixture
def fake_f0(monkeypatch) -> FakeF0:
    fake = FakeF0()
    monkeypatch.setattr(ddsp, "estimate_f0", fake)
    return fake


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tones")
    for i, (name, f0) in enumerate(TRUE_F0.items()):
        write_tone(root / f"{name}.wav", f0, 2.0 + 0.5 * i)
    return root


@pytest.fixture(scope="module")
def prepared(tones, tmp_path_factory) -> tuple[Path, Path]:
    """Real CREPE (tiny) preparation of the three tones: (cache root, cache folder)."""
    cache = tmp_path_factory.mktemp("cache")
    return cache, prepare_ddsp(tones, cache, crepe_model="tiny", device="cpu", progress=False)


def many_sources(root: Path, n: int, seconds: float = 1.3) -> Path:
    for i in range(n):
        write_tone(root / f"s{i:02d}.wav", 200.0 + 20 * i, seconds, sr=16000, stereo=False)
    return root


# -- cache helpers ----------------------------------------------------------------------------------------
def test_cache_helpers(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"123")
    h1 = content_hash([f], {"x": 1})
    assert h1 == content_hash([f], {"x": 1}) and h1 != content_hash([f], {"x": 2})
    f.write_bytes(b"1234")
    assert content_hash([f], {"x": 1}) != h1
    atomic_save_npz(tmp_path / "z.npz", a=np.arange(3))
    atomic_write_json(tmp_path / "m.json", {"k": [1]})
    assert np.load(tmp_path / "z.npz")["a"].tolist() == [0, 1, 2]
    assert json.loads((tmp_path / "m.json").read_text()) == {"k": [1]}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -- preparation ------------------------------------------------------------------------------------------
def test_prepare_features_shapes_and_pitch(prepared):
    _, out = prepared
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["source"] for s in manifest["sources"]] == sorted(TRUE_F0)
    assert manifest["skipped"] == [] and manifest["params"]["hop_length"] == 64
    for i, src in enumerate(manifest["sources"]):
        z = np.load(out / src["npz"])
        n_frames = int((2.0 + 0.5 * i) * 16000) // 64  # resampled 22.05 kHz -> 16 kHz
        assert z["audio"].ndim == 1 and z["audio"].dtype == np.float32
        assert z["f0_hz"].shape == z["confidence"].shape == z["loudness_db"].shape == (n_frames,)
        assert z["audio"].shape == (n_frames * 64,)
        assert np.isfinite(z["loudness_db"]).all() and z["loudness_db"].min() >= -80.0
        voiced = z["confidence"] > 0.5
        assert voiced.mean() > 0.7, src["source"]
        cents = 1200 * np.abs(np.log2(z["f0_hz"][voiced] / TRUE_F0[src["source"]]))
        assert np.median(cents) < 20 and (cents < 50).mean() > 0.95, (src["source"], np.percentile(cents, [50, 95]))


def test_prepare_reuses_cache_and_rehashes_on_param_change(prepared, tones, fake_f0, capsys):
    cache, out = prepared
    npz = sorted((out / "features").glob("*.npz"))
    mtimes = [p.stat().st_mtime_ns for p in npz]
    again = prepare_ddsp(tones, cache, crepe_model="tiny", device="cpu", progress=False)
    assert again == out and fake_f0.calls == 0
    assert "using cache" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in npz] == mtimes
    other = prepare_ddsp(tones, cache, frame_rate=200, crepe_model="tiny", progress=False)
    assert other != out and other.parent == out.parent and fake_f0.calls == 3
    assert np.load(other / "features" / "a_low.npz")["f0_hz"].shape == (int(2.0 * 16000) // 80,)


def test_partial_cache_is_not_complete(tmp_path, fake_f0):
    root = many_sources(tmp_path / "in", 2)
    out = prepare_ddsp(root, tmp_path / "c", progress=False)
    (out / "manifest.json").unlink()  # simulate an interrupted run: features exist, manifest not yet
    (out / "features" / "s01.npz").unlink()
    calls = fake_f0.calls
    assert prepare_ddsp(root, tmp_path / "c", progress=False) == out
    assert fake_f0.calls == calls + 1 and (out / "manifest.json").is_file()  # resumed: only the missing file


def test_bad_file_error_and_skip(tmp_path, fake_f0):
    root = many_sources(tmp_path / "in", 2)
    (root / "x.wav").write_bytes(b"RIFF\x00\x01garbage-not-audio" * 10)
    with pytest.raises(AudioLoadError, match="x.wav"):
        prepare_ddsp(root, tmp_path / "c", progress=False)
    with pytest.warns(UserWarning, match="x.wav"):
        out = prepare_ddsp(root, tmp_path / "c", on_bad_file="skip", progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["file"] for s in manifest["skipped"]] == ["x.wav"] and manifest["skipped"][0]["reason"]
    assert [s["source"] for s in manifest["sources"]] == ["s00", "s01"]
    with pytest.raises(AudioLoadError, match="x.wav"):  # cached skip still fails in error mode
        prepare_ddsp(root, tmp_path / "c", progress=False)


def test_all_bad_files_raise_naming_dir(tmp_path, fake_f0):
    bad = tmp_path / "only_bad"
    bad.mkdir()
    (bad / "x.wav").write_bytes(b"not audio at all")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="only_bad"):
        prepare_ddsp(bad, tmp_path / "c", on_bad_file="skip", progress=False)


def test_prepare_main_cli(tmp_path, fake_f0, capsys):
    root = many_sources(tmp_path / "in", 2)
    prepare_main([f"input_dir={root}", f"cache_dir={tmp_path / 'c'}", "sample_rate=16000", "progress=false"])
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out / "manifest.json").is_file()
    with pytest.raises(SystemExit, match="bogus"):
        prepare_main([f"input_dir={root}", "bogus=1"])


# -- dataset / splits -------------------------------------------------------------------------------------
def test_dataset_items_and_windows(prepared):
    _, out = prepared
    ds = DDSPDataset(out, ["c_high"], example_seconds=1.0, hop_seconds=0.5, overlap=True)  # 3.0 s source
    assert [o for _, o in ds.index] == [0, 8000, 16000, 24000, 32000]
    item = ds[1]
    assert item["audio"].shape == (16000,) and item["audio"].dtype == torch.float32
    for k in ("f0_hz", "f0_confidence", "loudness_db"):
        assert item[k].shape == (250,)
    assert item["source"] == "c_high" and item["offset"] == 8000
    full = np.load(out / "features" / "c_high.npz")
    assert torch.equal(item["audio"], torch.from_numpy(full["audio"][8000:24000]))
    assert torch.equal(item["f0_hz"], torch.from_numpy(full["f0_hz"][125:375]))
    val = DDSPDataset(out, ["b_mid"], example_seconds=1.0, overlap=False)  # 2.5 s -> 2 windows, tail dropped
    assert [o for _, o in val.index] == [0, 16000]


def test_short_sources_padded_or_skipped(tmp_path, fake_f0):
    root = tmp_path / "in"
    write_tone(root / "long.wav", 300.0, 1.5, sr=16000, stereo=False)
    write_tone(root / "tiny.wav", 300.0, 0.5, sr=16000, stereo=False)
    out = prepare_ddsp(root, tmp_path / "c", progress=False)
    with pytest.warns(UserWarning, match="tiny"):
        ds = DDSPDataset(out, example_seconds=2.0)
    assert len(ds) == 1
    item = ds[0]
    assert item["audio"].shape == (32000,) and item["audio"][-8000:].abs().max() == 0
    assert item["loudness_db"][-125:].eq(-80.0).all() and item["f0_hz"][-1] == 440.0
    assert item["f0_confidence"][-125:].eq(0).all()


def test_datamodule_split_no_leakage(tmp_path, fake_f0):
    root = many_sources(tmp_path / "in", 7, seconds=2.1)
    kw = {"example_seconds": 1.0, "hop_seconds": 0.5, "batch_size": 2, "crepe_model": "tiny", "split_seed": 1}
    dm = DDSPDataModule(str(root), str(tmp_path / "c"), **kw)
    dm.prepare_data()
    dm.setup("fit")
    seen = {k: {name for name, _ in getattr(dm, f"{k}_set").index} for k in ("train", "val", "test")}
    assert seen["train"] and seen["val"] and seen["test"]
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"]) and not (seen["val"] & seen["test"])
    dm2 = DDSPDataModule(str(root), str(tmp_path / "c"), **kw)
    dm2.setup("fit")
    assert dm2.splits == dm.splits
    assert (dm.hop_length, dm.n_samples, dm.n_frames) == (64, 16000, 250)
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (2, 16000) and batch["loudness_db"].shape == (2, 250)
    probe = dm.probe_batch(2)
    assert probe["audio"].shape == (2, 16000) and set(probe["source"]) <= seen["val"]
    assert torch.equal(dm.probe_batch(2)["audio"], probe["audio"])


def test_overfit_mode_identical_batches(tmp_path, fake_f0):
    root = many_sources(tmp_path / "in", 1, seconds=3.0)  # a single file is allowed in overfit mode
    dm = DDSPDataModule(str(root), str(tmp_path / "c"), example_seconds=1.0, hop_seconds=0.5, batch_size=2,
                        overfit_batches=1)
    dm.prepare_data()
    dm.setup("fit")
    tb, vb = next(iter(dm.train_dataloader())), next(iter(dm.val_dataloader()))
    assert torch.equal(tb["audio"], vb["audio"]) and tb["offset"].tolist() == vb["offset"].tolist() == [0, 8000]
    assert len(dm.train_dataloader()) == 1
    single = DDSPDataModule(str(root), str(tmp_path / "c"), example_seconds=1.0)
    with pytest.raises(ValueError, match="overfit_batches"):
        single.setup("fit")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"frame_rate": 300}, "frame_rate"),
        ({"example_seconds": 1.001}, "example_seconds"),
        ({"hop_seconds": 0.0001}, "hop_seconds"),
        ({"on_bad_file": "ignore"}, "on_bad_file"),
        ({"crepe_model": "large"}, "crepe_model"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction"),
    ],
)
def test_config_errors_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        DDSPDataModule("embedded", "/nonexistent", **kwargs)


# -- embedded demo data -----------------------------------------------------------------------------------
def test_embedded_violin_data():
    root = embedded_root()
    files = sorted(root.glob("*.flac"))
    assert root.is_dir() and len(files) >= 5
    infos = [sf.info(str(f)) for f in files]
    assert all(i.samplerate == 16000 and i.channels == 1 for i in infos)
    assert sum(i.duration for i in infos) >= 60.0
    demo = root.parent.parent
    assert (demo / "ATTRIBUTION.md").is_file() and (demo / "manifest.json").is_file()
    assert sorted(demo.joinpath("audio", "flute").glob("*.flac"))
    assert ddsp.resolve_root("embedded") == root
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sum(f.stat().st_size for f in demo.rglob("*") if f.is_file()) < 4 * 1024 * 1024


def test_preparation_is_deterministic(tmp_path, tones, prepared):
    """Same file and parameters -> identical features, CREPE included (was: up to 33 cents apart: unseeded dither)."""
    np.random.random(7)  # whatever ran before in the process must not matter
    outs = [prepared[1], prepare_ddsp(tones, tmp_path / "again", crepe_model="tiny", device="cpu", progress=False)]
    assert outs[0].name == outs[1].name  # same cache key
    npzs = sorted(p.name for p in (outs[0] / "features").glob("*.npz"))
    assert npzs
    for name in npzs:
        with np.load(outs[0] / "features" / name) as a, np.load(outs[1] / "features" / name) as b:
            for key in ("f0_hz", "confidence", "loudness_db", "audio"):
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
