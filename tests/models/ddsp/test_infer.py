"""Tests for the DDSP inference CLI (audiolab.models.ddsp.infer) on a tiny, untrained checkpoint."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra.utils import instantiate

from audiolab.models.ddsp import infer

SR, FR = 16000, 250
HOP = SR // FR
IN_SR, SECONDS, F0 = 22050, 2.0, 220.0

MODEL_CFG = {
    "_target_": "audiolab.models.ddsp.module.DDSPModule",
    "sample_rate": SR,
    "frame_rate": FR,
    "net": {"n_harmonics": 8, "n_noise_bands": 9, "noise": True, "noise_initial_bias": -5.0, "reverb": False,
            "reverb_length": 48000, "head": "exp_sigmoid", "delta_f0": False, "delta_loudness": False,
            "smoothing": "none", "smoothing_alpha": 0.9,
            "smoothing_targets": ["amplitude", "harmonic_distribution", "noise_magnitudes"]},
    "decoder": {"backbone": "transformer", "hidden_size": 16, "layers_per_stack": 1, "gru_size": 16, "d_model": 16,
                "layers": 1, "heads": 2, "ff_multiplier": 2, "dropout": 0.0, "causal": True,
                "positional": "sinusoidal"},
    "loss": {"spectral": {"fft_sizes": [256, 128], "overlap": 0.75, "mag_weight": 1.0, "logmag_weight": 1.0,
                          "log_eps": 1.0e-5},
             "loudness": {"type": "none", "weight": 0.0, "warmup_steps": 0, "ramp_steps": 0}},
    "optim": {"optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 3.0e-4}, "scheduler": None},
    "diagnostics": {"every_n_steps": 0, "n_examples": 1, "f0_metric_crepe": "tiny"},
}


def _write_ckpt(path: Path, model_cfg: dict) -> Path:
    torch.manual_seed(0)
    module = instantiate(copy.deepcopy(model_cfg), _recursive_=False)
    torch.save({"state_dict": module.state_dict(),
                "audiolab_config": {"model": model_cfg, "data": {"crepe_model": "tiny", "sample_rate": SR,
                                                                 "frame_rate": FR}}}, path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return _write_ckpt(tmp_path_factory.mktemp("ddsp_ckpt") / "tiny.ckpt", MODEL_CFG)


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    """2 s, 220 Hz harmonic tone, 22.05 kHz stereo."""
    t = np.arange(int(SECONDS * IN_SR)) / IN_SR
    x = sum(0.3 / k * np.sin(2 * np.pi * F0 * k * t) for k in range(1, 6))
    x *= np.minimum(1.0, np.minimum(t, SECONDS - t) / 0.05)  # 50 ms fades
    path = tmp_path_factory.mktemp("ddsp_in") / "tone.wav"
    sf.write(path, np.stack([x, 0.8 * x], axis=1).astype(np.float32), IN_SR)
    return path


def test_resynthesis_and_pitch_shift(ckpt: Path, tone: Path, tmp_path: Path, capsys) -> None:
    out0, out12 = tmp_path / "resynth.wav", tmp_path / "up12.wav"
    assert infer.main([str(tone), str(out0), "--ckpt", str(ckpt), "--device", "cpu", "--save-controls"]) == 0
    report = capsys.readouterr().out
    assert "median f0" in report and "output peak" in report
    assert infer.main([str(tone), str(out12), "--ckpt", str(ckpt), "--device", "cpu", "--save-controls",
                       "--pitch-shift", "12"]) == 0

    for out in (out0, out12):
        y, sr = sf.read(out)
        assert sr == SR and y.ndim == 1
        assert abs(len(y) - SECONDS * SR) <= HOP
        assert np.isfinite(y).all() and np.abs(y).max() > 0

    c0, c12 = np.load(out0.with_suffix(".npz")), np.load(out12.with_suffix(".npz"))
    n_frames = int(SECONDS * SR) // HOP
    assert c0["amplitude"].shape == (n_frames,)
    assert c0["harmonic_distribution"].shape == (n_frames, 8)
    assert c0["noise_magnitudes"].shape == (n_frames, 9)
    assert c0["loudness_db"].shape == (n_frames,)
    mid = slice(n_frames // 4, 3 * n_frames // 4)
    assert abs(np.median(c0["f0_hz"][mid]) / F0 - 1) < 0.03  # CREPE tiny found the tone
    np.testing.assert_allclose(c12["f0_hz"], 2 * c0["f0_hz"], rtol=0.01)
    np.testing.assert_allclose(c12["loudness_db"], c0["loudness_db"], atol=1e-4)


def test_feature_edits() -> None:
    f0, ld, conf = torch.tensor([100.0, 200.0]), torch.tensor([-75.0, -20.0]), torch.tensor([0.9, 0.1])
    f, lo = infer.transform_features(f0, ld, conf, pitch_shift=-12, loudness_offset=-10, confidence_threshold=0.5)
    torch.testing.assert_close(f, torch.tensor([50.0, 100.0]))
    torch.testing.assert_close(lo, torch.tensor([-80.0, -80.0]))  # floor at -80; low-confidence frame silenced
    _, lo = infer.transform_features(f0, ld, conf, loudness_offset=30)
    torch.testing.assert_close(lo, torch.tensor([-45.0, 10.0]))  # no upper clamp


@pytest.mark.parametrize("backbone", ["transformer", "gru"])
def test_chunked_render_length(tmp_path: Path, monkeypatch, backbone: str) -> None:
    from audiolab.models.ddsp import render

    cfg = copy.deepcopy(MODEL_CFG)
    cfg["decoder"]["backbone"] = backbone
    net, _ = infer.load_ddsp(_write_ckpt(tmp_path / "m.ckpt", cfg))
    monkeypatch.setattr(render, "ONE_PASS_SECONDS", 0.2)  # 50 frames
    monkeypatch.setattr(render, "SYNTH_CHUNK_FRAMES", 40)
    n = 130  # 40 + 40 + 40 + 10
    out = render.render_whole(net, torch.full((n,), 220.0), torch.full((n,), -30.0), window_frames=60)
    assert out["audio"].shape == (n * HOP,) and torch.isfinite(out["audio"]).all()
    assert out["amplitude"].shape == (n,) and out["harmonic_distribution"].shape == (n, 8)


def test_missing_checkpoint(tone: Path, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope" / "missing.ckpt"
    assert infer.main([str(tone), str(tmp_path / "o.wav"), "--ckpt", str(missing), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err


def test_corrupt_input(ckpt: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    assert infer.main([str(bad), str(tmp_path / "o.wav"), "--ckpt", str(ckpt), "--device", "cpu"]) == 2
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


def test_not_a_ddsp_checkpoint(tone: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "audiolab_config": {"model": {"_target_": "audiolab.models.vae.VAEModule"}}}, path)
    assert infer.main([str(tone), str(tmp_path / "o.wav"), "--ckpt", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "not a ddsp checkpoint" in err.lower() and str(path) in err
