"""Crop datamodule over a folder of audio: prepared cache, split by category and file, random/fixed crops,
loudness, bad files.

Synthetic audio only (written with soundfile at 16 kHz and 44.1 kHz, mono and stereo, in two category folders).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import audiolab.data.crops as crops
from audiolab.audio.io import AudioLoadError
from audiolab.data.crops import AudioCropDataModule, EpochSampler, prepare_audio_cache
from audiolab.data.splits import split_by_category

SR = 8000  # datamodule rate in most tests: small arrays, fast resampling


def write_tone(path: Path, f0: float, seconds: float, sr: int, stereo: bool = False, amp: float = 0.5,
               silence_seconds: float = 0.0) -> None:
    """Sine of ``f0`` Hz (``amp`` peak), optionally preceded by ``silence_seconds`` of digital silence."""
    t = np.arange(int(seconds * sr)) / sr
    x = (amp * np.sin(2 * np.pi * f0 * t)).astype(np.float32)
    x = np.concatenate([np.zeros(int(silence_seconds * sr), np.float32), x])
    data = np.stack([x, 0.8 * x], axis=1) if stereo else x
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, subtype="PCM_16")


def make_corpus(root: Path, n_per_cat: int = 5) -> dict[str, float]:
    """Two categories (speech: 16 kHz mono, music: 44.1 kHz stereo), 2-3 s tones; returns file -> f0."""
    f0s = {}
    for i in range(n_per_cat):
        f = 300.0 + 50 * i
        write_tone(root / "speech" / f"spk{i % 2}" / f"s{i}.wav", f, 2.0 + 0.25 * i, 16000)
        f0s[f"speech/spk{i % 2}/s{i}.wav"] = f
        g = 1000.0 + 100 * i
        write_tone(root / "music" / f"m{i}.flac", g, 2.5 + 0.1 * i, 44100, stereo=True)
        f0s[f"music/m{i}.flac"] = g
    return f0s


def dm_for(root: Path, cache: Path, **kw) -> AudioCropDataModule:
    kw.setdefault("sample_rate", SR)
    kw.setdefault("batch_size", 4)
    dm = AudioCropDataModule(str(root), str(cache), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm.prepare_data()
        dm.setup("fit")
    return dm


class CountingLoader:
    def __init__(self) -> None:
        self.calls = 0
        self.real = crops.load_audio

    def __call__(self, *a, **kw):
        self.calls += 1
        return self.real(*a, **kw)


@pytest.fixture
def corpus(tmp_path) -> tuple[Path, dict[str, float]]:
    root = tmp_path / "audio"
    return root, make_corpus(root)


def test_cache_reused_and_invalidated(corpus, tmp_path, monkeypatch):
    root, f0s = corpus
    counter = CountingLoader()
    monkeypatch.setattr(crops, "load_audio", counter)
    dm1 = dm_for(root, tmp_path / "cache")
    assert counter.calls == len(f0s)
    manifest = json.loads((dm1.cache_path / "manifest.json").read_text())
    assert {s["category"] for s in manifest["sources"]} == {"speech", "music"}
    assert not (dm1.cache_path / "parts").exists() and (dm1.cache_path / "audio.npy").is_file()

    dm2 = dm_for(root, tmp_path / "cache")  # new instance: the cache is found again, no audio decoded
    assert counter.calls == len(f0s)
    assert dm2.cache_path == dm1.cache_path

    write_tone(root / "music" / "m0.flac", 777.0, 2.2, 44100)  # content changes -> new key, everything re-read
    dm3 = dm_for(root, tmp_path / "cache")
    assert dm3.cache_path != dm1.cache_path
    assert counter.calls == 2 * len(f0s)

    dm4 = dm_for(root, tmp_path / "cache", normalize="loudness")  # a parameter change also invalidates
    assert dm4.cache_path not in (dm1.cache_path, dm3.cache_path)


def test_split_deterministic_disjoint_every_category(corpus, tmp_path):
    root, f0s = corpus
    dm = dm_for(root, tmp_path / "cache", val_fraction=0.2, test_fraction=0.2)
    s = dm.splits
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(f0s)
    assert not (set(s["train"]) & set(s["val"])) and not (set(s["train"]) & set(s["test"]))
    assert not set(s["val"]) & set(s["test"])
    for key in ("train", "val", "test"):
        assert {f.split("/")[0] for f in s[key]} == {"speech", "music"}, key
    assert dm_for(root, tmp_path / "cache2", val_fraction=0.2, test_fraction=0.2).splits == s
    other = [split_by_category(sorted(f0s), 0.2, 0.2, seed)["val"] for seed in range(1, 6)]
    assert any(v != s["val"] for v in other)  # the seed matters
    # val/test crops only come from val/test files
    assert {d["source"] for d in dm.val_set} <= set(s["val"])
    split_manifest = json.loads(dm.split_manifest_path.read_text())
    assert {f["file"]: f["split"] for f in split_manifest["files"]}[s["val"][0]] == "val"


def test_crops_length_rate_and_frequency(corpus, tmp_path):
    root, f0s = corpus
    sr = 24000
    dm = dm_for(root, tmp_path / "cache", sample_rate=sr, crop_seconds=1.0, storage_dtype="float32")
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (4, sr) and batch["audio"].dtype == torch.float32
    assert isinstance(batch["source"], list) and len(batch["source"]) == 4
    for x, src in zip(batch["audio"], batch["source"]):
        spec = np.abs(np.fft.rfft(x.numpy() * np.hanning(sr)))
        peak_hz = np.argmax(spec) * sr / len(x)  # 1 s crop: bin spacing 1 Hz
        assert abs(peak_hz - f0s[src]) <= 1.0, (src, peak_hz)
    probe = dm.probe_batch(3)
    assert probe["audio"].shape == (3, sr)
    assert {p.split("/")[0] for p in probe["source"][:2]} == {"speech", "music"}  # categories interleaved


def test_crops_change_per_epoch_and_reproduce(corpus, tmp_path):
    root, _ = corpus
    dm = dm_for(root, tmp_path / "cache", crops_per_epoch=8, batch_size=8)
    loader = dm.train_dataloader()
    e0 = next(iter(loader))["audio"]
    e1 = next(iter(loader))["audio"]  # the sampler advanced to epoch 1 by itself
    assert not torch.equal(e0, e1)
    dm2 = dm_for(root, tmp_path / "cache", crops_per_epoch=8, batch_size=8)
    loader2 = dm2.train_dataloader()
    loader2.sampler.set_epoch(1)  # what Lightning does at every epoch start
    assert torch.equal(next(iter(loader2))["audio"], e1)
    loader2.sampler.set_epoch(0)
    assert torch.equal(next(iter(loader2))["audio"], e0)
    assert list(EpochSampler(3, epoch=2)) == [6, 7, 8]


def test_default_crops_per_epoch_is_train_seconds(corpus, tmp_path):
    root, _ = corpus
    dm = dm_for(root, tmp_path / "cache", crop_seconds=0.5)
    manifest = json.loads((dm.cache_path / "manifest.json").read_text())
    train_s = sum(s["seconds"] for s in manifest["sources"] if s["file"] in set(dm.splits["train"]))
    assert len(dm.train_set) == round(train_s / 0.5)


def test_silent_regions_avoided(tmp_path):
    root = tmp_path / "audio"
    for cat in ("a", "b"):  # 4 s digital silence then 2 s tone: 60 % of crop positions are silent
        for i in range(3):
            write_tone(root / cat / f"x{i}.wav", 440.0, 2.0, 16000, silence_seconds=4.0)
    dm = dm_for(root, tmp_path / "cache", crops_per_epoch=200, batch_size=50, val_fraction=0.34, test_fraction=0.33)
    audio = torch.cat([b["audio"] for b in dm.train_dataloader()])
    rms_db = 10 * torch.log10(audio.pow(2).mean(-1) + 1e-12)
    assert (rms_db > -40).float().mean() > 0.9
    val = torch.stack([d["audio"] for d in dm.val_set])
    assert (10 * torch.log10(val.pow(2).mean(-1) + 1e-12) > -40).all()
    # without the loudness rule most crops are silent: the rule is what the assertion above measures
    dm0 = dm_for(root, tmp_path / "cache", crops_per_epoch=200, batch_size=50, val_fraction=0.34,
                 test_fraction=0.33, min_crop_db=-400.0)
    audio0 = torch.cat([b["audio"] for b in dm0.train_dataloader()])
    assert (10 * torch.log10(audio0.pow(2).mean(-1) + 1e-12) > -40).float().mean() < 0.6


def test_bad_files_error_or_skip(corpus, tmp_path):
    root, f0s = corpus
    bad = root / "music" / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    with pytest.raises(AudioLoadError, match="broken.wav"):
        dm_for(root, tmp_path / "cache")
    with pytest.warns(UserWarning, match="broken.wav"):
        path = prepare_audio_cache(root, tmp_path / "cache", sample_rate=SR, on_bad_file="skip", progress=False)
    manifest = json.loads((path / "manifest.json").read_text())
    assert [s["file"] for s in manifest["skipped"]] == ["music/broken.wav"]
    assert "broken.wav" not in {s["file"] for s in manifest["sources"]}
    dm = dm_for(root, tmp_path / "cache", on_bad_file="skip")
    assert "music/broken.wav" not in dm.splits["train"] + dm.splits["val"] + dm.splits["test"]
    with pytest.raises(AudioLoadError, match="broken.wav"):  # a cached skip still fails with on_bad_file=error
        prepare_audio_cache(root, tmp_path / "cache", sample_rate=SR, progress=False)


def test_too_short_file_refused_at_preparation_or_skipped(corpus, tmp_path):
    root, f0s = corpus
    write_tone(root / "speech" / "short.wav", 500.0, 0.3, 16000)
    dm = AudioCropDataModule(str(root), str(tmp_path / "cache"), sample_rate=SR, crop_seconds=1.0)
    with pytest.raises(AudioLoadError, match=r"short\.wav' is too short: 0\.300 s, expected at least 1\.000 s "
                                             r"\(one crop: data\.crop_seconds=1\.0\).*data\.on_bad_file=skip"):
        dm.prepare_data()
    dm = AudioCropDataModule(str(root), str(tmp_path / "cache"), sample_rate=SR, crop_seconds=1.0, on_bad_file="skip")
    with pytest.warns(UserWarning, match="skipping 1 audio files shorter than 1.000 s"):
        dm.prepare_data()
        dm.setup("fit")
    assert dm.too_short == ["speech/short.wav"]
    assert "speech/short.wav" not in dm.splits["train"] + dm.splits["val"] + dm.splits["test"]
    listed = json.loads(dm.split_manifest_path.read_text())
    assert listed["too_short"] == ["speech/short.wav"]
    assert {f["file"]: f["split"] for f in listed["files"]}["speech/short.wav"] == "too_short"


def test_short_file_policy_is_separate_from_bad_files(corpus, tmp_path):
    """on_short_file=skip (the codec config: its corpus has spoken prompts under 1 s) skips short files while a
    broken file still stops the run."""
    root, f0s = corpus
    write_tone(root / "speech" / "short.wav", 500.0, 0.3, 16000)
    (root / "music" / "broken.wav").write_bytes(b"RIFF....not audio")
    kw = {"sample_rate": SR, "crop_seconds": 1.0, "on_short_file": "skip"}
    with pytest.raises(AudioLoadError, match="broken.wav"):
        AudioCropDataModule(str(root), str(tmp_path / "cache"), **kw).prepare_data()
    (root / "music" / "broken.wav").unlink()
    dm = AudioCropDataModule(str(root), str(tmp_path / "cache"), **kw)
    with pytest.warns(UserWarning, match="skipping 1 audio files shorter"):
        dm.setup("fit")
    assert dm.too_short == ["speech/short.wav"]
    with pytest.raises(ValueError, match="on_short_file must be one of"):
        AudioCropDataModule(str(root), str(tmp_path / "cache"), on_short_file="ignore")


def test_empty_split_is_an_error_naming_it(tmp_path):
    """One file per category: every category goes to train only, so val and test would be empty (and the run
    would end with an empty test_metrics.json)."""
    root = tmp_path / "audio"
    write_tone(root / "speech" / "a.wav", 300.0, 2.0, SR)
    write_tone(root / "music" / "b.wav", 400.0, 2.0, SR)
    dm = AudioCropDataModule(str(root), str(tmp_path / "cache"), sample_rate=SR, crop_seconds=0.5)
    dm.prepare_data()
    with pytest.warns(UserWarning, match="single split group"), \
            pytest.raises(ValueError, match=r"^the val split has no examples \(2 usable files"):
        dm.setup("fit")


def test_missing_root_names_the_key(tmp_path):
    dm = AudioCropDataModule(str(tmp_path / "nope"), str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"data root .*nope.* does not exist: set data.root="):
        dm.prepare_data()


def test_loudness_normalization_to_target(tmp_path):
    import pyloudnorm

    root = tmp_path / "audio"
    rng = np.random.default_rng(0)
    for cat, gain in (("a", 0.02), ("b", 0.6)):  # ~30 dB apart
        for i in range(3):
            x = gain * rng.standard_normal((int(2.0 * 44100), 2)).clip(-3, 3) / 3
            (root / cat).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / cat / f"n{i}.wav"), x.astype(np.float32), 44100, subtype="FLOAT")
    sr = 16000
    path = prepare_audio_cache(root, tmp_path / "cache", sample_rate=sr, normalize="loudness", target_lufs=-20.0,
                         progress=False)
    manifest = json.loads((path / "manifest.json").read_text())
    audio = np.load(path / "audio.npy").astype(np.float64)
    meter = pyloudnorm.Meter(sr)
    measured = {s["file"]: meter.integrated_loudness(audio[s["offset"] : s["offset"] + s["n_samples"]])
                for s in manifest["sources"]}
    before = [s["loudness_lufs"] for s in manifest["sources"]]
    assert max(before) - min(before) > 20  # the inputs really were far apart
    assert all(abs(v + 20.0) < 0.5 for v in measured.values()), measured
    assert np.abs(audio).max() <= 1.0


def test_loudness_peak_limited(tmp_path):
    x = np.sign(np.sin(np.linspace(0, 2000, 16000))).astype(np.float32) * 0.9  # square wave: loud, crest 1
    y, lufs, gain = crops.loudness_normalize(x, 16000, target_lufs=0.0)
    assert lufs is not None and np.abs(y).max() <= 1.0 + 1e-6 and gain < -lufs


def test_overfit_uses_same_fixed_crops(corpus, tmp_path):
    root, _ = corpus
    dm = dm_for(root, tmp_path / "cache", overfit_batches=2, batch_size=3)
    assert dm.train_set is dm.val_set is dm.test_set and len(dm.train_set) == 6
    a = torch.cat([b["audio"] for b in dm.train_dataloader()])
    b = torch.cat([b["audio"] for b in dm.train_dataloader()])
    v = torch.cat([b["audio"] for b in dm.val_dataloader()])
    assert torch.equal(a, b) and torch.equal(a, v)


def test_bad_hyperparameters_name_the_key(tmp_path):
    for kw, key in (({"split_by": "speaker"}, "split_by"), ({"normalize": "peak"}, "normalize"),
                    ({"crop_seconds": 0.0}, "crop_seconds"), ({"on_bad_file": "ignore"}, "on_bad_file")):
        with pytest.raises(ValueError, match=key):
            AudioCropDataModule(str(tmp_path), str(tmp_path / "c"), **kw)
