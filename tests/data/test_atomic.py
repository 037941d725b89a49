"""The one atomic writer (data.cache.atomic_path): files get the user's umask mode (not mkstemp's 0600), temp files
never survive a failure, and every writer of audiolab (caches, JSON results, audio, .alc, corpus tools) uses it."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from audiolab.audio.io import save_audio
from audiolab.data.cache import (
    atomic_path,
    atomic_save_npz,
    atomic_write_bytes,
    atomic_write_json,
    current_umask,
)
from audiolab.models.codec.container import AlcHeader, write_alc


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _writers(tmp_path: Path):
    header = AlcHeader(model_id="m", sample_rate=16000, channels=1, hop_length=8, n_q=2, bins=16, n_frames=3,
                       length=24)
    return {
        "bytes.bin": lambda p: atomic_write_bytes(p, b"x"),
        "result.json": lambda p: atomic_write_json(p, {"test/snr_db": 1.0}),
        "cache.npz": lambda p: atomic_save_npz(p, a=np.zeros(3)),
        "audio.wav": lambda p: save_audio(p, np.zeros(160, dtype=np.float32), 16000),
        "audio.flac": lambda p: save_audio(p, np.zeros(160, dtype=np.float32), 16000),
        "codes.alc": lambda p: write_alc(p, header, np.zeros((2, 3), dtype=np.int64)),
    }


def test_files_get_the_umask_mode(tmp_path, umask):
    assert current_umask() == umask
    for name, write in _writers(tmp_path).items():
        p = tmp_path / name
        write(p)
        assert _mode(p) == 0o666 & ~umask, f"{name}: mode {oct(_mode(p))}, umask {oct(umask)}"
        write(p)  # replacing an existing file: same rule
        assert _mode(p) == 0o666 & ~umask, name
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_crop_cache_array_gets_the_umask_mode(tmp_path, umask):
    from audiolab.data.crops import _concatenate

    atomic_save_npz(tmp_path / "p0.npz", audio=np.ones(5, dtype=np.float16))
    _concatenate(tmp_path / "audio.npy", [tmp_path / "p0.npz"], 5, "float16")
    assert _mode(tmp_path / "audio.npy") == 0o666 & ~umask
    np.testing.assert_array_equal(np.load(tmp_path / "audio.npy"), np.ones(5))
    with pytest.raises(FileNotFoundError):
        _concatenate(tmp_path / "audio.npy", [tmp_path / "missing.npz"], 5, "float16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio.npy", "p0.npz"]  # no temp, old array kept


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_leaves_no_temp_file_and_the_old_file(tmp_path, exc):
    dest = tmp_path / "result.json"
    atomic_write_json(dest, {"ok": 1})
    with pytest.raises(exc), atomic_path(dest) as tmp:
        tmp.write_text('{"half": ')
        raise exc("killed mid-write")
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    assert dest.read_text() == '{\n  "ok": 1\n}\n'
    with pytest.raises(TypeError):
        atomic_write_bytes(dest, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        save_audio(tmp_path / "x.wav", np.full(8, np.nan, dtype=np.float32), 16000)
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_temp_file_is_in_the_destination_folder(tmp_path, monkeypatch):
    """Same filesystem as the destination whatever $TMPDIR is, so the rename is atomic."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "elsewhere"))
    with atomic_path(tmp_path / "d" / "f.wav", suffix=".wav") as tmp:
        assert tmp.parent == tmp_path / "d" and tmp.suffix == ".wav" and tmp.name.startswith(".f.wav.")
        tmp.write_bytes(b"1")
    assert (tmp_path / "d" / "f.wav").read_bytes() == b"1"


@pytest.mark.skipif(sys.platform != "linux", reason="/proc umask")
def test_current_umask_does_not_change_it():
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027 and current_umask() == 0o027
    finally:
        os.umask(old)
