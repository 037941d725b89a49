"""Tests for audiolab.audio.io (synthetic files written to tmp_path)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolab.audio.io import AudioLoadError, audio_files, load_audio, save_audio


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_round_trip(tmp_path, ext):
    x = _sine(440, 16000, 0.5)
    path = tmp_path / "sub" / "dir" / f"tone{ext}"  # parent dirs must be created
    save_audio(path, torch.from_numpy(x), 16000)
    info = sf.info(str(path))
    assert info.subtype == "PCM_16" and info.samplerate == 16000
    y = load_audio(path, 16000)
    assert y.dtype == torch.float32 and y.shape == (len(x),)
    np.testing.assert_allclose(y.numpy(), x, atol=1.0 / 32768 + 1e-7)
    # atomic write leaves no temp files behind
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_save_multichannel_and_clipping(tmp_path):
    x = np.stack([_sine(440, 8000, 0.25), 2.0 * np.ones(2000, np.float32)])  # [C, T], 2nd channel clips
    path = tmp_path / "st.wav"
    save_audio(path, x, 8000)
    data, sr = sf.read(str(path), always_2d=True, dtype="float32")
    assert data.shape == (2000, 2) and sr == 8000
    assert np.all(data[:, 1] > 0.99)  # clipped to full scale, not wrapped around to negative
    with pytest.raises(ValueError):
        save_audio(tmp_path / "x.wav", np.zeros((1, 2, 3), np.float32), 8000)


@pytest.mark.parametrize("subtype,atol", [("PCM_U8", 1.0 / 128 + 1e-6), ("PCM_24", 1.0 / 2**23 + 1e-7)])
def test_8bit_and_24bit(tmp_path, subtype, atol):
    x = _sine(300, 16000, 0.25)
    path = tmp_path / f"{subtype}.wav"
    sf.write(str(path), x, 16000, subtype=subtype)
    assert sf.info(str(path)).subtype == subtype
    y = load_audio(path, 16000)
    # unsigned 8-bit must come back centred on zero, not offset by +0.5
    np.testing.assert_allclose(y.numpy(), x, atol=atol)


def test_ogg_loads(tmp_path):
    x = _sine(440, 16000, 0.5)
    path = tmp_path / "tone.ogg"
    sf.write(str(path), x, 16000, format="OGG", subtype="VORBIS")
    y = load_audio(path, 16000)
    assert abs(len(y) - len(x)) <= 1
    assert abs(_peak_hz(y.numpy(), 16000) - 440) < 5


def test_96k_stereo_to_16k_mono(tmp_path):
    sr_in, seconds = 96000, 0.5
    left = _sine(1000, sr_in, seconds, amp=0.6)
    right = _sine(1000, sr_in, seconds, amp=0.2)
    path = tmp_path / "hi.wav"
    sf.write(str(path), np.stack([left, right], axis=1), sr_in, subtype="PCM_24")
    y = load_audio(path, 16000)
    assert y.dim() == 1
    assert len(y) == math.ceil(len(left) * 16000 / sr_in)
    assert abs(_peak_hz(y.numpy(), 16000) - 1000) < 3
    # mono = mean of channels -> amplitude 0.4 (check away from the resampler's edge transients)
    mid = y[1000:-1000].numpy()
    assert abs(np.max(np.abs(mid)) - 0.4) < 0.01


def test_missing_file(tmp_path):
    path = tmp_path / "nope_missing.wav"
    with pytest.raises(AudioLoadError, match="nope_missing.wav"):
        load_audio(path, 16000)


def test_empty_files(tmp_path):
    zero_bytes = tmp_path / "zero_bytes.wav"
    zero_bytes.write_bytes(b"")
    with pytest.raises(AudioLoadError, match="zero_bytes.wav"):
        load_audio(zero_bytes, 16000)
    header_only = tmp_path / "header_only.wav"
    sf.write(str(header_only), np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioLoadError, match=r"header_only\.wav.*empty"):
        load_audio(header_only, 16000)


def test_corrupt_bytes(tmp_path):
    path = tmp_path / "garbage_bytes.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AudioLoadError, match=r"could not decode.*garbage_bytes\.wav"):
        load_audio(path, 16000)


def test_silent_file(tmp_path):
    path = tmp_path / "quiet_file.wav"
    sf.write(str(path), np.zeros(1600, np.float32), 16000)
    with pytest.raises(AudioLoadError, match=r"quiet_file\.wav.*is silent"):
        load_audio(path, 16000)
    y = load_audio(path, 16000, allow_silent=True)
    assert y.shape == (1600,) and float(y.abs().max()) == 0.0


def test_non_finite_and_too_short(tmp_path):
    x = _sine(440, 16000, 0.1)
    x[10] = np.nan
    nan_path = tmp_path / "has_nan.wav"
    sf.write(str(nan_path), x, 16000, subtype="FLOAT")
    with pytest.raises(AudioLoadError, match=r"has_nan\.wav.*non-finite"):
        load_audio(nan_path, 16000)
    short = tmp_path / "short_one.wav"
    sf.write(str(short), _sine(440, 16000, 0.1), 16000)
    with pytest.raises(AudioLoadError, match=r"short_one\.wav.*too short"):
        load_audio(short, 16000, min_seconds=0.5)
    assert len(load_audio(short, 16000, min_seconds=0.05)) == 1600


def test_audio_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_root"):
        audio_files(tmp_path / "no_such_root")
    root = tmp_path / "corpus"
    (root / "b").mkdir(parents=True)
    (root / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="corpus"):
        audio_files(root)
    for rel in ["b/z.wav", "a.FLAC", "b/c.ogg", "m.mp3"]:
        (root / rel).write_bytes(b"")
    found = audio_files(root)
    assert found == sorted(found)
    assert [p.relative_to(root).as_posix() for p in found] == ["a.FLAC", "b/c.ogg", "b/z.wav", "m.mp3"]
    assert [p.name for p in audio_files(root, extensions=(".wav",))] == ["z.wav"]
