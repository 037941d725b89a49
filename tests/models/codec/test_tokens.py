"""Token export for the LM (``audiolab.models.codec.tokens`` and ``python -m audiolab.prepare codec_tokens``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiolab import prepare
from audiolab.audio.io import AudioLoadError, load_audio
from audiolab.models.codec.infer import load_codec, model_id
from audiolab.models.codec.tokens import export_tokens

SR = 16000


@pytest.fixture(scope="module")
def ckpt(codec_ckpt) -> Path:
    return codec_ckpt("causal", causal=True, lstm=1)


@pytest.fixture(scope="module")
def codec(ckpt):
    return load_codec(ckpt)


@pytest.fixture
def audio_dir(tmp_path) -> Path:
    """3 short files: mono 16 kHz, stereo 16 kHz (in a subfolder), mono 22.05 kHz; all of different lengths."""
    rng = np.random.default_rng(0)
    root = tmp_path / "audio"
    (root / "sub").mkdir(parents=True)
    sf.write(str(root / "a.wav"), 0.3 * rng.standard_normal(4003).astype(np.float32), SR, subtype="PCM_16")
    sf.write(str(root / "sub" / "b.wav"), 0.3 * rng.standard_normal((2400, 2)).astype(np.float32), SR,
             subtype="PCM_16")
    sf.write(str(root / "c.wav"), 0.3 * rng.standard_normal(2205).astype(np.float32), 22050, subtype="PCM_16")
    return root


def _check_export(out: Path, root: Path, codec, n_q: int) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    tokens = np.load(out / "tokens.npy")
    assert tokens.dtype == np.int16 and tokens.ndim == 2 and tokens.shape[0] == n_q
    assert manifest["shape"] == list(tokens.shape) and manifest["n_q"] == n_q
    assert manifest["frame_rate"] == codec.frame_rate == 2000.0
    assert manifest["cardinality"] == codec.bins == 16
    assert manifest["sample_rate"] == SR and manifest["model_id"] == model_id(codec)
    files = manifest["files"]
    assert [f["source"] for f in files] == ["a.wav", "c.wav", "sub/b.wav"]
    offset = 0
    for entry in files:
        assert entry["offset"] == offset
        audio = load_audio(root / entry["source"], SR)  # stereo downmixed, 22.05 kHz resampled, as exported
        assert entry["n_frames"] == -(-audio.shape[-1] // codec.hop_length)
        assert entry["seconds"] == pytest.approx(audio.shape[-1] / SR)
        want, _ = codec.encode(audio[None], n_q=n_q)
        np.testing.assert_array_equal(tokens[:, offset:offset + entry["n_frames"]], want[0].numpy())
        offset += entry["n_frames"]
    assert offset == tokens.shape[1]
    assert sorted(f["n_frames"] for f in files) == [200, 300, 501]  # 2205 @ 22.05k -> 1600 @ 16k; 2400; 4003 samples
    assert tokens.min() >= 0 and tokens.max() < codec.bins and len(np.unique(tokens)) > codec.bins // 2
    return manifest


def test_export_tokens(tmp_path, audio_dir, ckpt, codec) -> None:
    out = export_tokens(str(ckpt), str(audio_dir), str(tmp_path / "tok"))
    assert out == tmp_path / "tok"
    manifest = _check_export(out, audio_dir, codec, n_q=4)
    assert manifest["skipped"] == []

    # rerun with the same inputs: a no-op (nothing rewritten)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "tokens.npy", out / "manifest.json")}
    assert export_tokens(str(ckpt), str(audio_dir), str(out)) == out
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # a changed source file invalidates the export
    wav = audio_dir / "a.wav"
    data, _ = sf.read(str(wav), dtype="float32")
    sf.write(str(wav), data[:1603], SR, subtype="PCM_16")
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 10**9))
    export_tokens(str(ckpt), str(audio_dir), str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"][0]["n_frames"] == 201
    assert np.load(out / "tokens.npy").shape[1] == 201 + 200 + 300

    # a deleted tokens.npy is rebuilt, not reported as up to date
    (out / "tokens.npy").unlink()
    export_tokens(str(ckpt), str(audio_dir), str(out))
    assert np.load(out / "tokens.npy").shape[1] == 201 + 200 + 300


def test_export_tokens_chunked_equals_whole(tmp_path, audio_dir, ckpt, codec) -> None:
    out = export_tokens(str(ckpt), str(audio_dir), str(tmp_path / "tok"), chunk_seconds=0.01)
    _check_export(out, audio_dir, codec, n_q=4)


def test_prepare_codec_tokens_entry(tmp_path, audio_dir, ckpt, codec, capsys) -> None:
    assert "codec_tokens" in prepare.RECIPES and "ddsp" in prepare.RECIPES
    out = tmp_path / "tok_bw"
    # 16 bins = 4 bits at 2000 frames/s = 8 kbps per codebook: 17 kbps -> 2 codebooks
    prepare.main(["codec_tokens", f"ckpt_path={ckpt}", f"input_dir={audio_dir}", f"output_dir={out}", "bandwidth=17"])
    manifest = _check_export(out, audio_dir, codec, n_q=2)
    assert manifest["checkpoint"] == str(ckpt)

    capsys.readouterr()
    for argv, word in ((["codec_tokens", f"ckpt_path={ckpt}"], "input_dir"),
                       (["codec_tokens", f"ckpt_path={ckpt}", str(audio_dir)], "key=value"),
                       (["codec_tokens", f"ckpt_path={ckpt}", f"input_dir={audio_dir}", f"output_dir={out}_x",
                         "bandwidth=1000"], "supported")):
        with pytest.raises(SystemExit) as exc:  # one line on stderr, exit status 2 (like the CLIs)
            prepare.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("prepare codec_tokens: ") and err.count("\n") == 1, err
        assert word in err
    assert not Path(f"{out}_x").exists()


def test_export_tokens_bad_files(tmp_path, audio_dir, ckpt, codec) -> None:
    bad = audio_dir / "broken.wav"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioLoadError, match="broken.wav"):
        export_tokens(str(ckpt), str(audio_dir), str(tmp_path / "tok_err"))
    assert not (tmp_path / "tok_err" / "tokens.npy").exists()

    out = export_tokens(str(ckpt), str(audio_dir), str(tmp_path / "tok_skip"), on_bad_file="skip")
    manifest = _check_export(out, audio_dir, codec, n_q=4)
    assert [s["source"] for s in manifest["skipped"]] == ["broken.wav"]
    assert "broken.wav" in manifest["skipped"][0]["error"]

    with pytest.raises(ValueError, match="on_bad_file"):
        export_tokens(str(ckpt), str(audio_dir), str(tmp_path / "x"), on_bad_file="ignore")
    with pytest.raises(FileNotFoundError, match="input_dir"):
        export_tokens(str(ckpt), str(tmp_path / "nope"), str(tmp_path / "x"))
